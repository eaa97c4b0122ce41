"""The one declaration of config keys: flags, TOML and rules all come from it."""

import pytest
from twisted.internet.task import Clock

from emulator.cli import build_parser
from emulator.config import (
    DENIAL_STATUSES, KEYS, ConfigError, build_config, check_values, flag_values,
)
from emulator.server import EmulatorServer


def test_every_declared_key_has_its_flag_and_round_trips_through_argparse():
    parser = build_parser()
    flags = {a.option_strings[0]: a for a in parser._subparsers._group_actions[0]
             .choices["serve"]._actions if a.option_strings}
    for spec in KEYS.values():
        assert spec.flag in flags, spec.name
    args = parser.parse_args(["serve", "--smb-limit", "3", "--user", "a:b", "--user", "c:d",
                              "--null-session-pipe", "srvsvc", "--restrict-anonymous",
                              "--denial-status", "STATUS_REMOTE_SESSION_LIMIT"])
    config = build_config({}, flag_values(args))
    assert config.smb_limit == 3 and config.users == {"a": "b", "c": "d"}
    assert config.null_session_pipes == ["srvsvc"] and config.restrict_anonymous is True
    assert config.denial_status == DENIAL_STATUSES["STATUS_REMOTE_SESSION_LIMIT"]


def test_toml_values_are_checked_against_the_declared_type():
    with pytest.raises(ConfigError, match="smb_limit: expected int"):
        check_values({"smb_limit": "ten"})
    with pytest.raises(ConfigError, match="host pc1: unknown config key: smb_limt"):
        check_values({"smb_limt": 3}, where="host pc1: ")
    assert check_values({"null-session-timeout": 30})["null_session_timeout"] == 30.0


def test_rules_start_from_the_keys_declared_with_a_rule():
    config = build_config({"autodisconnect": 5, "null_session_shares": ["pub"],
                           "edition": "win10"}, {})
    host = EmulatorServer(config, reactor=None, clock=Clock())
    try:
        rules = host.initial_rules()
        assert rules.autodisconnect_minutes == 5 and rules.null_session_shares == ["pub"]
        assert rules.restrict_anonymous is True  # unset: the edition's (Vista and later)
    finally:
        host.close()
