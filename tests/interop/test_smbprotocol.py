"""smbprotocol (1.17): its low-level API with default settings, and its
high-level ``smbclient`` package (the PyPI module, not Samba's program)."""

from __future__ import annotations

import os
import struct
import threading
import uuid

import pytest

from .conftest import EDITIONS, PASSWORD, STATUS_LOGON_FAILURE, require_module

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

require_module("smbprotocol")

from smbprotocol.connection import Connection, Dialects  # noqa: E402
from smbprotocol.exceptions import LogonFailure, SMBResponseException  # noqa: E402
from smbprotocol.open import (  # noqa: E402
    CreateDisposition,
    CreateOptions,
    DirectoryAccessMask,
    FileAttributes,
    FileInformationClass,
    FilePipePrinterAccessMask,
    ImpersonationLevel,
    Open,
    ShareAccess,
)
from smbprotocol.session import Session  # noqa: E402
from smbprotocol.tree import TreeConnect  # noqa: E402

ALL = [
    Dialects.SMB_2_0_2,
    Dialects.SMB_2_1_0,
    Dialects.SMB_3_0_0,
    Dialects.SMB_3_0_2,
    Dialects.SMB_3_1_1,
]
IDS = ["2.0.2", "2.1", "3.0", "3.0.2", "3.1.1"]


def _open_file(tree: TreeConnect, name: str, disposition: int) -> Open:
    f = Open(tree, name)
    f.create(
        ImpersonationLevel.Impersonation,
        FilePipePrinterAccessMask.GENERIC_READ
        | FilePipePrinterAccessMask.GENERIC_WRITE
        | FilePipePrinterAccessMask.DELETE,
        FileAttributes.FILE_ATTRIBUTE_NORMAL,
        ShareAccess.FILE_SHARE_READ,
        disposition,
        CreateOptions.FILE_NON_DIRECTORY_FILE,
    )
    return f


def _write_all(conn: Connection, f: Open, data: bytes) -> None:
    step = min(conn.max_write_size, 65536)
    for off in range(0, len(data), step):
        assert f.write(data[off : off + step], off) == len(data[off : off + step])


def _read_all(conn: Connection, f: Open, size: int) -> bytes:
    step = min(conn.max_read_size, 65536)
    out = bytearray()
    while len(out) < size:
        out += f.read(len(out), min(step, size - len(out)))
    return bytes(out)


def _list(tree: TreeConnect) -> set[str]:
    d = Open(tree, "")
    d.create(
        ImpersonationLevel.Impersonation,
        DirectoryAccessMask.FILE_LIST_DIRECTORY,
        FileAttributes.FILE_ATTRIBUTE_DIRECTORY,
        ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE,
        CreateDisposition.FILE_OPEN,
        CreateOptions.FILE_DIRECTORY_FILE,
    )
    try:
        entries = d.query_directory("*", FileInformationClass.FILE_ID_BOTH_DIRECTORY_INFORMATION)
    finally:
        d.close()
    names = {e["file_name"].get_value().decode("utf-16-le") for e in entries}
    return names - {".", ".."}


def _session_round_trip(emu, dialect: int | None, **session_kwargs) -> None:
    (emu.share_dir / "existing.txt").write_text("hi\n")
    data = os.urandom(512 * 1024 + 77)
    conn = Connection(uuid.uuid4(), emu.host, emu.smb_port)
    conn.connect(dialect, timeout=20)
    try:
        assert conn.dialect == (dialect or EDITIONS[emu.edition].max_dialect)
        session = Session(conn, "alice", PASSWORD, **session_kwargs)
        session.connect()
        tree = TreeConnect(session, rf"\\{emu.host}\docs")
        tree.connect()  # < 3.1.1: also runs FSCTL_VALIDATE_NEGOTIATE_INFO
        f = _open_file(tree, "lowlevel.bin", CreateDisposition.FILE_OVERWRITE_IF)
        _write_all(conn, f, data)
        assert _read_all(conn, f, len(data)) == data
        f.close()
        assert (emu.share_dir / "lowlevel.bin").read_bytes() == data
        assert _list(tree) == {"existing.txt", "lowlevel.bin"}
        tree.disconnect()
        session.disconnect()
    finally:
        conn.disconnect()


def test_defaults_sign_and_encrypt(emulator):
    """Library defaults: highest dialect, signing required, encryption required."""
    emu = emulator("win10")
    _session_round_trip(emu, None)


@pytest.mark.parametrize("dialect", ALL, ids=IDS)
def test_each_dialect(emulator, dialect):
    emu = emulator("win10")
    # Encryption exists from 3.0 on; below that only signing (still required).
    _session_round_trip(emu, dialect, require_encryption=dialect >= Dialects.SMB_3_0_0)


@pytest.mark.parametrize("edition", ["xp-pro", "win7"])
def test_capped_editions(emulator, edition):
    # smbprotocol requires signing, which XP's ForceGuest (Guest sessions cannot sign)
    # would refuse: this checks the dialect cap, so accounts log on as themselves.
    # smbprotocol speaks SMB2 only: on XP (SMB1 only by default) SMB1 is turned off.
    emu = emulator(edition, args=("--no-force-guest", *EDITIONS[edition].smb2_args))
    _session_round_trip(emu, None, require_encryption=False)
    conn = Connection(uuid.uuid4(), emu.host, emu.smb_port)
    try:
        with pytest.raises(Exception):  # noqa: B017 - no common dialect
            conn.connect(Dialects.SMB_3_1_1, timeout=20)
    finally:
        conn.disconnect()


def test_wrong_password(emulator):
    emu = emulator("win10")
    conn = Connection(uuid.uuid4(), emu.host, emu.smb_port)
    conn.connect(timeout=20)
    try:
        with pytest.raises(LogonFailure) as info:
            Session(conn, "alice", "wrong").connect()
        assert isinstance(info.value, SMBResponseException)
        assert info.value.status == STATUS_LOGON_FAILURE
    finally:
        conn.disconnect()


def test_high_level_smbclient(emulator):
    smbclient = require_module("smbclient")
    emu = emulator("win10")
    cache: dict = {}
    kw = {"port": emu.smb_port, "connection_cache": cache}
    root = rf"\\{emu.host}\docs"
    data = os.urandom(300_001)
    try:
        smbclient.register_session(
            emu.host, username="alice", password=PASSWORD, connection_timeout=20, **kw
        )
        with smbclient.open_file(rf"{root}\hl.bin", mode="wb", **kw) as fh:
            fh.write(data)
        with smbclient.open_file(rf"{root}\hl.bin", mode="rb", **kw) as fh:
            assert fh.read() == data
        assert (emu.share_dir / "hl.bin").read_bytes() == data
        smbclient.mkdir(rf"{root}\sub", **kw)
        smbclient.rename(rf"{root}\hl.bin", rf"{root}\sub\renamed.bin", **kw)
        assert sorted(smbclient.listdir(root, **kw)) == ["sub"]
        assert smbclient.listdir(rf"{root}\sub", **kw) == ["renamed.bin"]
        assert smbclient.stat(rf"{root}\sub\renamed.bin", **kw).st_size == len(data)
        smbclient.remove(rf"{root}\sub\renamed.bin", **kw)
        smbclient.rmdir(rf"{root}\sub", **kw)
        assert smbclient.listdir(root, **kw) == []
    finally:
        smbclient.reset_connection_cache(connection_cache=cache)
    assert list(emu.share_dir.iterdir()) == []


# -- issue 14: EncryptData cannot be stripped -------------------------------------------------
STATUS_ACCESS_DENIED = 0xC0000022


def _denied(call) -> None:
    with pytest.raises(SMBResponseException) as info:
        call()
    assert info.value.status == STATUS_ACCESS_DENIED, repr(info.value)


def test_encrypt_data_refuses_a_2_1_session_and_serves_3_1_1(emulator):
    emu = emulator("win10", args=["--encrypt-data"])
    conn = Connection(uuid.uuid4(), emu.host, emu.smb_port)
    conn.connect(Dialects.SMB_2_1_0, timeout=20)
    try:
        _denied(Session(conn, "alice", PASSWORD, require_encryption=False).connect)
    finally:
        conn.disconnect()
    # An encrypting client that does not insist on it is told to encrypt, and works.
    _session_round_trip(emu, Dialects.SMB_3_1_1, require_encryption=False)


def test_an_encrypt_data_share_refuses_2_1_at_tree_connect_and_serves_3_0(emulator):
    emu = emulator("win10", args=["--encrypt-share", "docs"])
    conn = Connection(uuid.uuid4(), emu.host, emu.smb_port)
    conn.connect(Dialects.SMB_2_1_0, timeout=20)
    try:
        session = Session(conn, "alice", PASSWORD, require_encryption=False)
        session.connect()
        _denied(TreeConnect(session, rf"\\{emu.host}\docs").connect)
    finally:
        conn.disconnect()
    # The share flag makes smbprotocol encrypt on that tree without being asked.
    _session_round_trip(emu, Dialects.SMB_3_0_0, require_encryption=False)


# -- leases and oplocks --------------------------------------------------------------------
# smbprotocol 1.17 requests leases (create contexts) but has no handler for a break: its
# receive thread looks every message up in ``outstanding_requests`` by MessageId. Parking a
# Request under the notification's MessageId (all ones) is how these tests see the break.

UNSOLICITED = 0xFFFFFFFFFFFFFFFF
R, H, W = 1, 2, 4


class _RawBody:
    """An already-packed request body for ``Connection.send`` (the lease/oplock acks)."""

    def __init__(self, command: int, data: bytes) -> None:
        self.COMMAND, self.data = command, data

    def pack(self) -> bytes:
        return self.data

    def __len__(self) -> int:
        return len(self.data)


def _break_listener(conn: Connection, session: Session):
    from smbprotocol.connection import Request
    from smbprotocol.header import SMB2HeaderRequest

    listener = Request(SMB2HeaderRequest(), type(None), conn, session.session_id)
    conn.outstanding_requests[UNSOLICITED] = listener
    return listener


def _lease_context(version: int, key: bytes, state: int):
    from smbprotocol.create_contexts import (
        CreateContextName,
        SMB2CreateContextRequest,
        SMB2CreateRequestLease,
        SMB2CreateRequestLeaseV2,
    )

    lease = SMB2CreateRequestLeaseV2() if version == 2 else SMB2CreateRequestLease()
    lease["lease_key"] = key
    lease["lease_state"] = state
    if version == 2:
        lease["parent_lease_key"] = b"\0" * 16
        lease["epoch"] = b"\0\0"
    ctx = SMB2CreateContextRequest()
    ctx["buffer_name"] = CreateContextName.SMB2_CREATE_REQUEST_LEASE
    ctx["buffer_data"] = lease
    return ctx


def _cached_open(tree: TreeConnect, name: str, oplock: int, contexts=None) -> tuple[Open, list]:
    f = Open(tree, name)
    got = f.create(
        ImpersonationLevel.Impersonation,
        FilePipePrinterAccessMask.GENERIC_READ | FilePipePrinterAccessMask.GENERIC_WRITE,
        FileAttributes.FILE_ATTRIBUTE_NORMAL,
        ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE,
        CreateDisposition.FILE_OPEN,
        CreateOptions.FILE_NON_DIRECTORY_FILE,
        create_contexts=contexts,
        oplock_level=oplock,
    )
    return f, got or []


def _logon(emu, dialect: int | None = None):
    conn = Connection(uuid.uuid4(), emu.host, emu.smb_port)
    conn.connect(dialect, timeout=20)
    session = Session(conn, "alice", PASSWORD, require_encryption=(dialect or 0x0311) >= 0x0300)
    session.connect()
    tree = TreeConnect(session, rf"\\{emu.host}\docs")
    tree.connect()
    return conn, session, tree


def _smbclient_get(emu, conf, local, results: list, *args: str) -> threading.Thread:
    from .conftest import run_smbclient

    def run() -> None:
        results.append(run_smbclient(emu, conf, *args, cwd=local,
                                     commands="get shared.txt copy.txt"))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("dialect,version,protection", [
    (Dialects.SMB_2_1_0, 1, "off"), (Dialects.SMB_3_1_1, 2, "off"),
    (Dialects.SMB_3_1_1, 2, "sign"), (Dialects.SMB_3_1_1, 2, "encrypt"),
], ids=["2.1-v1", "3.1.1-v2", "3.1.1-v2-smbclient-signs", "3.1.1-v2-smbclient-encrypts"])
def test_lease_granted_then_broken_when_smbclient_opens(emulator, smbclient_conf, tmp_path,
                                                        dialect, version, protection):
    """smbclient's CREATE waits (STATUS_PENDING) and takes its final response signed or
    encrypted as it asked; it never asks for an oplock or lease itself (4.17)."""
    from smbprotocol.open import RequestedOplockLevel

    emu = emulator("win10")
    (emu.share_dir / "shared.txt").write_text("cached\n")
    conn, session, tree = _logon(emu, dialect)
    try:
        listener = _break_listener(conn, session)
        key = uuid.uuid4().bytes
        f, contexts = _cached_open(tree, "shared.txt", RequestedOplockLevel.SMB2_OPLOCK_LEVEL_LEASE,
                                   [_lease_context(version, key, R | W | H)])
        assert f.oplock_level == RequestedOplockLevel.SMB2_OPLOCK_LEVEL_LEASE
        (granted,) = contexts
        assert granted["lease_key"].get_value() == key
        assert granted["lease_state"].get_value() == R | W | H  # Windows 7+: RWH on a file
        results: list = []
        worker = _smbclient_get(emu, smbclient_conf, tmp_path, results,
                                f"--client-protection={protection}")
        assert listener.response_event.wait(30), "no break notification arrived"
        note = listener.response
        body = note["data"].get_value()
        assert note["command"].get_value() == 0x12 and note["session_id"].get_value() == 0
        size, epoch, flags, got_key, current, new = struct.unpack_from("<HHI16sII", body)
        assert (size, flags, got_key, current, new) == (44, 1, key, R | W | H, R | H)
        assert epoch == (2 if version == 2 else 0)
        assert not results, "smbclient's open did not wait for the acknowledgment"
        ack = struct.pack("<HHI16sIQ", 36, 0, 0, key, R | H, 0)
        req = conn.send(_RawBody(0x12, ack), sid=session.session_id, tid=tree.tree_connect_id)
        answer = conn.receive(req)
        assert answer["status"].get_value() == 0
        assert struct.unpack_from("<16sI", answer["data"].get_value(), 8) == (key, R | H)
        worker.join(60)
        (proc,) = results
        assert proc.returncode == 0 and "NT_STATUS" not in proc.stdout, proc.stdout
        assert (tmp_path / "copy.txt").read_text() == "cached\n"
        f.close()
    finally:
        conn.disconnect()
    assert "break lease 0x7 -> 0x3 (ack required)" in emu.stderr()


def test_batch_oplock_on_2_0_2_broken_by_a_second_smbprotocol_client(emulator):
    from smbprotocol.open import RequestedOplockLevel

    emu = emulator("win10")
    (emu.share_dir / "shared.txt").write_text("x")
    conn, session, tree = _logon(emu, Dialects.SMB_2_0_2)
    conn2, _, tree2 = _logon(emu, Dialects.SMB_2_0_2)
    try:
        listener = _break_listener(conn, session)
        f, _ = _cached_open(tree, "shared.txt", RequestedOplockLevel.SMB2_OPLOCK_LEVEL_BATCH)
        assert f.oplock_level == RequestedOplockLevel.SMB2_OPLOCK_LEVEL_BATCH
        second: list = []
        t = threading.Thread(daemon=True, target=lambda: second.append(_cached_open(
            tree2, "shared.txt", RequestedOplockLevel.SMB2_OPLOCK_LEVEL_BATCH)[0]))
        t.start()
        assert listener.response_event.wait(30), "no break notification arrived"
        note = listener.response
        assert note["session_id"].get_value() == session.session_id
        body = note["data"].get_value()
        assert body[:3] == b"\x18\x00\x01"  # StructureSize 24, to Level II
        assert body[8:24] == f.file_id
        req = conn.send(_RawBody(0x12, body[:2] + b"\x01" + body[3:]), sid=session.session_id,
                        tid=tree.tree_connect_id)
        assert conn.receive(req)["status"].get_value() == 0
        t.join(30)
        (g,) = second
        assert g.oplock_level == RequestedOplockLevel.SMB2_OPLOCK_LEVEL_II
        g.close()
        f.close()
    finally:
        conn2.disconnect()
        conn.disconnect()
