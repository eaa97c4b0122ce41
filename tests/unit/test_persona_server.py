"""The persona as the server wires it: edition defaults and their overrides, the share
list srvsvc shows (ADMIN$, C$, IPC$, Windows paths), the computer name checks."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from emulator.config import Config, ConfigError, build_config
from emulator.rpcview import EngineServerView
from emulator.server import EmulatorServer
from protocols.auth.ntlm import version_field


_made: list[EmulatorServer] = []


@pytest.fixture(autouse=True)
def _close_servers():
    yield
    while _made:
        _made.pop().close()  # removes the temporary system drives


class _NoReactor:
    def callLater(self, *args, **kwargs):  # the engine's clock is the task.Clock
        raise AssertionError("no reactor here")


def server(tmp_path, **kwargs):
    kwargs.setdefault("shares", {"docs": str(tmp_path)})
    clock = Clock()
    clock.advance(1_700_000_000)  # the emulated host's boot
    made = EmulatorServer(Config(**kwargs), reactor=_NoReactor(), clock=clock)
    _made.append(made)
    return made


def test_edition_defaults_and_overrides(tmp_path):
    win11 = server(tmp_path, edition="win11")
    assert win11.smb_config().signing_required  # 11 24H2 requires signing inbound
    assert not server(tmp_path, edition="win11", signing_required=False).smb_config(
    ).signing_required
    assert not server(tmp_path, edition="win10").smb_config().signing_required
    # NTLMv1: accepted at level 3 (win10), removed on 11; a level of 5 refuses it anywhere.
    assert server(tmp_path, edition="win10").ntlm_settings()["accept_ntlmv1"]
    assert not server(tmp_path, edition="win11").ntlm_settings()["accept_ntlmv1"]
    assert not server(tmp_path, edition="win10", lm_compatibility_level=5).ntlm_settings()[
        "accept_ntlmv1"]
    assert server(tmp_path, edition="xp-pro").ntlm_settings()["accept_lm"]
    assert not server(tmp_path, edition="win10", lm_compatibility_level=4).ntlm_settings()[
        "accept_lm"]
    # Version per edition, ForceGuest and RestrictNullSessAccess defaults.
    win7 = server(tmp_path, edition="win7")
    assert win7.smb_config().ntlm_version == version_field(6, 1, 7601)
    assert win7.smb_config().max_transact == 1024 * 1024
    assert win7.smb_config().start_time == 1_700_000_000
    assert not server(tmp_path, edition="win10").smb_config().start_time
    assert server(tmp_path, edition="xp-home").smb_config().force_guest
    assert not server(tmp_path, edition="xp-home", force_guest=False).smb_config().force_guest
    assert win7.engine.rules.restrict_anonymous
    assert not server(tmp_path, edition="xp-pro").engine.rules.restrict_anonymous
    assert server(tmp_path, edition="xp-pro", restrict_anonymous=True).engine.rules.\
        restrict_anonymous


def test_share_list_has_the_administrative_shares_with_windows_paths(tmp_path):
    s = server(tmp_path, shares={})
    shares = EngineServerView(s).shares()
    assert shares[:3] == [("ADMIN$", 0x80000000, "Remote Admin", "C:\\Windows"),
                          ("C$", 0x80000000, "Default share", "C:\\"),
                          ("IPC$", 0x80000003, "Remote IPC", "")]
    assert shares[3] == ("public", 0, "", "C:\\Users\\Public")  # the default share
    assert set(s.smb_config().admin_shares) == {"admin$", "c$"}
    outside = server(tmp_path, shares={"docs": str(tmp_path)})
    assert EngineServerView(outside).shares()[3] == ("docs", 0, "",
                                                     f"C:\\Shares\\{tmp_path.name}")


def test_system_drive_given(tmp_path):
    (tmp_path / "data").mkdir()
    s = server(tmp_path, system_drive=str(tmp_path), shares={"data": str(tmp_path / "data")})
    assert s.windows_path(str(tmp_path / "data")) == "C:\\data"
    assert s.admin_shares["c$"].name == "C$"


@pytest.mark.parametrize("name", ["", "A" * 16, "BAD NAME", "a/b", "x*"])
def test_odd_computer_names_are_refused(name):
    with pytest.raises(ConfigError):
        build_config({"netbios_name": name}, {})


def test_lm_level_range():
    with pytest.raises(ConfigError):
        build_config({"lm_compatibility_level": 6}, {})
    assert build_config({"lm_compatibility_level": 0}, {}).lm_compatibility_level == 0


@pytest.mark.parametrize("edition,smb1,smb2", [
    ("xp-home", True, False), ("xp-pro", True, False), ("server-2003", True, False),
    ("whs", True, False), ("vista", True, True), ("win7", True, True),
    ("win81", False, True), ("win10", False, True), ("server-2022", False, True)])
def test_smb1_per_edition(tmp_path, edition, smb1, smb2):
    config = server(tmp_path, edition=edition).smb_config()
    assert (config.smb1 is not None, config.smb2) == (smb1, smb2)


def test_smb1_key_overrides_the_edition(tmp_path):
    off = server(tmp_path, edition="xp-pro", smb1=False).smb_config()
    assert off.smb1 is None and off.smb2  # SMB1 off: XP speaks 2.0.2 as before
    on = server(tmp_path, edition="win10", smb1=True).smb_config()
    assert on.smb1 is not None and on.smb2
    xp = server(tmp_path, edition="xp-pro").smb_config().smb1
    assert (xp.max_mpx, xp.max_buffer, xp.capabilities, xp.native_os, xp.native_lanman) == (
        10, 4356, 0x8000E3FD, "Windows 5.1", "Windows 2000 LAN Manager")
    assert build_config({"smb1": False}, {}).smb1 is False
