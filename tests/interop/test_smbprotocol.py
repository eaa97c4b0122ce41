"""smbprotocol (1.17): its low-level API with default settings, and its
high-level ``smbclient`` package (the PyPI module, not Samba's program)."""

from __future__ import annotations

import os
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
    emu = emulator(edition, args=("--no-force-guest",))
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
