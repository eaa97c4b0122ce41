"""The session engine's counting rules, on a task.Clock (nothing sleeps)."""

import pytest
from twisted.internet.task import Clock

from emulator.core.editions import get_edition
from emulator.core.engine import (
    STATUS_REMOTE_SESSION_LIMIT, STATUS_REQUEST_NOT_ACCEPTED, SessionEngine,
)
from emulator.core.events import SRV_LIMIT_EVENT_ID, EventLog


def make_engine(edition="xp-home", **kw):
    clock = Clock()
    events = EventLog(clock.seconds)
    return SessionEngine(get_edition(edition), clock, events, **kw), clock, events


def fill(engine, n, protocol="smb"):
    sessions = []
    for i in range(n):
        adm = engine.request_session(protocol, f"127.0.0.{i + 1}")
        assert adm.admitted
        engine.logon(adm.session, user=f"u{i}", client=f"PC{i}", anonymous=False)
        sessions.append(adm.session)
    return sessions


def test_xp_home_admits_five_and_refuses_the_sixth():
    engine, _, events = make_engine()
    fill(engine, 5)
    refused = engine.request_session("smb", "127.0.0.9")
    assert not refused.admitted
    assert refused.status == STATUS_REQUEST_NOT_ACCEPTED == 0xC00000D0
    denial = events.records[-1]
    assert (denial["id"], denial["outcome"], denial["status"]) == (
        SRV_LIMIT_EVENT_ID, "denied", 0xC00000D0)
    assert denial["address"] == "127.0.0.9"


def test_release_frees_the_slot_at_once():
    engine, _, events = make_engine()
    sessions = fill(engine, 5)
    engine.release(sessions[0], "logoff")
    assert engine.request_session("smb", "127.0.0.9").admitted
    assert any(r["outcome"] == "logoff" for r in events.records)


def test_release_twice_counts_once():
    engine, _, _ = make_engine()
    sessions = fill(engine, 5)
    engine.release(sessions[0], "logoff")
    engine.release(sessions[0], "connection-closed")
    assert engine.counted("smb") == 4


def test_pending_setups_hold_slots_so_a_race_admits_exactly_the_limit():
    engine, _, _ = make_engine()
    results = [engine.request_session("smb", "127.0.0.1") for _ in range(16)]
    assert sum(r.admitted for r in results) == 5


def test_a_stalled_setup_gives_its_slot_back_after_the_timeout():
    engine, clock, events = make_engine(setup_timeout=30)
    closed = []
    pending = engine.request_session("smb", "127.0.0.1", close_hook=closed.append).session
    fill(engine, 4)
    assert not engine.request_session("smb", "127.0.0.2").admitted
    clock.advance(29)
    assert engine.counted("smb") == 5
    clock.advance(1)
    assert engine.counted("smb") == 4
    assert closed == ["setup-timeout"]
    assert events.records[-1]["outcome"] == "setup-timeout"
    assert pending not in engine.sessions()


def test_a_completed_logon_is_not_timed_out():
    engine, clock, _ = make_engine(setup_timeout=30)
    engine.set_autodisconnect(-1)
    fill(engine, 1)
    clock.advance(3600)
    assert engine.counted("smb") == 1


def test_denial_status_is_configurable():
    engine, _, _ = make_engine(denial_status=STATUS_REMOTE_SESSION_LIMIT)
    fill(engine, 5)
    assert engine.request_session("smb", "x").status == 0xC0000196


def test_a_lowered_limit_keeps_existing_sessions_and_refuses_new_ones():
    engine, _, _ = make_engine("win10")
    fill(engine, 5)
    engine.set_limit("smb", 3)
    assert engine.counted("smb") == 5
    assert not engine.request_session("smb", "x").admitted


def test_unlimited_editions_never_refuse():
    engine, _, _ = make_engine("server-2022")
    fill(engine, 200)
    assert engine.request_session("smb", "x").admitted


def test_protocols_are_counted_apart():
    engine, _, _ = make_engine("win10")
    fill(engine, 20, "smb")
    assert engine.request_session("rdp", "x").admitted


def test_console_sessions_do_not_count_and_take_id_zero():
    engine, _, _ = make_engine("whs")
    console = engine.request_session("rdp", "127.0.0.1", console=True).session
    assert console.id == 0
    fill(engine, 2, "rdp")
    assert not engine.request_session("rdp", "127.0.0.9").admitted
    assert engine.counted("rdp") == 2


def test_take_over_tells_the_old_connection_and_keeps_the_session():
    engine, _, _ = make_engine("win10")
    told = []
    adm = engine.request_session("rdp", "10.0.0.1", close_hook=told.append)
    engine.logon(adm.session, user="alice", client="PC1", anonymous=False)
    engine.take_over(adm.session, "10.0.0.2", close_hook=None)
    assert told == ["replaced"]
    assert adm.session.address == "10.0.0.2" and engine.counted("rdp") == 1


def test_a_disconnected_rdp_session_still_counts_until_reset():
    engine, _, events = make_engine("whs")
    sessions = fill(engine, 2, "rdp")
    engine.disconnect(sessions[0])
    assert not engine.request_session("rdp", "x").admitted
    assert engine.find_active("rdp", user="U0") == [sessions[0]]
    assert sessions[0].state == "disconnected"
    assert engine.end(sessions[0].id, "admin-reset")
    assert engine.request_session("rdp", "x").admitted
    assert [r["outcome"] for r in events.records
            if r["outcome"] in ("disconnect", "admin-reset")] == ["disconnect", "admin-reset"]


def test_autodisconnect_drops_an_idle_smb_session_with_no_open_and_frees_the_slot():
    engine, clock, events = make_engine()
    told = []
    adm = engine.request_session("smb", "127.0.0.1", close_hook=told.append)
    engine.logon(adm.session, user="alice", client="PC", anonymous=False)
    busy = fill(engine, 1)[0]
    engine.set_open_files(busy, ["docs\\report.txt"])
    clock.advance(15 * 60 - 1)
    assert engine.counted("smb") == 2
    clock.advance(1)
    assert told == ["autodisconnect"] and engine.counted("smb") == 1
    assert busy in engine.sessions()  # an open file keeps it
    assert engine.counters["timed_out"] == 1
    assert events.records[-1]["outcome"] == "autodisconnect"


def test_activity_postpones_autodisconnect_and_minus_one_turns_it_off():
    engine, clock, _ = make_engine()
    session = fill(engine, 1)[0]
    clock.advance(600)
    engine.touch(session)
    clock.advance(600)
    assert engine.counted("smb") == 1
    engine.set_autodisconnect(-1)
    clock.advance(10_000)
    assert engine.counted("smb") == 1
    engine.set_autodisconnect(0)  # "within seconds"
    clock.advance(10)
    assert engine.counted("smb") == 0


def test_a_null_session_that_opens_nothing_expires_but_an_open_keeps_it():
    engine, clock, _ = make_engine()
    engine.rules.null_session_timeout = 45
    idle = engine.request_session("smb", "a").session
    engine.logon(idle, user="", client="", anonymous=True)
    holding = engine.request_session("smb", "b").session
    engine.logon(holding, user="", client="", anonymous=True)
    engine.set_open_files(holding, ["\\PIPE\\spoolss"])
    clock.advance(45)
    assert idle not in engine.sessions() and holding in engine.sessions()


def test_null_sessions_count_each_even_from_one_client():
    engine, _, _ = make_engine()
    for _ in range(5):
        s = engine.request_session("smb", "127.0.0.1").session
        engine.logon(s, user="", client="PC", anonymous=True)
    assert not engine.request_session("smb", "127.0.0.1").admitted


def test_grouping_by_client_counts_one_computer_once():
    engine, _, _ = make_engine()
    engine.rules.group_by_client = True
    for i in range(5):
        s = engine.request_session("smb", f"10.0.0.{i}").session
        assert engine.logon(s, user="u", client=f"PC{i}", anonymous=False) == 0
    again = engine.request_session("smb", "10.0.0.0").session
    assert engine.logon(again, user="u", client="pc0", anonymous=False) == 0
    sixth = engine.request_session("smb", "10.0.0.9").session
    assert engine.logon(sixth, user="u", client="PC9", anonymous=False) == 0xC00000D0
    assert engine.counted("smb") == 5


def test_anonymous_allow_lists():
    engine, _, _ = make_engine()
    assert engine.anonymous_may_open("share", "IPC$")
    assert not engine.anonymous_may_open("share", "docs")
    assert engine.anonymous_may_open("pipe", "spoolss")
    engine.rules.restrict_anonymous = True
    assert not engine.anonymous_may_open("pipe", "\\PIPE\\spoolss")
    engine.rules.null_session_pipes.append("SPOOLSS")
    assert engine.anonymous_may_open("pipe", "spoolss")


def test_delete_matching_closes_every_session_of_a_client():
    engine, _, _ = make_engine("win10")
    told = []
    for name in ("PC1", "PC1", "PC2"):
        s = engine.request_session("smb", "127.0.0.1", close_hook=told.append).session
        engine.logon(s, user="alice", client=name, anonymous=False)
    assert len(engine.delete_matching(client="\\\\pc1")) == 2
    assert told == ["admin-delete", "admin-delete"] and engine.counted("smb") == 1
    assert engine.counters["forced_off"] == 2


def test_the_rdp_idle_limit_disconnects_and_keeps_the_session_counted():
    engine, clock, events = make_engine("server-2022")
    engine.rules.rdp_idle_limit = 600
    told = []
    adm = engine.request_session("rdp", "10.0.0.1", close_hook=told.append)
    engine.logon(adm.session, user="alice", client="PC", anonymous=False)
    clock.advance(599)
    engine.touch(adm.session)
    clock.advance(599)
    assert told == []
    clock.advance(1)
    assert told == ["idle-limit"] and adm.session.state == "disconnected"
    assert engine.counted("rdp") == 1
    assert events.records[-1]["outcome"] == "idle-limit" and events.records[-1]["id"] == 4779


@pytest.mark.parametrize("reason, event_id, logon_errors", [
    ("auth-failed", 4625, 1),  # bad credentials: a failed logon
    ("setup-timeout", 104, 1),  # a stall past the timeout
    ("connection-closed", 105, 0),  # the client left before its logon completed
])
def test_how_a_half_done_logon_ends_is_recorded(reason, event_id, logon_errors):
    engine, _, events = make_engine()
    pending = engine.request_session("smb", "127.0.0.1").session
    engine.release(pending, reason)
    assert (events.records[-1]["id"], events.records[-1]["outcome"]) == (event_id, reason)
    assert engine.counters["logon_errors"] == logon_errors


# -- issue 14: setups not yet authenticated are bounded per connection and per address ------
def test_pending_setups_are_bounded_per_connection():
    engine, clock, events = make_engine("win11", pending_per_connection=2, pending_per_address=8)
    conn = object()
    held = [engine.request_session("smb", "10.0.0.1", connection=conn) for _ in range(20)]
    assert [a.admitted for a in held].count(True) == 2
    assert held[2].status == STATUS_REQUEST_NOT_ACCEPTED
    assert engine.counted("smb") == 2
    assert engine.counters["pending_refused:smb"] == 18
    assert not [e for e in events.records if e["outcome"] == "denied"]  # not a limit refusal
    # Another connection from elsewhere still gets in; one that finishes frees its place.
    assert engine.request_session("smb", "10.0.0.2", connection=object()).admitted
    engine.logon(held[0].session, user="u", client="PC", anonymous=False)
    assert engine.request_session("smb", "10.0.0.1", connection=conn).admitted


def test_pending_setups_are_bounded_per_address():
    engine, _, _ = make_engine("win11", pending_per_connection=2, pending_per_address=3)
    conns = [object() for _ in range(10)]
    admitted = [engine.request_session("smb", "10.0.0.1", connection=c).admitted
                for c in conns]
    assert admitted.count(True) == 3
    assert engine.request_session("smb", "10.0.0.7", connection=object()).admitted
    assert engine.counted("smb") == 4  # 16 of win11's 20 slots stay free for others


def test_the_address_bound_applies_only_under_a_limit():
    """On an unlimited host many clients behind one address may set up at once."""
    engine, _, _ = make_engine("server-2022", pending_per_connection=2, pending_per_address=3)
    assert all(engine.request_session("smb", "10.0.0.1", connection=object()).admitted
               for _ in range(10))
    conn = object()  # the per-connection bound still holds
    assert [engine.request_session("smb", "10.0.0.1", connection=conn).admitted
            for _ in range(3)] == [True, True, False]


def test_a_pending_setup_past_the_timeout_frees_its_place_in_the_bound():
    engine, clock, _ = make_engine("win11", setup_timeout=30, pending_per_connection=1)
    conn = object()
    assert engine.request_session("smb", "10.0.0.1", connection=conn).admitted
    assert not engine.request_session("smb", "10.0.0.1", connection=conn).admitted
    clock.advance(30)
    assert engine.request_session("smb", "10.0.0.1", connection=conn).admitted


def _scanned(engine, conn, address):
    """The pending counts as the table shows them (what the bounds scanned for before)."""
    pending = [s for s in engine.sessions("smb") if s.state == "pending" and s.connection]
    return (sum(1 for s in pending if s.connection is conn),
            sum(1 for s in pending if s.address == address))


def _counts(engine, conn, address):
    return (engine.pending.on_connection("smb", conn),
            engine.pending.from_address("smb", address))


def _ends_by(path):
    """Each way a pending setup stops being pending; returns what the path did."""
    def end(engine, clock, session):
        if path == "logon":
            engine.logon(session, user="u", client="PC", anonymous=False)
        elif path == "grouped-logon-refused":  # per-client grouping, the limit full at logon
            engine.rules.group_by_client = True
            engine.set_limit("smb", 0)
            assert engine.logon(session, user="u", client="PC9", anonymous=False) != 0
        elif path in ("auth-failed", "connection-closed"):
            engine.release(session, path)
        elif path == "setup-timeout":
            clock.advance(session.started + engine.setup_timeout - clock.seconds())
        elif path == "admin-end":
            assert engine.end(session.id, "admin-delete")
        elif path == "reset":
            engine.reset(engine.limits(), engine.rules)
        elif path == "disconnect":
            engine.disconnect(session)
        return path
    return end


PATHS = ["logon", "grouped-logon-refused", "auth-failed", "connection-closed", "setup-timeout",
         "admin-end", "reset", "disconnect"]


@pytest.mark.parametrize("path", PATHS)
def test_every_way_out_of_pending_gives_its_place_back_once(path):
    engine, clock, _ = make_engine("win11", setup_timeout=30, pending_per_connection=2,
                                   pending_per_address=3)
    conn, other = object(), object()
    first = engine.request_session("smb", "10.0.0.1", connection=conn).session
    clock.advance(10)  # the other setup's timeout comes later
    second = engine.request_session("smb", "10.0.0.1", connection=other).session
    assert _counts(engine, conn, "10.0.0.1") == _scanned(engine, conn, "10.0.0.1") == (1, 2)
    _ends_by(path)(engine, clock, first)
    left = 0 if path == "reset" else 1  # a reset ends the other setup too
    assert _counts(engine, conn, "10.0.0.1") == _scanned(engine, conn, "10.0.0.1") == (0, left)
    assert engine.pending.on_connection("smb", other) == left
    # Whatever else happens to the session afterwards, its place is not given back twice.
    engine.logon(first, user="u", client="PC", anonymous=False)
    engine.release(first, "logoff")
    engine.end(first.id, "admin-delete")
    engine.disconnect(first)
    assert _counts(engine, other, "10.0.0.1") == _scanned(engine, other, "10.0.0.1") == (left,
                                                                                       left)
    engine.release(second, "connection-closed")
    engine.release(second, "connection-closed")
    assert _counts(engine, conn, "10.0.0.1") == (0, 0)
    # ...so the bounds refuse exactly where they did: two setups on one connection.
    engine.rules.group_by_client = False
    engine.set_limit("smb", 20)
    held = [engine.request_session("smb", "10.0.0.1", connection=conn) for _ in range(3)]
    assert [a.admitted for a in held] == [True, True, False]
    assert _counts(engine, conn, "10.0.0.1") == _scanned(engine, conn, "10.0.0.1") == (2, 2)


def test_pending_counts_follow_a_crowd_of_setups_through_mixed_ends():
    """Many connections from two addresses, ended every way in turn: the counts agree with
    the table after every step, and the address bound refuses at the same point."""
    engine, clock, _ = make_engine("win11", setup_timeout=30, pending_per_connection=2,
                                   pending_per_address=5)
    conns = [object() for _ in range(6)]
    addresses = ["10.0.0.1", "10.0.0.2"]
    admitted = []
    for i in range(24):
        conn, address = conns[i % 6], addresses[i % 2]
        adm = engine.request_session("smb", address, connection=conn)
        if adm.admitted:
            admitted.append(adm.session)
        for c in conns:
            for a in addresses:
                assert _counts(engine, c, a) == _scanned(engine, c, a)
    assert [engine.pending.from_address("smb", a) for a in addresses] == [5, 5]
    assert not engine.request_session("smb", "10.0.0.1", connection=object()).admitted
    ends = ["logon", "grouped-logon-refused", "auth-failed", "connection-closed", "admin-end",
            "disconnect"]  # (the timeout and a reset end every setup at once: above)
    for i, session in enumerate(admitted):
        _ends_by(ends[i % len(ends)])(engine, clock, session)
        engine.rules.group_by_client = False
        engine.set_limit("smb", 20)
        for c in conns:
            for a in addresses:
                assert _counts(engine, c, a) == _scanned(engine, c, a)
    assert [engine.pending.from_address("smb", a) for a in addresses] == [0, 0]
    assert len(engine.pending) == 0


def test_sessions_asked_without_a_connection_are_not_pending_bounded():
    """RDP asks after the password was checked: no pending bound applies."""
    engine, _, _ = make_engine("server-2022", pending_per_connection=1, pending_per_address=1)
    assert all(engine.request_session("rdp", "10.0.0.1").admitted for _ in range(2))


def test_logon_history_counts_completed_logons_per_account():
    engine, clock, _ = make_engine("win10")
    clock.advance(100)
    for protocol, user in (("smb", "Alice"), ("rdp", "alice"), ("smb", "")):
        adm = engine.request_session(protocol, "10.0.0.1")
        clock.advance(5)
        engine.logon(adm.session, user=user, client="PC", anonymous=not user)
    pending = engine.request_session("smb", "10.0.0.2")  # never logs on: not counted
    assert pending.admitted
    assert engine.logon_history() == {"alice": (2, 110.0)}
    engine.reset({"smb": 20, "rdp": 1}, engine.rules)
    assert engine.logon_history() == {}


def test_a_client_sku_counts_only_the_connected_session():
    engine, _clock, _events = make_engine("win10")
    adm = engine.request_session("rdp", "10.0.0.1")
    engine.logon(adm.session, user="alice", client="PC", anonymous=False)
    assert engine.counted("rdp") == 1
    engine.disconnect(adm.session)
    assert engine.counted("rdp") == 0 and engine.get(adm.session.id) is not None
    server, _clock, _events = make_engine("server-2022")
    adm = server.request_session("rdp", "10.0.0.1")
    server.logon(adm.session, user="alice", client="PC", anonymous=False)
    server.disconnect(adm.session)
    assert server.counted("rdp") == 1  # servers count disconnected sessions too


def test_a_second_user_of_a_client_sku_is_offered_the_live_session_not_refused():
    engine, _clock, events = make_engine("win10")
    told: list[str] = []
    alice = engine.admit_interactive("rdp", "10.0.0.1", told.append, user="alice",
                                     client="PC1", console_requested=False).session
    engine.logon(alice, user="alice", client="PC1", anonymous=False)
    bob = engine.admit_interactive("rdp", "10.0.0.2", None, user="bob", client="PC2",
                                   console_requested=False)
    assert not bob.admitted and bob.displaces is alice
    assert [r["outcome"] for r in events.records] == ["admitted"]  # no refusal recorded
    answers: list[bool] = []
    asked: list[str] = []

    def prompt(requester, reply):
        asked.append(requester)
        reply(True)
        return lambda: None

    alice.prompt_hook = prompt
    engine.ask_to_yield(alice, "EMULATOR\\bob", answers.append)
    assert asked == ["EMULATOR\\bob"] and answers == [True] and told == ["replaced"]
    assert alice.state == "disconnected" and engine.counted("rdp") == 0
    again = engine.admit_interactive("rdp", "10.0.0.2", None, user="bob", client="PC2",
                                     console_requested=False)
    assert again.admitted


def test_a_declined_take_over_leaves_the_session_alone():
    engine, _clock, _events = make_engine("win10")
    alice = engine.request_session("rdp", "10.0.0.1").session
    engine.logon(alice, user="alice", client="PC1", anonymous=False)
    alice.prompt_hook = lambda requester, reply: (reply(False), lambda: None)[1]
    answers: list[bool] = []
    engine.ask_to_yield(alice, "EMULATOR\\bob", answers.append)
    assert answers == [False] and alice.state == "active" and engine.counted("rdp") == 1
