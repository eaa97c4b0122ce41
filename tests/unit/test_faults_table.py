"""The fault table: validation of fault requests, matching, count/after, hits."""

import pytest

from emulator.core.faults import FaultError, FaultTable, status_code, status_name

COMMANDS = {"smb": {"NEGOTIATE", "SESSION_SETUP", "READ", "CREATE"}, "rdp": {"CLIENT_INFO"}}


def table(fired=None):
    return FaultTable(COMMANDS, on_fire=(lambda f, c, ctx: fired.append((f.id, c, dict(ctx))))
                      if fired is not None else None)


def test_status_by_name_or_number():
    assert status_code("STATUS_INSUFFICIENT_RESOURCES") == 0xC000009A
    assert status_code("status_logon_failure") == 0xC000006D
    assert status_code(0xC00000D0) == 0xC00000D0
    assert status_code("0xc0000203") == 0xC0000203
    assert status_name(0xC0000203) == "STATUS_USER_SESSION_DELETED"
    assert status_name(0xC0DEC0DE) == "0xC0DEC0DE"
    for bad in ("STATUS_NO_SUCH_THING", -1, 2**32, True, 1.5, None):
        with pytest.raises(FaultError, match="status"):
            status_code(bad)


@pytest.mark.parametrize("spec, reason", [
    ({"protocol": "ftp", "command": "READ", "status": 1}, "protocol"),
    ({"protocol": "smb", "command": "FROB", "status": 1}, "command"),
    ({"protocol": "smb", "command": "READ", "status": "STATUS_NOPE"}, "status"),
    ({"protocol": "smb", "command": "READ", "status": 1, "count": -1}, "count"),
    ({"protocol": "smb", "command": "READ", "status": 1, "count": 0}, "count"),
    ({"protocol": "smb", "command": "READ", "status": 1, "after": -2}, "after"),
    ({"protocol": "smb", "command": "READ", "status": 1, "count": 1.5}, "count"),
    ({"protocol": "smb", "command": "READ", "action": "explode"}, "action"),
    ({"protocol": "smb", "command": "READ", "action": "pending"}, "delay"),
    ({"protocol": "smb", "command": "READ", "delay": -1}, "delay"),
    ({"protocol": "smb", "command": "READ", "delay": 10**6}, "delay"),
    ({"protocol": "smb", "command": "READ"}, "needs an action"),
    ({"protocol": "smb", "command": "READ", "status": 1, "colour": "red"}, "colour"),
    ({"protocol": "smb", "command": "READ", "status": 1, "user": ""}, "user"),
    ({"protocol": "smb", "command": "*", "credits": 0}, "credits"),
])
def test_bad_requests_name_the_field(spec, reason):
    t = table()
    with pytest.raises(FaultError, match=reason):
        t.add(spec)
    assert t.faults == []


def test_action_follows_the_fields_given():
    t = table()
    assert t.add({"protocol": "smb", "command": "read", "status": 0xC000009A}).action == "status"
    assert t.add({"protocol": "smb", "command": "*", "credits": 1}).action == "credits"
    assert t.add({"protocol": "smb", "command": "READ", "delay": 2}).action == "delay"
    assert t.add({"protocol": "rdp", "command": "CLIENT_INFO",
                  "errinfo": "ERRINFO_LOGOFF_BY_USER"}).action == "errinfo"


def test_count_after_and_hits():
    fired = []
    t = table(fired)
    f = t.add({"protocol": "smb", "command": "READ", "status": 1, "count": 2, "after": 1})
    results = [t.match("smb", "READ") for _ in range(5)]
    assert [r is f for r in results] == [False, True, True, False, False]
    assert (f.seen, f.hits, f.spent) == (3, 2, True)
    assert [c for _, c, _ in fired] == ["READ", "READ"]
    assert t.match("smb", "CREATE") is None


def test_unlimited_count_and_wildcard_command():
    t = table()
    f = t.add({"protocol": "smb", "command": "*", "action": "drop", "count": None})
    assert all(t.match("smb", c) is f for c in ("NEGOTIATE", "READ", "CREATE"))
    assert t.match("rdp", "CLIENT_INFO") is None
    assert f.hits == 3 and not f.spent


def test_filters_match_case_insensitively_and_path_prefix():
    t = table()
    f = t.add({"protocol": "smb", "command": "CREATE", "status": 1, "count": None,
               "user": "Alice", "share": "docs", "path": "reports\\*"})
    assert t.match("smb", "CREATE", user="alice", share="DOCS", path="Reports\\q1.txt") is f
    assert t.match("smb", "CREATE", user="bob", share="docs", path="reports\\q1.txt") is None
    assert t.match("smb", "CREATE", user="alice", share="docs", path="other.txt") is None
    assert t.match("smb", "CREATE", user="alice", path="reports\\x") is None  # no share


def test_first_armed_fault_fires_and_others_still_count_the_request():
    t = table()
    first = t.add({"protocol": "smb", "command": "READ", "status": 1})
    second = t.add({"protocol": "smb", "command": "READ", "status": 2, "after": 1})
    assert t.match("smb", "READ") is first
    assert second.seen == 1 and second.hits == 0
    assert t.match("smb", "READ") is second


def test_rows_remove_and_clear():
    t = table()
    f = t.add({"protocol": "smb", "command": "READ", "status": "STATUS_INSUFFICIENT_RESOURCES"})
    row = t.rows()[0]
    assert row["status"] == "STATUS_INSUFFICIENT_RESOURCES"
    assert row["status_code"] == "0xC000009A" and row["hits"] == 0 and row["spent"] is False
    assert t.armed("smb") and not t.armed("rdp")
    assert t.remove(f.id) is f and t.remove(f.id) is None
    t.add({"protocol": "smb", "command": "READ", "status": 1})
    assert t.clear() == 1 and t.rows() == []
