#!/usr/bin/env python3
"""RDP handshake benchmark: the emulator against xrdp, same client, same run.

One handshake = TCP connect, X.224 (TLS requested), TLS, MCS/GCC, Client Info, licensing,
Demand Active, Confirm Active and finalization, until the server has drawn its first
bitmap; then close. The client is the project's RDPTestClient (TLS, no NLA) for both:

* emulator, "to first bitmap": an admitted user's desktop (edition `whs` with its RDP
  limit lifted; every client thread logs on as its own user, so after its first handshake
  it reattaches to its disconnected session, as a returning user does);
* emulator, "refusal": its two sessions held, so every handshake runs to the drawn refusal,
  Set Error Info, Deactivate All and DPUM (`--refusal-display-seconds 0`); xrdp has no
  counterpart, its column shows "-";
* xrdp, "to first bitmap": its own login screen (Client Info without INFO_AUTOLOGON; no
  sesman is needed to get there);
* "RDP Security to first bitmap": the same over Standard RDP Security (RC4 128-bit, the
  proprietary certificate, no TLS): the emulator's `whs` (its Negotiate layer answers a
  client not offering TLS with PROTOCOL_RDP), against a second xrdp with
  `security_layer=rdp`, `crypt_level=high`.

For each it prints handshakes/s over `--threads` client threads, p50/p99 latency, server
CPU ms per handshake (utime+stime+cutime+cstime over the server's process tree, from
/proc), and memory per held session (PSS of the whole process tree with `--hold` sessions
held at the drawn screen, over the idle baseline), with emulator/xrdp ratios.

xrdp, if installed, gets a throw-away xrdp.ini, a self-signed certificate and its log in a
temp dir, listens on a free loopback port (`port=tcp://.:PORT`) and runs in the foreground
(`xrdp -n -c xrdp.ini`) with Debian's default `fork=true` (one child process per
connection). It is skipped, with the reason, when absent or when it cannot start (it
refuses to start while /var/run/xrdp/xrdp.pid exists, i.e. a system xrdp runs).

    python3 bench/bench_rdp.py [--seconds 10] [--threads 4] [--hold 100] [--no-xrdp]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_smb import (  # noqa: E402
    HOST,
    Memory,
    Rate,
    Server,
    free_port,
    print_comparison,
    process_tree,
    tree_cpu_seconds,
    tree_pss_kb,
    wait_port,
    write_json,
)

from emulator.harness.hosts import ServerProcess  # noqa: E402
from protocols.rdp import tls  # noqa: E402
from emulator.harness.rdp_client import RDPTestClient  # noqa: E402
from protocols.rdp.x224 import PROTOCOL_RDP, PROTOCOL_SSL  # noqa: E402

TOKEN = "bench-token"
XRDP_PID_FILE = "/var/run/xrdp/xrdp.pid"
MAX_HOLD = 1000


# -- the handshakes ------------------------------------------------------------------------

def drawn(port: int, user: str, password: str, *, autologon: bool = True,
          requested: int = PROTOCOL_SSL) -> RDPTestClient:
    """A connection up to the first bitmap the server draws; left open. ``requested``
    PROTOCOL_RDP: over Standard RDP Security."""
    client = RDPTestClient(HOST, port)
    try:
        if not client.negotiate(requested):
            raise RuntimeError(f"refused, failure code {client.report.failure_code}")
        if requested == PROTOCOL_RDP and client.report.selected_protocol != PROTOCOL_RDP:
            raise RuntimeError(f"not RDP Security: {client.report.selected_protocol}")
        client.logon(user, password, autologon=autologon, salted_mac=False)  # as xrdp checks
        client.read_until_drawn()
    except BaseException:
        client.close()
        raise
    return client


def drawn_handshake(port: int, user: str, password: str, autologon: bool = True,
                    requested: int = PROTOCOL_SSL) -> None:
    client = drawn(port, user, password, autologon=autologon, requested=requested)
    if requested == PROTOCOL_RDP and client.security is None:
        raise RuntimeError("the server chose no encryption")
    client.close()


def refused_handshake(port: int) -> None:
    client = RDPTestClient(HOST, port)
    try:
        client.negotiate()
        client.logon("u2", "pw2")
        report = client.read_until_closed()
    finally:
        client.close()
    if report.errinfo != [7]:
        raise RuntimeError(f"expected a refusal, got errinfo {report.errinfo}")


# -- phases --------------------------------------------------------------------------------

def run_rate(pid: int, handshake: Callable[[int], None], threads: int, seconds: float,
             max_count: int) -> Rate:
    """`threads` client threads run `handshake(thread_index)` for `seconds` or until
    `max_count` handshakes were started, whichever comes first."""
    rate = Rate()
    lock = threading.Lock()
    started = 0
    stop_at = time.monotonic() + seconds

    def worker(index: int) -> None:
        nonlocal started
        while time.monotonic() < stop_at:
            with lock:
                if started >= max_count:
                    return
                started += 1
            t0 = time.perf_counter()
            try:
                handshake(index)
            except Exception as e:  # noqa: BLE001 - counted and shown
                with lock:
                    rate.errors += 1
                    rate.first_error = rate.first_error or f"{type(e).__name__}: {e}"
                continue
            took = time.perf_counter() - t0
            with lock:
                rate.latencies.append(took)

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    cpu0, t0 = tree_cpu_seconds(pid), time.perf_counter()
    for t in workers:
        t.start()
    for t in workers:
        t.join(seconds + 60)
    rate.wall, rate.cpu = time.perf_counter() - t0, tree_cpu_seconds(pid) - cpu0
    rate.handshakes = len(rate.latencies)
    return rate


def run_memory(pid: int, opener: Callable[[int], RDPTestClient], hold: int,
               timeout: float) -> tuple[Memory, list[RDPTestClient]]:
    time.sleep(0.5)  # let the previous phase's connections wind down
    mem = Memory()
    mem.base_kb, mem.base_procs = tree_pss_kb(pid)
    clients: list[RDPTestClient] = []
    deadline = time.monotonic() + timeout
    for i in range(hold):
        if time.monotonic() > deadline:
            mem.errors += hold - i
            break
        try:
            clients.append(opener(i))
        except Exception:  # noqa: BLE001 - counted
            mem.errors += 1
    mem.held = len(clients)
    time.sleep(1.0)  # let the server settle
    mem.held_kb, mem.held_procs = tree_pss_kb(pid)
    return mem, clients


def close_all(clients: list[RDPTestClient]) -> None:
    for client in clients:
        try:
            client.close()
        except OSError:
            pass


# -- servers -------------------------------------------------------------------------------

def start_emulator(hold: int, threads: int, workdir: Path) -> tuple[ServerProcess, Server]:
    users = [f"--user=u{i}:pw{i}" for i in range(hold + 3)]
    users += [f"--user=t{i}:pw{i}" for i in range(threads)]
    proc = ServerProcess(["serve", "--edition", "whs", "--host", HOST, "--smb-port", "0",
                          "--netbios-port", "0", "--rdp-port", "0", "--admin-port", "0",
                          "--admin-token", TOKEN, "--refusal-display-seconds", "0", *users],
                         stderr_path=workdir / "emulator-stderr.log")
    server = Server("emulator", proc.address("rdp")[1], proc.proc, workdir,
                    "smbrdp-emu whs (RDP limit 2, lifted for the desktop and memory phases)")
    return proc, server


XRDP_INI = """\
[Globals]
ini_version=1
fork=true
port=tcp://.:{port}
tcp_nodelay=true
tcp_keepalive=true
security_layer={security}
crypt_level={crypt}
certificate={d}/cert.pem
key_file={d}/key.pem
ssl_protocols=TLSv1.2, TLSv1.3
autorun=
allow_channels=true
allow_multimon=true
bitmap_cache=true
bitmap_compression=true
bulk_compression=true
max_bpp=32
new_cursors=true
use_fastpath=both

[Logging]
LogFile={d}/xrdp.log
LogLevel=WARNING
EnableSyslog=false
EnableConsole=false

[Channels]
cliprdr=true

[Xorg]
name=Xorg
lib=libxup.so
username=ask
password=ask
ip=127.0.0.1
port=-1
code=20
"""


def start_xrdp(tmp: Path, security: str = "tls") -> tuple[Server | None, str]:
    """Start a private xrdp (``security``: its security_layer, "tls" or "rdp"), or return
    (None, the reason it was skipped)."""
    xrdp = shutil.which("xrdp") or ("/usr/sbin/xrdp" if os.path.exists("/usr/sbin/xrdp")
                                    else None)
    if xrdp is None:
        return None, "xrdp not installed (apt-get install -y --no-install-recommends xrdp)"
    if os.path.exists(XRDP_PID_FILE):
        return None, f"{XRDP_PID_FILE} exists (a system xrdp runs?): xrdp refuses to start"
    workdir = tmp / f"xrdp-{security}"
    workdir.mkdir()
    cert = tls.generate("localhost")
    (workdir / "cert.pem").write_bytes(cert.cert_pem)
    key = workdir / "key.pem"
    key.write_bytes(cert.key_pem)
    key.chmod(0o600)
    port = free_port()
    ini = workdir / "xrdp.ini"
    ini.write_text(XRDP_INI.format(port=port, d=workdir, security=security,
                                   crypt="none" if security == "tls" else "high"))
    version = subprocess.run([xrdp, "--version"], capture_output=True, text=True,
                             timeout=10).stdout.strip().splitlines()
    out = open(workdir / "xrdp.out", "wb")  # noqa: SIM115 - closed right after Popen
    try:
        proc = subprocess.Popen([xrdp, "-n", "-c", str(ini)], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        out.close()
    # own_group: stop() signals the group, so the per-connection children go too.
    server = Server("xrdp", port, proc, workdir, version[0] if version else "xrdp",
                    own_group=True)
    if not wait_port(port, time.monotonic() + 15):
        server.stop()
        tail = ""
        for name in ("xrdp.out", "xrdp.log"):
            path = workdir / name
            if path.exists():
                tail += path.read_text(errors="replace")[-1500:]
        return None, f"xrdp did not listen on {port}:\n{tail}"
    return server, ""


# -- report --------------------------------------------------------------------------------

def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print_comparison(results, [("drawn", f"to first bitmap x{args.threads}"),
                               ("rdpsec", f"RDP Security to first bitmap x{args.threads}"),
                               ("refused", f"refusal x{args.threads}")])
    print("\nto first bitmap = emulator: an admitted user's desktop; xrdp: its login screen."
          "\nCPU = utime+stime+cutime+cstime over the server's process tree; PSS from "
          "/proc/<pid>/smaps_rollup; ratios are emulator/xrdp.")


def to_json(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, res in results.items():
        entry: dict[str, Any] = {"version": res.get("version"), "skipped": res.get("skipped")}
        for key in ("drawn", "rdpsec", "refused"):
            r = res.get(key)
            if r is not None:
                entry[key] = {"handshakes": r.handshakes, "errors": r.errors,
                              "per_second": r.per_second, "p50_ms": r.pct_ms(0.5),
                              "p99_ms": r.pct_ms(0.99), "cpu_ms_per_handshake": r.cpu_ms}
        mem = res.get("mem")
        if mem is not None:
            entry["mem"] = {"held": mem.held, "errors": mem.errors, "idle_pss_kb": mem.base_kb,
                            "held_pss_kb": mem.held_kb, "processes_held": mem.held_procs,
                            "kb_per_session": mem.per_session_kb}
        out[name] = entry
    return out


# -- main ----------------------------------------------------------------------------------

def bench_emulator(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    proc, server = start_emulator(args.hold, args.threads, tmp)
    res: dict[str, Any] = {"version": server.version}
    clients: list[RDPTestClient] = []
    try:
        port = server.port
        print(f"  emulator: pid {server.pid}, port {port}; refusal ...", flush=True)
        clients += [drawn(port, "u0", "pw0"), drawn(port, "u1", "pw1")]  # fill the 2 sessions
        res["refused"] = run_rate(server.pid, lambda _i: refused_handshake(port), args.threads,
                                  args.seconds, args.max_handshakes)
        admin_host, admin_port = proc.address("admin")
        request = urllib.request.Request(
            f"http://{admin_host}:{admin_port}/api/limits/rdp",
            data=json.dumps({"limit": None}).encode(), method="PUT",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()
        print("  emulator: to first bitmap (desktop) ...", flush=True)
        res["drawn"] = run_rate(server.pid, lambda i: drawn_handshake(port, f"t{i}", f"pw{i}"),
                                args.threads, args.seconds, args.max_handshakes)
        print("  emulator: to first bitmap over Standard RDP Security ...", flush=True)
        res["rdpsec"] = run_rate(
            server.pid, lambda i: drawn_handshake(port, f"t{i}", f"pw{i}",
                                                  requested=PROTOCOL_RDP),
            args.threads, args.seconds, args.max_handshakes)
        if args.hold:
            print(f"  emulator: memory, holding {args.hold} desktops ...", flush=True)
            res["mem"], held = run_memory(
                server.pid, lambda i: drawn(port, f"u{i + 3}", f"pw{i + 3}"), args.hold,
                args.phase_timeout)
            clients += held
    finally:
        close_all(clients)
        problems = proc.stop()
        for problem in problems:
            print(f"  emulator: {problem}")
    return res


def bench_xrdp(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    res = _bench_xrdp_tls(args, tmp)
    if "skipped" in res:
        return res
    server, why = start_xrdp(tmp, "rdp")  # one xrdp at a time: each writes its pid file
    if server is None:
        print(f"  xrdp (security_layer=rdp) skipped: {why}")
        return res
    try:
        print(f"  xrdp: pid {server.pid}, port {server.port}; to first bitmap over Standard "
              "RDP Security ...", flush=True)
        res["rdpsec"] = run_rate(
            server.pid, lambda _i: drawn_handshake(server.port, "", "", autologon=False,
                                                   requested=PROTOCOL_RDP),
            args.threads, args.seconds, args.max_handshakes)
    finally:
        _stop_xrdp(server)
    return res


def _stop_xrdp(server: Server) -> None:
    # Let xrdp reap its per-connection children before it is stopped: killed with it,
    # they would be left to init as zombies.
    deadline = time.monotonic() + 10
    while len(process_tree(server.pid)) > 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    server.stop()


def _bench_xrdp_tls(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    server, why = start_xrdp(tmp)
    if server is None:
        print(f"  xrdp skipped: {why}")
        return {"skipped": why}
    res: dict[str, Any] = {"version": server.version}
    clients: list[RDPTestClient] = []
    try:
        port = server.port
        print(f"  xrdp: pid {server.pid}, port {port}; to first bitmap (login screen) ...",
              flush=True)
        res["drawn"] = run_rate(server.pid,
                                lambda _i: drawn_handshake(port, "", "", autologon=False),
                                args.threads, args.seconds, args.max_handshakes)
        if args.hold:
            print(f"  xrdp: memory, holding {args.hold} login screens ...", flush=True)
            res["mem"], clients = run_memory(
                server.pid, lambda _i: drawn(port, "", "", autologon=False), args.hold,
                args.phase_timeout)
    finally:
        close_all(clients)
        _stop_xrdp(server)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="per rate phase (10)")
    p.add_argument("--threads", type=int, default=4, help="client threads (4)")
    p.add_argument("--max-handshakes", type=int, default=20_000,
                   help="cap per rate phase (20000)")
    p.add_argument("--hold", type=int, default=100, help="sessions held for memory (100)")
    p.add_argument("--phase-timeout", type=float, default=120, help="memory phase (120 s)")
    p.add_argument("--no-emulator", action="store_true", help="benchmark xrdp only")
    p.add_argument("--no-xrdp", action="store_true", help="benchmark the emulator only")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    if not (0 < args.seconds <= 600 and 1 <= args.threads <= 64):
        p.error("--seconds must be in (0, 600] and --threads 1..64")
    if not (0 <= args.hold <= MAX_HOLD and 1 <= args.max_handshakes <= 1_000_000):
        p.error(f"--hold must be 0..{MAX_HOLD}, --max-handshakes 1..1000000")
    if not sys.platform.startswith("linux"):
        p.error("needs Linux (/proc)")

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-rdp-") as tmpname:
        tmp = Path(tmpname)
        if not args.no_emulator:
            print("starting emulator ...", flush=True)
            results["emulator"] = bench_emulator(args, tmp)
        if not args.no_xrdp:
            print("starting xrdp ...", flush=True)
            try:
                results["xrdp"] = bench_xrdp(args, tmp)
            except Exception as e:  # noqa: BLE001 - reported, the emulator's figures stand
                print(f"  xrdp failed: {type(e).__name__}: {e}")
                results["xrdp"] = {"skipped": f"{type(e).__name__}: {e}"}
    report(results, args)
    write_json(args.json, to_json(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
