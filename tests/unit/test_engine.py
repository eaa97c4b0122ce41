"""The session engine's counting rules, on a task.Clock (nothing sleeps)."""

from twisted.internet.task import Clock

from emulator.editions import get_edition
from emulator.engine import STATUS_REMOTE_SESSION_LIMIT, STATUS_REQUEST_NOT_ACCEPTED, SessionEngine
from emulator.events import SRV_LIMIT_EVENT_ID, EventLog


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
