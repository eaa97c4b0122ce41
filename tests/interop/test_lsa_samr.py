"""The local account database over ``\\PIPE\\lsarpc`` and ``\\PIPE\\samr`` with unmodified
clients: Samba's ``net rpc info`` and ``rpcclient``, impacket's ``lookupsid.py`` (RID
cycling) and ``samrdump.py``, nmap's ``smb-enum-users``.

The emulator speaks SMB2 only for now: Samba's clients negotiate SMB2+ by default (their
``client min protocol`` is SMB2_02; rpcclient is told so explicitly). impacket's example
scripts only talk to port 445 or 139, so they get an emulator on a loopback address of
its own, port 445 (root).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import PASSWORD, require_binary, samba_smb1_args

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

ADMIN, ADMIN_PASSWORD = "root", "R00t-pw!"
USERS = {"alice": PASSWORD, "bob": "B0b-s3cret", ADMIN: ADMIN_PASSWORD}
SID = "S-1-5-21-1015001500-2026120100-3735928559"
ARGS = ["--admin-user", ADMIN, "--machine-sid", SID]


def start(emulator, edition="win10", args=()):
    return emulator(edition, users=USERS, args=[*ARGS, *args])


def samba(tool, emu, conf: Path, *args: str, user="alice", timeout=60):
    exe = require_binary(tool)
    credentials = ["-U", f"{user}%{USERS[user]}" if user else "%"]  # "%": a null session
    protocol = samba_smb1_args(emu.edition)  # XP: SMB1 only
    if tool == "net":
        cmd = [exe, "rpc", *args, "-S", emu.host, "-p", str(emu.smb_port), *credentials,
               "--configfile", str(conf), *protocol]
    else:
        cmd = [exe, *credentials, "-p", str(emu.smb_port), "--configfile", str(conf),
               *(protocol or ["--option=client min protocol=SMB2_02"]), "-c", "; ".join(args),
               emu.host]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


# -- Samba -----------------------------------------------------------------------------------


def test_net_rpc_info_names_the_domain_its_sid_and_the_users(emulator, smbclient_conf):
    emu = start(emulator, "win10")
    out = samba("net", emu, smbclient_conf, "info")
    assert out.returncode == 0, out.stdout
    assert "Domain Name: EMULATOR" in out.stdout
    assert f"Domain SID: {SID}" in out.stdout
    # Administrator, Guest, DefaultAccount, WDAGUtilityAccount and the three users.
    assert "Num users: 7" in out.stdout and "Num local groups: 0" in out.stdout


def test_rpcclient_lsa_commands(emulator, smbclient_conf):
    # Named accounts, not XP's ForceGuest (alice would log on as Guest, which rpcclient's
    # signed IPC$ connection refuses).
    emu = start(emulator, "xp-pro", ["--no-force-guest"])
    out = samba("rpcclient", emu, smbclient_conf, "lsaquery", "lsaquery 5",
                "lookupnames alice root Administrator",
                f"lookupsids {SID}-500 {SID}-1003 S-1-5-32-544 S-1-1-0")
    assert out.returncode == 0, out.stdout
    text = out.stdout
    assert "Domain Name: WORKGROUP\nDomain Sid: (NULL SID)" in text  # class 3: the workgroup
    assert f"Domain Name: EMULATOR\nDomain Sid: {SID}" in text  # class 5: the computer
    # XP: users from RID 1003 (Remote Assistance and Help and Support took 1000 and 1002).
    assert f"alice {SID}-1003 (User: 1)" in text and f"root {SID}-1005 (User: 1)" in text
    assert f"Administrator {SID}-500 (User: 1)" in text
    assert f"{SID}-500 EMULATOR\\Administrator (1)" in text
    assert f"{SID}-1003 EMULATOR\\alice (1)" in text
    assert "S-1-5-32-544 BUILTIN\\Administrators (4)" in text
    assert "S-1-1-0 \\Everyone (5)" in text


def test_rpcclient_samr_commands(emulator, smbclient_conf):
    emu = start(emulator, "win10")
    # A logon first, so queryuser has a logon count and a last logon to show.
    assert samba("rpcclient", emu, smbclient_conf, "srvinfo", user="bob").returncode == 0
    out = samba("rpcclient", emu, smbclient_conf, "enumdomusers", "queryuser 1001",
                "querydominfo", "getdompwinfo")
    assert out.returncode == 0, out.stdout
    text = out.stdout
    users = re.findall(r"user:\[([^\]]+)\] rid:\[(0x[0-9a-f]+)\]", text)
    assert [(name, int(rid, 16)) for name, rid in users] == [
        ("Administrator", 500), ("Guest", 501), ("DefaultAccount", 503),
        ("WDAGUtilityAccount", 504), ("alice", 1000), ("bob", 1001), ("root", 1002)]
    assert re.search(r"User Name\s*:\s*bob\n", text), text
    assert re.search(r"user_rid :\s*0x3e9", text) and re.search(r"group_rid:\s*0x201", text)
    assert re.search(r"logon_count:\s*0x00000001", text), text
    assert re.search(r"acb_info :\s*0x00000210", text)  # normal, password never expires
    assert "Domain:\t\tEMULATOR" in text and "Total Users:\t7" in text
    assert "Unknown 3:\t0x1" in text  # zero padding, as Windows pads
    assert "min_password_length: 0" in text and "password_properties: 0x00000000" in text


def test_rpcclient_anonymous_enumeration_follows_restrict_anonymous_sam(emulator,
                                                                        smbclient_conf):
    emu = start(emulator, "xp-pro")
    out = samba("rpcclient", emu, smbclient_conf, "enumdomusers", "querydominfo", user=None)
    # rpcclient prints nothing when SamrEnumerateUsersInDomain is denied (samrdump below
    # shows the status); the domain itself may still be read.
    assert "user:[" not in out.stdout and "Domain:\t\tEMULATOR" in out.stdout, out.stdout
    emu = start(emulator, "xp-pro", ["--no-restrict-anonymous-sam"])
    out = samba("rpcclient", emu, smbclient_conf, "enumdomusers", user=None)
    assert "user:[alice] rid:[0x3eb]" in out.stdout, out.stdout


# -- impacket's example scripts ------------------------------------------------------------------


def _script(name: str) -> str:
    return shutil.which(name) or require_binary(name)


def _port_445_emulator(emulator, edition, args=()):
    """lookupsid.py and samrdump.py only connect to 445 (or 139): an emulator on a loopback
    address of its own, port 445."""
    if os.geteuid() != 0:
        pytest.skip("impacket's scripts need the emulator on port 445 (root)")
    for _ in range(5):
        host = f"127.{random.randint(16, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
        try:
            return emulator(edition, users=USERS,
                            args=[*ARGS, "--host", host, "--smb-port", "445", *args])
        except pytest.fail.Exception:
            continue
    pytest.fail("no loopback address with a free port 445")


def _run(*cmd: str) -> str:
    out = subprocess.run(list(cmd), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=120)
    return out.stdout + out.stderr


def test_lookupsid_cycles_rids_anonymously_on_xp(emulator):
    emu = _port_445_emulator(emulator, "xp-pro")
    out = _run(_script("lookupsid.py"), "-no-pass", emu.host, "1100")
    assert f"Domain SID is: {SID}" in out, out
    for line in ("500: EMULATOR\\Administrator (SidTypeUser)",
                 "501: EMULATOR\\Guest (SidTypeUser)", "513: EMULATOR\\None (SidTypeGroup)",
                 "1000: EMULATOR\\HelpAssistant (SidTypeUser)",
                 "1003: EMULATOR\\alice (SidTypeUser)", "1004: EMULATOR\\bob (SidTypeUser)",
                 "1005: EMULATOR\\root (SidTypeUser)"):
        assert line in out, out


def test_lookupsid_is_refused_anonymously_on_win10_and_served_to_a_user(emulator):
    emu = _port_445_emulator(emulator, "win10")
    out = _run(_script("lookupsid.py"), "-no-pass", emu.host, "600")
    assert "STATUS_ACCESS_DENIED" in out and "SidTypeUser" not in out, out
    out = _run(_script("lookupsid.py"), f"alice:{PASSWORD}@{emu.host}", "1010")
    assert "504: EMULATOR\\WDAGUtilityAccount (SidTypeUser)" in out, out
    assert "1000: EMULATOR\\alice (SidTypeUser)" in out, out


def test_samrdump_lists_the_accounts(emulator):
    emu = _port_445_emulator(emulator, "win10")
    out = _run(_script("samrdump.py"), f"{ADMIN}:{ADMIN_PASSWORD}@{emu.host}")
    assert "Found domain(s):" in out and " . EMULATOR" in out and " . Builtin" in out, out
    assert "Administrator (500)/AccountIsDisabled: True" in out, out  # Vista and later
    assert "alice (1000)/AccountIsDisabled: False" in out
    assert f"{ADMIN} (1002)/LogonCount: 1" in out  # samrdump's own logon
    assert "[*] Received 7 entries." in out, out
    # A null session on a Windows 10 default (RestrictAnonymousSAM=1) gets nothing.
    out = _run(_script("samrdump.py"), "-no-pass", emu.host)
    assert "STATUS_ACCESS_DENIED" in out and "Received 7 entries" not in out, out


# -- nmap ------------------------------------------------------------------------------------------


def _nmap_enum_users(emu):
    exe = require_binary("nmap")
    cmd = [exe, "-n", "-Pn", "-sT", "-p", str(emu.smb_port), "--script", "smb-enum-users",
           "--script-args", f"smbport={emu.smb_port},smbusername=alice,smbpassword={PASSWORD}",
           emu.host]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=150).stdout


def test_nmap_smb_enum_users_on_windows_7(emulator):
    # nmap 7.9x's msrpc library speaks SMB1 only: Windows 7 (SMB1 beside SMB 2.1) answers
    # it, through SAMR first and LSA after, as the script's debug output shows.
    out = _nmap_enum_users(start(emulator, "win7"))
    assert "EMULATOR\\alice (RID: 1000)" in out, out
    assert "EMULATOR\\Administrator (RID: 500)" in out, out
    # 7 ships the Administrator disabled (nmap lists the flags in no fixed order).
    admin = out.split("EMULATOR\\Administrator (RID: 500)", 1)[1].split("EMULATOR\\", 1)[0]
    assert "Account disabled" in admin, out
    alice = out.split("EMULATOR\\alice (RID: 1000)", 1)[1].split("EMULATOR\\", 1)[0]
    assert "Account disabled" not in alice and "Normal user account" in alice, out


def test_nmap_smb_enum_users_finds_no_smb1_on_windows_10(emulator):
    # Windows 10 (1709 and later) has SMB1 off, so this script gets no connection there.
    out = _nmap_enum_users(start(emulator, "win10"))
    assert "smb-enum-users" not in out and "RID: 1000" not in out, out
