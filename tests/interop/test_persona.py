"""Each edition's persona as unmodified clients read it: impacket's OS and name fields,
nmap's smb2-capabilities / smb2-security-mode / smb2-time / smb-protocols, smbclient -L
and rpcclient as an administrator (ADMIN$, C$, IPC$), and an NTLMv1-only Node.js client
(@marsaud/smb2) admitted on win10 and refused on win11."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from emulator.core.editions import get_edition

from .conftest import PASSWORD, in_ci, require_binary, require_module, samba_smb1_args
from .test_nmap import _script_blocks

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

USERS = {"alice": PASSWORD, "bob": "B0b-s3cret"}
ADMIN_ARGS = ("--admin-user", "bob")
NODE_DIR = Path(__file__).parent / "node"

# edition -> (major, minor, build) as Windows sends in the NTLM CHALLENGE Version.
VERSIONS = {
    "xp-pro": (5, 1, 2600), "server-2003": (5, 2, 3790), "vista": (6, 0, 6002),
    "win7": (6, 1, 7601), "win81": (6, 3, 9600), "win10": (10, 0, 19045),
    "win11": (10, 0, 26100), "server-2016": (10, 0, 14393), "server-2019": (10, 0, 17763),
    "server-2022": (10, 0, 20348), "server-2025": (10, 0, 26100),
}

SMB1_NATIVE_OS = {"xp-pro": "Windows 5.1", "server-2003": "Windows Server 2003 3790 Service Pack 2"}


def _impacket(emu):
    smbconnection = require_module("impacket.smbconnection")
    conn = smbconnection.SMBConnection(emu.host, emu.host, sess_port=emu.smb_port, timeout=20)
    conn.login("alice", PASSWORD)
    return conn


@pytest.mark.parametrize("edition", sorted(VERSIONS))
def test_impacket_reads_the_os_and_names(emulator, edition):
    emu = emulator(edition, users=USERS, args=("--netbios-name", "DESKTOP-AB12CD",
                                               "--no-signing-required", "--no-force-guest"))
    conn = _impacket(emu)
    try:
        major, minor, build = VERSIONS[edition]
        assert (conn.getServerOSMajor(), conn.getServerOSMinor(), conn.getServerOSBuild()) == (
            major, minor, build)
        # SMB1 (XP, 2003): impacket gives SESSION_SETUP's NativeOS, which on XP has no build.
        assert conn.getServerOS() == SMB1_NATIVE_OS.get(edition, conn.getServerOS())
        assert str(build) in conn.getServerOS() or edition in SMB1_NATIVE_OS
        # A workgroup host names itself everywhere: impacket then leaves the domain empty.
        assert conn.getServerName() == "DESKTOP-AB12CD"
        assert conn.getServerDomain() == ""
        assert conn.getServerDNSDomainName() == conn.getServerDNSHostName() == "DESKTOP-AB12CD"
    finally:
        conn.close()


def _nmap(emu, scripts):
    exe = require_binary("nmap")
    proc = subprocess.run(
        [exe, "-n", "-Pn", "-sT", "-p", str(emu.smb_port), "--script", scripts,
         "--script-args", f"smbport={emu.smb_port}", emu.host],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return _script_blocks(proc.stdout), proc.stdout


def test_nmap_capabilities_time_and_signing_win10_win7(emulator):
    emu = emulator("win10", users=USERS)
    blocks, out = _nmap(emu, "smb2-capabilities,smb2-time,smb2-security-mode,smb-protocols")
    caps = "\n".join(blocks["smb2-capabilities"])
    # nmap sends Capabilities 0: Windows then grants no Encryption / Multi-channel.
    assert re.search(r"2[.:]?1[.:]?0?:\s*\n\s*Distributed File System\s*\n\s*Leasing\s*\n"
                     r"\s*Multi-credit operations", caps), caps
    assert "Encryption" not in caps and "Multi-channel" not in caps, caps
    assert "start_date: N/A" in "\n".join(blocks["smb2-time"]), out
    assert "enabled but not required" in "\n".join(blocks["smb2-security-mode"])
    assert "smb-protocols" in blocks
    win7 = emulator("win7", users=USERS)
    blocks, out = _nmap(win7, "smb2-time")
    time_lines = "\n".join(blocks["smb2-time"])
    assert re.search(r"start_date: \d{4}-\d\d-\d\d", time_lines), out  # boot time on 7


def test_nmap_win11_requires_signing(emulator):
    emu = emulator("win11", users=USERS)
    blocks, _ = _nmap(emu, "smb2-security-mode")
    assert "enabled and required" in "\n".join(blocks["smb2-security-mode"])


def _smbclient_conf(tmp_path):
    conf = tmp_path / "smb.conf"
    conf.write_text("[global]\n")
    return conf


def test_smbclient_lists_admin_shares_for_an_administrator(emulator, tmp_path):
    emu = emulator("win10", users=USERS, args=ADMIN_ARGS)
    exe = require_binary("smbclient")
    out = subprocess.run([exe, "-L", f"//{emu.host}", "-p", str(emu.smb_port), "--configfile",
                          str(_smbclient_conf(tmp_path)), "-U", f"bob%{USERS['bob']}"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [line.split() for line in out.stdout.splitlines()]
    assert ["ADMIN$", "Disk", "Remote", "Admin"] in lines, out.stdout
    assert ["C$", "Disk", "Default", "share"] in lines, out.stdout
    assert ["IPC$", "IPC", "Remote", "IPC"] in lines, out.stdout
    # C$ is the administrator's; alice (no administrator) is refused at TREE_CONNECT.
    ls = subprocess.run([exe, f"//{emu.host}/C$", "-p", str(emu.smb_port), "--configfile",
                         str(_smbclient_conf(tmp_path)), "-U", f"alice%{PASSWORD}", "-c", "ls"],
                        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert "NT_STATUS_ACCESS_DENIED" in ls.stdout + ls.stderr
    ls = subprocess.run([exe, f"//{emu.host}/C$", "-p", str(emu.smb_port), "--configfile",
                         str(_smbclient_conf(tmp_path)), "-U", f"bob%{USERS['bob']}", "-c", "ls"],
                        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert ls.returncode == 0 and "Windows" in ls.stdout, ls.stdout + ls.stderr


def test_rpcclient_srvinfo_and_netshareenumall(emulator, tmp_path):
    emu = emulator("win10", users=USERS, args=(*ADMIN_ARGS, "--netbios-name", "DESKTOP-AB12CD"))
    exe = require_binary("rpcclient")
    out = subprocess.run([exe, "-U", f"bob%{USERS['bob']}", "--port", str(emu.smb_port),
                          "--configfile", str(_smbclient_conf(tmp_path)), "-c",
                          "srvinfo; netshareenumall", emu.host],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "DESKTOP-AB12CD" in text and "os version" in text and "10.0" in text, text
    for name, remark, path in (("ADMIN$", "Remote Admin", "C:\\Windows"),
                               ("C$", "Default share", "C:\\"), ("IPC$", "Remote IPC", "")):
        block = text[text.index(f"netname: {name}"):][:200]
        assert f"remark:\t{remark}" in block and f"path:\t{path}" in block, block
    assert "/tmp" not in text and "path:\tC:\\Shares\\docs" in text, text


def _node_client():
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "@marsaud" / "smb2").is_dir():
        if in_ci():
            pytest.fail("node and tests/interop/node (scripts/install-test-deps) are needed")
        pytest.skip("node or @marsaud/smb2 is not installed (scripts/install-test-deps)")
    return node


@pytest.mark.parametrize("edition,admitted", [("win10", True), ("win11", False),
                                              ("xp-pro", True)])
def test_ntlmv1_client_per_lm_compatibility_level(emulator, edition, admitted):
    node = _node_client()
    # The client speaks only SMB2: XP's LM level is shown with SMB1 off (--no-smb1).
    smb2_only = ("--no-smb1",) if get_edition(edition).smb1 else ()
    emu = emulator(edition, users=USERS, args=("--no-signing-required", *smb2_only))
    # The `ntlm` package computes DES-based LM/NTLMv1: OpenSSL 3 keeps DES in "legacy".
    proc = subprocess.run(
        [node, "--openssl-legacy-provider", str(NODE_DIR / "smb2_ntlmv1.js"), emu.host,
         str(emu.smb_port), "docs", "alice", PASSWORD],
        cwd=NODE_DIR, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        env=dict(os.environ))
    if admitted:
        assert proc.stdout.startswith("OK"), proc.stdout + proc.stderr
    else:
        assert "STATUS_LOGON_FAILURE" in proc.stdout, proc.stdout + proc.stderr


def test_xp_force_guest_maps_network_logons_to_guest(emulator):
    emu = emulator("xp-pro", users=USERS)
    conn = _impacket(emu)
    try:
        assert conn.isGuestSession()  # SESSION_FLAG_IS_GUEST
        admitted = emu.wait_events(1, protocol="smb", outcome="admitted")
        assert admitted[0]["user"] == "Guest", admitted
    finally:
        conn.close()
    plain = emulator("xp-pro", users=USERS, args=("--no-force-guest",))
    conn = _impacket(plain)
    try:
        assert not conn.isGuestSession()
    finally:
        conn.close()


@pytest.mark.parametrize("edition,listed", [("xp-home", True), ("win10", False)])
def test_null_session_share_enumeration_per_edition(emulator, tmp_path, edition, listed):
    """XP lets a null session enumerate shares; Vista and later (RestrictNullSessAccess,
    no NullSessionPipes) refuse it (nmap issue #266)."""
    emu = emulator(edition, users=USERS)
    exe = require_binary("smbclient")
    # XP speaks only SMB1: smbclient must be allowed NT1 to reach it at all.
    nt1 = samba_smb1_args(edition)
    out = subprocess.run([exe, "-L", f"//{emu.host}", "-p", str(emu.smb_port), "-N",
                          "--configfile", str(_smbclient_conf(tmp_path)), *nt1],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    text = out.stdout + out.stderr
    if listed:
        assert out.returncode == 0 and "docs" in text, text
    else:
        # smbclient prints an empty list (exit 0) when srvsvc is refused to the null session.
        assert "docs" not in text and "IPC$" not in text, text
        smbconnection = require_module("impacket.smbconnection")
        conn = smbconnection.SMBConnection(emu.host, emu.host, sess_port=emu.smb_port,
                                           timeout=20)
        try:
            conn.login("", "")
            tid = conn.connectTree("IPC$")
            with pytest.raises(smbconnection.SessionError) as err:
                conn.openFile(tid, "\\srvsvc")
            assert err.value.getErrorCode() == 0xC0000022  # STATUS_ACCESS_DENIED
        finally:
            conn.close()
