"""The XP seed scenarios (XP Home, XP Professional, KB 328459's spoolss null sessions) over
SMB1, as the XP host speaks it, with Wireshark's dissector (tshark) reading every packet of
those conversations: none may be malformed. And the same stories over SMB2 on a host with
SMB1 switched off (``smb1 = false``).

The capture is on the loopback interface, filtered to a loopback address of the scenario's
own (127.x.y.z) and its two SMB ports, so nothing else on the machine is recorded; it
needs root (or dumpcap's capabilities) and tshark (scripts/install-test-deps)."""

from __future__ import annotations

import dataclasses
import os
import random
import select
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from emulator.harness.scenarios import resolve, run_scenario
from tests.interop.conftest import require_binary

SEEDS = ["xp-home", "xp-professional", "kb328459-spoolss"]


def _failures(results) -> str:
    return "\n".join(f"step {r.number} {r.say}: expected {r.expected!r}, observed "
                     f"{r.observed!r}" for r in results if not r.passed)


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def _tshark() -> str:
    exe = require_binary("tshark")
    if os.geteuid() != 0:
        pytest.skip("capturing on the loopback interface needs root")
    return exe


def _start_capture(tshark: str, pcap: Path, capture_filter: str) -> subprocess.Popen[str]:
    cap = subprocess.Popen([tshark, "-i", "lo", "-f", capture_filter, "-w", str(pcap)],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    assert cap.stderr is not None
    seen = ""
    while "Capturing on" not in seen:  # dumpcap says so once packets are being taken
        ready, _, _ = select.select([cap.stderr], [], [], 30)
        line = cap.stderr.readline() if ready else ""
        if not line:
            cap.kill()
            cap.wait(10)
            pytest.fail(f"tshark did not start capturing: {seen}")
        seen += line
    return cap


def _stop_capture(cap: subprocess.Popen[str]) -> None:
    cap.send_signal(signal.SIGINT)  # dumpcap writes what it holds, then exits
    cap.wait(30)


def _read(tshark: str, pcap: Path, ports: tuple[int, int], display_filter: str) -> list[str]:
    args = [tshark, "-r", str(pcap), "-n"]
    for port in ports:  # SMB over direct TCP and over the NetBIOS session service
        args += ["-d", f"tcp.port=={port},nbss"]
    out = subprocess.run(args + ["-Y", display_filter, "-T", "fields", "-e", "frame.number",
                                 "-e", "_ws.col.Info"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
                         check=True)
    return [line for line in out.stdout.splitlines() if line.strip()]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", SEEDS)
def test_seed_plays_over_smb1_and_tshark_finds_no_malformed_packet(name, tmp_path):
    tshark = _tshark()
    address = f"127.{random.randint(16, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
    ports = (_free_port(address), _free_port(address))
    scenario = resolve(name)
    scenario = dataclasses.replace(scenario, config={
        **scenario.config, "host": address, "smb_port": ports[0], "netbios_port": ports[1]})
    pcap = tmp_path / f"{name}.pcap"
    cap = _start_capture(tshark, pcap, f"host {address} and (tcp port {ports[0]} or "
                                       f"tcp port {ports[1]})")
    try:
        results = run_scenario(scenario)
    finally:
        _stop_capture(cap)
    assert not _failures(results), _failures(results)
    smb1 = _read(tshark, pcap, ports, "smb")
    assert len(smb1) > 20, smb1  # the whole story went over SMB1...
    assert any("Negotiate Protocol Response" in line for line in smb1), smb1
    assert any("Session Setup AndX Response" in line for line in smb1), smb1
    assert not _read(tshark, pcap, ports, "smb2"), "SMB2 on an XP host"  # ...and only SMB1
    malformed = _read(tshark, pcap, ports, "_ws.malformed || _ws.expert.severity == error")
    assert not malformed, malformed


@pytest.mark.parametrize("name", SEEDS)
def test_seed_plays_over_smb2_with_smb1_off(name):
    scenario = resolve(name)
    scenario = dataclasses.replace(scenario, config={**scenario.config, "smb1": False})
    results = run_scenario(scenario)
    assert not _failures(results), _failures(results)
