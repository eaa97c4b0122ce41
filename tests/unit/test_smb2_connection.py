"""The sans-IO SMB2 connection driven with bytes: limits, stalls and bad input.

Real clients prove the happy paths (tests/interop); here the connection meets input
no well-behaved client sends, on a task.Clock, and must never leak a session slot.
"""

import struct

import pytest
from impacket import ntlm
from impacket import smb3structs as s2
from twisted.internet.task import Clock

from emulator.core.editions import get_edition
from emulator.core.engine import SessionEngine
from emulator.core.events import EventLog
from protocols.smb2.connection import SMB2ServerConnection, SMBServerConfig
from protocols.smb2.framing import frame
from protocols.smb2.messages import Header
from tests.unit.smb2_helpers import unframe

STATUS_MORE_PROCESSING_REQUIRED = 0xC0000016


def make(edition="xp-home", setup_timeout=30.0):
    clock = Clock()
    clock.advance(1_700_000_000)
    engine = SessionEngine(get_edition(edition), clock, EventLog(clock.seconds),
                           setup_timeout=setup_timeout)
    config = SMBServerConfig(gate=engine, lookup_password={"alice": "pw"}.get, shares={},
                             now=clock.seconds, max_dialect=get_edition(edition).max_dialect)
    return engine, clock, config


def connection(config):
    return SMB2ServerConnection(config, address="127.0.0.1")


def request(command, body, *, message_id=0, session_id=0, credits=1):
    return Header(command, credits=credits, message_id=message_id,
                  session_id=session_id).pack() + body


def responses(conn):
    messages = unframe(conn.data_to_send())
    return [Header.parse(m) for m in messages]


def negotiate(conn, dialects=(0x0202,)):
    body = s2.SMB2Negotiate()
    body["DialectCount"] = len(dialects)
    body["SecurityMode"] = 1
    body["ClientGuid"] = b"g" * 16
    body["Dialects"] = list(dialects)
    conn.receive_data(frame(request(s2.SMB2_NEGOTIATE, body.getData())))
    (h,) = responses(conn)
    assert h.status == 0


def session_setup(conn, token, session_id=0, message_id=1):
    body = s2.SMB2SessionSetup()
    body["SecurityBufferLength"] = len(token)
    body["Buffer"] = token
    conn.receive_data(frame(request(s2.SMB2_SESSION_SETUP, body.getData(),
                                    message_id=message_id, session_id=session_id)))
    return responses(conn)[0]


def first_round(conn):
    return session_setup(conn, ntlm.getNTLMSSPType1("", "").getData())


def test_first_round_at_the_limit_is_refused_and_the_connection_stays_open():
    engine, _, config = make()
    conns = [connection(config) for _ in range(6)]
    for c in conns:
        negotiate(c)
    for c in conns[:5]:
        assert first_round(c).status == STATUS_MORE_PROCESSING_REQUIRED
    refused = first_round(conns[5])
    assert (refused.status, refused.session_id) == (0xC00000D0, 0)
    assert not conns[5].close_requested
    conns[0].connection_lost()
    assert first_round(conns[5]).status == STATUS_MORE_PROCESSING_REQUIRED


def test_a_stalled_second_round_gives_the_slot_back():
    engine, clock, config = make(setup_timeout=30)
    conn = connection(config)
    negotiate(conn)
    sid = first_round(conn).session_id
    assert engine.counted("smb") == 1
    clock.advance(30)
    assert engine.counted("smb") == 0
    # The session is gone: the late second round finds nothing to continue.
    late = session_setup(conn, b"NTLMSSP\0" + b"\3\0\0\0" + b"\0" * 60, session_id=sid,
                         message_id=2)
    assert late.status == 0xC0000203  # STATUS_USER_SESSION_DELETED


def test_failed_authentication_gives_the_slot_back():
    engine, _, config = make()
    conn = connection(config)
    negotiate(conn)
    sid = first_round(conn).session_id
    bad = session_setup(conn, b"NTLMSSP\0\3\0\0\0garbage", session_id=sid, message_id=2)
    assert bad.status & 0xC0000000 == 0xC0000000
    assert engine.counted("smb") == 0


@pytest.mark.parametrize("garbage", [
    b"\x00\x00\x00\x04ABCD",  # not SMB at all
    b"\x00\x00\x00\x10\xfeSMB" + b"\0" * 12,  # a truncated header
    b"\x00\x00\x00\x08\xffSMB\x72\0\0\0",  # a truncated SMB1 negotiate
    b"\x00\x00\x00\x10\xfdSMB" + b"\0" * 12,  # a truncated transform header
    b"\x05\x00\x00\x00",  # a frame type direct TCP does not have
    b"\x00\xff\xff\xff",  # 16 MiB announced: refused before buffering
])
def test_garbage_closes_the_connection_cleanly(garbage):
    engine, _, config = make()
    conn = connection(config)
    conn.receive_data(garbage)
    assert conn.close_requested
    conn.connection_lost()
    assert engine.counted("smb") == 0


def test_garbage_after_a_pending_setup_does_not_leak_the_slot():
    engine, _, config = make()
    conn = connection(config)
    negotiate(conn)
    first_round(conn)
    conn.receive_data(b"\x00\x00\x00\x04ABCD")
    assert conn.close_requested
    conn.connection_lost()
    assert engine.counted("smb") == 0


@pytest.mark.parametrize("command", [c for c in range(0x14) if c != s2.SMB2_CANCEL])
def test_every_command_with_a_truncated_body_gets_an_error_not_a_crash(command):
    engine, _, config = make()
    logged = []
    conn = SMB2ServerConnection(config, address="127.0.0.1", log=logged.append)
    negotiate(conn)
    conn.receive_data(frame(request(command, b"\x01", message_id=5)))
    assert not any("internal error" in line for line in logged), logged
    if command == s2.SMB2_NEGOTIATE:
        assert conn.close_requested  # a second NEGOTIATE
    else:
        (h,) = responses(conn)
        assert h.status & 0xC0000000 == 0xC0000000
    assert engine.counted("smb") == 0


def test_cancel_has_no_response():
    _, _, config = make()
    conn = connection(config)
    negotiate(conn)
    conn.receive_data(frame(request(s2.SMB2_CANCEL, b"\x04\0\0\0", message_id=5)))
    assert conn.data_to_send() == b"" and not conn.close_requested


def test_lying_buffer_offsets_are_invalid_parameter():
    engine, _, config = make()
    conn = connection(config)
    negotiate(conn)
    body = bytearray(24)
    struct.pack_into("<HBBIIHHQ", body, 0, 25, 0, 0, 0, 0, 0xFFF0, 0x100, 0)
    conn.receive_data(frame(request(s2.SMB2_SESSION_SETUP, bytes(body) + b"\0", message_id=1)))
    (h,) = responses(conn)
    assert h.status == 0xC000000D
    assert engine.counted("smb") == 0


def test_second_negotiate_closes_the_connection():
    _, _, config = make()
    conn = connection(config)
    negotiate(conn)
    body = s2.SMB2Negotiate()
    body["DialectCount"] = 1
    body["Dialects"] = [0x0202]
    conn.receive_data(frame(request(s2.SMB2_NEGOTIATE, body.getData(), message_id=1)))
    assert conn.close_requested


def test_no_common_dialect_is_not_supported():
    _, _, config = make("xp-pro")
    conn = connection(config)
    body = s2.SMB2Negotiate()
    body["DialectCount"] = 1
    body["Dialects"] = [0x0311]
    conn.receive_data(frame(request(s2.SMB2_NEGOTIATE, body.getData())))
    (h,) = responses(conn)
    assert h.status == 0xC00000BB  # STATUS_NOT_SUPPORTED
    assert conn.close_requested
