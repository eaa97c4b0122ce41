"""The /metrics text: valid Prometheus exposition (0.0.4), and the numbers move with the engine."""

import re

from twisted.internet.task import Clock

from emulator.core import metrics
from emulator.core.editions import get_edition
from emulator.core.engine import SessionEngine
from emulator.core.events import EventLog

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"({NAME})(?:\{{{LABEL}(?:,{LABEL})*\}})? (\S+)\Z")
VALUE = re.compile(r"[+-]?(?:Inf|NaN|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\Z")


def parse(text):
    """A strict reader of the text format: every family has HELP then TYPE before its
    samples, each family once, values parse; returns {(name, labels text): value}."""
    assert text.endswith("\n")
    declared, current, samples = {}, None, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert name not in declared, f"{name} declared twice"
            declared[name], current = None, name
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == current and kind in ("counter", "gauge"), line
            declared[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            assert match.group(1) == current and declared[current], f"undeclared: {line!r}"
            assert VALUE.match(match.group(2)), line
            if declared[current] == "counter":
                assert current.endswith("_total")
            key = (current, line[len(current):line.rindex(" ")])
            assert key not in samples, f"duplicate series {line!r}"
            samples[key] = float(match.group(2))
    return samples


def make_engine(edition="xp-home"):
    clock = Clock()
    return SessionEngine(get_edition(edition), clock, EventLog(clock.seconds)), clock


def admit(engine, user="alice", protocol="smb"):
    session = engine.request_session(protocol, "127.0.0.1").session
    engine.logon(session, user=user, client="PC1", anonymous=False)
    return session


def test_an_idle_server_exposes_every_family_with_zeros():
    engine, _ = make_engine()
    samples = parse(metrics.render(engine))
    assert samples[("smbrdp_sessions", '{protocol="smb",state="active"}')] == 0
    assert samples[("smbrdp_session_limit", '{protocol="smb"}')] == 5
    assert samples[("smbrdp_denied_total", '{protocol="smb"}')] == 0
    assert samples[("smbrdp_connections_total", '{protocol="rdp"}')] == 0
    for name in ("timed_out", "logged_off", "errored_out", "forced_off"):
        assert samples[(f"smbrdp_sessions_{name}_total", "")] == 0


def test_sessions_are_counted_by_protocol_and_state():
    engine, clock = make_engine()
    admit(engine)
    clock.advance(engine.rules.idle_after)  # alice now shows as idle
    admit(engine, "bob")
    engine.request_session("smb", "127.0.0.2")  # still authenticating
    samples = parse(metrics.render(engine))
    assert samples[("smbrdp_sessions", '{protocol="smb",state="idle"}')] == 1
    assert samples[("smbrdp_sessions", '{protocol="smb",state="active"}')] == 1
    assert samples[("smbrdp_sessions", '{protocol="smb",state="pending"}')] == 1
    assert samples[("smbrdp_session_slots_used", '{protocol="smb"}')] == 3


def test_denials_and_endings_move_their_counters():
    engine, clock = make_engine()
    sessions = [admit(engine, f"u{i}") for i in range(5)]
    engine.note_connection("smb")
    assert not engine.request_session("smb", "127.0.0.9").admitted
    engine.release(sessions[0], "logoff")
    engine.release(sessions[1], "connection-closed")
    engine.end(sessions[2].id, "admin-delete")
    clock.advance(15 * 60)  # the other two idle past autodisconnect
    samples = parse(metrics.render(engine))
    assert samples[("smbrdp_denied_total", '{protocol="smb"}')] == 1
    assert samples[("smbrdp_connections_total", '{protocol="smb"}')] == 1
    assert samples[("smbrdp_sessions_logged_off_total", "")] == 1
    assert samples[("smbrdp_sessions_errored_out_total", "")] == 1
    assert samples[("smbrdp_sessions_forced_off_total", "")] == 1
    assert samples[("smbrdp_sessions_timed_out_total", "")] == 2


def test_an_unlimited_protocol_reads_plus_inf():
    engine, _ = make_engine("server-2022")
    text = metrics.render(engine)
    assert 'smbrdp_session_limit{protocol="smb"} +Inf\n' in text
    assert parse(text)[("smbrdp_session_limit", '{protocol="rdp"}')] == 2


def test_label_values_are_escaped():
    engine, _ = make_engine()
    engine.counters['denied:we"ird\\'] += 1
    samples = parse(metrics.render(engine))
    assert samples[("smbrdp_denied_total", '{protocol="we\\"ird\\\\"}')] == 1
