"""Faults on demand through the sans-IO SMB2 connection, on a task.Clock: each action, the
logon refusals and their 4625 records, expired sessions and re-authentication, a share
removed under its tree, and no timer or slot left behind."""

from __future__ import annotations

import pytest
from impacket import ntlm
from impacket import smb3structs as s2
from twisted.internet.task import Clock

from emulator.core.clock import OwnedClock
from emulator.core.editions import get_edition
from emulator.core.engine import SessionEngine
from emulator.core.events import EventLog
from emulator.core.faults import FaultTable
from protocols.smb2 import bodies
from protocols.smb2.connection import SMBServerConfig
from protocols.smb2.framing import frame
from protocols.smb2.fs import DiskShare
from protocols.smb2.messages import COMMAND_NAMES, FLAGS_ASYNC_COMMAND, HEADER_SIZE, Header
from tests.unit.smb2_helpers import security_buffer, session_setup
from tests.unit.test_smb2_leases import Client

STATUS_PENDING = 0x103
STATUS_CANCELLED = 0xC0000120
STATUS_INSUFFICIENT_RESOURCES = 0xC000009A
STATUS_NETWORK_SESSION_EXPIRED = 0xC000035C
STATUS_NETWORK_NAME_DELETED = 0xC00000C9
STATUS_BAD_NETWORK_NAME = 0xC00000CC
STATUS_MORE_PROCESSING_REQUIRED = 0xC0000016


def make(tmp_path):
    base = Clock()
    base.advance(1_767_225_600)
    clock = OwnedClock(base)  # the host's: what is left on it is what a fault left
    events = EventLog(base.seconds)
    engine = SessionEngine(get_edition("win10"), base, events)
    (tmp_path / "f.txt").write_bytes(b"data" * 10)
    faults = FaultTable({"smb": tuple(COMMAND_NAMES.values())})
    shares = {"share": DiskShare("share", tmp_path)}
    config = SMBServerConfig(gate=engine, lookup_password={"alice": "pw"}.get, shares=shares,
                             now=base.seconds, clock=clock, faults=faults)
    return base, clock, engine, events, faults, config


@pytest.fixture
def env(tmp_path):
    base, clock, engine, events, faults, config = make(tmp_path)
    client = Client(config, 0x0300, b"A" * 16)
    client.login()
    return base, clock, engine, events, faults, config, client


def read_request(fid):
    return bodies.READ.pack(Length=16, FileIdPersistent=fid[0], FileIdVolatile=fid[1]) + b"\0"


def opened(client, name="f.txt"):
    h, msg = client.create(name)
    assert h.status == 0
    r = bodies.CREATE_RESPONSE.parse(msg, HEADER_SIZE)
    return r.FileIdPersistent, r.FileIdVolatile


def test_status_answers_the_matching_request_only(env):
    *_, faults, config, client = env
    fid = opened(client)
    faults.add({"protocol": "smb", "command": "READ", "status": "STATUS_INSUFFICIENT_RESOURCES"})
    assert client.send(s2.SMB2_READ, read_request(fid))[0].status == STATUS_INSUFFICIENT_RESOURCES
    assert client.send(s2.SMB2_READ, read_request(fid))[0].status == 0  # count 1: spent
    assert faults.faults[0].hits == 1


def test_filters_on_share_and_path(env):
    *_, faults, config, client = env
    faults.add({"protocol": "smb", "command": "CREATE", "status": 0xC0000022, "path": "g*"})
    assert client.create("f.txt")[0].status == 0
    assert client.create("g.txt")[0].status == 0xC0000022
    faults.add({"protocol": "smb", "command": "CREATE", "status": 0xC0000022, "share": "other"})
    assert client.create("f.txt")[0].status == 0


@pytest.mark.parametrize("action", ["drop", "reset"])
def test_drop_and_reset_close_without_answering(env, action):
    _, clock, engine, *_rest = env
    faults, client = env[4], env[6]
    faults.add({"protocol": "smb", "command": "ECHO", "action": action})
    header = Header(s2.SMB2_ECHO, credits=1, message_id=client.message_id,
                    session_id=client.session_id)
    client.conn.receive_data(frame(header.pack() + bodies.EMPTY_RESPONSE))
    assert client.conn.data_to_send() == b""
    assert client.conn.close_requested
    assert client.conn.abort_requested is (action == "reset")
    client.conn.connection_lost()
    assert engine.counted("smb") == 0 and clock.pending == 0


def test_truncate_sends_half_the_reply_then_closes(env):
    *_, faults, config, client = env
    fid = opened(client)
    header = Header(s2.SMB2_READ, credits=1, message_id=client.message_id,
                    session_id=client.session_id, tree_id=client.tree_id)
    client.conn.receive_data(frame(header.pack() + read_request(fid)))
    whole = client.conn.data_to_send()
    faults.add({"protocol": "smb", "command": "READ", "action": "truncate"})
    header.message_id += 1
    client.conn.receive_data(frame(header.pack() + read_request(fid)))
    half = client.conn.data_to_send()
    assert len(half) == len(whole) // 2 and client.conn.close_requested


def test_stall_never_answers_and_the_connection_serves_on(env):
    _, clock, engine, _, faults, _, client = env
    fid = opened(client)
    faults.add({"protocol": "smb", "command": "READ", "action": "stall"})
    header = Header(s2.SMB2_READ, credits=1, message_id=client.message_id,
                    session_id=client.session_id, tree_id=client.tree_id)
    client.message_id += 1
    client.conn.receive_data(frame(header.pack() + read_request(fid)))
    assert client.conn.data_to_send() == b"" and not client.conn.close_requested
    assert client.send(s2.SMB2_ECHO, bodies.EMPTY_RESPONSE)[0].status == 0
    client.conn.connection_lost()
    assert engine.counted("smb") == 0 and clock.pending == 0


def test_delay_answers_late_on_the_clock(env):
    base, clock, _, _, faults, _, client = env
    faults.add({"protocol": "smb", "command": "ECHO", "delay": 5})
    header = Header(s2.SMB2_ECHO, credits=1, message_id=client.message_id,
                    session_id=client.session_id)
    client.conn.receive_data(frame(header.pack() + bodies.EMPTY_RESPONSE))
    assert client.conn.data_to_send() == b"" and clock.pending == 1
    base.advance(4.9)
    assert client.conn.data_to_send() == b""
    base.advance(0.1)
    assert client.flushed >= 1
    assert client.take(header.message_id)[0].status == 0


def test_pending_interim_then_the_real_reply_with_the_same_async_id(env):
    base, clock, _, _, faults, _, client = env
    fid = opened(client)
    faults.add({"protocol": "smb", "command": "READ", "action": "pending", "delay": 3})
    interim, _ = client.send(s2.SMB2_READ, read_request(fid))
    assert interim.status == STATUS_PENDING and interim.flags & FLAGS_ASYNC_COMMAND
    assert interim.credits >= 1
    async_id = interim.process_id | interim.tree_id << 32
    assert async_id and clock.pending == 1
    base.advance(3)
    final, msg = client.take(interim.message_id)
    assert final.status == 0 and final.flags & FLAGS_ASYNC_COMMAND
    assert final.process_id | final.tree_id << 32 == async_id
    r = bodies.READ_RESPONSE.parse(msg, HEADER_SIZE)
    assert msg[r.DataOffset:r.DataOffset + r.DataLength] == b"datadatadatadata"
    assert clock.pending == 0


def test_cancel_of_a_pending_fault_is_cancelled_and_never_runs(env, tmp_path):
    base, clock, _, _, faults, _, client = env
    faults.add({"protocol": "smb", "command": "CREATE", "action": "pending", "delay": 30})
    interim, _ = client.create("new.txt", disposition=s2.FILE_CREATE)
    assert interim.status == STATUS_PENDING
    cancel = Header(s2.SMB2_CANCEL, flags=FLAGS_ASYNC_COMMAND, message_id=interim.message_id,
                    process_id=interim.process_id, tree_id=interim.tree_id,
                    session_id=client.session_id)
    client.conn.receive_data(frame(cancel.pack() + bodies.EMPTY_RESPONSE))
    client._collect()
    final, _ = client.take(interim.message_id)
    assert final.status == STATUS_CANCELLED and final.flags & FLAGS_ASYNC_COMMAND
    assert clock.pending == 0 and not (tmp_path / "new.txt").exists()


def test_credits_grants_no_more_than_asked(env):
    *_, faults, _, client = env
    faults.add({"protocol": "smb", "command": "*", "credits": 1, "count": None})
    for _ in range(3):
        h, _ = client.send(s2.SMB2_ECHO, bodies.EMPTY_RESPONSE)  # the client asks for 8
        assert h.status == 0 and h.credits == 1


@pytest.mark.parametrize("status, failure, sub", [
    ("STATUS_LOGON_FAILURE", "0xc000006d", "0xc000006a"),
    ("STATUS_ACCOUNT_LOCKED_OUT", "0xc0000234", "0x0"),
    ("STATUS_PASSWORD_EXPIRED", "0xc000006e", "0xc0000071"),
    ("STATUS_ACCOUNT_DISABLED", "0xc000006e", "0xc0000072"),
])
def test_session_setup_status_is_a_refused_logon_with_its_4625(tmp_path, status, failure, sub):
    base, clock, engine, events, faults, config = make(tmp_path)
    fault = faults.add({"protocol": "smb", "command": "SESSION_SETUP", "status": status,
                        "user": "ALICE"})
    client = Client(config, 0x0300, b"A" * 16)
    with pytest.raises(AssertionError):
        client.login()  # the final leg is refused
    assert fault.hits == 1 and engine.counted("smb") == 0
    (record,) = [e for e in events.records if e["id"] == 4625]
    assert record["user"] == "alice" and record["status"] == faults.faults[0].status
    assert (record["failure_status"], record["sub_status"]) == (failure, sub)
    assert not client.conn.close_requested  # a refused logon leaves the connection open
    Client(config, 0x0300, b"B" * 16).login()  # count 1: the next logon goes through
    assert engine.counted("smb") == 1


def reauthenticate(client):
    type1 = ntlm.getNTLMSSPType1("WS01", "")
    h, msg = session_setup(client, type1.getData())
    assert h.status == STATUS_MORE_PROCESSING_REQUIRED and h.session_id == client.session_id
    type3, _ = ntlm.getNTLMSSPType3(type1, security_buffer(msg), "alice", "pw", "")
    return session_setup(client, type3.getData())[0]


def test_expired_session_until_reauthenticated(env):
    engine, client = env[2], env[6]
    fid = opened(client)
    (session,) = client.conn.sessions.values()
    session.expired = True
    assert client.send(s2.SMB2_READ, read_request(fid))[0].status == STATUS_NETWORK_SESSION_EXPIRED
    assert client.create("f.txt")[0].status == STATUS_NETWORK_SESSION_EXPIRED
    h = reauthenticate(client)
    assert h.status == 0 and h.session_id == client.session_id
    assert client.send(s2.SMB2_READ, read_request(fid))[0].status == 0  # the open survived
    assert engine.counted("smb") == 1


def test_expired_session_may_still_close(env):
    client = env[6]
    fid = opened(client)
    next(iter(client.conn.sessions.values())).expired = True
    assert client.close(fid) == 0


def test_failed_reauthentication_ends_the_session(env):
    engine, client = env[2], env[6]
    next(iter(client.conn.sessions.values())).expired = True
    type1 = ntlm.getNTLMSSPType1("WS01", "")
    session_setup(client, type1.getData())
    assert session_setup(client, b"NTLMSSP\0\3\0\0\0garbage")[0].status & 0xC0000000 == 0xC0000000
    assert engine.counted("smb") == 0


def test_removed_share_is_name_deleted_on_its_tree(env):
    config, client = env[5], env[6]
    fid = opened(client)
    del config.shares["share"]
    assert client.send(s2.SMB2_READ, read_request(fid))[0].status == STATUS_NETWORK_NAME_DELETED
    assert client.create("f.txt")[0].status == STATUS_NETWORK_NAME_DELETED
    path = "\\\\EMULATOR\\share".encode("utf-16-le")
    h, _ = client.send(s2.SMB2_TREE_CONNECT, bodies.TREE_CONNECT.pack(
        PathOffset=HEADER_SIZE + 8, PathLength=len(path)) + path)
    assert h.status == STATUS_BAD_NETWORK_NAME
    assert client.send(s2.SMB2_TREE_DISCONNECT, bodies.EMPTY_RESPONSE)[0].status == 0


@pytest.mark.parametrize("spec", [
    {"action": "stall"}, {"action": "delay", "delay": 60}, {"action": "pending", "delay": 60}])
def test_connection_lost_with_armed_faults_leaves_no_timer_or_slot(env, spec):
    _, clock, engine, _, faults, _, client = env
    faults.add({"protocol": "smb", "command": "ECHO", **spec})
    header = Header(s2.SMB2_ECHO, credits=1, message_id=client.message_id,
                    session_id=client.session_id)
    client.conn.receive_data(frame(header.pack() + bodies.EMPTY_RESPONSE))
    client.conn.connection_lost()
    assert clock.pending == 0 and engine.counted("smb") == 0


def test_no_fault_armed_costs_no_lookup(env, monkeypatch):
    *_, faults, _, client = env
    calls = []
    monkeypatch.setattr(faults, "match", lambda *a, **k: calls.append(a))
    assert client.send(s2.SMB2_ECHO, bodies.EMPTY_RESPONSE)[0].status == 0
    assert calls == []



def test_tree_connect_matches_the_share_it_asks_for(tmp_path):
    base, clock, engine, events, faults, config = make(tmp_path)
    faults.add({"protocol": "smb", "command": "TREE_CONNECT", "status": 0xC0000022,
                "share": "SHARE"})
    client = Client(config, 0x0300, b"A" * 16)
    with pytest.raises(AssertionError):
        client.login()  # its TREE_CONNECT to \\EMULATOR\share is refused
    assert faults.faults[0].hits == 1
