"""`smbrdp-emu lab`: many hosts in one process, one admin API, hosts added and removed."""

import json
import os
import socket
import subprocess
import sys

import pytest
from impacket.nmb import NetBIOSError
from impacket.smbconnection import SessionError, SMBConnection

from emulator.admin.client import AdminClient, AdminError
from emulator.harness.hosts import ServerProcess
from emulator.harness.rdp_client import RDPTestClient

TOKEN = "lab-token"
LAB = f"""
edition = "xp-pro"
smb_port = 0
netbios_port = 0
rdp_port = 0
virtual_clock = true
admin_token = "{TOKEN}"

[users]
user = "password"

[[host]]
name = "pc1"
address = "127.0.0.2"
[host.users]
alice = "pw"

[[host]]
name = "home"
address = "127.0.0.3"
edition = "xp-home"
smb_limit = 1
"""


def run_lab(tmp_path, text, *args):
    path = tmp_path / "lab.toml"
    path.write_text(text)
    return ServerProcess(["lab", str(path), "--admin-port", "0", *args],
                         stderr_path=tmp_path / "stderr.log")


def listeners(line):
    return dict(word.split("=", 1) for word in line.split()[1:])


def smb_logon(address, user, password):
    host, port = address.rsplit(":", 1)
    conn = SMBConnection(host, host, sess_port=int(port), timeout=10)
    conn.login(user, password)
    return conn


def dropped(sock):
    """The server closed it (a removed host aborts its connections: a reset, or EOF)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


@pytest.fixture
def lab(tmp_path):
    srv = run_lab(tmp_path, LAB, "--ready-file", str(tmp_path / "ready.json"))
    yield srv
    assert srv.stop() == []


def test_a_lab_file_starts_each_host_on_its_address_with_its_own_keys(lab, tmp_path):
    pc1, home = (listeners(line) for line in lab.host_lines)
    assert pc1["host"] == "PC1" and pc1["smb"].startswith("127.0.0.2:") and "rdp" in pc1
    assert home["host"] == "HOME" and home["smb"].startswith("127.0.0.3:")
    assert "rdp" not in home  # xp-home has no Remote Desktop host
    assert lab.ready_line.startswith("ready lab hosts=2 admin=http://")
    ready = json.loads((tmp_path / "ready.json").read_text())
    assert ready["ready"] == lab.ready_line and [h["host"] for h in ready["hosts"]] == [
        "PC1", "HOME"]
    conn = smb_logon(pc1["smb"], "alice", "pw")  # the host's users and the lab's defaults
    assert conn.getServerName() == "PC1"
    conn.logoff()
    smb_logon(pc1["smb"], "user", "password").logoff()
    with pytest.raises(SessionError):
        smb_logon(home["smb"], "alice", "pw")  # alice is PC1's account only


def test_per_host_admin_routes_and_limits_are_independent(lab):
    pc1, home = (listeners(line) for line in lab.host_lines)
    admin = AdminClient(lab.listeners["admin"], TOKEN)
    assert [h["name"] for h in admin.call("GET", "/api/hosts")] == ["PC1", "HOME"]
    first = smb_logon(home["smb"], "user", "password")  # HOME's one slot
    with pytest.raises(SessionError):
        smb_logon(home["smb"], "user", "password")
    others = [smb_logon(pc1["smb"], "user", "password") for _ in range(3)]  # PC1: 10
    assert len(admin.call("GET", "/api/hosts/PC1/sessions")) == 3
    assert len(admin.call("GET", "/api/hosts/home/sessions")) == 1
    home_limits = {r["protocol"]: r for r in admin.call("GET", "/api/hosts/HOME/limits")}
    assert home_limits["smb"] == {"protocol": "smb", "limit": 1, "used": 1}
    with pytest.raises(AdminError, match="this lab holds 2 hosts: name one"):
        admin.call("GET", "/api/sessions")  # two hosts: which one?
    metrics = admin.call_text("GET", "/metrics")
    assert 'smbrdp_denied_total{host="HOME",protocol="smb"} 1' in metrics
    assert 'smbrdp_denied_total{host="PC1",protocol="smb"} 0' in metrics
    verb = [sys.executable, "-m", "emulator", "limit", "smb", "--json", "--admin",
            lab.listeners["admin"], "--token", TOKEN]
    for host, limit, used in (("HOME", 1, 1), ("pc1", 10, 3)):
        out = subprocess.run([*verb, "--host", host], capture_output=True, text=True,
                             timeout=60)
        assert json.loads(out.stdout) == [{"protocol": "smb", "limit": limit, "used": used}]
    unnamed_verb = subprocess.run(verb, capture_output=True, text=True, timeout=60)
    assert unnamed_verb.returncode == 2 and "name one" in unnamed_verb.stderr
    for conn in [first, *others]:
        conn.logoff()


def test_removing_a_host_closes_its_live_smb_and_rdp_connections(lab):
    pc1 = listeners(lab.host_lines[0])
    admin = AdminClient(lab.listeners["admin"], TOKEN)
    smb = smb_logon(pc1["smb"], "user", "password")
    rdp_host, rdp_port = pc1["rdp"].rsplit(":", 1)
    rdp = RDPTestClient(rdp_host, int(rdp_port))
    assert rdp.negotiate()
    rdp.logon("alice", "pw")
    rdp.read_until_drawn()
    idle = socket.create_connection(pc1["netbios"].rsplit(":", 1))  # no session at all
    assert admin.call("DELETE", "/api/hosts/pc1") == {"removed": "PC1"}
    assert rdp.read_until_closed().closed
    idle.settimeout(10)
    assert dropped(idle)
    with pytest.raises((NetBIOSError, SessionError, OSError)):
        smb.listPath("public", "*")
    assert [h["name"] for h in admin.call("GET", "/api/hosts")] == ["HOME"]
    assert admin.call("GET", "/api/lab")["closing"] == 0  # its connections are all gone
    with pytest.raises(OSError):
        socket.create_connection(pc1["smb"].rsplit(":", 1), timeout=5)
    # The name is free again, and the new host starts empty.
    row = admin.call("POST", "/api/hosts", {"name": "pc1", "address": "127.0.0.2",
                                            "smb_port": 0, "users": {"bob": "pw2"}})
    assert row["name"] == "PC1" and admin.call("GET", "/api/hosts/PC1/sessions") == []
    smb_logon(row["listeners"]["smb"], "bob", "pw2").logoff()
    with pytest.raises(AdminError, match="host PC1: name: already in this lab"):
        admin.call("POST", "/api/hosts", {"name": "PC1", "smb_port": 0})


BAD = {
    "duplicate name": ('[[host]]\nname = "a"\naddress = "127.0.0.2"\n'
                       '[[host]]\nname = "A"\naddress = "127.0.0.3"\n',
                       "host A: name: A is already host #1's name"),
    "duplicate address": ('[[host]]\nname = "a"\naddress = "127.0.0.2"\n'
                          '[[host]]\nname = "b"\naddress = "127.0.0.2"\n',
                          "host b: address: 127.0.0.2 is already host #1's address"),
    "unknown key": ('[[host]]\nname = "a"\naddress = "127.0.0.2"\nsmb_limt = 3\n',
                    "host a: unknown config key: smb_limt"),
    "outside loopback": ('[[host]]\nname = "a"\naddress = "192.0.2.1"\n',
                         "host a: address: 192.0.2.1 is outside 127.0.0.0/8 and ::1"),
    "a lab key in a host": ('[[host]]\nname = "a"\naddress = "127.0.0.2"\nadmin_port = 1\n',
                            "host a: admin_port: belongs to the whole lab"),
    "wrong type": ('[[host]]\nname = "a"\naddress = "127.0.0.2"\nsmb_limit = "x"\n',
                   "host a: smb_limit: expected int"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_lab_file_names_the_host_and_key_and_exits_2(tmp_path, case):
    text, message = BAD[case]
    (tmp_path / "lab.toml").write_text(text)
    result = subprocess.run([sys.executable, "-m", "emulator", "lab", str(tmp_path / "lab.toml")],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_generated_admin_token_beginning_with_a_dash_still_starts_the_lab(monkeypatch):
    # secrets.token_urlsafe draws from [A-Za-z0-9_-]: one token in 64 begins with "-",
    # which argparse took for an option ("--admin-token: expected one argument").
    from emulator.harness import hosts

    monkeypatch.setattr(hosts.secrets, "token_urlsafe", lambda n: "-starts-with-a-dash")
    lab = hosts.LabProcess()
    try:
        assert lab.alive() and lab.admin.call("GET", "/api/hosts") == []
    finally:
        assert lab.stop() == []
