#!/usr/bin/env python3
"""RDP benchmark: full TLS handshakes to refusal per second, and memory per held session.

Starts the emulator (edition `whs`, refusal shown for 0 s) on loopback, fills its two
sessions, then runs complete refused connections (X.224, TLS, MCS/GCC, Client Info,
licensing, Demand Active, finalization, the drawn refusal, Set Error Info, Deactivate All,
DPUM) from a few client threads for a fixed time and prints handshakes per second with
p50/p99 latency and the server's CPU per handshake. Then it lifts the RDP limit through
the admin API and holds N admitted sessions (desktop drawn, connection open) to print the
server's resident memory per held session.

    python3 bench/bench_rdp.py [--seconds 10] [--threads 4] [--hold 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import shutil
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emulator.hosts import ServerProcess  # noqa: E402
from protocols.rdp.client import RDPTestClient  # noqa: E402

TOKEN = "bench-token"


def start_server(hold: int, workdir: str) -> ServerProcess:
    users = [f"--user=u{i}:pw{i}" for i in range(hold + 3)]
    return ServerProcess(["serve", "--edition", "whs", "--smb-port", "0", "--netbios-port", "0",
                          "--rdp-port", "0", "--admin-port", "0", "--admin-token", TOKEN,
                          "--refusal-display-seconds", "0", *users],
                         stderr_path=Path(workdir) / "stderr.log")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def admitted(host: str, port: int, user: str, password: str) -> RDPTestClient:
    client = RDPTestClient(host, port)
    client.negotiate()
    client.logon(user, password)
    client.read_until_drawn()
    return client


def refused_handshake(host: str, port: int) -> float:
    start = time.perf_counter()
    client = RDPTestClient(host, port)
    try:
        client.negotiate()
        client.logon("u2", "pw2")
        report = client.read_until_closed()
    finally:
        client.close()
    if report.errinfo != [7]:
        raise SystemExit(f"expected a refusal, got errinfo {report.errinfo}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--hold", type=int, default=100)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="bench-rdp-")
    server = start_server(args.hold, workdir)
    host, port = server.address("rdp")
    admin_host, admin_port = server.address("admin")
    try:
        holders = [admitted(host, port, "u0", "pw0"), admitted(host, port, "u1", "pw1")]
        latencies: list[float] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + args.seconds
        cpu0, wall0 = cpu_seconds(server.pid), time.perf_counter()

        def worker() -> None:
            while time.monotonic() < stop_at:
                took = refused_handshake(host, port)
                with lock:
                    latencies.append(took)

        threads = [threading.Thread(target=worker) for _ in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall, cpu = time.perf_counter() - wall0, cpu_seconds(server.pid) - cpu0
        n = len(latencies)
        latencies.sort()
        print(f"refused TLS handshakes: {n} in {wall:.1f} s with {args.threads} clients = "
              f"{n / wall:.1f}/s; latency p50 {statistics.median(latencies) * 1000:.1f} ms, "
              f"p99 {latencies[int(n * 0.99) - 1 if n > 1 else 0] * 1000:.1f} ms; "
              f"server CPU {cpu / n * 1000:.2f} ms per handshake")

        # Memory per held session: lift the limit, hold admitted sessions open.
        request = urllib.request.Request(
            f"http://{admin_host}:{admin_port}/api/limits/rdp",
            data=json.dumps({"limit": None}).encode(), method="PUT",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()
        time.sleep(0.5)
        before = rss_bytes(server.pid)
        for i in range(args.hold):
            holders.append(admitted(host, port, f"u{i + 3}", f"pw{i + 3}"))
        time.sleep(0.5)
        after = rss_bytes(server.pid)
        print(f"memory: {args.hold} more sessions held (desktop drawn, TLS open): server RSS "
              f"{before / 2**20:.1f} -> {after / 2**20:.1f} MiB = "
              f"{(after - before) / args.hold / 1024:.1f} KiB per held session")
        for client in holders:
            client.close()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
