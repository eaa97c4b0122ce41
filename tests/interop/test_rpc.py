"""DCE/RPC over named pipes (srvsvc, wkssvc, spoolss) with unmodified clients.

Samba's ``smbclient -L`` and ``rpcclient``, impacket's ``srvs``/``wkst``/``rprn`` helpers
over ``SMBTransport``, pysmb's ``listShares`` over NetBIOS; and KB 328459's leak: null
sessions holding ``\\PIPE\\spoolss`` outlive the null-session expiry and fill an XP box.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import pytest
from impacket.dcerpc.v5 import rprn, srvs, transport, wkst
from impacket.dcerpc.v5.rpcrt import DCERPCException
from impacket.smbconnection import SessionError, SMBConnection

from .conftest import (
    EDITIONS, PASSWORD, STATUS_REQUEST_NOT_ACCEPTED, require_binary, require_module,
    samba_smb1_args,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

ADMIN, ADMIN_PASSWORD = "root", "R00t-pw!"
USERS = {"alice": PASSWORD, "bob": "B0b-s3cret", ADMIN: ADMIN_PASSWORD}
ADMIN_ARGS = ("--admin-user", ADMIN)
ERROR_ACCESS_DENIED = 5
STATUS_USER_SESSION_DELETED = 0xC0000203
STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
STATUS_ACCESS_DENIED = 0xC0000022


def start(emulator, edition="win10", args=()):
    # ForceGuest off: these tests need XP's accounts to log on as themselves (an XP Pro
    # with Simple File Sharing turned off); test_persona covers the Guest mapping.
    return emulator(edition, users=USERS, args=[*ADMIN_ARGS, "--no-force-guest", *args])


# -- client helpers ---------------------------------------------------------------------------


def smb(emu, user="alice", dialect=None) -> SMBConnection:
    conn = SMBConnection(emu.host, emu.host, sess_port=emu.smb_port, preferredDialect=dialect,
                         timeout=20)
    conn.login(user, USERS.get(user, ""))
    return conn


def rpc(emu, pipe, iface, user="alice", conn=None):
    """impacket's DCE/RPC over SMB: ``SMBTransport`` on the emulator's port."""
    if conn is None:
        t = transport.SMBTransport(emu.host, emu.smb_port, f"\\{pipe}", username=user,
                                   password=USERS.get(user, ""))
    else:
        t = transport.SMBTransport(emu.host, emu.smb_port, f"\\{pipe}", smb_connection=conn)
    t.set_dport(emu.smb_port)
    dce = t.get_dce_rpc()
    dce.connect()
    dce.bind(iface)
    return dce


def rpcclient(emu, conf: Path, commands: str, user="alice", timeout=60):
    exe = require_binary("rpcclient")
    cmd = [exe, "-U", f"{user}%{USERS[user]}", "--port", str(emu.smb_port),
           "--configfile", str(conf), *samba_smb1_args(emu.edition), "-c", commands, emu.host]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def smbclient_list(emu, conf: Path, *args: str):
    exe = require_binary("smbclient")
    cmd = [exe, "-L", f"//{emu.host}", "-p", str(emu.smb_port), "--configfile", str(conf),
           *samba_smb1_args(emu.edition), *args]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60)


def names(rows, field):
    return [row[field].rstrip("\0") for row in rows]


def close_all(*conns):
    for conn in conns:
        with contextlib.suppress(Exception):
            conn.close()


# -- shares ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["SMB2_02", "SMB3_11"])
def test_smbclient_lists_shares(emulator, smbclient_conf, protocol):
    emu = start(emulator)
    out = smbclient_list(emu, smbclient_conf, "-U", f"alice%{PASSWORD}", "-m", protocol,
                         f"--option=client max protocol={protocol}")
    assert out.returncode == 0, out.stdout
    lines = [line.split() for line in out.stdout.splitlines()]
    assert ["docs", "Disk"] in lines
    assert ["IPC$", "IPC", "Remote", "IPC"] in lines


def test_smbclient_lists_shares_on_a_null_session(emulator, smbclient_conf):
    emu = start(emulator, "xp-home")
    out = smbclient_list(emu, smbclient_conf, "-N")
    assert out.returncode == 0, out.stdout
    assert "Anonymous login successful" in out.stdout
    assert "docs" in out.stdout and "IPC$" in out.stdout


def test_many_shares_span_fragments(emulator, smbclient_conf, tmp_path):
    shares = {f"share_with_a_long_name_{i:03}": None for i in range(150)}
    emu = emulator("win10", users=USERS, shares=shares, args=ADMIN_ARGS)
    out = smbclient_list(emu, smbclient_conf, "-U", f"alice%{PASSWORD}")
    assert out.returncode == 0, out.stdout
    # 150 shares + ADMIN$ and C$ (Windows' administrative shares).
    assert sum(" Disk" in line for line in out.stdout.splitlines()) == 152
    conn = smb(emu)
    try:
        assert len(conn.listShares()) == 153  # impacket: every fragment read
    finally:
        close_all(conn)
    pysmb = require_module("smb.SMBConnection")
    client = pysmb.SMBConnection("alice", PASSWORD, "pyclient", "EMULATOR", use_ntlm_v2=True,
                                 is_direct_tcp=False)
    assert client.connect(emu.host, emu.netbios_port, timeout=20)
    try:
        assert len(client.listShares(timeout=20)) == 153
    finally:
        client.close()


def test_pysmb_lists_shares_over_netbios(emulator):
    pysmb = require_module("smb.SMBConnection")
    emu = start(emulator, "xp-pro")
    client = pysmb.SMBConnection("alice", PASSWORD, "pyclient", "EMULATOR", use_ntlm_v2=True,
                                 is_direct_tcp=False)
    assert client.connect(emu.host, emu.netbios_port, timeout=20)
    try:
        shares = {(s.name, s.type, s.comments) for s in client.listShares(timeout=20)}
    finally:
        client.close()
    # pysmb masks STYPE_SPECIAL off the type: ADMIN$ and C$ show as disk (0).
    assert {("docs", 0, ""), ("IPC$", 3, "Remote IPC"), ("ADMIN$", 0, "Remote Admin"),
            ("C$", 0, "Default share")} == shares


def test_impacket_list_shares_and_share_info(emulator):
    emu = start(emulator)
    conn = smb(emu)
    try:
        assert names(conn.listShares(), "shi1_netname") == ["ADMIN$", "C$", "IPC$", "docs"]
        dce = rpc(emu, "srvsvc", srvs.MSRPC_UUID_SRVS, conn=conn)
        info = srvs.hNetrShareGetInfo(dce, "docs", 1)["InfoStruct"]["ShareInfo1"]
        assert info["shi1_netname"] == "docs\0"
        with pytest.raises(DCERPCException) as err:
            srvs.hNetrShareEnum(dce, 502)  # local paths: administrators only
        assert err.value.get_error_code() == ERROR_ACCESS_DENIED
    finally:
        close_all(conn)


# -- rpcclient ------------------------------------------------------------------------------------


def test_rpcclient_as_administrator(emulator, smbclient_conf):
    emu = start(emulator, "xp-pro")
    out = rpcclient(emu, smbclient_conf, "netshareenumall; srvinfo; netsessenum; netfileenum",
                    user=ADMIN)
    assert out.returncode == 0, out.stdout
    text = out.stdout
    # level 2, paths: a Windows path (the docs directory sits outside the system drive)
    assert "netname: docs" in text and "path:\tC:\\Shares\\docs" in text
    assert "netname: IPC$" in text
    assert "EMULATOR" in text and "os version      :\t5.1" in text  # srvinfo (level 101)
    assert "platform_id     :\t500" in text
    assert "Received 1 entries." in text  # netsessenum: rpcclient's own session
    assert "\\PIPE\\srvsvc" in text  # netfileenum: the pipe rpcclient holds open


def test_rpcclient_as_a_user(emulator, smbclient_conf):
    emu = start(emulator, "win10")
    out = rpcclient(emu, smbclient_conf, "netshareenumall 1")
    assert out.returncode == 0, out.stdout
    assert "netname: docs" in out.stdout and "path" not in out.stdout
    out = rpcclient(emu, smbclient_conf, "srvinfo")
    assert out.returncode == 0 and "os version      :\t10.0" in out.stdout
    # Windows 10 1607+: enumerating sessions and files is for administrators.
    for command in ("netsessenum", "netfileenum", "netshareenumall"):
        out = rpcclient(emu, smbclient_conf, command)
        assert "WERR_ACCESS_DENIED" in out.stdout, (command, out.stdout)


def test_rpcclient_netsessdel(emulator, smbclient_conf):
    pysmb = require_module("smb.SMBConnection")
    emu = start(emulator, "xp-home")
    # Over port 139 the session's client name is the NetBIOS calling name (VICTIMPC); over
    # direct TCP it would be the address, as on Windows (no longer the NTLM workstation).
    victim = pysmb.SMBConnection("bob", USERS["bob"], "victimpc", "EMULATOR", use_ntlm_v2=True,
                                 is_direct_tcp=False)
    assert victim.connect(emu.host, emu.netbios_port, timeout=20)
    try:
        out = rpcclient(emu, smbclient_conf, "netsessdel \\\\VICTIMPC", user=ADMIN)
        assert out.returncode == 0, out.stdout
        assert emu.wait_events(1, outcome="admin-delete", user="bob"), emu.events()
        with pytest.raises(Exception):  # noqa: B017  (pysmb raises its own errors)
            victim.listPath("docs", "/", timeout=10)
        out = rpcclient(emu, smbclient_conf, "netsessdel \\\\VICTIMPC", user=ADMIN)
        assert "WERR_NERR_CLIENTNAMENOTFOUND" in out.stdout
        out = rpcclient(emu, smbclient_conf, "netsessdel \\\\127.0.0.1")  # alice: no
        assert "WERR_ACCESS_DENIED" in out.stdout
    finally:
        close_all(victim)


# -- impacket: sessions ---------------------------------------------------------------------------


@pytest.mark.parametrize("level", [10, 502])
def test_impacket_session_enum(emulator, level):
    emu = start(emulator, "xp-pro")
    held = [smb(emu, "alice"), smb(emu, "bob")]
    try:
        dce = rpc(emu, "srvsvc", srvs.MSRPC_UUID_SRVS, user=ADMIN)
        resp = srvs.hNetrSessionEnum(dce, "\x00", "\x00", level)
        rows = resp["InfoStruct"]["SessionInfo"][f"Level{level}"]["Buffer"]
        users = sorted(names(rows, f"sesi{level}_username"))
        assert users == ["alice", "bob", ADMIN]
        assert set(names(rows, f"sesi{level}_cname")) == {f"\\\\{emu.host}"}  # no workstation
        if level == 502:
            mine = next(r for r in rows if r["sesi502_username"] == ADMIN + "\0")
            assert mine["sesi502_num_opens"] == 1  # the srvsvc pipe of this very call
            assert mine["sesi502_transport"] == "\\Device\\NetbiosSmb\0"
        resp = srvs.hNetrSessionEnum(dce, "\x00", "bob\x00", level)
        assert resp["TotalEntries"] == 1
    finally:
        close_all(*held)


def test_session_enum_rule_follows_the_edition(emulator):
    xp = start(emulator, "xp-pro")
    dce = rpc(xp, "srvsvc", srvs.MSRPC_UUID_SRVS)  # alice, not an administrator
    assert srvs.hNetrSessionEnum(dce, "\x00", "\x00", 10)["TotalEntries"] == 1
    with pytest.raises(DCERPCException) as err:
        srvs.hNetrSessionEnum(dce, "\x00", "\x00", 502)  # levels 1, 2, 502: admins
    assert err.value.get_error_code() == ERROR_ACCESS_DENIED
    win10 = start(emulator, "win10")
    dce = rpc(win10, "srvsvc", srvs.MSRPC_UUID_SRVS)
    with pytest.raises(DCERPCException) as err:
        srvs.hNetrSessionEnum(dce, "\x00", "\x00", 10)
    assert err.value.get_error_code() == ERROR_ACCESS_DENIED
    admin = rpc(win10, "srvsvc", srvs.MSRPC_UUID_SRVS, user=ADMIN)
    assert srvs.hNetrSessionEnum(admin, "\x00", "\x00", 10)["TotalEntries"] >= 1


def test_impacket_session_del_frees_the_slot(emulator):
    # 5 sessions; pinned to SMB 2.0.2 (what a deleted SMB1 session answers is unverified),
    # so XP's SMB1 is turned off here.
    emu = start(emulator, "xp-home", args=EDITIONS["xp-home"].smb2_args)
    victims = [smb(emu, "bob", dialect=0x0202) for _ in range(4)]
    admin = smb(emu, ADMIN, dialect=0x0202)
    try:
        with pytest.raises(SessionError) as err:
            smb(emu, "alice")
        assert err.value.getErrorCode() == STATUS_REQUEST_NOT_ACCEPTED
        dce = rpc(emu, "srvsvc", srvs.MSRPC_UUID_SRVS, conn=admin)
        assert srvs.hNetrSessionDel(dce, "\x00", "bob\x00")["ErrorCode"] == 0
        for victim in victims:
            with pytest.raises(SessionError) as err:
                victim.listPath("docs", "*")
            assert err.value.getErrorCode() == STATUS_USER_SESSION_DELETED
        alice = smb(emu, "alice")  # the slots are free at once
        alice.close()
        with pytest.raises(DCERPCException) as err:
            srvs.hNetrSessionDel(dce, "\x00", "bob\x00")
        assert err.value.get_error_code() == 2221  # NERR_UserNotFound
        user_dce = rpc(emu, "srvsvc", srvs.MSRPC_UUID_SRVS, user="alice")
        with pytest.raises(DCERPCException) as err:
            srvs.hNetrSessionDel(user_dce, "\x00", f"{ADMIN}\x00")
        assert err.value.get_error_code() == ERROR_ACCESS_DENIED
    finally:
        close_all(admin, *victims)


def test_server_info_and_autodisconnect(emulator):
    emu = start(emulator, "xp-pro")
    dce = rpc(emu, "srvsvc", srvs.MSRPC_UUID_SRVS, user=ADMIN)
    info = srvs.hNetrServerGetInfo(dce, 102)["InfoStruct"]["ServerInfo102"]
    assert (info["sv102_version_major"], info["sv102_version_minor"]) == (5, 1)
    assert (info["sv102_users"], info["sv102_disc"]) == (10, 15)
    request = srvs.NetrServerSetInfo()
    request["ServerName"] = "\x00"
    request["Level"] = 1010
    request["InfoStruct"]["tag"] = 1010
    request["InfoStruct"]["ServerInfo1010"]["sv1010_disc"] = 42
    assert dce.request(request)["ErrorCode"] == 0
    info = srvs.hNetrServerGetInfo(dce, 102)["InfoStruct"]["ServerInfo102"]
    assert info["sv102_disc"] == 42
    assert srvs.hNetrRemoteTOD(dce)["BufferPtr"]["tod_year"] >= 2024
    wk = rpc(emu, "wkssvc", wkst.MSRPC_UUID_WKST)
    info = wkst.hNetrWkstaGetInfo(wk, 100)["WkstaInfo"]["WkstaInfo100"]
    assert (info["wki100_computername"], info["wki100_ver_major"]) == ("EMULATOR\0", 5)


def test_netview_style_enumeration(emulator):
    """What impacket's netview.py asks of each host: sessions (srvsvc level 10) and
    logged-on users (wkssvc NetrWkstaUserEnum level 1)."""
    emu = start(emulator, "server-2003")
    dce = rpc(emu, "srvsvc", srvs.MSRPC_UUID_SRVS, user=ADMIN)
    sessions = srvs.hNetrSessionEnum(dce, "\x00", "\x00", 10)
    rows = sessions["InfoStruct"]["SessionInfo"]["Level10"]["Buffer"]
    assert names(rows, "sesi10_username") == [ADMIN]
    wk = rpc(emu, "wkssvc", wkst.MSRPC_UUID_WKST, user=ADMIN)
    users = wkst.hNetrWkstaUserEnum(wk, 1)
    assert users["UserInfo"]["WkstaUserInfo"]["Level1"]["EntriesRead"] == 0  # no RDP logon


def test_unknown_pipes_and_interfaces(emulator):
    emu = start(emulator)
    conn = smb(emu)
    try:
        tid = conn.connectTree("IPC$")
        with pytest.raises(SessionError) as err:
            conn.openFile(tid, "\\netlogon")  # samr and lsarpc exist since issue 15
        assert err.value.getErrorCode() == STATUS_OBJECT_NAME_NOT_FOUND
        dce = rpc(emu, "wkssvc", wkst.MSRPC_UUID_WKST, conn=conn)
        with pytest.raises(DCERPCException, match="abstract_syntax_not_supported"):
            dce.bind(srvs.MSRPC_UUID_SRVS)
        # Garbage written to a pipe is answered with a fault; the connection lives on.
        fid = conn.openFile(tid, "\\srvsvc")
        conn.writeFile(tid, fid, b"\x05\x00\x0b\x03\x10\x00\x00\x00\x04\x00\x00\x00" + b"\0" * 4)
        answer = conn.readFile(tid, fid)
        assert answer[2] == 3  # fault
        conn.closeFile(tid, fid)
        assert names(conn.listShares(), "shi1_netname") == ["ADMIN$", "C$", "IPC$", "docs"]
    finally:
        close_all(conn)


# -- KB 328459 ------------------------------------------------------------------------------------


def hold_spoolss(emu):
    """A null session that opens \\PIPE\\spoolss, binds, opens the print server, and keeps
    the pipe open: what a printer-querying client leaves behind."""
    conn = SMBConnection(emu.host, emu.host, sess_port=emu.smb_port, timeout=20)
    conn.login("", "")
    dce = rpc(emu, "spoolss", rprn.MSRPC_UUID_RPRN, conn=conn)
    handle = rprn.hRpcOpenPrinter(dce, f"\\\\{emu.host}\x00")["pHandle"]
    return conn, dce, handle


def null_session(emu):
    conn = SMBConnection(emu.host, emu.host, sess_port=emu.smb_port, timeout=20)
    conn.login("", "")
    return conn


def test_kb328459_spoolss_null_sessions_fill_xp_home(emulator):
    timeout = 2.0
    emu = start(emulator, "xp-home", args=("--null-session-timeout", str(timeout)))
    authenticated = [smb(emu, "alice"), smb(emu, "bob")]
    spoolers = [hold_spoolss(emu) for _ in range(2)]
    plain = null_session(emu)  # a null session that holds nothing: it expires
    try:
        time.sleep(timeout + 1.5)
        expired = emu.wait_events(1, outcome="null-session-expired")
        assert len(expired) == 1, emu.events()
        # The printer handles still work: their null sessions are alive.
        for _conn, dce, handle in spoolers:
            rprn.hRpcClosePrinter(dce, handle)
        # 2 authenticated + 2 spoolss null sessions: room for one more, then no more.
        fifth = smb(emu, "alice")
        with pytest.raises(SessionError) as err:
            smb(emu, "bob")
        assert err.value.getErrorCode() == STATUS_REQUEST_NOT_ACCEPTED
        fifth.close()
    finally:
        close_all(*authenticated, *(c for c, _d, _h in spoolers), plain)


def test_kb328459_restrict_anonymous_refuses_the_pipe_but_the_session_counted(emulator):
    timeout = 2.0
    emu = start(emulator, "xp-home", args=("--null-session-timeout", str(timeout),
                                           "--restrict-anonymous"))
    nulls = [null_session(emu) for _ in range(5)]
    try:
        for conn in nulls:
            tid = conn.connectTree("IPC$")
            with pytest.raises(SessionError) as err:
                conn.openFile(tid, "\\spoolss")
            assert err.value.getErrorCode() == STATUS_ACCESS_DENIED
        with pytest.raises(SessionError) as err:  # all five still count
            smb(emu, "alice")
        assert err.value.getErrorCode() == STATUS_REQUEST_NOT_ACCEPTED
        time.sleep(timeout + 1.5)
        assert len(emu.wait_events(5, outcome="null-session-expired")) == 5
        smb(emu, "alice").close()  # expired: the slots are back
    finally:
        close_all(*nulls)


def test_netr_file_enum_and_close_and_connection_enum(emulator):
    """`net files` then `net files ID /close` as impacket's srvsvc calls them: the admin
    closes alice's open file; her next read on it fails; NetrConnectionEnum shows the share."""
    emu = start(emulator)
    (emu.share_dir / "report.txt").write_bytes(b"quarterly numbers")
    alice = smb(emu, "alice")
    admin = smb(emu, ADMIN)
    try:
        tid = alice.connectTree("docs")
        fid = alice.openFile(tid, "report.txt")
        assert alice.readFile(tid, fid, 0, 9) == b"quarterly"
        dce = rpc(emu, "srvsvc", srvs.MSRPC_UUID_SRVS, conn=admin)
        files = srvs.hNetrFileEnum(dce, NULL_STR, NULL_STR, 3)["InfoStruct"]["FileInfo"][
            "Level3"]["Buffer"]
        mine = [f for f in files if f["fi3_path_name"].rstrip("\0") == "docs\\report.txt"]
        assert len(mine) == 1 and mine[0]["fi3_username"].rstrip("\0") == "alice"
        connections = srvs.hNetrConnectionEnum(dce, "docs\x00", 1)["InfoStruct"][
            "ConnectInfo"]["Level1"]["Buffer"]
        assert [c["coni1_username"].rstrip("\0") for c in connections] == ["alice"]
        assert srvs.hNetrFileClose(dce, mine[0]["fi3_id"])["ErrorCode"] == 0
        with pytest.raises(SessionError) as err:
            alice.readFile(tid, fid, 0, 9)
        assert err.value.getErrorCode() == 0xC0000128  # STATUS_FILE_CLOSED
        with pytest.raises(DCERPCException) as err:
            srvs.hNetrFileClose(dce, mine[0]["fi3_id"])
        assert err.value.get_error_code() == 2314  # NERR_FileIdNotFound
    finally:
        close_all(alice, admin)


NULL_STR = "\x00"
