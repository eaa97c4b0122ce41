#!/usr/bin/env python3
"""Hostile-load benchmark (issue 14): do real clients still log on while the host is
under a pre-authentication attack, and does the server's memory stay bounded?

The emulator (`--edition win11`: 20 SMB slots, 1 RDP session, NLA offered) runs as a child
process on loopback. One attacker process (asyncio) then holds, until the logons under
attack are timed (at most `--attack-seconds`):

* `--loris` slow-loris SMB connections (default 1,000), in three kinds: connect and send
  nothing; send two bytes of the 4-byte frame header and stop; send a header announcing a
  1 MiB frame and trickle its body, `--trickle-bytes` every `--trickle-interval` s. A
  connection the server closes is opened again (an attacker keeps the pressure on).
* `--stalled-rdp` stalled RDP TLS handshakes (default 200): half send nothing, half send
  the X.224 Connection Request for TLS, read the Connection Confirm, then send the first
  `--hello-bytes` of a TLS ClientHello and stop. Reconnected when closed.
* one SMB connection that NEGOTIATEs and then loops SESSION_SETUP with SessionId 0 (an
  NTLM NEGOTIATE token, never the AUTHENTICATE), at most `--setup-rate` a second.

Meanwhile it times real logons, `--tries` each: Debian's `smbclient` (`smbclient
//host/share -c ls`: negotiate, NTLM logon, tree connect, one listing, exit), xfreerdp
under Xvfb (NLA; until the emulator's admin API shows the user's RDP session active; then
the session is ended for the next try) and the project's RDP test client
(emulator/harness/rdp_client.py, TLS: connect to first bitmap), first without the attack
(baseline), then under it. smbclient and xfreerdp connect through a loopback relay that
notes their first TCP connect: their time runs from that connect, not from the start of
the process (xfreerdp spends about a second on its own start-up before it connects).
Memory is the PSS (and RSS) of the emulator's process tree, sampled every 0.25 s.

Goals (exit 1 if any is missed): every logon under attack succeeds within `--goal-logon`
s (1.0), and the peak PSS stays under `--goal-mb` MB (200). The figures are printed as a
table; `--json FILE` writes them too.

    python3 bench/bench_hostile.py                       # the issue's numbers, ~1 min
    python3 bench/bench_hostile.py --loris 200 --stalled-rdp 50 --attack-seconds 20

Loopback only, bounded in count (the options) and time (`--attack-seconds`, every
client call has a timeout). The fd limit is raised (setrlimit) for the connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import resource
import shutil
import signal
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_rdp import drawn  # noqa: E402
from bench_smb import HOST, emulator_command, tree_fds, tree_rollup_kb, write_json  # noqa: E402

from emulator.harness.hosts import ServerProcess  # noqa: E402

USER, PASSWORD = "alice", "Passw0rd!"
TOKEN = "hostile-bench-token"
SHARE = "bench"


# -- the attacker (a child process) ---------------------------------------------------------

@dataclass
class AttackStats:
    loris_open: int = 0
    loris_reconnects: int = 0
    loris_refused: int = 0
    rdp_open: int = 0
    rdp_reconnects: int = 0
    rdp_refused: int = 0
    setups: int = 0
    setup_status: dict[str, int] = field(default_factory=dict)
    setup_reconnects: int = 0


def client_hello() -> bytes:
    """The first flight of a TLS client, made in memory."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def smb_request(command: int, body: bytes, message_id: int) -> bytes:
    from protocols.smb2.framing import frame
    from protocols.smb2.messages import Header

    return frame(Header(command, credits=64, message_id=message_id).pack() + body)


def negotiate_request() -> bytes:
    from impacket import smb3structs as s2

    from protocols.smb2 import bodies

    body = bodies.NEGOTIATE.pack(DialectCount=1, SecurityMode=1, ClientGuid=b"hostile-bench-gd")
    return smb_request(s2.SMB2_NEGOTIATE, body + struct.pack("<H", s2.SMB2_DIALECT_002), 0)


def setup_request(message_id: int) -> bytes:
    from impacket import ntlm
    from impacket import smb3structs as s2

    from protocols.smb2 import bodies
    from protocols.smb2.messages import HEADER_SIZE

    token = ntlm.getNTLMSSPType1("", "").getData()
    body = bodies.SESSION_SETUP.pack(SecurityMode=1,
                                     SecurityBufferOffset=HEADER_SIZE + bodies.SESSION_SETUP.size,
                                     SecurityBufferLength=len(token))
    return smb_request(s2.SMB2_SESSION_SETUP, body + token, message_id)


def reply_status(reply: bytes) -> str:
    from protocols.smb2.messages import Header

    return f"0x{Header.parse(reply).status:08X}"


async def read_smb(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(4)
    return await reader.readexactly(struct.unpack(">I", header)[0] & 0xFFFFFF)


class Attacker:
    def __init__(self, args: argparse.Namespace, smb_port: int, rdp_port: int) -> None:
        self.args, self.smb_port, self.rdp_port = args, smb_port, rdp_port
        self.stats = AttackStats()
        self.stop_at = time.monotonic() + args.attack_seconds
        self.hello = client_hello()
        self.connect_gate = asyncio.Semaphore(64)  # connects in flight (listen backlog)

    def running(self) -> bool:
        return time.monotonic() < self.stop_at

    async def _connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with self.connect_gate:
            return await asyncio.wait_for(asyncio.open_connection(HOST, port), 10)

    async def _hold(self, writer: asyncio.StreamWriter, reader: asyncio.StreamReader,
                    trickle: bytes = b"") -> None:
        """Keep the connection until the server closes it or the attack ends."""
        while self.running():
            if trickle:
                writer.write(trickle)
                await writer.drain()
            try:
                data = await asyncio.wait_for(reader.read(65536), self.args.trickle_interval)
            except TimeoutError:
                continue
            if not data:
                return

    async def loris(self, index: int) -> None:
        kind, first = index % 3, True
        while self.running():
            try:
                reader, writer = await self._connect(self.smb_port)
            except (TimeoutError, OSError):
                self.stats.loris_refused += 1
                await asyncio.sleep(0.5)
                continue
            self.stats.loris_open += 1
            if not first:
                self.stats.loris_reconnects += 1
            first = False
            try:
                if kind == 1:
                    writer.write(b"\x00\x10")
                elif kind == 2:
                    writer.write(struct.pack(">I", 1 << 20))
                await self._hold(writer, reader,
                                 b"\0" * self.args.trickle_bytes if kind == 2 else b"")
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                self.stats.loris_open -= 1
                writer.close()

    async def stalled_rdp(self, index: int) -> None:
        from protocols.rdp.x224 import PROTOCOL_HYBRID, PROTOCOL_SSL, connection_request

        first = True
        while self.running():
            try:
                reader, writer = await self._connect(self.rdp_port)
            except (TimeoutError, OSError):
                self.stats.rdp_refused += 1
                await asyncio.sleep(0.5)
                continue
            self.stats.rdp_open += 1
            if not first:
                self.stats.rdp_reconnects += 1
            first = False
            try:
                if index % 2:
                    # TLS and CredSSP offered, as mstsc and xfreerdp do: the server starts
                    # TLS whatever its NLA setting, and the ClientHello stalls there.
                    writer.write(connection_request(PROTOCOL_SSL | PROTOCOL_HYBRID,
                                                    b"Cookie: mstshash=x"))
                    head = await asyncio.wait_for(reader.readexactly(4), 10)
                    await reader.readexactly(struct.unpack(">H", head[2:])[0] - 4)
                    writer.write(self.hello[:self.args.hello_bytes])
                await self._hold(writer, reader)
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                pass
            finally:
                self.stats.rdp_open -= 1
                writer.close()

    async def setup_loop(self) -> None:
        pause = 1.0 / self.args.setup_rate
        first = True
        while self.running():
            try:
                reader, writer = await self._connect(self.smb_port)
                if not first:
                    self.stats.setup_reconnects += 1
                first = False
                writer.write(negotiate_request())
                await read_smb(reader)
                message_id = 1
                while self.running():
                    writer.write(setup_request(message_id))
                    reply = await asyncio.wait_for(read_smb(reader), 10)
                    status = reply_status(reply)
                    self.stats.setup_status[status] = self.stats.setup_status.get(status, 0) + 1
                    self.stats.setups += 1
                    message_id += 1
                    await asyncio.sleep(pause)
            except (TimeoutError, OSError, asyncio.IncompleteReadError):
                await asyncio.sleep(0.2)

    async def run(self, ready: Any) -> None:
        tasks = [asyncio.create_task(self.loris(i)) for i in range(self.args.loris)]
        tasks += [asyncio.create_task(self.stalled_rdp(i)) for i in range(self.args.stalled_rdp)]
        tasks.append(asyncio.create_task(self.setup_loop()))
        wanted = self.args.loris + self.args.stalled_rdp
        deadline = time.monotonic() + 60
        while (self.stats.loris_open + self.stats.rdp_open < wanted
               and time.monotonic() < deadline and self.running()):
            await asyncio.sleep(0.1)
        ready.put(("ready", self.stats.__dict__.copy()))
        while self.running():
            await asyncio.sleep(0.5)
            ready.put(("stats", self.stats.__dict__.copy()))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def attacker_main(args: argparse.Namespace, smb_port: int, rdp_port: int, out: Any) -> None:
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    attacker = Attacker(args, smb_port, rdp_port)
    asyncio.run(attacker.run(out))
    out.put(("done", attacker.stats.__dict__.copy()))


# -- the real clients --------------------------------------------------------------------------

@dataclass
class Logon:
    client: str
    phase: str
    seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def worst(self) -> float:
        return max(self.seconds) if self.seconds else float("nan")


class ConnectTimer:
    """A loopback relay in front of one emulator port: it notes when a client's first TCP
    connection arrives, so a logon is timed from the client's connect, not from the start
    of its process (xfreerdp spends about a second starting up before it connects)."""

    def __init__(self, target: int) -> None:
        import socket

        self.target = target
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.first_connect: float | None = None
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        self.first_connect = None

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.first_connect is None:
                self.first_connect = time.perf_counter()
            try:
                upstream = socket.create_connection((HOST, self.target), 10)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: Any, dst: Any) -> None:
        import socket

        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def since_connect(self, t0: float) -> float:
        """Seconds from the first connect (or from t0 if none was seen) to now."""
        return time.perf_counter() - (self.first_connect or t0)


def api(admin: str, method: str, path: str) -> Any:
    request = urllib.request.Request(admin + path, method=method,
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read() or b"null")


def end_rdp_sessions(admin: str) -> None:
    for s in api(admin, "GET", "/api/sessions"):
        if s["protocol"] == "rdp":
            api(admin, "DELETE", f"/api/sessions/{s['id']}")


def time_smbclient(relay: ConnectTimer, timeout: float) -> float:
    relay.reset()
    t0 = time.perf_counter()
    run = subprocess.run(["smbclient", f"//{HOST}/{SHARE}", "-p", str(relay.port), "-U",
                          f"{USER}%{PASSWORD}", "-m", "SMB3", "-c", "ls"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=timeout)
    elapsed = relay.since_connect(t0)
    if run.returncode != 0:
        raise RuntimeError((run.stdout + run.stderr).strip().splitlines()[-1][:120])
    return elapsed


def time_test_client(port: int, admin: str) -> float:
    t0 = time.perf_counter()
    client = drawn(port, USER, PASSWORD)
    elapsed = time.perf_counter() - t0
    client.close()
    end_rdp_sessions(admin)
    return elapsed


def time_xfreerdp(relay: ConnectTimer, admin: str, display: str, timeout: float) -> float:
    relay.reset()
    home = tempfile.mkdtemp(prefix="hostile-xfreerdp-")
    env = dict(os.environ, DISPLAY=display, HOME=home)
    t0 = time.perf_counter()
    proc = subprocess.Popen(["xfreerdp", f"/v:{HOST}:{relay.port}", f"/u:{USER}", f"/p:{PASSWORD}",
                             "/cert:ignore", "/size:800x600", "/bpp:16"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    try:
        while time.perf_counter() - t0 < timeout:
            if any(s["protocol"] == "rdp" and s["user"].lower() == USER and
                   s["state"] == "active" for s in api(admin, "GET", "/api/sessions")):
                return relay.since_connect(t0)
            if proc.poll() is not None:
                raise RuntimeError(f"xfreerdp exited {proc.returncode} before the logon")
            time.sleep(0.01)
        raise RuntimeError(f"no active session after {timeout:.0f} s")
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(home, ignore_errors=True)
        with contextlib.suppress(Exception):
            time.sleep(0.2)
            end_rdp_sessions(admin)


def start_xvfb() -> tuple[subprocess.Popen[bytes] | None, str | None]:
    if not (shutil.which("Xvfb") and shutil.which("xfreerdp")):
        return None, None
    for number in range(460, 520):
        if not os.path.exists(f"/tmp/.X11-unix/X{number}") and \
                not os.path.exists(f"/tmp/.X{number}-lock"):
            break
    proc = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1024x768x24", "-nolisten",
                             "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists(f"/tmp/.X11-unix/X{number}"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            return None, None
        time.sleep(0.05)
    return proc, f":{number}"


def measure(phase: str, args: argparse.Namespace, ports: dict[str, int], admin: str,
            display: str | None, relays: dict[str, ConnectTimer]) -> list[Logon]:
    clients: list[tuple[str, Any]] = []
    if shutil.which("smbclient"):
        clients.append(("smbclient", lambda: time_smbclient(relays["smb"],
                                                            args.client_timeout)))
    if display:
        clients.append(("xfreerdp", lambda: time_xfreerdp(relays["rdp"], admin, display,
                                                          args.client_timeout)))
    clients.append(("rdp test client", lambda: time_test_client(ports["rdp"], admin)))
    out = []
    for name, timed in clients:
        logon = Logon(name, phase)
        for _ in range(args.tries):
            try:
                logon.seconds.append(timed())
            except Exception as exc:  # noqa: BLE001 - a failed logon is a result
                logon.failures.append(f"{type(exc).__name__}: {exc}")
        out.append(logon)
    return out


class MemorySampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.stop = pid, threading.Event()
        self.peak_pss = self.peak_rss = self.peak_fds = 0
        self.samples = 0

    def run(self) -> None:
        while not self.stop.wait(0.25):
            self.sample()

    def sample(self) -> tuple[int, int]:
        pss, _ = tree_rollup_kb(self.pid, "Pss:")
        rss, _ = tree_rollup_kb(self.pid, "Rss:")
        self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
        self.peak_fds = max(self.peak_fds, tree_fds(self.pid))
        self.samples += 1
        return pss, rss


# -- the run -----------------------------------------------------------------------------------

def raise_fd_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--edition", default="win11")
    p.add_argument("--loris", type=int, default=1000, help="slow-loris SMB connections")
    p.add_argument("--stalled-rdp", type=int, default=200, help="stalled RDP TLS handshakes")
    p.add_argument("--setup-rate", type=float, default=100.0,
                   help="SESSION_SETUP requests per second at most (the SessionId 0 loop)")
    p.add_argument("--trickle-bytes", type=int, default=1024)
    p.add_argument("--trickle-interval", type=float, default=1.0)
    p.add_argument("--hello-bytes", type=int, default=60)
    p.add_argument("--attack-seconds", type=float, default=180.0,
                   help="the attack ends when the logons are timed, or after this long")
    p.add_argument("--settle", type=float, default=5.0,
                   help="seconds between the attack being in place and the first logon")
    p.add_argument("--tries", type=int, default=3, help="logons per client and phase")
    p.add_argument("--client-timeout", type=float, default=15.0)
    p.add_argument("--goal-logon", type=float, default=1.0, help="seconds")
    p.add_argument("--goal-mb", type=float, default=200.0, help="peak PSS, MB")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    for name in ("loris", "stalled_rdp", "tries"):
        if not 0 <= getattr(args, name) <= 5000:
            p.error(f"--{name.replace('_', '-')} must be 0 to 5000")
    if not 0 < args.attack_seconds <= 900 or not 0 < args.setup_rate <= 10000:
        p.error("--attack-seconds must be in (0, 900], --setup-rate in (0, 10000]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fd_limit = raise_fd_limit(args.loris + args.stalled_rdp + 1024)
    tmp = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    share = tmp / "share"
    share.mkdir()
    (share / "hello.txt").write_text("hello\n")
    server = ServerProcess(
        ["serve", "--edition", args.edition, "--host", HOST, "--smb-port", "0",
         "--netbios-port", "0", "--rdp-port", "0", "--admin-port", "0", "--admin-token", TOKEN,
         # NLA offered, not required: xfreerdp still logs on with CredSSP, and the
         # project's TLS-only test client is let in too (win11 requires NLA by default).
         "--rdp-nla", "offered",
         "--user", f"{USER}:{PASSWORD}", "--share", f"{SHARE}={share}",
         "--event-log", str(tmp / "events.jsonl")],
        command=emulator_command(), stderr_path=tmp / "stderr.txt")
    ports = {name: server.address(name)[1] for name in ("smb", "rdp")}
    admin = "http://{}:{}".format(*server.address("admin"))
    relays = {name: ConnectTimer(port) for name, port in ports.items()}
    xvfb, display = start_xvfb()
    sampler = MemorySampler(server.pid)
    attacker: Any = None
    stats: dict[str, Any] = {}
    problems: list[str] = []
    try:
        base_pss, base_rss = sampler.sample()
        base_fds = sampler.peak_fds
        baseline = measure("baseline", args, ports, admin, display, relays)
        sampler.peak_pss = sampler.peak_rss = sampler.peak_fds = 0
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        attacker = ctx.Process(target=attacker_main, args=(args, ports["smb"], ports["rdp"],
                                                           queue), daemon=True)
        t_attack = time.monotonic()
        attacker.start()
        sampler.start()
        kind, stats = queue.get(timeout=90)
        in_place = time.monotonic() - t_attack
        time.sleep(args.settle)
        under = measure("under attack", args, ports, admin, display, relays)
        if not attacker.is_alive():
            problems.append("the attack ended (--attack-seconds) before the logons were timed")
        while not queue.empty():
            kind, stats = queue.get_nowait()
        attack_pss, attack_rss = sampler.sample()
    finally:
        sampler.stop.set()
        if attacker is not None and attacker.is_alive():
            attacker.terminate()
            attacker.join(10)
        problems += server.stop()
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)

    mb = 1024.0
    print(f"\nbench_hostile: emulator --edition {args.edition}; attack: {args.loris} slow-loris "
          f"SMB, {args.stalled_rdp} stalled RDP TLS, 1 SESSION_SETUP loop "
          f"(<= {args.setup_rate:g}/s); fd limit {fd_limit}; in place after {in_place:.1f} s, "
          f"then {args.settle:g} s")
    print(f"attacker: {stats.get('loris_open', 0)} loris open "
          f"({stats.get('loris_reconnects', 0)} reconnects, {stats.get('loris_refused', 0)} "
          f"connects failed), {stats.get('rdp_open', 0)} RDP open "
          f"({stats.get('rdp_reconnects', 0)} reconnects), {stats.get('setups', 0)} setups "
          f"answered {stats.get('setup_status', {})}")
    goals_met = True
    rows = [("client", "phase", "ok", "worst s", "median s", "goal", "first failure")]
    for logon in baseline + under:
        ok = f"{len(logon.seconds)}/{len(logon.seconds) + len(logon.failures)}"
        times = sorted(logon.seconds)
        median = f"{times[len(times) // 2]:.3f}" if times else "-"
        worst = f"{logon.worst:.3f}" if times else "-"
        goal = "-"
        if logon.phase == "under attack":
            met = not logon.failures and logon.worst <= args.goal_logon
            goals_met &= met
            goal = ("met" if met else "MISSED") + f" (<= {args.goal_logon:g} s)"
        rows.append((logon.client, logon.phase, ok, worst, median, goal,
                     (logon.failures or [""])[0][:70]))
    pss_met = sampler.peak_pss / mb < args.goal_mb
    goals_met &= pss_met
    rows.append(("memory PSS MB", "baseline", "", f"{base_pss / mb:.1f}", "", "", ""))
    rows.append(("memory PSS MB", "under attack (peak)", "", f"{sampler.peak_pss / mb:.1f}", "",
                 ("met" if pss_met else "MISSED") + f" (< {args.goal_mb:g} MB)", ""))
    rows.append(("memory RSS MB", "baseline / peak", "",
                 f"{base_rss / mb:.1f} / {sampler.peak_rss / mb:.1f}", "", "", ""))
    rows.append(("open fds", "baseline / peak", "", f"{base_fds} / {sampler.peak_fds}", "", "",
                 ""))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    if not display:
        print("xfreerdp: not run (Xvfb or xfreerdp missing)")
    for problem in problems:
        print(f"problem: {problem[:400]}")
    goals_met &= not problems
    print(f"goals {'met' if goals_met else 'MISSED'}")
    write_json(args.json, {
        "args": {k: str(v) for k, v in vars(args).items()}, "attacker": stats,
        "logons": [{"client": lg.client, "phase": lg.phase, "seconds": lg.seconds,
                    "failures": lg.failures} for lg in baseline + under],
        "pss_kb": {"baseline": base_pss, "peak": sampler.peak_pss, "end": attack_pss},
        "rss_kb": {"baseline": base_rss, "peak": sampler.peak_rss, "end": attack_rss},
        "fds": {"baseline": base_fds, "peak": sampler.peak_fds}, "goals_met": goals_met})
    return 0 if goals_met else 1


if __name__ == "__main__":
    sys.exit(main())
