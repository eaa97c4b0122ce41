#!/usr/bin/env python3
"""Server instructions per handshake under callgrind: a CPU figure a shared machine's load
does not move, to compare two checkouts (an issue's "no regression over N%").

The emulator of each ``--tree`` (a checkout: run with PYTHONPATH=TREE, cwd TREE) runs under
``valgrind --tool=callgrind --instr-atstart=no``; instrumentation is switched on
(``callgrind_control -i on``) only around the loop, after a warm-up, so start-up and
imports are not counted. Loops:

* ``smb``: bench_smb's sequential handshake (impacket: NEGOTIATE, SESSION_SETUP, TREE_CONNECT
  to the share, LOGOFF, close) against ``server-2022``;
* ``rdp-refusal``: bench_rdp's refusal (TLS, Client Info, the drawn refusal, errinfo 7)
  against ``whs`` with its two sessions held;
* ``rdp-logon``: a TLS logon to the first bitmap against ``win10`` (NLA off).

Prints instructions per handshake for each tree and the ratio to the first. About 30x
slower than natively: keep ``--rounds`` small (80 SMB handshakes: a minute).

    python3 bench/bench_instructions.py --tree /path/to/base --tree . --loop smb
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_rdp import refused_handshake  # noqa: E402
from bench_smb import HOST, PASSWORD, SHARE, USER, handshake  # noqa: E402

from emulator.harness.hosts import ServerProcess  # noqa: E402
from emulator.harness.rdp_client import RDPTestClient  # noqa: E402

WARM_UP = 3


def _smb(tmp: Path) -> tuple[list[str], Callable[[ServerProcess], Callable[[], None]]]:
    (tmp / "share").mkdir()
    args = ["serve", "--edition", "server-2022", "--host", HOST, "--smb-port", "0",
            "--netbios-port", "0", "--rdp-port", "0", "--user", f"{USER}:{PASSWORD}",
            "--share", f"{SHARE}={tmp / 'share'}", "--event-log", str(tmp / "events.jsonl")]

    def ready(server: ServerProcess) -> Callable[[], None]:
        port = server.address("smb")[1]
        return lambda: handshake(port)
    return args, ready


def _rdp_refusal(tmp: Path) -> tuple[list[str], Callable[[ServerProcess], Callable[[], None]]]:
    args = ["serve", "--edition", "whs", "--host", HOST, "--smb-port", "0", "--netbios-port",
            "0", "--rdp-port", "0", "--refusal-display-seconds", "0",
            *[f"--user=u{i}:pw{i}" for i in range(3)]]
    held: list[RDPTestClient] = []

    def ready(server: ServerProcess) -> Callable[[], None]:
        port = server.address("rdp")[1]
        for i in range(2):  # whs's two sessions
            client = RDPTestClient(HOST, port)
            held.append(client)
            client.negotiate()
            client.logon(f"u{i}", f"pw{i}")
            client.read_until_drawn()
        return lambda: refused_handshake(port)
    return args, ready


def _rdp_logon(tmp: Path) -> tuple[list[str], Callable[[ServerProcess], Callable[[], None]]]:
    """A 10-era TLS logon to the first bitmap (the Demand Active and GCC blocks Windows 10
    sends), back into the same session each time: win10 counts only connected sessions."""
    args = ["serve", "--edition", "win10", "--rdp-nla", "off", "--host", HOST, "--smb-port",
            "0", "--netbios-port", "0", "--rdp-port", "0", "--user=u0:pw0"]

    def ready(server: ServerProcess) -> Callable[[], None]:
        port = server.address("rdp")[1]

        def once() -> None:
            client = RDPTestClient(HOST, port)
            try:
                client.negotiate()
                client.logon("u0", "pw0")
                client.read_until_drawn()
            finally:
                client.close()
        return once
    return args, ready


LOOPS = {"smb": _smb, "rdp-refusal": _rdp_refusal, "rdp-logon": _rdp_logon}


def instructions(out: Path) -> int:
    for line in out.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


def measure(tree: Path, loop: str, rounds: int, tmp: Path) -> int:
    out = tmp / "callgrind.out"
    args, ready = LOOPS[loop](tmp)
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    server = ServerProcess(
        args, stderr_path=tmp / "stderr.txt", cwd=tree, env=env, timeout=180,
        prefix=["valgrind", "--tool=callgrind", "--instr-atstart=no",
                f"--callgrind-out-file={out}"])
    try:
        once = ready(server)
        for _ in range(WARM_UP):
            once()
        subprocess.run(["callgrind_control", "-i", "on", str(server.pid)], check=True,
                       capture_output=True, timeout=60)
        for _ in range(rounds):
            once()
        subprocess.run(["callgrind_control", "-i", "off", str(server.pid)], check=True,
                       capture_output=True, timeout=60)
    finally:
        server.stop(timeout=120)  # callgrind writes its file as the server exits
    return instructions(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tree", type=Path, action="append", required=True,
                   help="a checkout to measure (repeatable; the first is the reference)")
    p.add_argument("--loop", choices=sorted(LOOPS), default="smb")
    p.add_argument("--rounds", type=int, default=80, help="handshakes counted (80)")
    args = p.parse_args(argv)
    if not 1 <= args.rounds <= 2000:
        p.error("--rounds must be 1..2000")
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        p.error("needs valgrind (callgrind) installed")
    results: list[tuple[Path, float]] = []
    for tree in args.tree:
        with tempfile.TemporaryDirectory(prefix="bench-instr-") as tmpname:
            total = measure(tree.resolve(), args.loop, args.rounds, Path(tmpname))
        per = total / args.rounds
        results.append((tree, per))
        ratio = f"  {per / results[0][1]:.3f}x the first" if len(results) > 1 else ""
        print(f"{args.loop}: {tree}: {per / 1e6:.3f} M instructions/handshake "
              f"({args.rounds} counted){ratio}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
