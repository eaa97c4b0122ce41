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
(baseline), then under it (xfreerdp's options: `--xfreerdp-options`). smbclient and
xfreerdp connect through a loopback relay that notes their first TCP connect: their time
runs from that connect, not from the start of the process (xfreerdp spends about a second
on its own start-up before it connects).
Memory is the PSS (and RSS) of the emulator's process tree, sampled every 0.25 s.

xfreerdp is also timed, by the same yardstick for both servers, from its first connect to
its own `/log-level:DEBUG` line `CONNECTION_STATE_ACTIVE` (read through a pty and stamped
on arrival): against the emulator in both phases, and, without the attack, against
Debian's xrdp (bench_rdp.start_xrdp; TLS, as xrdp has no NLA) through the same kind of
relay: the row "xfreerdp floor (xrdp, no attack)". FreeRDP 2.x proceeds at once on a
reply that is already there when it looks, and otherwise waits out a ~100 ms poll, so
its time is mostly 100 ms per round trip of the connection sequence; the summary under
the table counts those waits by connection state and prints the floor, the emulator's
time over it and what the attack adds (under attack minus baseline). Both servers are
also timed once more without the relay, from xfreerdp's own CONNECTION_STATE_NEGO line
(logged just before it connects): the relay's extra hop delays xrdp's replies past
xfreerdp's first look, so the relayed floor is higher than xrdp's own. `--no-xrdp` skips
these; a floor that cannot be measured (xrdp missing) is reported, not a failure.

Goals (exit 1 if any is missed): every logon under attack succeeds within `--goal-logon`
s (1.0; for xfreerdp, until the admin API shows its session active), and the peak PSS
stays under `--goal-mb` MB (200). The floor and the log-based times are information, they
do not change the exit code. The figures are printed as a table; `--json FILE` writes
them too.

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
import shlex
import signal
import ssl
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_rdp import _stop_xrdp, start_xrdp  # noqa: E402
from bench_smb import HOST, emulator_command, tree_fds, tree_rollup_kb, write_json  # noqa: E402

from hostile_clients import (  # noqa: E402
    FLOOR,
    PASSWORD,
    XFREERDP_OPTIONS,
    SHARE,
    TOKEN,
    USER,
    ConnectTimer,
    Logon,
    XfreerdpRun,
    start_xvfb,
    time_smbclient,
    time_test_client,
    time_xfreerdp,
)

from emulator.harness.hosts import ServerProcess  # noqa: E402


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


def run_tries(logon: Logon, tries: int, timed: Any) -> Logon:
    for _ in range(tries):
        try:
            result = timed()
        except Exception as exc:  # noqa: BLE001 - a failed logon is a result
            logon.failures.append(f"{type(exc).__name__}: {exc}")
            continue
        if isinstance(result, XfreerdpRun):
            logon.log_seconds.append(result.log_seconds)
            logon.waits.append(result.waits)
            result = result.api_seconds if result.api_seconds is not None \
                else result.log_seconds
        logon.seconds.append(result)
    return logon


def measure(phase: str, args: argparse.Namespace, ports: dict[str, int], admin: str,
            display: str | None, relays: dict[str, ConnectTimer]) -> list[Logon]:
    clients: list[tuple[str, Any]] = []
    if shutil.which("smbclient"):
        clients.append(("smbclient", lambda: time_smbclient(relays["smb"],
                                                            args.client_timeout)))
    if display:
        options = shlex.split(args.xfreerdp_options)
        clients.append(("xfreerdp", lambda: time_xfreerdp(relays["rdp"], admin, display,
                                                          args.client_timeout, options)))
    clients.append(("rdp test client", lambda: time_test_client(ports["rdp"], admin)))
    return [run_tries(Logon(name, phase), args.tries, timed) for name, timed in clients]


def measure_floor(args: argparse.Namespace, display: str, tmp: Path, rdp_port: int,
                  admin: str) -> list[Logon] | str:
    """xfreerdp against Debian's xrdp (TLS; xrdp has no NLA), the same options, to its own
    log's CONNECTION_STATE_ACTIVE: the client's floor on this machine, through a relay as
    the emulator is timed; then both servers without the relay, timed from the client's own
    CONNECTION_STATE_NEGO line (the relay's extra hop makes a fast server's replies miss
    xfreerdp's first look). Or why it was not measured."""
    server, why = start_xrdp(tmp)
    if server is None:
        return why.splitlines()[0]
    relay = ConnectTimer(server.port)
    options = shlex.split(args.xfreerdp_options)

    def tries(name: str, target: ConnectTimer | int, api: str | None) -> Logon:
        return run_tries(Logon(name, "baseline"), args.tries,
                         lambda: time_xfreerdp(target, api, display, args.client_timeout,
                                               options))

    try:
        out = [tries(FLOOR, relay, None), tries(FLOOR + ", no relay", server.port, None)]
    finally:
        relay.close()
        _stop_xrdp(server)
    out.append(tries("xfreerdp (its log: ACTIVE), no relay", rdp_port, admin))
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

def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2] if values else float("nan")


def timing_row(name: str, phase: str, seconds: list[float], failures: list[str],
               goal: str) -> tuple[str, ...]:
    ok = f"{len(seconds)}/{len(seconds) + len(failures)}"
    worst = f"{max(seconds):.3f}" if seconds else "-"
    middle = f"{median(seconds):.3f}" if seconds else "-"
    return (name, phase, ok, worst, middle, goal, (failures or [""])[0][:70])


def waits_text(logon: Logon) -> str:
    """The ~100 ms waits of the median try, by connection state."""
    if not logon.waits:
        return "-"
    order = sorted(range(len(logon.log_seconds)), key=logon.log_seconds.__getitem__)
    waits = logon.waits[order[len(order) // 2]]
    parts = [f"{state.removeprefix('CONNECTION_STATE_')} {n}" for state, n in waits.items()]
    return f"{sum(waits.values())} ({', '.join(parts) or 'none'})"


def xfreerdp_summary(logons: list[Logon], floor: list[Logon] | str) -> list[str]:
    """The same yardstick for both servers: xfreerdp's connect to its own log's
    CONNECTION_STATE_ACTIVE; what the attack adds, and what the emulator adds over xrdp."""
    by_phase = {lg.phase: lg for lg in logons if lg.client == "xfreerdp" and lg.log_seconds}
    base, under = by_phase.get("baseline"), by_phase.get("under attack")
    out = ["xfreerdp, connect to its log's CONNECTION_STATE_ACTIVE (median; the emulator "
           "with NLA, xrdp with TLS, as xrdp has no NLA):"]
    floors = {lg.client: lg for lg in floor} if isinstance(floor, list) else {}
    relayed = floors.get(FLOOR)
    if relayed is not None and relayed.log_seconds:
        out.append(f"  floor (xrdp, no attack) {median(relayed.log_seconds):.3f} s; "
                   f"~100 ms waits {waits_text(relayed)}")
    else:
        reason = floor if isinstance(floor, str) else "; ".join(relayed.failures
                                                                if relayed else [])[:200]
        out.append(f"  floor (xrdp, no attack): not measured ({reason})")
        relayed = None
    if base is not None:
        extra = ""
        if relayed is not None:
            extra = f", {median(base.log_seconds) - median(relayed.log_seconds):+.3f} s over " \
                    "the floor"
        out.append(f"  emulator, no attack {median(base.log_seconds):.3f} s{extra}; "
                   f"~100 ms waits {waits_text(base)}")
    if under is not None:
        extra = ""
        if base is not None:
            added = median(under.log_seconds) - median(base.log_seconds)
            worst = max(under.log_seconds) - max(base.log_seconds)
            extra = f"; the attack adds {added:+.3f} s (median), {worst:+.3f} s (worst)"
        out.append(f"  emulator, under attack {median(under.log_seconds):.3f} s{extra}; "
                   f"~100 ms waits {waits_text(under)}")
    for name, logon in floors.items():
        if name != FLOOR and logon.log_seconds:
            out.append(f"  {name.replace('xfreerdp (its log: ACTIVE)', 'emulator')}, from its "
                       f"own NEGO line: {median(logon.log_seconds):.3f} s; ~100 ms waits "
                       f"{waits_text(logon)}")
    return out


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
    p.add_argument("--xfreerdp-options", default=XFREERDP_OPTIONS,
                   help=f"xfreerdp's options besides /v /u /p /log-level ({XFREERDP_OPTIONS})")
    p.add_argument("--no-xrdp", action="store_true",
                   help="skip xfreerdp's floor against Debian's xrdp")
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
        floor: list[Logon] | str = "xfreerdp not run"
        if display and not args.no_xrdp:
            floor = measure_floor(args, display, tmp, ports["rdp"], admin)
        elif display:
            floor = "--no-xrdp"
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
        goal = "-"
        if logon.phase == "under attack":
            met = not logon.failures and logon.worst <= args.goal_logon
            goals_met &= met
            goal = ("met" if met else "MISSED") + f" (<= {args.goal_logon:g} s)"
        name = "xfreerdp (admin API: active)" if logon.client == "xfreerdp" else logon.client
        rows.append(timing_row(name, logon.phase, logon.seconds, logon.failures, goal))
    floors = floor if isinstance(floor, list) else []
    for logon in [lg for lg in baseline + under if lg.log_seconds] + floors:
        name = "xfreerdp (its log: ACTIVE)" if logon.client == "xfreerdp" else logon.client
        rows.append(timing_row(name, logon.phase, logon.log_seconds, logon.failures, "-"))
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
    else:
        for line in xfreerdp_summary(baseline + under, floor):
            print(line)
    for problem in problems:
        print(f"problem: {problem[:400]}")
    goals_met &= not problems
    print(f"goals {'met' if goals_met else 'MISSED'}")
    write_json(args.json, {
        "args": {k: str(v) for k, v in vars(args).items()}, "attacker": stats,
        "logons": [{"client": lg.client, "phase": lg.phase, "seconds": lg.seconds,
                    "failures": lg.failures, "log_active_seconds": lg.log_seconds,
                    "xfreerdp_waits": lg.waits}
                   for lg in baseline + under + floors],
        "xfreerdp_floor_skipped": floor if isinstance(floor, str) else None,
        "pss_kb": {"baseline": base_pss, "peak": sampler.peak_pss, "end": attack_pss},
        "rss_kb": {"baseline": base_rss, "peak": sampler.peak_rss, "end": attack_rss},
        "fds": {"baseline": base_fds, "peak": sampler.peak_fds}, "goals_met": goals_met})
    return 0 if goals_met else 1


if __name__ == "__main__":
    sys.exit(main())
