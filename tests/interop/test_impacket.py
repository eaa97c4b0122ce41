"""impacket's SMBConnection (0.13) against the emulator."""

from __future__ import annotations

import io
import os

import pytest
from impacket.smb3structs import (
    SMB2_DIALECT_002,
    SMB2_DIALECT_21,
    SMB2_DIALECT_30,
    SMB2_DIALECT_311,
)
from impacket.smbconnection import SessionError, SMBConnection

from .conftest import EDITIONS, PASSWORD, STATUS_LOGON_FAILURE

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

# impacket's SMBConnection accepts exactly these as preferredDialect (no 3.0.2).
PREFERRED = [SMB2_DIALECT_002, SMB2_DIALECT_21, SMB2_DIALECT_30, SMB2_DIALECT_311]


def connect(emu, dialect: int | None = None) -> SMBConnection:
    return SMBConnection(
        emu.host, emu.host, sess_port=emu.smb_port, preferredDialect=dialect, timeout=20
    )


def _put(conn: SMBConnection, name: str, data: bytes) -> None:
    conn.putFile("docs", name, io.BytesIO(data).read)


def _get(conn: SMBConnection, name: str) -> bytes:
    buf = io.BytesIO()
    conn.getFile("docs", name, buf.write)
    return buf.getvalue()


def _names(conn: SMBConnection, pattern: str = "*") -> set[str]:
    return {f.get_longname() for f in conn.listPath("docs", pattern)} - {".", ".."}


@pytest.mark.parametrize(
    "dialect", [None, *PREFERRED], ids=["wildcard", "2.0.2", "2.1", "3.0", "3.1.1"]
)
def test_file_operations(emulator, dialect):
    emu = emulator("win10")
    (emu.share_dir / "existing.txt").write_text("hello\n")
    data = os.urandom(1024 * 1024 + 333)

    conn = connect(emu, dialect)
    assert conn.getDialect() == (dialect or 0x0311)
    conn.login("alice", PASSWORD)
    assert not conn.isGuestSession()

    assert _names(conn) == {"existing.txt"}
    _put(conn, "a.bin", data)
    assert (emu.share_dir / "a.bin").read_bytes() == data
    assert _get(conn, "a.bin") == data
    assert _get(conn, "existing.txt") == b"hello\n"

    conn.createDirectory("docs", "d")
    assert (emu.share_dir / "d").is_dir()
    conn.rename("docs", "a.bin", "d\\b.bin")
    assert (emu.share_dir / "d" / "b.bin").read_bytes() == data
    assert _names(conn) == {"existing.txt", "d"}
    assert _names(conn, "d\\*") == {"b.bin"}
    conn.deleteFile("docs", "d\\b.bin")
    conn.deleteDirectory("docs", "d")
    assert sorted(p.name for p in emu.share_dir.iterdir()) == ["existing.txt"]

    conn.logoff()
    conn.close()


@pytest.mark.parametrize("edition", ["xp-home", "xp-pro", "win7", "win10", "server-2022"])
def test_edition_caps_dialect(emulator, edition):
    emu = emulator(edition, args=EDITIONS[edition].smb2_args)
    cap = EDITIONS[edition].max_dialect
    conn = connect(emu)  # SMB1 multi-protocol negotiate, then SMB2 with every dialect
    assert conn.getDialect() == cap
    conn.login("alice", PASSWORD)
    assert _names(conn) == set()
    conn.logoff()
    conn.close()

    for dialect in PREFERRED:
        if dialect <= cap:
            c = connect(emu, dialect)
            assert c.getDialect() == dialect
            c.close()
        else:
            with pytest.raises(Exception):  # noqa: B017 - impacket raises a bare Exception
                connect(emu, dialect).close()


def test_anonymous_login(emulator):
    emu = emulator("win10")
    conn = connect(emu)
    conn.login("", "")
    tid = conn.connectTree("IPC$")
    conn.disconnectTree(tid)
    conn.logoff()
    conn.close()
    admitted = emu.wait_events(1, protocol="smb", outcome="admitted")
    assert admitted and admitted[0].get("user") in ("", None), emu.events()


def test_wrong_password(emulator):
    emu = emulator("win10")
    conn = connect(emu)
    with pytest.raises(SessionError) as info:
        conn.login("alice", "wrong")
    assert info.value.getErrorCode() == STATUS_LOGON_FAILURE
    # The connection survives a failed logon: the right password works next.
    conn.login("alice", PASSWORD)
    assert _names(conn) == set()
    conn.close()


def test_second_user_and_share_isolation(emulator, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "o.txt").write_text("other share\n")
    emu = emulator("win10", shares={"docs": None, "other": other})
    conn = connect(emu)
    conn.login("bob", emu.users["bob"])
    buf = io.BytesIO()
    conn.getFile("other", "o.txt", buf.write)
    assert buf.getvalue() == b"other share\n"
    with pytest.raises(SessionError) as info:
        conn.connectTree("nosuchshare")
    assert info.value.getErrorCode() == 0xC00000CC  # STATUS_BAD_NETWORK_NAME
    conn.close()
    assert emu.wait_events(1, protocol="smb", outcome="admitted", user="bob"), emu.events()


def test_the_harness_netbios_connection_sends_its_calling_name_on_any_port(emulator):
    """emulator.harness.netbios_smb: impacket over the emulator's NetBIOS port (not 139)
    with the SESSION REQUEST, so `net session` shows the calling name; impacket's
    port-139 dialect offer (2.0.2); impacket's module globals untouched."""
    import json
    import urllib.request

    from impacket import nmb

    from emulator.harness.netbios_smb import NetBIOSSMBConnection

    token = "netbios-interop-token"
    emu = emulator("win10", args=("--admin-port", "0", "--admin-token", token))
    conn = NetBIOSSMBConnection(emu.host, emu.host, myName="PC-ALPHA",
                                sess_port=emu.netbios_port, timeout=20)
    try:
        conn.login("alice", PASSWORD)
        assert conn.getDialect() == SMB2_DIALECT_002
        request = urllib.request.Request(emu.admin_url + "/api/sessions",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            sessions = json.loads(reply.read())
        assert [(s["user"], s["client"]) for s in sessions if s["protocol"] == "smb"] == [
            ("alice", "PC-ALPHA")]
    finally:
        conn.close()
    assert nmb.NETBIOS_SESSION_PORT == 139
