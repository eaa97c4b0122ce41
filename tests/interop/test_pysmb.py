"""pysmb (1.2.15) against the emulator: NetBIOS session service first, then SMB2."""

from __future__ import annotations

import io
import os

import pytest

from .conftest import EDITIONS, PASSWORD, require_module

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

require_module("smb")

from smb.SMBConnection import SMBConnection  # noqa: E402  (pysmb)


def _connect(emu, *, direct_tcp: bool, user="alice", password=PASSWORD) -> SMBConnection:
    conn = SMBConnection(
        user, password, "testclient", "EMULATOR", use_ntlm_v2=True, is_direct_tcp=direct_tcp
    )
    port = emu.smb_port if direct_tcp else emu.netbios_port
    assert conn.connect(emu.host, port, timeout=20), "pysmb: authentication failed"
    return conn


def _names(conn: SMBConnection, path: str = "/") -> set[str]:
    return {f.filename for f in conn.listPath("docs", path)} - {".", ".."}


@pytest.mark.parametrize("direct_tcp", [False, True], ids=["netbios", "direct-tcp"])
@pytest.mark.parametrize("edition", ["xp-home", "win10"])
def test_round_trip(emulator, edition, direct_tcp):
    emu = emulator(edition)
    (emu.share_dir / "existing.txt").write_text("hello\n")
    data = os.urandom(700_001)

    conn = _connect(emu, direct_tcp=direct_tcp)
    try:
        # XP speaks SMB1 only: pysmb's multi-protocol NEGOTIATE gets NT LM 0.12 there.
        assert conn.isUsingSMB2 == EDITIONS[edition].smb2
        assert _names(conn) == {"existing.txt"}
        assert conn.storeFile("docs", "/p.bin", io.BytesIO(data)) == len(data)
        assert (emu.share_dir / "p.bin").read_bytes() == data
        buf = io.BytesIO()
        _attrs, size = conn.retrieveFile("docs", "/p.bin", buf)
        assert size == len(data) and buf.getvalue() == data

        conn.createDirectory("docs", "/dir")
        conn.rename("docs", "/p.bin", "/dir/q.bin")
        assert _names(conn, "/dir") == {"q.bin"}
        conn.deleteFiles("docs", "/dir/q.bin")
        conn.deleteDirectory("docs", "/dir")
        assert _names(conn) == {"existing.txt"}
    finally:
        conn.close()


def test_wrong_password(emulator):
    emu = emulator("win10")
    conn = SMBConnection(
        "alice", "wrong", "testclient", "EMULATOR", use_ntlm_v2=True, is_direct_tcp=False
    )
    try:
        assert conn.connect(emu.host, emu.netbios_port, timeout=20) is False
    finally:
        conn.close()
