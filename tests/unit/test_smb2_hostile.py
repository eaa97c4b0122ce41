"""Issue 14: an unauthenticated SMB client must not stall the process, take every slot,
hold memory without end, or strip the encryption the host requires.

Everything runs on a task.Clock; the work a frame causes is counted, never timed.
"""

import struct

from impacket import smb3structs as s2

from protocols.smb2.connection import SMB2ServerConnection
from protocols.smb2.framing import frame
from protocols.smb2.messages import Header
from tests.unit.test_smb2_connection import (
    STATUS_MORE_PROCESSING_REQUIRED, connection, first_round, make, negotiate, request,
    responses,
)


def _chained(command, count, body=b"", credits=1, first_message_id=0):
    """``count`` requests chained with NextCommand, each a header and ``body``."""
    out = []
    size = 64 + len(body)
    size += -size % 8
    for i in range(count):
        h = Header(command, credits=credits, message_id=first_message_id + i,
                   next_command=size if i < count - 1 else 0)
        msg = h.pack() + body
        if i < count - 1:
            msg += b"\0" * (size - len(msg))
        out.append(msg)
    return b"".join(out)


def _count_dispatches(monkeypatch):
    calls = []
    real = SMB2ServerConnection._dispatch

    def counting(self, request, inherited):
        calls.append(request.header.command)
        return real(self, request, inherited)

    monkeypatch.setattr(SMB2ServerConnection, "_dispatch", counting)
    return calls


# -- finding 1: one frame, bounded work ------------------------------------------------------
def test_a_pre_negotiate_frame_of_chained_headers_runs_nothing_and_closes(monkeypatch):
    calls = _count_dispatches(monkeypatch)
    _, _, config = make()
    conn = connection(config)
    # 16,384 bare 64-byte headers (1 MiB): before NEGOTIATE the client holds one credit.
    conn.receive_data(frame(_chained(s2.SMB2_NEGOTIATE, 16_384)))
    assert calls == []
    assert conn.close_requested
    assert conn.data_to_send() == b""


def test_a_compound_within_the_credits_granted_is_served_and_one_more_is_refused(monkeypatch):
    _, _, config = make()
    conn = connection(config)
    negotiate(conn)  # grants 1 credit (the request asked for 1)
    echo = struct.pack("<HH", 4, 0)
    # Ask for 8 credits with one ECHO: the client then holds 8.
    conn.receive_data(frame(request(s2.SMB2_ECHO, echo, message_id=1, credits=8)))
    (h,) = responses(conn)
    assert h.credits == 8
    calls = _count_dispatches(monkeypatch)
    conn.receive_data(frame(_chained(s2.SMB2_ECHO, 8, echo, first_message_id=2)))
    assert len(calls) == 8 and not conn.close_requested
    assert len(responses(conn)) == 1  # one compound response frame
    calls.clear()
    # Each of those 8 asked for 1 credit back: 8 held again; 9 chained requests are too many.
    conn.receive_data(frame(_chained(s2.SMB2_ECHO, 9, echo, first_message_id=10)))
    assert calls == [] and conn.close_requested


# -- finding 2: one unauthenticated connection cannot take every slot --------------------------
def test_one_connection_looping_session_setup_holds_two_slots_not_twenty():
    engine, _, config = make("win11")
    attacker = connection(config)
    negotiate(attacker)
    statuses = [first_round(attacker).status for _ in range(25)]
    assert statuses.count(STATUS_MORE_PROCESSING_REQUIRED) == 2
    assert set(statuses[2:]) == {0xC00000D0}
    assert engine.counted("smb") == 2
    honest = SMB2ServerConnection(config, address="127.0.0.2")
    negotiate(honest)
    assert first_round(honest).status == STATUS_MORE_PROCESSING_REQUIRED
