"""SMB1 ("NT LM 0.12") against the XP-era editions through unmodified clients: smbclient
-m NT1, impacket with SMB_DIALECT, pysmb with SMB2 off, nmap's smb-* scripts."""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import subprocess

import pytest
from impacket import smb
from impacket.dcerpc.v5 import srvs, transport
from impacket.smbconnection import SessionError, SMBConnection

from .conftest import PASSWORD, STATUS_REQUEST_NOT_ACCEPTED, require_binary, require_module

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

NT1 = ("-m", "NT1", "--option=client min protocol=NT1")
NATIVE_OS = {"xp-home": "Windows 5.1", "xp-pro": "Windows 5.1",
             "server-2003": "Windows Server 2003 3790 Service Pack 2"}


def smbclient(emu, conf, *args, share="docs", user="alice", password=PASSWORD, commands=None):
    exe = require_binary("smbclient")
    cmd = [exe, "-p", str(emu.smb_port), "--configfile", str(conf), *NT1,
           "-U", f"{user}%{password}", *args]
    if share is not None:
        cmd.insert(1, f"//{emu.host}/{share}")
    if commands is not None:
        cmd += ["-c", commands]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60)


def smb1(emu) -> SMBConnection:
    return SMBConnection(emu.host, emu.host, sess_port=emu.smb_port,
                         preferredDialect=smb.SMB_DIALECT, timeout=20)


@pytest.mark.parametrize("edition", ["xp-home", "xp-pro", "server-2003"])
def test_smbclient_nt1_ls_put_get(emulator, smbclient_conf, tmp_path, edition):
    emu = emulator(edition)
    data = os.urandom(300 * 1024)
    (tmp_path / "up.bin").write_bytes(data)
    proc = smbclient(emu, smbclient_conf,
                     commands=f"put {tmp_path / 'up.bin'} up.bin; get up.bin "
                              f"{tmp_path / 'down.bin'}; ls")
    assert proc.returncode == 0, proc.stdout
    assert (emu.share_dir / "up.bin").read_bytes() == data
    assert (tmp_path / "down.bin").read_bytes() == data
    assert re.search(r"up\.bin\s+A\s+307200", proc.stdout), proc.stdout


def test_smbclient_nt1_lists_shares(emulator, smbclient_conf):
    emu = emulator("xp-pro")
    proc = smbclient(emu, smbclient_conf, "-L", emu.host, share=None)
    for name in ("IPC$", "docs", "ADMIN$", "C$"):
        assert re.search(rf"^\s+{re.escape(name)}\s", proc.stdout, re.M), proc.stdout


def test_smbclient_nt1_sixth_session_refused_on_xp_home(emulator, smbclient_conf):
    emu = emulator("xp-home")
    held = [smb1(emu) for _ in range(5)]
    try:
        for c in held:
            c.login("alice", PASSWORD)
        proc = smbclient(emu, smbclient_conf, commands="ls")
        assert proc.returncode != 0 and "NT_STATUS_REQUEST_NOT_ACCEPTED" in proc.stdout, \
            proc.stdout
        with pytest.raises(SessionError) as info:
            smb1(emu).login("bob", emu.users["bob"])
        assert info.value.getErrorCode() == STATUS_REQUEST_NOT_ACCEPTED
        assert len(emu.wait_events(2, protocol="smb", outcome="denied")) == 2
    finally:
        for c in held:
            with contextlib.suppress(Exception):
                c.close()


def test_dos_error_client_sees_errdos_71(emulator):
    emu = emulator("xp-home")
    held = [smb1(emu) for _ in range(5)]
    try:
        for c in held:
            c.login("alice", PASSWORD)
        client = smb.SMB(emu.host, emu.host, sess_port=emu.smb_port, timeout=20)
        flags1, flags2 = client.get_flags()
        client.set_flags(flags2=flags2 & ~smb.SMB.FLAGS2_NT_STATUS)
        with pytest.raises(smb.SessionError) as info:
            client.login("bob", emu.users["bob"])
        assert (info.value.get_error_class(), info.value.get_error_code()) == (0x01, 71)
    finally:
        for c in held:
            with contextlib.suppress(Exception):
                c.close()


@pytest.mark.parametrize("edition", ["xp-pro", "server-2003"])
def test_impacket_smb1_login_os_and_files(emulator, edition):
    emu = emulator(edition, args=["--no-force-guest"] if edition == "xp-pro" else [])
    conn = smb1(emu)
    assert conn.getDialect() == smb.SMB_DIALECT
    conn.login("alice", PASSWORD)
    assert conn.getServerOS() == NATIVE_OS[edition]
    data = os.urandom(200_003)
    conn.putFile("docs", "a.bin", io.BytesIO(data).read)
    buf = io.BytesIO()
    conn.getFile("docs", "a.bin", buf.write)
    assert buf.getvalue() == data
    assert {f.get_longname() for f in conn.listPath("docs", "*")} >= {"a.bin"}
    assert {s["shi1_netname"][:-1] for s in conn.listShares()} >= {"IPC$", "docs"}
    conn.logoff()


def test_impacket_smb1_netr_session_enum(emulator):
    emu = emulator("server-2003")
    conn = smb1(emu)
    conn.login("alice", PASSWORD)
    rpc = transport.SMBTransport(emu.host, emu.smb_port, r"\srvsvc", smb_connection=conn)
    dce = rpc.get_dce_rpc()
    dce.connect()
    dce.bind(srvs.MSRPC_UUID_SRVS)
    reply = srvs.hNetrSessionEnum(dce, "\x00", "\x00", 10)
    clients = [s["sesi10_cname"][:-1] for s in reply["InfoStruct"]["SessionInfo"]
               ["Level10"]["Buffer"]]
    assert "\\\\127.0.0.1" in clients or "127.0.0.1" in clients, clients
    dce.disconnect()


def test_win7_smb1_and_smb2_clients_share_one_limit(emulator):
    emu = emulator("win7", args=["--smb-limit", "2"])
    old = smb1(emu)
    old.login("alice", PASSWORD)
    assert old.getDialect() == smb.SMB_DIALECT
    new = SMBConnection(emu.host, emu.host, sess_port=emu.smb_port, timeout=20)
    new.login("alice", PASSWORD)
    assert new.getDialect() == 0x0210
    with pytest.raises(SessionError) as info:
        smb1(emu).login("bob", emu.users["bob"])
    assert info.value.getErrorCode() == STATUS_REQUEST_NOT_ACCEPTED
    old.close()
    new.close()


def test_pysmb_with_smb2_off(emulator):
    require_module("smb")
    from smb import smb_structs
    from smb.SMBConnection import SMBConnection as PySMB

    emu = emulator("xp-home")
    (emu.share_dir / "hello.txt").write_bytes(b"hello over SMB1\n" * 1000)
    saved = smb_structs.SUPPORT_SMB2
    smb_structs.SUPPORT_SMB2 = False
    try:
        conn = PySMB("alice", PASSWORD, "testclient", "EMULATOR", use_ntlm_v2=True,
                     is_direct_tcp=True)
        assert conn.connect(emu.host, emu.smb_port, timeout=20)
        assert not conn.isUsingSMB2
        assert {s.name for s in conn.listShares()} >= {"IPC$", "docs"}
        buf = io.BytesIO()
        conn.retrieveFile("docs", "/hello.txt", buf)
        assert buf.getvalue() == b"hello over SMB1\n" * 1000
        conn.close()
    finally:
        smb_structs.SUPPORT_SMB2 = saved


# -- nmap's smb-* scripts need port 445 (root): an emulator on a loopback address of its own

def _port_445(emulator, edition, args=()):
    if os.geteuid() != 0:
        pytest.skip("nmap's smb scripts need the emulator on port 445 (root)")
    for _ in range(5):
        host = f"127.{random.randint(16, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
        try:
            return emulator(edition, args=["--host", host, "--smb-port", "445", *args])
        except pytest.fail.Exception:
            continue
    pytest.fail("no loopback address with a free port 445")


def _nmap(emu, scripts: str, *script_args: str) -> str:
    exe = require_binary("nmap")
    args = ",".join(["smbport=445", *script_args])
    proc = subprocess.run([exe, "-n", "-Pn", "-sT", "-p", "445", "--script", scripts,
                           "--script-args", args, emu.host], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_nmap_os_discovery_security_mode_and_protocols(emulator):
    emu = _port_445(emulator, "xp-pro", ["--netbios-name", "LEGACY", "--workgroup", "HTB"])
    out = _nmap(emu, "smb-os-discovery,smb-security-mode,smb-protocols")
    assert "OS: Windows XP (Windows 2000 LAN Manager)" in out, out
    assert "Computer name: LEGACY" in out or "NetBIOS computer name: LEGACY" in out, out
    assert "Workgroup: HTB" in out, out
    assert "message_signing: disabled" in out, out
    assert "NT LM 0.12 (SMBv1)" in out, out


def test_nmap_enum_shares_and_sessions(emulator):
    emu = _port_445(emulator, "xp-pro", ["--no-force-guest"])
    out = _nmap(emu, "smb-enum-shares,smb-enum-sessions", "smbusername=alice",
                f"smbpassword={PASSWORD}")
    for name in ("IPC$", "docs"):
        assert f"\\\\{emu.host}\\{name}" in out, out


def _net_rap(emu, conf, verb, user="alice", password=PASSWORD):
    exe = require_binary("net")
    return subprocess.run([exe, "rap", verb, "-S", emu.host, "-p", str(emu.smb_port),
                           "-U", f"{user}%{password}", "-s", str(conf), *NT1,
                           "--option=client ipc signing=auto"],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60)


def test_net_rap_share_and_session(emulator, smbclient_conf):
    emu = emulator("xp-pro", args=["--no-force-guest", "--admin-user", "alice"])
    # `net rap share` exits with the number of shares (Samba's cli_RNetShareEnum result).
    out = _net_rap(emu, smbclient_conf, "share")
    assert {"IPC$", "docs", "ADMIN$", "C$"} <= set(out.stdout.split()), out.stdout
    out = _net_rap(emu, smbclient_conf, "session")
    assert re.search(r"127\.0\.0\.1\s+alice", out.stdout), out.stdout
    # NetSessionEnum is for administrators: bob gets ERROR_ACCESS_DENIED.
    out = _net_rap(emu, smbclient_conf, "session", user="bob", password=emu.users["bob"])
    assert "alice" not in out.stdout, out.stdout


# -- SMB1 MD5 signing (MS-CIFS 3.1.4.1): a host started with --signing-required

SIGNING = "--option=client signing=required"


@pytest.mark.parametrize("edition", ["xp-pro", "server-2003"])
def test_smbclient_nt1_with_signing_required(emulator, smbclient_conf, tmp_path, edition):
    emu = emulator(edition, args=["--signing-required", "--no-force-guest"])
    data = os.urandom(100 * 1024)
    (tmp_path / "up.bin").write_bytes(data)
    proc = smbclient(emu, smbclient_conf, SIGNING,
                     commands=f"put {tmp_path / 'up.bin'} up.bin; get up.bin "
                              f"{tmp_path / 'down.bin'}; ls")
    assert proc.returncode == 0, proc.stdout
    assert (tmp_path / "down.bin").read_bytes() == data
    assert re.search(r"up\.bin\s+A\s+102400", proc.stdout), proc.stdout


@pytest.mark.parametrize("ntlmv2", ["yes", "no"])
def test_smbclient_nt1_signing_without_extended_security(emulator, smbclient_conf, ntlmv2):
    # No SPNEGO: the NEGOTIATE's challenge and the LM/NTLM responses; the key is the NT
    # session key and the NT response (MS-CIFS 3.3.5.43); smbclient checks every answer.
    emu = emulator("server-2003", args=["--signing-required"])
    (emu.share_dir / "n.txt").write_text("signed\n")
    proc = smbclient(emu, smbclient_conf, SIGNING, "--option=client use spnego=no",
                     f"--option=client ntlmv2 auth={ntlmv2}", commands="ls")
    assert proc.returncode == 0 and "n.txt" in proc.stdout, proc.stdout


def test_smbclient_requiring_signing_is_refused_by_xp_as_shipped(emulator, smbclient_conf):
    # XP's SecurityMode 0x03 offers no signing: a client that requires it gives up.
    emu = emulator("xp-pro")
    proc = smbclient(emu, smbclient_conf, SIGNING, commands="ls")
    assert proc.returncode != 0, proc.stdout


def test_impacket_smb1_signs_when_the_host_requires_it(emulator):
    emu = emulator("server-2003", args=["--signing-required"])
    conn = smb1(emu)
    assert conn.isSigningRequired()
    conn.login("alice", PASSWORD)
    data = os.urandom(50_001)
    conn.putFile("docs", "s.bin", io.BytesIO(data).read)
    buf = io.BytesIO()
    conn.getFile("docs", "s.bin", buf.write)
    assert buf.getvalue() == data
    assert {s["shi1_netname"][:-1] for s in conn.listShares()} >= {"IPC$", "docs"}
    # The host checks what impacket signs: one sequence number skipped is refused.
    conn.getSMBServer()._SignSequenceNumber += 2
    with pytest.raises(SessionError) as info:
        conn.listPath("docs", "*")
    assert info.value.getErrorCode() == 0xC0000022  # STATUS_ACCESS_DENIED


def test_smbclient_nt1_showacls_reads_the_descriptor_over_nt_transact(emulator,
                                                                       smbclient_conf):
    emu = emulator("xp-pro", args=["--no-force-guest"])
    (emu.share_dir / "acl.txt").write_text("x")
    proc = smbclient(emu, smbclient_conf, commands="showacls; ls acl.txt; allinfo acl.txt")
    assert proc.returncode == 0, proc.stdout
    assert "failed to get security descriptor" not in proc.stdout, proc.stdout
    assert "Owner SID:\tS-1-5-32-544" in proc.stdout and "SID: S-1-1-0" in proc.stdout, \
        proc.stdout
    assert "stream: [::$DATA], 1 bytes" in proc.stdout, proc.stdout
