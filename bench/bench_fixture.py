"""How long the pytest plugin's host takes to set up and to tear down.

Prints, in one run: the plugin's host in the worker's lab (LabHost: one admin call to add
it, one to remove it), set-up plus tear-down over --lab-rounds tests (median and 99th
percentile; goals 20 ms and 50 ms), and the time to a first SMB logon on it; beside it
the process-per-test host (EmulatedHost: start to first logon, teardown) and the time a
private Samba smbd takes to accept its first logon on this machine
(bench_smb.start_samba), as the peer a test suite would otherwise start. Figures, not
assertions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from impacket.smbconnection import SMBConnection

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_smb  # noqa: E402

from emulator.harness.hosts import EmulatedHost, LabHost, LabProcess  # noqa: E402


def first_logon(port: int, user: str, password: str, deadline: float) -> None:
    while True:
        try:
            conn = SMBConnection("127.0.0.1", "127.0.0.1", sess_port=port, timeout=5)
            conn.login(user, password)
            conn.logoff()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def time_emulator(rounds: int) -> tuple[list[float], list[float]]:
    starts, stops = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        host = EmulatedHost("win10")
        first_logon(host.smb_port, "user", "password", time.monotonic() + 20)
        t1 = time.perf_counter()
        host.close()
        starts.append(t1 - t0)
        stops.append(time.perf_counter() - t1)
    return starts, stops


def time_lab(rounds: int) -> tuple[list[float], list[float]]:
    """(set-up + tear-down of each host, set-up to its first logon) in one lab process."""
    lab = LabProcess()
    cycles, logons = [], []
    try:
        for _ in range(rounds):
            t0 = time.perf_counter()
            host = LabHost(lab, "win10")
            problems = host.close()
            cycles.append(time.perf_counter() - t0)
            assert not problems, problems
        for _ in range(min(rounds, 20)):
            t0 = time.perf_counter()
            host = LabHost(lab, "win10")
            first_logon(host.smb_port, "user", "password", time.monotonic() + 20)
            logons.append(time.perf_counter() - t0)
            host.close()
    finally:
        lab.stop()
    return cycles, logons


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def time_samba(rounds: int) -> tuple[list[float], str]:
    starts: list[float] = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            server, why = bench_smb.start_samba(Path(tmp))
            if server is None:
                return starts, why
            try:
                first_logon(server.port, bench_smb.USER, bench_smb.PASSWORD,
                            time.monotonic() + 30)
                starts.append(time.perf_counter() - t0)
            finally:
                server.stop()
    return starts, ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5,
                        help="process-per-test hosts and smbd starts")
    parser.add_argument("--lab-rounds", type=int, default=200, help="lab hosts")
    args = parser.parse_args(argv)
    cycles, lab_logons = time_lab(args.lab_rounds)
    starts, stops = time_emulator(args.rounds)
    samba, why = time_samba(args.rounds)
    med = statistics.median
    print(f"lab host ({args.lab_rounds} tests): set-up + tear-down median "
          f"{med(cycles) * 1000:.1f} ms (goal <= 20), p99 {p99(cycles) * 1000:.1f} ms "
          f"(goal <= 50); set-up to first logon median {med(lab_logons) * 1000:.1f} ms")
    print("process-per-test host and a private smbd:")
    print(f"{'':34}{'emulator':>12}{'samba':>12}{'ratio':>10}")
    samba_txt = f"{med(samba) * 1000:12.0f}" if samba else f"{'-':>12}"
    ratio = f"{med(starts) / med(samba):9.2f}x" if samba else f"{'-':>10}"
    print(f"{'start to first logon, median ms':34}{med(starts) * 1000:12.0f}{samba_txt}{ratio}")
    print(f"{'start to first logon, max ms':34}{max(starts) * 1000:12.0f}")
    print(f"{'teardown, median ms':34}{med(stops) * 1000:12.0f}")
    if why:
        print(f"samba: skipped ({why})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
