"""The NetBIOS name service of lab hosts, asked by Samba's nmblookup, nmap's nbstat and
impacket: each host answers for its own names on its own address."""

import os
import re
import subprocess

import pytest
from impacket import nmb

from emulator.harness.hosts import ServerProcess
from tests.interop.conftest import require_binary

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

LAB = """
smb_port = 0
netbios_port = 0
rdp_port = 0
workgroup = "LABNET"
nbns_port = {port}

[[host]]
name = "xpbox"
address = "127.0.0.12"
edition = "xp-pro"

[[host]]
name = "srv22"
address = "127.0.0.13"
edition = "server-2022"
"""


def start(tmp_path, port):
    (tmp_path / "lab.toml").write_text(LAB.format(port=port))
    srv = ServerProcess(["lab", str(tmp_path / "lab.toml")], stderr_path=tmp_path / "err")
    nbns = {}
    for line in srv.host_lines:
        words = dict(w.split("=", 1) for w in line.split()[1:])
        nbns[words["host"]] = words["nbns"]
    return srv, nbns


@pytest.fixture
def lab_on_137(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("UDP 137 needs root")
    srv, nbns = start(tmp_path, 137)
    yield nbns
    assert srv.stop() == []


def test_nmblookup_node_status_of_each_host(lab_on_137):
    exe = require_binary("nmblookup")
    for address, name in (("127.0.0.12", "XPBOX"), ("127.0.0.13", "SRV22")):
        out = subprocess.run([exe, "-A", address], capture_output=True, text=True,
                             timeout=30).stdout
        rows = re.findall(r"^\s+(\S+)\s+<(\w\w)> -\s+(<GROUP>)?\s*B <ACTIVE>", out, re.M)
        assert rows == [(name, "00", ""), (name, "03", ""), (name, "20", ""),
                        ("LABNET", "00", "<GROUP>"), ("LABNET", "1e", "<GROUP>")], out
        assert re.search(r"MAC Address = 02(-[0-9A-F]{2}){5}", out), out
    out = subprocess.run([exe, "-U", "127.0.0.13", "SRV22#20"], capture_output=True,
                         text=True, timeout=30).stdout
    assert "127.0.0.13 SRV22<20>" in out
    out = subprocess.run([exe, "-U", "127.0.0.13", "XPBOX"], capture_output=True,
                         text=True, timeout=30).stdout
    assert "name_query failed to find name XPBOX" in out  # that is the other host's name


def test_nmap_nbstat_reads_the_names_and_mac(lab_on_137):
    exe = require_binary("nmap")
    out = subprocess.run([exe, "-sU", "-p", "137", "--script", "nbstat", "127.0.0.12"],
                         capture_output=True, text=True, timeout=120).stdout
    assert "NetBIOS name: XPBOX" in out and "NetBIOS MAC: 02" in out, out
    assert re.search(r"LABNET<1e>\s+Flags: <group><active>", out), out


def test_impacket_on_any_port(tmp_path):
    srv, nbns = start(tmp_path, 0)
    try:
        host, port = nbns["XPBOX"].rsplit(":", 1)
        client = nmb.NetBIOS(servport=int(port))
        names = client.getnodestatus("*", host, type=nmb.TYPE_WORKSTATION)
        assert [(e["NAME"].strip().decode(), e["TYPE"]) for e in names] == [
            ("XPBOX", 0x00), ("XPBOX", 0x03), ("XPBOX", 0x20), ("LABNET", 0x00),
            ("LABNET", 0x1E)]
        found = nmb.NetBIOS(servport=int(port)).name_query_request("XPBOX", host,
                                                                   qtype=nmb.TYPE_SERVER)
        assert found.entries == ["127.0.0.12"]
    finally:
        assert srv.stop() == []
