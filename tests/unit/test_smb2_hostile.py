"""Issue 14: an unauthenticated SMB client must not stall the process, take every slot,
hold memory without end, or strip the encryption the host requires.

Everything runs on a task.Clock; the work a frame causes is counted, never timed.
"""

import dataclasses
import struct

from impacket import ntlm
from impacket import smb3structs as s2

from protocols.smb2 import bodies
from protocols.smb2.budget import PREAUTH_MAX_FRAME, PreauthBudget
from protocols.smb2.connection import SMB2ServerConnection
from protocols.smb2.framing import frame
from protocols.smb2.fs import DiskShare
from protocols.smb2.messages import HEADER_SIZE, Header
from tests.unit.smb2_helpers import session_setup
from tests.unit.test_dcerpc_smb import Client, _buffer
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


# -- finding 3: no session within the timeout, bounded buffers before logon -------------------
def _on_clock(edition="xp-home", *, budget=None, **fields):
    engine, clock, config = make(edition)
    config = dataclasses.replace(config, clock=clock, preauth_timeout=30.0,
                                 preauth_budget=budget, **fields)
    return engine, clock, config


def _watched(config, address="127.0.0.1"):
    logged, flushed = [], []
    conn = SMB2ServerConnection(config, address=address, log=logged.append)
    conn.on_output = lambda: flushed.append(conn.close_requested)
    return conn, logged, flushed


def test_a_connection_that_never_negotiates_is_cut_at_the_timeout():
    _, clock, config = _on_clock()
    conn, logged, flushed = _watched(config)
    conn.receive_data(b"\x00\x00")  # half a frame header, then nothing
    clock.advance(29.9)
    assert not conn.close_requested
    clock.advance(0.1)
    assert conn.close_requested and flushed == [True]
    assert len(logged) == 1 and "no session within 30 s" in logged[0]
    conn.connection_lost()
    assert not clock.getDelayedCalls()


def test_a_negotiated_connection_with_only_a_pending_setup_is_cut_and_gives_the_slot_back():
    engine, clock, config = _on_clock()
    conn, _, _ = _watched(config)
    negotiate(conn)
    first_round(conn)
    assert engine.counted("smb") == 1
    clock.advance(30)
    assert conn.close_requested
    conn.connection_lost()
    assert engine.counted("smb") == 0
    assert not clock.getDelayedCalls()


def test_a_logged_on_connection_keeps_no_preauth_timer():
    _, clock, config = _on_clock()
    c = Client(config)
    c.login("alice", "pw")
    assert c.conn.authenticated
    clock.advance(31)
    assert not c.conn.close_requested
    assert all(getattr(call.func, "__name__", "") != "_preauth_expired"
               for call in clock.getDelayedCalls())


def test_before_logon_a_frame_above_the_preauth_cap_is_refused_from_its_header():
    _, _, config = _on_clock()
    conn, logged, _ = _watched(config)
    conn.receive_data(struct.pack(">I", PREAUTH_MAX_FRAME + 1))
    assert conn.close_requested and "exceeds" in logged[0]
    # After logon the post-logon cap (a maximal WRITE) applies.
    c = Client(config)
    c.login("alice", "pw")
    c.conn.receive_data(struct.pack(">I", PREAUTH_MAX_FRAME + 1) + b"\0" * 1000)
    assert not c.conn.close_requested


def test_the_shared_budget_closes_the_newest_preauth_connection():
    budget = PreauthBudget(200_000)
    _, _, config = _on_clock(budget=budget)
    conns = [_watched(config, f"127.0.0.{i + 1}") for i in range(5)]

    def partial(n):  # a frame announced at 65,000 bytes that never completes
        return struct.pack(">I", 65_000) + b"\0" * n

    for conn, _, _ in conns[:3]:
        conn.receive_data(partial(60_000))
    assert budget.total == 3 * 60_004
    # The 4th pushes the total over: it is the newest, so it is the one closed.
    fourth, logged, flushed = conns[3]
    fourth.receive_data(partial(30_000))
    assert fourth.close_requested and flushed == [True]
    assert len(logged) == 1 and "budget" in logged[0]
    assert budget.total == 3 * 60_004 and budget.closed == 1
    # The 5th fits; when the oldest then pushes the total over, the 5th (newest) goes.
    fifth = conns[4][0]
    fifth.receive_data(partial(19_000))
    oldest = conns[0][0]
    oldest.receive_data(b"\0" * 4_000)  # (its frame is still 996 bytes short)
    assert fifth.close_requested and budget.closed == 2
    assert not any(c.close_requested for c, _, _ in conns[:3])
    assert budget.total == 3 * 60_004 + 4_000 <= budget.limit
    for conn, _, _ in conns:
        conn.connection_lost()
    assert budget.total == 0 and budget.connections == 0


def test_a_logged_on_connection_leaves_the_budget():
    budget = PreauthBudget(1_000_000)
    _, _, config = _on_clock(budget=budget)
    c = Client(config)
    assert budget.connections == 1
    c.login("alice", "pw")
    assert budget.connections == 0 and budget.total == 0


# -- finding 5: EncryptData cannot be stripped --------------------------------------------------
def test_encrypt_data_refuses_a_connection_that_cannot_encrypt_at_session_setup():
    engine, _, config = make("win11")
    config = dataclasses.replace(config, encrypt_data=True)
    conn = connection(config)
    negotiate(conn, dialects=(0x0210,))  # 2.1: no encryption
    assert first_round(conn).status == 0xC0000022  # STATUS_ACCESS_DENIED
    assert engine.counted("smb") == 0  # refused before any slot was taken
    conn3 = connection(config)
    negotiate(conn3, dialects=(0x0300,))  # 3.0 without the ENCRYPTION capability
    assert first_round(conn3).status == 0xC0000022


def test_an_encrypt_data_share_refuses_a_session_that_cannot_encrypt_at_tree_connect(tmp_path):
    shares = {"docs": DiskShare("docs", tmp_path), "open": DiskShare("open", tmp_path)}
    _, _, config = make("win11")
    config = dataclasses.replace(config, shares=shares, encrypt_shares=frozenset({"docs"}))
    c = Client(config)
    c.login("alice", "pw")  # 2.0.2, on IPC$
    assert _tree_connect(c, "docs")[0].status == 0xC0000022
    h, flags = _tree_connect(c, "open")
    assert h.status == 0 and not flags & 0x8000


def test_an_encrypt_data_share_is_flagged_and_refuses_plaintext_requests(tmp_path):
    shares = {"docs": DiskShare("docs", tmp_path)}
    _, _, config = make("win11")
    config = dataclasses.replace(config, shares=shares, encrypt_shares=frozenset({"docs"}))
    c = Client(config)
    _login_30_with_encryption(c)
    h, flags = _tree_connect(c, "docs")
    assert h.status == 0 and flags & 0x8000  # SMB2_SHAREFLAG_ENCRYPT_DATA
    c.tree_id = h.tree_id
    status, _ = c.create("x.txt")
    assert status == 0xC0000022  # plaintext on an EncryptData share (3.3.5.2.11)
    assert not (tmp_path / "x.txt").exists()


def _tree_connect(c, share):
    path = f"\\\\EMULATOR\\{share}".encode("utf-16-le")
    h, msg = c.send(s2.SMB2_TREE_CONNECT, bodies.TREE_CONNECT.pack(
        PathOffset=HEADER_SIZE + 8, PathLength=len(path)) + path)
    flags = bodies.TREE_CONNECT_RESPONSE.parse(msg, HEADER_SIZE).ShareFlags if not h.status \
        else 0
    return h, flags


def _login_30_with_encryption(c):
    c.send(s2.SMB2_NEGOTIATE, bodies.NEGOTIATE.pack(
        DialectCount=1, SecurityMode=1, Capabilities=s2.SMB2_GLOBAL_CAP_ENCRYPTION,
        ClientGuid=b"c" * 16) + struct.pack("<H", 0x0300))
    type1 = ntlm.getNTLMSSPType1("WS01", "")
    h, msg = session_setup(c, type1.getData())
    assert h.status == STATUS_MORE_PROCESSING_REQUIRED
    c.session_id = h.session_id
    challenge = _buffer(msg, bodies.SESSION_SETUP_RESPONSE, "SecurityBuffer")
    type3, _ = ntlm.getNTLMSSPType3(type1, challenge, "alice", "pw", "")
    h, _ = session_setup(c, type3.getData())
    assert h.status == 0


def test_the_twisted_adapter_closes_on_the_preauth_timer_and_leaves_no_timer():
    from twisted.internet.testing import StringTransport

    from protocols.smb2.twisted import SMBFactory

    _, clock, config = _on_clock(budget=PreauthBudget(1_000_000))
    protocol = SMBFactory(config, netbios=False).buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(b"\x00\x00\x01")  # a slow-loris start
    assert config.preauth_budget.total == 3
    clock.advance(30)
    assert transport.disconnecting
    protocol.connectionLost(None)
    assert not clock.getDelayedCalls() and config.preauth_budget.connections == 0
