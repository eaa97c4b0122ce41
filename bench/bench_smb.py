#!/usr/bin/env python3
"""SMB handshake benchmark: the emulator against Samba's smbd, same client loop.

One handshake = TCP connect, NEGOTIATE (impacket's SMB1 multi-protocol
probe, then SMB2), SESSION_SETUP (NTLMSSP, two rounds), TREE_CONNECT to the
share, LOGOFF, close.  The client is impacket for both servers.

For each server it prints:

* sequential: handshakes/s, p50/p99 latency, server CPU ms per handshake;
* concurrent (``--concurrency`` client processes): the same;
* memory: PSS of the server's whole process tree with ``--hold`` sessions
  held open, as kB per held session over the idle baseline;
* SMB1 (issue 10): the same handshake in "NT LM 0.12" (impacket with
  ``preferredDialect=SMB_DIALECT``) against the emulator as ``server-2003``
  and smbd with ``server min protocol = NT1``, sequential: server CPU ms per
  SMB1 handshake and its ratio emulator/samba (``--smb1-rounds``; 0 skips it).

Server CPU is utime+stime+cutime+cstime from /proc/<pid>/stat summed over
the server's process tree (smbd forks one child per connection; the
children it has reaped are in its cutime/cstime).  PSS is read from
/proc/<pid>/smaps_rollup.  Linux only, loopback only.

The emulator is started as ``smbrdp-emu serve --edition server-2022``
(unlimited sessions) with ports 0.  smbd, if installed, gets a throw-away
smb.conf, passdb, lock/state/cache/pid dirs in a temp dir and a free
loopback port.  smbd needs root: it switches to the Unix account that logs
in, so as root the script creates a system user ``smbbench`` if missing
(``useradd --system``); without root the Samba half is skipped.

    python3 bench/bench_smb.py                       # defaults: a minute or two
    python3 bench/bench_smb.py --rounds 1000 --concurrency 32 --hold 1000
    python3 bench/bench_smb.py --no-samba --json bench/results/emu.json

Bounded: every phase has a deadline (``--phase-timeout``) and the whole run
stops starting new phases after ``--time-limit`` seconds.  Exits 0 whenever
the benchmark itself ran, even if a server failed some handshakes (the
table shows the error counts).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from impacket.smb import SMB_DIALECT
from impacket.smbconnection import SMBConnection

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from emulator.harness.hosts import ServerProcess  # noqa: E402

HOST = "127.0.0.1"
USER = "smbbench"
PASSWORD = "Bench-Passw0rd!"
SHARE = "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MAX_HOLD = 4000


# -- /proc measurements --------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        data = fh.read()
    return data.rsplit(")", 1)[1].split()  # [0] is field 3 (state)


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry))[1])
        except (OSError, IndexError, ValueError):
            continue
        children[ppid].append(int(entry))
    out, stack = [root], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def tree_cpu_seconds(root: int) -> float:
    """utime+stime of the live tree, plus cutime+cstime (reaped children)."""
    ticks = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError, IndexError, ValueError):
            f = _stat_fields(pid)
            ticks += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return ticks / CLK_TCK


def tree_pss_kb(root: int) -> tuple[int, int]:
    """(PSS in kB summed over the tree, number of processes)."""
    return tree_rollup_kb(root, "Pss:")


def tree_rollup_kb(root: int, key: str) -> tuple[int, int]:
    """(one /proc/<pid>/smaps_rollup field in kB, "Pss:" or "Rss:", summed over the tree,
    number of processes)."""
    total, count = 0, 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith(key):
                        total += int(line.split()[1])
                        count += 1
                        break
        except OSError:
            continue
    return total, count


def tree_fds(root: int) -> int:
    """Open file descriptors over the process tree (/proc/<pid>/fd)."""
    total = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{pid}/fd"))
    return total


# -- servers -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
            return True
        time.sleep(0.05)
    return False


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    version: str
    own_group: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(10)
        if self.own_group:  # leftover smbd children
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if self.own_group:
                os.killpg(self.proc.pid, sig)
            else:
                self.proc.send_signal(sig)


def emulator_command() -> list[str]:
    override = os.environ.get("SMBRDP_EMU")
    if override:
        return shlex.split(override)
    exe = shutil.which("smbrdp-emu")
    return [exe] if exe else [sys.executable, "-m", "emulator"]


def start_emulator(tmp: Path, edition: str = "server-2022") -> Server:
    workdir = tmp / f"emulator-{edition}"
    share = workdir / "share"
    share.mkdir(parents=True)
    server = ServerProcess(
        ["serve", "--edition", edition, "--host", HOST, "--smb-port", "0",
         "--netbios-port", "0", "--rdp-port", "0", "--user", f"{USER}:{PASSWORD}",
         "--share", f"{SHARE}={share}", "--event-log", str(workdir / "events.jsonl")],
        command=emulator_command(), stderr_path=workdir / "stderr.txt")
    return Server("emulator", server.address("smb")[1], server.proc, workdir,
                  f"smbrdp-emu {edition}")


SMB_CONF = """\
[global]
    server role = standalone server
    workgroup = WORKGROUP
    netbios name = SMBBENCH
    map to guest = never
    smb ports = {port}
    interfaces = {host}
    bind interfaces only = yes
    disable netbios = yes
    server min protocol = {min_protocol}
    private dir = {d}/private
    lock directory = {d}/lock
    state directory = {d}/state
    cache directory = {d}/cache
    pid directory = {d}/pid
    ncalrpc dir = {d}/ncalrpc
    binddns dir = {d}/binddns
    usershare path = {d}/usershares
    passdb backend = tdbsam:{d}/private/passdb.tdb
    log file = {d}/log.%m
    log level = 0
    max log size = 1000
    load printers = no
    printing = bsd
    printcap name = /dev/null
    disable spoolss = yes

[{share}]
    path = {d}/share
    read only = no
"""


def start_samba(tmp: Path, min_protocol: str = "SMB2_02") -> tuple[Server | None, str]:
    """Start a private smbd, or return (None, reason it was skipped)."""
    smbd, smbpasswd = shutil.which("smbd"), shutil.which("smbpasswd")
    if smbd is None or smbpasswd is None:
        return None, "smbd/smbpasswd not installed"
    if os.geteuid() != 0:
        return None, "smbd needs root (it switches to the logged-in Unix user)"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        shell = "/usr/sbin/nologin" if os.path.exists("/usr/sbin/nologin") else "/bin/false"
        r = subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", shell, USER],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            return None, f"could not create Unix user {USER}: {r.stderr.strip()}"
        print(f"note: created system user {USER!r} for smbd (userdel {USER} removes it)")

    workdir = tmp / f"samba-{min_protocol}"
    for sub in ("private", "lock", "state", "cache", "pid", "ncalrpc", "binddns", "usershares"):
        (workdir / sub).mkdir(parents=True)
    share = workdir / "share"
    share.mkdir()
    os.chmod(tmp, 0o755)  # smbd, as the user, must reach the share
    os.chmod(workdir, 0o755)
    os.chmod(share, 0o777)
    (workdir / "private").chmod(0o700)
    port = free_port()
    conf = workdir / "smb.conf"
    conf.write_text(SMB_CONF.format(port=port, host=HOST, d=workdir, share=SHARE,
                                    min_protocol=min_protocol))
    r = subprocess.run(
        [smbpasswd, "-c", str(conf), "-a", "-s", USER],
        input=f"{PASSWORD}\n{PASSWORD}\n",
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        return None, f"smbpasswd failed: {r.stdout.strip()} {r.stderr.strip()}"
    version = subprocess.run([smbd, "--version"], capture_output=True, text=True).stdout.strip()
    log = open(workdir / "smbd.out", "wb")  # noqa: SIM115 - closed right after Popen
    try:
        # smbd kills its whole process group when it exits: give it its own.
        proc = subprocess.Popen(
            [smbd, "--foreground", "--no-process-group", f"--configfile={conf}", "--debug-stdout"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()
    server = Server("samba", port, proc, workdir, f"smbd {version}", own_group=True)
    if not wait_port(port, time.monotonic() + 20):
        server.stop()
        tail = (workdir / "smbd.out").read_text(errors="replace")[-2000:]
        return None, f"smbd did not listen on {port}:\n{tail}"
    return server, ""


# -- the client loop -----------------------------------------------------


def handshake(port: int, dialect: str | None = None) -> None:
    conn = SMBConnection(HOST, HOST, sess_port=port, timeout=10, preferredDialect=dialect)
    try:
        conn.login(USER, PASSWORD)
        conn.connectTree(SHARE)
        conn.logoff()
    finally:
        conn.getSMBServer().close_session()  # close() would LOGOFF a second time


def timed_loop(port: int, rounds: int, deadline: float, dialect: str | None = None
               ) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    for _ in range(rounds):
        if time.monotonic() > deadline:
            errors.append("phase deadline reached")
            break
        t0 = time.perf_counter()
        try:
            handshake(port, dialect)
        except Exception as e:  # noqa: BLE001 - counted and shown
            errors.append(f"{type(e).__name__}: {e}")
            continue
        latencies.append(time.perf_counter() - t0)
    return latencies, errors


def _loop_worker(port: int, rounds: int, deadline: float, go: Any, results: Any) -> None:
    go.wait()
    results.put(timed_loop(port, rounds, deadline))


def _hold_worker(port: int, count: int, deadline: float, ready: Any, release: Any) -> None:
    conns: list[SMBConnection] = []
    errors = 0
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        try:
            conn = SMBConnection(HOST, HOST, sess_port=port, timeout=10)
            conn.login(USER, PASSWORD)
            conn.connectTree(SHARE)
            conns.append(conn)
        except Exception:  # noqa: BLE001
            errors += 1
    ready.put((len(conns), errors))
    release.wait(max(1.0, deadline - time.monotonic()))
    for conn in conns:
        with contextlib.suppress(Exception):
            conn.getSMBServer().close_session()


# -- phases --------------------------------------------------------------


@dataclass
class Rate:
    handshakes: int = 0
    errors: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_error: str = ""

    @property
    def per_second(self) -> float:
        return self.handshakes / self.wall if self.wall else 0.0

    def pct_ms(self, q: float) -> float:
        if not self.latencies:
            return math.nan
        data = sorted(self.latencies)
        return 1000 * data[min(len(data) - 1, int(q * len(data)))]

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / self.handshakes if self.handshakes else math.nan


def run_sequential(server: Server, rounds: int, timeout: float,
                   dialect: str | None = None) -> Rate:
    timed_loop(server.port, 5, time.monotonic() + timeout, dialect)  # warm-up
    cpu0, t0 = tree_cpu_seconds(server.pid), time.perf_counter()
    lat, errors = timed_loop(server.port, rounds, time.monotonic() + timeout, dialect)
    wall, cpu1 = time.perf_counter() - t0, tree_cpu_seconds(server.pid)
    return Rate(len(lat), len(errors), wall, cpu1 - cpu0, lat, errors[0] if errors else "")


def run_concurrent(server: Server, rounds: int, procs: int, timeout: float) -> Rate:
    ctx = mp.get_context("fork")
    go, results = ctx.Event(), ctx.Queue()
    deadline = time.monotonic() + timeout
    share = [rounds // procs + (1 if i < rounds % procs else 0) for i in range(procs)]
    workers = [
        ctx.Process(target=_loop_worker, args=(server.port, n, deadline, go, results), daemon=True)
        for n in share
        if n
    ]
    for w in workers:
        w.start()
    time.sleep(0.2)  # let every worker reach go.wait()
    rate = Rate()
    cpu0, t0 = tree_cpu_seconds(server.pid), time.perf_counter()
    go.set()
    for _ in workers:
        try:
            lat, errors = results.get(timeout=max(1.0, deadline - time.monotonic() + 5))
        except Exception:  # noqa: BLE001 - queue.Empty: a worker hung past the deadline
            rate.errors += 1
            rate.first_error = rate.first_error or "worker timed out"
            continue
        rate.latencies += lat
        rate.errors += len(errors)
        rate.first_error = rate.first_error or (errors[0] if errors else "")
    rate.wall, rate.cpu = time.perf_counter() - t0, tree_cpu_seconds(server.pid) - cpu0
    rate.handshakes = len(rate.latencies)
    for w in workers:
        w.join(5)
        if w.is_alive():
            w.kill()
    return rate


@dataclass
class Memory:
    held: int = 0
    errors: int = 0
    base_kb: int = 0
    held_kb: int = 0
    base_procs: int = 0
    held_procs: int = 0

    @property
    def per_session_kb(self) -> float:
        return (self.held_kb - self.base_kb) / self.held if self.held else math.nan


def run_memory(server: Server, hold: int, procs: int, timeout: float) -> Memory:
    time.sleep(0.5)  # let the previous phase's connections wind down
    mem = Memory()
    mem.base_kb, mem.base_procs = tree_pss_kb(server.pid)
    ctx = mp.get_context("fork")
    ready, release = ctx.Queue(), ctx.Event()
    deadline = time.monotonic() + timeout
    share = [hold // procs + (1 if i < hold % procs else 0) for i in range(procs)]
    workers = [
        ctx.Process(target=_hold_worker, args=(server.port, n, deadline, ready, release))
        for n in share
        if n
    ]
    for w in workers:
        w.start()
    try:
        for _ in workers:
            try:
                held, errors = ready.get(timeout=max(1.0, deadline - time.monotonic() + 5))
            except Exception:  # noqa: BLE001 - queue.Empty
                mem.errors += 1
                continue
            mem.held += held
            mem.errors += errors
        time.sleep(1.0)  # let the server settle (smbd children finish starting)
        mem.held_kb, mem.held_procs = tree_pss_kb(server.pid)
    finally:
        release.set()
        for w in workers:
            w.join(15)
            if w.is_alive():
                w.kill()
    return mem


# -- report --------------------------------------------------------------


def _fmt(v: float, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.{digits}f}"


def _ratio(a: float, b: float) -> str:
    if not a or not b or math.isnan(a) or math.isnan(b):
        return "-"
    return f"{a / b:.2f}x"


def print_comparison(results: dict[str, dict[str, Any]],
                     phases: list[tuple[str, str]], memory: bool = True) -> None:
    """The table both benchmarks print: one column per server, the ratio of the first
    to the second, rate phases (`key`, `title`) then memory, then notes per server."""
    names = list(results)
    rows: list[tuple[str, list[float], int, bool]] = []

    def add(label: str, key: str, getter: Any, digits: int = 1, ratio: bool = True) -> None:
        vals = [getter(results[n][key]) if results[n].get(key) is not None else math.nan
                for n in names]
        rows.append((label, vals, digits, ratio))

    for key, title in phases:
        add(f"{title}: handshakes/s", key, lambda r: r.per_second)
        add(f"{title}: p50 latency ms", key, lambda r: r.pct_ms(0.50), 2)
        add(f"{title}: p99 latency ms", key, lambda r: r.pct_ms(0.99), 2)
        add(f"{title}: server CPU ms/handshake", key, lambda r: r.cpu_ms, 2)
        add(f"{title}: handshakes ok", key, lambda r: r.handshakes, 0, False)
        add(f"{title}: errors", key, lambda r: r.errors, 0, False)
    if memory:
        add("memory: sessions held", "mem", lambda m: m.held, 0, False)
        add("memory: idle PSS kB", "mem", lambda m: m.base_kb, 0)
        add("memory: PSS kB with sessions held", "mem", lambda m: m.held_kb, 0)
        add("memory: processes while held", "mem", lambda m: m.held_procs, 0, False)
        add("memory: kB per held session", "mem", lambda m: m.per_session_kb)

    width = max(len(r[0]) for r in rows) + 2
    header = "".join(f"{n:>14}" for n in names)
    if len(names) == 2:
        header += f"{names[0][:3] + '/' + names[1][:5]:>14}"
    print()
    print(f"{'':<{width}}{header}")
    for label, vals, digits, ratio in rows:
        line = f"{label:<{width}}" + "".join(f"{_fmt(v, digits):>14}" for v in vals)
        if len(vals) == 2 and ratio:
            line += f"{_ratio(vals[0], vals[1]):>14}"
        print(line)
    for n in names:
        print(f"\n{n}: {results[n].get('version', '')}")
        for key, _ in phases:
            r = results[n].get(key)
            if r is not None and r.first_error:
                print(f"  first {key} error: {r.first_error[:200]}")
        mem = results[n].get("mem")
        if mem is not None:
            print(f"  processes idle/held: {mem.base_procs}/{mem.held_procs}"
                  + (f"; {mem.errors} sessions failed to open" if mem.errors else ""))
        if results[n].get("skipped"):
            print(f"  skipped: {results[n]['skipped']}")


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace,
           smb1: dict[str, dict[str, Any]] | None = None) -> None:
    print_comparison(results, [("seq", "sequential"),
                               ("conc", f"concurrent x{args.concurrency}")])
    if smb1:
        print("\nSMB1 (NT LM 0.12): emulator as server-2003, smbd with server min protocol "
              "= NT1")
        print_comparison(smb1, [("smb1", "SMB1 sequential")], memory=False)
        emu, samba = (smb1.get(n, {}).get("smb1") for n in ("emulator", "samba"))
        if emu is not None and samba is not None:
            print(f"\nSMB1 server CPU per handshake, emulator/samba: "
                  f"{_ratio(emu.cpu_ms, samba.cpu_ms)} (issue 10 asks for at most 0.50x)")
    print(
        "\nCPU = utime+stime+cutime+cstime over the server's process tree; "
        "PSS from /proc/<pid>/smaps_rollup; ratios are emulator/samba."
    )


def to_json(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, res in results.items():
        entry: dict[str, Any] = {"version": res.get("version"), "skipped": res.get("skipped")}
        for key in ("seq", "conc", "smb1"):
            r = res.get(key)
            if r is not None:
                entry[key] = {
                    "handshakes": r.handshakes,
                    "errors": r.errors,
                    "per_second": r.per_second,
                    "p50_ms": r.pct_ms(0.5),
                    "p99_ms": r.pct_ms(0.99),
                    "cpu_ms_per_handshake": r.cpu_ms,
                }
        mem = res.get("mem")
        if mem is not None:
            entry["mem"] = {
                "held": mem.held,
                "errors": mem.errors,
                "idle_pss_kb": mem.base_kb,
                "held_pss_kb": mem.held_kb,
                "kb_per_session": mem.per_session_kb,
            }
        out[name] = entry
    return out


# -- main ----------------------------------------------------------------


def bench_server(server: Server, args: argparse.Namespace, stop_at: float) -> dict[str, Any]:
    res: dict[str, Any] = {"version": server.version}
    phases = [
        ("seq", lambda: run_sequential(server, args.rounds, args.phase_timeout)),
        (
            "conc",
            lambda: run_concurrent(server, args.rounds, args.concurrency, args.phase_timeout),
        ),
        ("mem", lambda: run_memory(server, args.hold, args.hold_procs, args.phase_timeout)),
    ]
    for key, phase in phases:
        if args.hold == 0 and key == "mem":
            continue
        if time.monotonic() > stop_at:
            res["skipped"] = f"time limit reached before phase {key!r}"
            break
        print(f"  {server.name}: {key} ...", flush=True)
        res[key] = phase()
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=200, help="handshakes per rate phase (200)")
    p.add_argument("--concurrency", type=int, default=16, help="client processes (16)")
    p.add_argument("--hold", type=int, default=500, help="sessions held for memory (500)")
    p.add_argument("--hold-procs", type=int, default=5, help="processes holding them (5)")
    p.add_argument("--phase-timeout", type=float, default=90, help="seconds per phase (90)")
    p.add_argument("--time-limit", type=float, default=300, help="no new phase after (300 s)")
    p.add_argument("--no-emulator", action="store_true", help="benchmark smbd only")
    p.add_argument("--no-samba", action="store_true", help="benchmark the emulator only")
    p.add_argument("--smb1-rounds", type=int, default=200,
                   help="SMB1 handshakes per server in the SMB1 phase (200; 0 skips it)")
    p.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = p.parse_args(argv)
    if not (1 <= args.rounds <= 100_000 and 1 <= args.concurrency <= 256):
        p.error("--rounds must be 1..100000 and --concurrency 1..256")
    if not 0 <= args.smb1_rounds <= 100_000:
        p.error("--smb1-rounds must be 0..100000")
    if not (0 <= args.hold <= MAX_HOLD and 1 <= args.hold_procs <= 64):
        p.error(f"--hold must be 0..{MAX_HOLD} and --hold-procs 1..64")
    if not sys.platform.startswith("linux"):
        p.error("needs Linux (/proc)")

    stop_at = time.monotonic() + args.time_limit
    results: dict[str, dict[str, Any]] = {}
    smb1: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-smb-") as tmpname:
        tmp = Path(tmpname)
        starters = []
        if not args.no_emulator:
            starters.append(("emulator", lambda: (start_emulator(tmp), "")))
        if not args.no_samba:
            starters.append(("samba", lambda: start_samba(tmp)))
        run_servers(starters, lambda server: bench_server(server, args, stop_at), results)
        if args.smb1_rounds:
            smb1_starters = []
            if not args.no_emulator:
                smb1_starters.append(("emulator",
                                      lambda: (start_emulator(tmp, "server-2003"), "")))
            if not args.no_samba:
                smb1_starters.append(("samba", lambda: start_samba(tmp, "NT1")))
            run_servers(smb1_starters, lambda server: bench_smb1(server, args, stop_at), smb1)
    report(results, args, smb1)
    out = to_json(results)
    if smb1:
        out["smb1"] = to_json(smb1)
    write_json(args.json, out)
    return 0


def run_servers(starters: list[tuple[str, Any]], bench: Any,
                results: dict[str, dict[str, Any]]) -> None:
    """Start each server in turn, benchmark it, stop it; a server that cannot start is
    reported as skipped and the next one still runs."""
    for name, starter in starters:
        print(f"starting {name} ...", flush=True)
        try:
            server, why = starter()
        except Exception as e:  # noqa: BLE001 - reported, the other server still runs
            server, why = None, f"{type(e).__name__}: {e}"
        if server is None:
            print(f"  {name} skipped: {why}")
            results[name] = {"skipped": why}
            continue
        try:
            print(f"  {name}: pid {server.pid}, port {server.port}", flush=True)
            results[name] = bench(server)
        finally:
            server.stop()


def bench_smb1(server: Server, args: argparse.Namespace, stop_at: float) -> dict[str, Any]:
    """SMB1 handshakes (impacket with SMB_DIALECT), sequential: server CPU per handshake."""
    res: dict[str, Any] = {"version": server.version}
    if time.monotonic() > stop_at:
        res["skipped"] = "time limit reached before phase 'smb1'"
        return res
    print(f"  {server.name}: smb1 ...", flush=True)
    res["smb1"] = run_sequential(server, args.smb1_rounds, args.phase_timeout, SMB_DIALECT)
    return res


def write_json(path: Path | None, data: dict[str, Any]) -> None:
    """`--json FILE`: the figures, for a machine to read."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
