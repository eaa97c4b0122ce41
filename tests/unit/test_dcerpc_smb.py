"""Named pipes through the sans-IO SMB2 connection, on a task.Clock with the real engine.

CREATE of a pipe on IPC$, WRITE/READ in message mode, FSCTL_PIPE_TRANSCEIVE with
STATUS_BUFFER_OVERFLOW continuation, CLOSE; and the engine side of KB 328459: an open
pipe keeps a null session alive past the null-session expiry.
"""

from __future__ import annotations

import itertools
import struct
from types import SimpleNamespace

import pytest
from impacket import smb3structs as s2
from impacket.dcerpc.v5 import rpcrt, rprn, srvs
from twisted.internet.task import Clock

from emulator.core.editions import get_edition
from emulator.core.engine import Rules, SessionEngine
from emulator.core.events import EventLog
from emulator.rpcview import EngineServerView
from protocols.dcerpc import srvsvc
from protocols.dcerpc.pipes import PipeService
from protocols.errors import StatusError
from protocols.smb2 import bodies
from protocols.smb2.connection import SMB2ServerConnection, SMBServerConfig
from protocols.smb2.framing import frame
from protocols.smb2.fs import DiskShare
from protocols.smb2.messages import HEADER_SIZE, Header

from .dcerpc_helpers import (
    FakeView,
    bind_pdu,
    open_printer,
    ptype,
    reassemble,
    request_pdu,
    share_enum,
)
from .smb2_helpers import logon

STATUS_SUCCESS = 0
STATUS_MORE_PROCESSING_REQUIRED = 0xC0000016
STATUS_BUFFER_OVERFLOW = 0x80000005
STATUS_PIPE_EMPTY = 0xC00000D9
STATUS_PIPE_DISCONNECTED = 0xC00000B0
STATUS_ACCESS_DENIED = 0xC0000022
STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
STATUS_INVALID_DEVICE_REQUEST = 0xC0000010
FSCTL_PIPE_TRANSCEIVE = 0x0011C017
NULL_TIMEOUT = 60.0


def make(*, restrict_anonymous=False, pipes=True, shares=None, edition="xp-home"):
    clock = Clock()
    clock.advance(1_767_225_600)
    engine = SessionEngine(get_edition(edition), clock, EventLog(clock.seconds),
                           rules=Rules(null_session_timeout=NULL_TIMEOUT,
                                       restrict_anonymous=restrict_anonymous))
    config = SMBServerConfig(gate=engine, lookup_password={"alice": "pw"}.get,
                             shares=shares or {}, now=clock.seconds, max_dialect=0x0202,
                             pipes=PipeService(FakeView()) if pipes else None)
    return engine, clock, config


class Client:
    """Just enough of an SMB 2.0.2 client, unsigned, to drive the connection."""

    def __init__(self, config: SMBServerConfig) -> None:
        self.conn = SMB2ServerConnection(config, address="10.0.0.3")
        self.message_id = 0
        self.session_id = 0
        self.tree_id = 0

    def send(self, command: int, body: bytes) -> tuple[Header, bytes]:
        header = Header(command, credits=1, message_id=self.message_id,
                        session_id=self.session_id, tree_id=self.tree_id)
        self.message_id += 1
        self.conn.receive_data(frame(header.pack() + body))
        out = self.conn.data_to_send()
        length = struct.unpack(">I", out[:4])[0]
        message = out[4:4 + length]
        assert len(out) == 4 + length
        return Header.parse(message), message

    def login(self, user: str = "", password: str = "") -> None:
        logon(self, dialect=0x0202, guid=b"c" * 16, user=user, password=password,
              share="IPC$")

    def create(self, name: str) -> tuple[int, tuple[int, int]]:
        raw = name.encode("utf-16-le")
        h, msg = self.send(s2.SMB2_CREATE, bodies.CREATE.pack(
            ImpersonationLevel=2, DesiredAccess=0x0012019F, ShareAccess=3, CreateDisposition=1,
            NameOffset=HEADER_SIZE + 56, NameLength=len(raw)) + raw)
        if h.status:
            return h.status, (0, 0)
        r = bodies.CREATE_RESPONSE.parse(msg, HEADER_SIZE)
        return h.status, (r.FileIdPersistent, r.FileIdVolatile)

    def write(self, fid, data: bytes) -> int:
        h, _ = self.send(s2.SMB2_WRITE, bodies.WRITE.pack(
            DataOffset=HEADER_SIZE + 48, Length=len(data), FileIdPersistent=fid[0],
            FileIdVolatile=fid[1]) + data)
        return h.status

    def read(self, fid, length: int) -> tuple[int, bytes]:
        h, msg = self.send(s2.SMB2_READ, bodies.READ.pack(
            Length=length, FileIdPersistent=fid[0], FileIdVolatile=fid[1]) + b"\0")
        if h.status not in (STATUS_SUCCESS, STATUS_BUFFER_OVERFLOW):
            return h.status, b""
        r = bodies.READ_RESPONSE.parse(msg, HEADER_SIZE)
        return h.status, msg[r.DataOffset:r.DataOffset + r.DataLength]

    def transceive(self, fid, data: bytes, max_out: int = 4280) -> tuple[int, bytes]:
        h, msg = self.send(s2.SMB2_IOCTL, bodies.IOCTL.pack(
            CtlCode=FSCTL_PIPE_TRANSCEIVE, FileIdPersistent=fid[0], FileIdVolatile=fid[1],
            InputOffset=HEADER_SIZE + 56, InputCount=len(data), MaxOutputResponse=max_out,
            Flags=1) + data)
        if h.status not in (STATUS_SUCCESS, STATUS_BUFFER_OVERFLOW):
            return h.status, b""
        r = bodies.IOCTL_RESPONSE.parse(msg, HEADER_SIZE)
        return h.status, msg[r.OutputOffset:r.OutputOffset + r.OutputCount]

    def close(self, fid) -> int:
        h, _ = self.send(s2.SMB2_CLOSE, bodies.CLOSE.pack(
            FileIdPersistent=fid[0], FileIdVolatile=fid[1]))
        return h.status


def alice_on_ipc(**make_args) -> tuple[SessionEngine, Client]:
    """A fresh engine (``make``) and alice logged on with IPC$ connected."""
    engine, _, config = make(**make_args)
    c = Client(config)
    c.login("alice", "pw")
    return engine, c


def _buffer(msg: bytes, layout, name: str) -> bytes:
    r = layout.parse(msg, HEADER_SIZE)
    offset, length = getattr(r, name + "Offset"), getattr(r, name + "Length")
    return msg[offset:offset + length]


def open_printer_pdu(call_id=2):
    return request_pdu(open_printer(), call_id=call_id)


def share_enum_pdu():
    return request_pdu(share_enum())


# -- the pipe over SMB ----------------------------------------------------------------------------


def test_write_read_and_transceive_like_pysmb():
    engine, c = alice_on_ipc()
    status, fid = c.create("srvsvc")
    assert status == STATUS_SUCCESS
    assert c.write(fid, bind_pdu(srvs.MSRPC_UUID_SRVS)) == STATUS_SUCCESS
    status, ack = c.read(fid, 1024)
    assert status == STATUS_SUCCESS and ptype(ack) == rpcrt.MSRPC_BINDACK
    status, out = c.transceive(fid, share_enum_pdu(), 8196)
    assert status == STATUS_SUCCESS
    assert srvs.NetrShareEnumResponse(reassemble([out]))["TotalEntries"] == 2
    (slot,) = engine.sessions("smb")
    assert slot.open_files == ["\\PIPE\\srvsvc"]
    # Who called: the SMB session's account, client name (its address over direct TCP,
    # as Windows records Connection.ClientName; no longer the NTLM workstation) and address.
    op = next(iter(c.conn.sessions.values())).opens[fid]
    caller = op.handle.endpoint.association.services[0].caller
    assert (caller.user, caller.anonymous, caller.client, caller.address) == (
        "alice", False, "10.0.0.3", "10.0.0.3")
    assert c.close(fid) == STATUS_SUCCESS
    assert slot.open_files == []


@pytest.mark.parametrize("name", ["\\srvsvc", "PIPE\\SRVSVC", "\\PIPE\\srvsvc", "WkSsVc"])
def test_pipe_names_as_clients_send_them(name):
    _, c = alice_on_ipc()
    assert c.create(name)[0] == STATUS_SUCCESS


def test_unknown_pipes_do_not_exist():
    _, c = alice_on_ipc()
    for name in ("netlogon", "winreg", "..\\srvsvc", ""):
        assert c.create(name)[0] == STATUS_OBJECT_NAME_NOT_FOUND
    _, c = alice_on_ipc(pipes=False)
    assert c.create("srvsvc")[0] == STATUS_OBJECT_NAME_NOT_FOUND


def test_read_overflow_and_empty_pipe():
    _, c = alice_on_ipc()
    _, fid = c.create("srvsvc")
    assert c.read(fid, 1024)[0] == STATUS_PIPE_EMPTY  # nothing written: answered, not hung
    c.write(fid, bind_pdu(srvs.MSRPC_UUID_SRVS))
    status, first = c.read(fid, 20)
    assert status == STATUS_BUFFER_OVERFLOW and len(first) == 20
    status, rest = c.read(fid, 1024)
    assert status == STATUS_SUCCESS
    assert rpcrt.MSRPCBindAck(first + rest)["type"] == rpcrt.MSRPC_BINDACK
    assert c.read(fid, 1024)[0] == STATUS_PIPE_EMPTY


def test_transceive_overflow_continues_with_read():
    _, c = alice_on_ipc()
    _, fid = c.create("srvsvc")
    c.write(fid, bind_pdu(srvs.MSRPC_UUID_SRVS))
    c.read(fid, 1024)
    status, first = c.transceive(fid, share_enum_pdu(), 64)
    assert status == STATUS_BUFFER_OVERFLOW and len(first) == 64
    status, rest = c.read(fid, 4280)
    assert status == STATUS_SUCCESS
    assert srvs.NetrShareEnumResponse(reassemble([first + rest]))["ErrorCode"] == 0


def test_transceive_on_a_file_is_refused(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    _, c = alice_on_ipc(shares={"docs": DiskShare("docs", str(tmp_path))})
    path = "\\\\EMULATOR\\docs".encode("utf-16-le")
    h, _ = c.send(s2.SMB2_TREE_CONNECT, bodies.TREE_CONNECT.pack(
        PathOffset=HEADER_SIZE + 8, PathLength=len(path)) + path)
    c.tree_id = h.tree_id
    _, fid = c.create("f.txt")
    assert c.transceive(fid, b"x")[0] == STATUS_INVALID_DEVICE_REQUEST


def test_pipe_info_and_garbage():
    _, c = alice_on_ipc()
    _, fid = c.create("srvsvc")
    h, msg = c.send(s2.SMB2_QUERY_INFO, bodies.QUERY_INFO.pack(
        InfoType=1, FileInfoClass=5, OutputBufferLength=24, FileIdPersistent=fid[0],
        FileIdVolatile=fid[1]) + b"\0")
    assert h.status == STATUS_SUCCESS
    c.write(fid, b"\x05\x00\x0b\x03\x10\x00\x00\x00\x04\x00\x00\x00\x01\x00\x00\x00")
    status, answer = c.read(fid, 1024)
    assert status == STATUS_SUCCESS and ptype(answer) == rpcrt.MSRPC_FAULT
    assert not c.conn.close_requested


# -- KB 328459: pipes hold null sessions ----------------------------------------------------------


def test_an_open_spoolss_keeps_a_null_session_past_its_expiry():
    engine, clock, config = make()
    holder, idle = Client(config), Client(config)
    holder.login()
    idle.login()
    _, fid = holder.create("\\spoolss")
    holder.write(fid, bind_pdu(rprn.MSRPC_UUID_RPRN))
    holder.read(fid, 1024)
    status, out = holder.transceive(fid, open_printer_pdu())
    assert status == STATUS_SUCCESS
    assert rprn.RpcOpenPrinterResponse(reassemble([out]))["ErrorCode"] == 0
    assert engine.counted("smb") == 2
    clock.advance(NULL_TIMEOUT + 1)
    # The idle null session expired; the one holding spoolss did not.
    (left,) = engine.sessions("smb")
    assert left.anonymous and left.open_files == ["\\PIPE\\spoolss"]
    assert holder.close(fid) == STATUS_SUCCESS
    clock.advance(NULL_TIMEOUT + 1)
    assert engine.counted("smb") == 0


def test_restrict_anonymous_refuses_the_pipe_yet_the_null_session_counts():
    engine, clock, config = make(restrict_anonymous=True)
    c = Client(config)
    c.login()
    assert c.create("spoolss")[0] == STATUS_ACCESS_DENIED
    assert engine.counted("smb") == 1  # refused after counting, as the KB describes
    clock.advance(NULL_TIMEOUT + 1)
    assert engine.counted("smb") == 0
    # An authenticated session is not restricted.
    a = Client(config)
    a.login("alice", "pw")
    assert a.create("spoolss")[0] == STATUS_SUCCESS


def test_null_session_pipes_allow_list():
    engine, _, config = make(restrict_anonymous=True)
    engine.rules.null_session_pipes = ["spoolss"]
    c = Client(config)
    c.login()
    assert c.create("spoolss")[0] == STATUS_SUCCESS
    assert c.create("srvsvc")[0] == STATUS_ACCESS_DENIED


def test_session_end_closes_its_pipes():
    engine, c = alice_on_ipc()
    _, fid = c.create("srvsvc")
    handle = next(iter(c.conn.sessions.values())).opens[fid].handle
    engine.delete_matching(user="alice")
    assert handle.endpoint.closed
    assert engine.counted("smb") == 0


def test_a_closed_pipe_handle_is_disconnected():
    _, c = alice_on_ipc()
    _, fid = c.create("srvsvc")
    handle = next(iter(c.conn.sessions.values())).opens[fid].handle
    handle.endpoint.close()
    for use in (lambda: handle.read(0, 1024), lambda: handle.write(0, b"x"),
                lambda: handle.transceive(b"x", 1024), handle.flush):
        with pytest.raises(StatusError) as err:
            use()
        assert err.value.status == STATUS_PIPE_DISCONNECTED


# -- the engine's side of srvsvc (emulator.rpcview) -----------------------------------------


def test_netr_file_close_finds_sessions_past_id_65535():
    """File ids carry 16 bits of the session id: NetrFileClose finds session 0x10003 by
    them, and refuses while two live sessions share those bits."""
    engine, _, _ = make(edition="server-2022")
    view = EngineServerView(SimpleNamespace(engine=engine))  # only the engine is asked
    closed: list[tuple[int, int]] = []

    def smb_session(session_id: int):
        engine._ids = itertools.count(session_id)  # skip the 65k sessions in between
        session = engine.request_session("smb", "10.0.0.3").session
        assert session is not None and session.id == session_id
        engine.logon(session, user="bob", client="PC2", anonymous=False)
        engine.set_open_files(session, ["docs\\a.txt", "docs\\b.txt"])
        session.file_closer = lambda index: closed.append((session.id, index)) or True
        return session

    high = smb_session(0x10003)
    file_id = srvsvc.row_id({"id": high.id}, 1)
    assert file_id == (3 << 16) | 2
    assert view.close_file(file_id) and closed == [(0x10003, 1)]
    smb_session(3)
    assert not view.close_file(file_id) and closed == [(0x10003, 1)]
