#!/usr/bin/env python3
"""Soak benchmark (issue 14): 100,000 cycles of SMB and RDP, admitted and refused, and the
emulator's memory and open descriptors from the first to the last 10% of them.

The emulator runs `--edition win11` (20 SMB slots, 1 RDP session) as a child process on
loopback. Worker processes share the cycles (`--cycles`, default 100,000) by weight:

* smb-admitted (65%): a raw client (this file, on the project's own SMB2 header and body
  layouts, NTLM from impacket) NEGOTIATEs once per connection, then loops SESSION_SETUP
  (two NTLM rounds) + LOGOFF, 50 cycles a connection, on the one slot left free;
* smb-refused (33%): 19 sessions are held by a holder for the whole run, so with the
  admitted worker's session the limit is full: this worker loops the first SESSION_SETUP
  round and gets 0xC00000D0, or, when it wins the free slot, abandons the pending setup
  by closing the connection (the slot must come back; the admitted worker, refused
  meanwhile, retries: counted, not an error);
* rdp (2%: an RDP cycle costs ~50 SMB ones): the project's RDP test client, TLS; even
  cycles log `alice` on to the first bitmap and leave (the session stays, disconnected,
  and the next one reattaches), odd cycles log `bob` on and are refused (the refusal
  drawn, Set Error Info 7, DPUM).

Every `--sample-interval` s the PSS and RSS of the emulator's process tree and its open
fds (/proc/PID/fd) are sampled with the cycle count so far. It prints the mean of the
samples taken in the first 10% of the cycles against the last 10%, and exits 1 if memory
grew by more than `--tolerance-mb` (10 MB) or fds by more than `--tolerance-fds` (10), or
if a cycle's outcome was wrong. Bounded: `--max-seconds` (default 1800) stops the workers
wherever they are; the cycles done are reported.

    python3 bench/bench_soak.py                          # 100,000 cycles
    python3 bench/bench_soak.py --cycles 10000 --max-seconds 300
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import shutil
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_hostile import negotiate_request, setup_request, smb_request  # noqa: E402
from bench_smb import HOST, emulator_command, tree_fds, tree_rollup_kb, write_json  # noqa: E402

from emulator.harness.hosts import ServerProcess  # noqa: E402

USERS = {"alice": "Passw0rd!", "bob": "B0b-passw0rd"}
STATUS_MORE_PROCESSING = 0xC0000016
STATUS_REQUEST_NOT_ACCEPTED = 0xC00000D0
CYCLES_PER_CONNECTION = 50
HELD = 19  # sessions held for the whole run: one slot of win11's 20 stays free


# -- a raw SMB2 client ------------------------------------------------------------------------

class Refused(Exception):
    """The first SESSION_SETUP round was refused at the limit (0xC00000D0)."""


class RawSMB:
    """NEGOTIATE (2.0.2), SESSION_SETUP with NTLM, LOGOFF: as few bytes and calls as will do."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=10)
        self.message_id = 1
        self.call(negotiate_request())

    def close(self) -> None:
        self.sock.close()

    def _recv(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("server closed the connection")
            buf += chunk
        return buf

    def call(self, request: bytes) -> tuple[int, int, bytes]:
        """(status, session id, message) of the reply."""
        self.sock.sendall(request)
        (length,) = struct.unpack(">I", self._recv(4))
        reply = self._recv(length & 0xFFFFFF)
        (status,) = struct.unpack_from("<I", reply, 8)
        (session_id,) = struct.unpack_from("<Q", reply, 40)
        return status, session_id, reply

    def _next(self) -> int:
        self.message_id += 1
        return self.message_id - 1

    def first_round(self) -> tuple[int, int, bytes]:
        return self.call(setup_request(self._next()))

    def logon(self, user: str, password: str) -> int:
        from impacket import ntlm

        from protocols.smb2 import bodies

        status, session_id, reply = self.first_round()
        if status == STATUS_REQUEST_NOT_ACCEPTED:
            raise Refused()
        if status != STATUS_MORE_PROCESSING:
            raise RuntimeError(f"first round 0x{status:08X}")
        offset, length = struct.unpack_from("<HH", reply, 64 + 4)
        challenge = reply[offset:offset + length]
        type1 = ntlm.getNTLMSSPType1("", "")
        type3, _key = ntlm.getNTLMSSPType3(type1, challenge, user, password, "")
        token = type3.getData()
        body = bodies.SESSION_SETUP.pack(SecurityMode=1, SecurityBufferOffset=64 + 24,
                                         SecurityBufferLength=len(token))
        status, _, _ = self.call(self._request(1, body + token, session_id))
        if status != 0:
            raise RuntimeError(f"second round 0x{status:08X}")
        return session_id

    def logoff(self, session_id: int) -> None:
        status, _, _ = self.call(self._request(2, struct.pack("<HH", 4, 0), session_id))
        if status != 0:
            raise RuntimeError(f"LOGOFF 0x{status:08X}")

    def _request(self, command: int, body: bytes, session_id: int) -> bytes:
        from protocols.smb2.framing import frame

        raw = bytearray(smb_request(command, body, self._next())[4:])
        struct.pack_into("<Q", raw, 40, session_id)
        return frame(bytes(raw))


# -- the workers -------------------------------------------------------------------------------

def smb_admitted(port: int, quota: int, deadline: float, done: Any, errors: Any,
                 retries: Any) -> None:
    count = 0
    while count < quota and time.monotonic() < deadline:
        try:
            client = RawSMB(port)
            try:
                for _ in range(min(CYCLES_PER_CONNECTION, quota - count)):
                    try:
                        session_id = client.logon("alice", USERS["alice"])
                    except Refused:  # the refusing worker holds the free slot a moment
                        with retries.get_lock():
                            retries.value += 1
                        time.sleep(0.001)
                        continue
                    client.logoff(session_id)
                    count += 1
                    with done.get_lock():
                        done.value += 1
            finally:
                client.close()
        except (OSError, EOFError, RuntimeError) as exc:
            errors.put(f"smb-admitted: {exc}")
            count += 1  # a failed cycle is still a cycle (and an error)
            with done.get_lock():
                done.value += 1


def smb_refused(port: int, quota: int, deadline: float, done: Any, errors: Any,
                outcomes: Any) -> None:
    count, client = 0, None
    while count < quota and time.monotonic() < deadline:
        try:
            client = client or RawSMB(port)
            status, _, _ = client.first_round()
            if status == STATUS_MORE_PROCESSING:  # won the free slot: abandon the setup
                client.close()
                client = None
                with outcomes.get_lock():
                    outcomes[1] += 1
            elif status == STATUS_REQUEST_NOT_ACCEPTED:
                with outcomes.get_lock():
                    outcomes[0] += 1
            else:
                errors.put(f"smb-refused: status 0x{status:08X}")
        except (OSError, EOFError) as exc:
            errors.put(f"smb-refused: {exc}")
            client = None
        count += 1
        with done.get_lock():
            done.value += 1
    if client is not None:
        client.close()


def rdp_cycles(port: int, quota: int, deadline: float, done: Any, errors: Any) -> None:
    from bench_rdp import drawn

    from emulator.harness.rdp_client import RDPTestClient

    for i in range(quota):
        if time.monotonic() > deadline:
            break
        try:
            if i % 2 == 0:
                drawn(port, "alice", USERS["alice"]).close()
            else:
                client = RDPTestClient(HOST, port)
                try:
                    client.negotiate()
                    client.logon("bob", USERS["bob"])
                    report = client.read_until_closed()
                finally:
                    client.close()
                if report.errinfo != [7]:
                    errors.put(f"rdp-refused: errinfo {report.errinfo}")
        except Exception as exc:  # noqa: BLE001 - counted and shown
            errors.put(f"rdp: {type(exc).__name__}: {exc}")
        with done.get_lock():
            done.value += 1


def holder(port: int, count: int, ready: Any, release: Any) -> None:
    clients = []
    for _ in range(count):
        client = RawSMB(port)
        client.logon("alice", USERS["alice"])
        clients.append(client)
    ready.set()
    release.wait(7200)
    for client in clients:
        client.close()


# -- the run -----------------------------------------------------------------------------------

def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=100_000)
    p.add_argument("--max-seconds", type=float, default=1800.0)
    p.add_argument("--sample-interval", type=float, default=0.25)
    p.add_argument("--tolerance-mb", type=float, default=10.0)
    p.add_argument("--tolerance-fds", type=int, default=10)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if not 100 <= args.cycles <= 10_000_000 or not 0 < args.max_seconds <= 86400:
        p.error("--cycles must be 100 to 10,000,000 and --max-seconds in (0, 86400]")
    quotas = {"smb-admitted": args.cycles * 65 // 100, "smb-refused": args.cycles * 33 // 100}
    quotas["rdp"] = args.cycles - sum(quotas.values())

    tmp = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    server = ServerProcess(
        ["serve", "--edition", "win11", "--host", HOST, "--smb-port", "0", "--netbios-port",
         "0", "--rdp-port", "0", "--refusal-display-seconds", "0",
         "--event-log", str(tmp / "events.jsonl"),
         *[f"--user={u}:{pw}" for u, pw in USERS.items()]],
        command=emulator_command(), stderr_path=tmp / "stderr.txt")
    smb_port, rdp_port = server.address("smb")[1], server.address("rdp")[1]
    ctx = mp.get_context("fork")
    done, errors, retries = ctx.Value("q", 0), ctx.Queue(), ctx.Value("q", 0)
    outcomes = ctx.Array("q", 2)  # refused, won-and-abandoned
    ready, release = ctx.Event(), ctx.Event()
    samples: list[tuple[int, int, int, int]] = []  # (cycles, pss kB, rss kB, fds)
    error_list: list[str] = []
    workers: list[Any] = []
    t0 = time.monotonic()
    try:
        hold = ctx.Process(target=holder, args=(smb_port, HELD, ready, release), daemon=True)
        hold.start()
        if not ready.wait(60):
            raise SystemExit("the holder could not take its sessions")
        deadline = time.monotonic() + args.max_seconds
        workers = [
            ctx.Process(target=smb_admitted, args=(smb_port, quotas["smb-admitted"], deadline,
                                                   done, errors, retries), daemon=True),
            ctx.Process(target=smb_refused, args=(smb_port, quotas["smb-refused"], deadline,
                                                  done, errors, outcomes), daemon=True),
            ctx.Process(target=rdp_cycles, args=(rdp_port, quotas["rdp"], deadline, done,
                                                 errors), daemon=True),
        ]
        t0 = time.monotonic()
        for w in workers:
            w.start()
        while any(w.is_alive() for w in workers):
            pss, _ = tree_rollup_kb(server.pid, "Pss:")
            rss, _ = tree_rollup_kb(server.pid, "Rss:")
            samples.append((done.value, pss, rss, tree_fds(server.pid)))
            while not errors.empty() and len(error_list) < 1000:
                error_list.append(errors.get_nowait())
            time.sleep(args.sample_interval)
        elapsed = time.monotonic() - t0
        while not errors.empty() and len(error_list) < 1000:
            error_list.append(errors.get_nowait())
    finally:
        release.set()
        for w in workers:
            w.join(10)
            if w.is_alive():
                w.kill()
        problems = server.stop()
        log_bytes = (tmp / "events.jsonl").stat().st_size if (tmp / "events.jsonl").exists() \
            else 0
        shutil.rmtree(tmp, ignore_errors=True)

    total = done.value
    first = [s for s in samples if s[0] <= total * 0.1]
    last = [s for s in samples if s[0] >= total * 0.9]
    rows = []
    verdicts = []
    for label, index, unit, scale, tolerance in (
            ("PSS", 1, "MB", 1024.0, args.tolerance_mb), ("RSS", 2, "MB", 1024.0,
                                                          args.tolerance_mb),
            ("open fds", 3, "", 1.0, args.tolerance_fds)):
        a = mean([s[index] / scale for s in first])
        b = mean([s[index] / scale for s in last])
        ok = b - a <= tolerance
        verdicts.append(ok or label == "RSS")  # RSS is shown; PSS is the memory goal
        rows.append((f"{label} {unit}".strip(), f"{a:.1f}", f"{b:.1f}", f"{b - a:+.1f}",
                     f"<= +{tolerance:g}" + ("" if label == "RSS" else
                                            (" met" if ok else " MISSED"))))
    print(f"\nbench_soak: emulator --edition win11; {total} of {args.cycles} cycles in "
          f"{elapsed:.1f} s ({total / elapsed:.0f}/s): smb-admitted {quotas['smb-admitted']}, "
          f"(retried {retries.value} times), smb-refused {quotas['smb-refused']} (refused "
          f"{outcomes[0]}, won the free slot and abandoned {outcomes[1]}), rdp {quotas['rdp']} "
          f"(half admitted, half refused); "
          f"{HELD} SMB sessions held throughout; {len(samples)} samples "
          f"({len(first)} in the first 10%, {len(last)} in the last 10%)")
    header = ("figure", "first 10%", "last 10%", "growth", "tolerance")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    deciles = []
    for tenth in range(11):
        near = min(samples, key=lambda x: abs(x[0] - total * tenth / 10), default=None)
        if near is not None:
            deciles.append(f"{near[1] / 1024:.1f}")
    print(f"PSS MB at 0%, 10%, ... 100% of the cycles: {' '.join(deciles)}")
    print(f"event log on disk: {log_bytes / 2**20:.1f} MB ({log_bytes / max(total, 1):.0f} "
          f"bytes per cycle; the in-memory log keeps the last 10,000 records)")
    print(f"errors: {len(error_list)}" + (f" (first: {error_list[0]})" if error_list else ""))
    for problem in problems:
        print(f"emulator: {problem[:400]}")
    finished = total >= args.cycles
    ok = all(verdicts) and not error_list and not problems and bool(first) and bool(last)
    if not finished:
        print(f"stopped at --max-seconds {args.max_seconds:g} after {total} cycles")
    print(f"goals {'met' if ok else 'MISSED'}")
    write_json(args.json, {"cycles": total, "event_log_bytes": log_bytes, "seconds": elapsed,
                           "samples": samples, "errors": error_list[:50], "goals_met": ok,
                           "outcomes": {"refused": outcomes[0], "abandoned": outcomes[1]}})
    return 0 if ok else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
