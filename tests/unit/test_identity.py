"""The machine SID: configured, or generated once per computer name and kept; the config key
and the edition's account table that lsarpc/samr answer from."""

from __future__ import annotations

import pytest

from emulator.core import identity
from emulator.config import ConfigError, build_config
from emulator.core.editions import get_edition
from protocols.dcerpc.accounts import account_dicts, valid_machine_sid


def test_generated_once_and_kept_per_computer(tmp_path):
    first = identity.machine_sid("EMULATOR", directory=tmp_path)
    assert valid_machine_sid(first)
    assert identity.machine_sid("emulator", directory=tmp_path) == first  # names: any case
    assert (tmp_path / "machine-sid-EMULATOR.txt").read_text().strip() == first
    other = identity.machine_sid("OTHERPC", directory=tmp_path)
    assert other != first and valid_machine_sid(other)


def test_configured_sid_wins_and_a_bad_kept_file_is_replaced(tmp_path):
    given = "S-1-5-21-1-2-3"
    assert identity.machine_sid("EMULATOR", given, directory=tmp_path) == given
    (tmp_path / "machine-sid-EMULATOR.txt").write_text("garbage")
    made = identity.machine_sid("EMULATOR", directory=tmp_path)
    assert valid_machine_sid(made) and made != "garbage"


def test_a_read_only_state_directory_still_gives_a_sid(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the directory should be
    assert valid_machine_sid(identity.machine_sid("EMULATOR", directory=blocked / "state"))


@pytest.mark.parametrize("sid,ok", [
    ("S-1-5-21-1111111111-2222222222-3333333333", True), ("S-1-5-21-4294967295-0-0", True),
    ("S-1-5-21-4294967296-0-0", False), ("S-1-5-32-544", False), ("S-1-5-21-1-2", False),
    ("s-1-5-21-1-2-3", False), ("", False),
])
def test_machine_sid_config_key(sid, ok):
    assert valid_machine_sid(sid) is ok
    if ok:
        assert build_config({"machine_sid": sid}, {}).machine_sid == sid
    else:
        with pytest.raises(ConfigError):
            build_config({"machine_sid": sid}, {})


def test_accounts_follow_the_edition():
    xp = get_edition("xp-pro")
    rows = account_dicts(["alice", "Administrator", "bob"], {"bob"}, xp.sam_builtin_accounts,
                         xp.sam_first_user_rid, {"alice": (4, 1000.0)})
    got = [(r["rid"], r["name"], r["enabled"], r["admin"], r["logon_count"]) for r in rows]
    assert got == [(500, "Administrator", True, True, 0), (501, "Guest", False, False, 0),
                   (1000, "HelpAssistant", False, False, 0),
                   (1002, "SUPPORT_388945a0", False, False, 0),
                   (1003, "alice", True, False, 4), (1004, "bob", True, True, 0)]
    win10 = get_edition("win10")
    rows = account_dicts(["alice"], set(), win10.sam_builtin_accounts, win10.sam_first_user_rid,
                         {})
    assert [(r["rid"], r["name"], r["enabled"]) for r in rows] == [
        (500, "Administrator", False), (501, "Guest", False), (503, "DefaultAccount", False),
        (504, "WDAGUtilityAccount", False), (1000, "alice", True)]
    assert win10.restrict_anonymous_sam and not win10.lsa_anonymous_lookup
    assert xp.lsa_anonymous_lookup
