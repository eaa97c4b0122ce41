"""The real clients bench_hostile.py times (smbclient, xfreerdp, the project's RDP test
client), the loopback relay that notes their first TCP connect, and the Xvfb they draw on."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from bench_rdp import drawn
from bench_smb import HOST

USER, PASSWORD = "alice", "Passw0rd!"
TOKEN = "hostile-bench-token"
SHARE = "bench"
FLOOR = "xfreerdp floor (xrdp, no attack)"
XFREERDP_OPTIONS = "/cert:ignore /size:800x600 /bpp:16"


# -- the real clients --------------------------------------------------------------------------

@dataclass
class Logon:
    client: str
    phase: str
    seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    # xfreerdp only: from its connect to its own log's CONNECTION_STATE_ACTIVE, and the
    # ~100 ms waits of its connection loop by state, one entry per successful try.
    log_seconds: list[float] = field(default_factory=list)
    waits: list[dict[str, int]] = field(default_factory=list)

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

    def close(self) -> None:
        self.listener.close()  # its accept thread ends

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


XFREERDP_ACTIVE = "--> CONNECTION_STATE_ACTIVE"
XFREERDP_NEGO = "--> CONNECTION_STATE_NEGO"  # logged right before its TCP connect
WAIT_STEP = 0.1  # FreeRDP 2.x's connection loop waits up to 100 ms for the next PDU


@dataclass
class XfreerdpRun:
    """One xfreerdp logon: seconds from its first TCP connect to the emulator's admin API
    showing the session active (None for xrdp: it has no admin API), and to its own
    /log-level:DEBUG line CONNECTION_STATE_ACTIVE; the ~100 ms waits of its connection loop,
    by the connection state it waited in."""

    api_seconds: float | None
    log_seconds: float
    waits: dict[str, int]


class XfreerdpLog(threading.Thread):
    """Reads xfreerdp's output through a pty (piped, its stdout is block-buffered and the
    lines would arrive late) and stamps every line on arrival: FreeRDP 2.x's own log
    stamps are not usable (their milliseconds wrap without the second moving on)."""

    def __init__(self, master: int) -> None:
        super().__init__(daemon=True)
        self.master = master
        self.lines: list[tuple[float, str]] = []
        self.active: float | None = None
        self.nego: float | None = None

    def run(self) -> None:
        pending = b""
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the child side is closed
                break
            if not data:
                break
            now = time.perf_counter()
            pending += data
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace")
                self.lines.append((now, line))
                if self.active is None and XFREERDP_ACTIVE in line:
                    self.active = now
                if self.nego is None and XFREERDP_NEGO in line:
                    self.nego = now
        with contextlib.suppress(OSError):
            os.close(self.master)

    def waits(self, since: float) -> dict[str, int]:
        return connection_waits(list(self.lines), since, self.active)


def connection_waits(lines: list[tuple[float, str]], since: float,
                     active: float | None) -> dict[str, int]:
    """The ~100 ms steps between consecutive log lines from `since` (the connect) to
    `active`, counted by the connection state the client was in: a gap of 0.6 s in
    MCS_CHANNEL_JOIN is 6 round trips that each waited out the client's poll."""
    out: dict[str, int] = {}
    state, previous = "CONNECTION_STATE_NEGO", since
    for stamp, line in lines:
        if stamp < since:
            continue
        steps = round((stamp - previous) / WAIT_STEP)
        if stamp - previous >= 0.8 * WAIT_STEP and steps:
            out[state] = out.get(state, 0) + steps
        previous = stamp
        if "transition_to_state" in line and "--> " in line:
            state = line.rsplit("--> ", 1)[1].strip()
        if active is not None and stamp >= active:
            break
    return out


def time_xfreerdp(relay: ConnectTimer | int, admin: str | None, display: str, timeout: float,
                  options: list[str]) -> XfreerdpRun:
    """xfreerdp through `relay`, until its log says CONNECTION_STATE_ACTIVE and (with an
    `admin` API) the emulator shows the user's RDP session active; then it is stopped and
    (with `admin`) the session ended for the next try. `relay` a port: straight to it, no
    relay, timed from the client's own CONNECTION_STATE_NEGO line (just before connect)."""
    import pty

    direct = isinstance(relay, int)
    port = relay if isinstance(relay, int) else relay.port
    if not isinstance(relay, int):
        relay.reset()
    home = tempfile.mkdtemp(prefix="hostile-xfreerdp-")
    env = dict(os.environ, DISPLAY=display, HOME=home)
    master, child = pty.openpty()
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(["xfreerdp", f"/v:{HOST}:{port}", f"/u:{USER}",
                                 f"/p:{PASSWORD}", *options, "/log-level:DEBUG"],
                                stdin=subprocess.DEVNULL, stdout=child, stderr=child, env=env)
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(child)
    log = XfreerdpLog(master)
    log.start()
    api_seconds: float | None = None
    try:
        while time.perf_counter() - t0 < timeout:
            if admin is not None and api_seconds is None and any(
                    s["protocol"] == "rdp" and s["user"].lower() == USER and
                    s["state"] == "active" for s in api(admin, "GET", "/api/sessions")):
                api_seconds = time.perf_counter() - (log.nego or t0) if direct \
                    else relay.since_connect(t0)  # type: ignore[union-attr]
            if log.active is not None and (admin is None or api_seconds is not None):
                connect = (log.nego if direct else relay.first_connect) or t0  # type: ignore
                return XfreerdpRun(api_seconds, log.active - connect, log.waits(connect))
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
            proc.wait(10)
        log.join(5)
        shutil.rmtree(home, ignore_errors=True)
        if admin is not None:
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
