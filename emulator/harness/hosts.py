"""An emulated Windows host in a child process, driven through its admin API.

The pytest plugin, the scenario runner and the benchmarks use this one class. The
server runs in its own process (so blocking clients such as impacket or smbclient
work from a plain synchronous test) on ephemeral ports, with a virtual clock that
moves only on ``advance``.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import queue
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from emulator.admin.client import AdminClient, AdminError
from emulator.core.editions import DEFAULT_EDITION, get_edition

READY_TIMEOUT = 20.0


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot put {value!r} in the config file")


def write_config(path: Path, settings: dict[str, Any], users: dict[str, str],
                 shares: dict[str, str]) -> None:
    lines = [f"{key} = {_toml_value(value)}" for key, value in settings.items()
             if value is not None]
    for table, entries in (("users", users), ("shares", shares)):
        lines.append(f"[{table}]")
        lines += [f"{_toml_value(k)} = {_toml_value(v)}" for k, v in entries.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


class ServerProcess:
    """`smbrdp-emu serve ...` as a child process: the one start/ready/stop harness of the
    plugin, the scenarios, the CLI and interop tests and the benchmarks.

    It waits (bounded) for the ready line, keeps draining stdout so the server can never
    block on it, and ``stop()`` sends SIGTERM and reports what went wrong: a crash, an
    ignored SIGTERM, a traceback on stderr.
    """

    def __init__(self, args: list[str], *, stderr_path: Path, prefix: list[str] | None = None,
                 command: list[str] | None = None, cwd: Path | None = None,
                 env: dict[str, str] | None = None, timeout: float = READY_TIMEOUT) -> None:
        self.argv = [*(prefix or []), *(command or [sys.executable, "-m", "emulator"]),
                     *args]
        self.stderr_path = stderr_path
        self.stdout_lines: list[str] = []
        self.host_lines: list[str] = []
        self._stopped = False
        open(stderr_path, "w").close()  # a fresh log, then O_APPEND: whatever else
        with open(stderr_path, "a", encoding="utf-8") as stderr:  # writes to it stays
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                text=True, cwd=cwd, env=env,
                start_new_session=True)  # a signal aimed at the test run does not reach it
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(lines,), daemon=True).start()
        self.ready_line = self._wait_ready(lines, timeout)
        self.listeners = dict(tok.split("=", 1) for tok in self.ready_line.split()[1:]
                              if "=" in tok)

    def _pump(self, lines: queue.Queue[str | None]) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.stdout_lines.append(raw.rstrip("\n"))
            lines.put(self.stdout_lines[-1])
        lines.put(None)

    def _wait_ready(self, lines: queue.Queue[str | None], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:
                break
            if line.startswith("ready host="):  # a lab: one line per host, then its own
                self.host_lines.append(line)
            elif line.startswith("ready"):
                return line
        self.stop()
        raise StartError(f"no ready line from {shlex.join(self.argv)} (exit "
                         f"{self.proc.returncode}): {self.stderr()[-3000:]}")

    def address(self, name: str) -> tuple[str, int]:
        """(host, port) of a listener (`admin` too: its http:// is dropped)."""
        host, _, port = self.listeners[name].split("://", 1)[-1].rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 10.0) -> list[str]:
        """SIGTERM, wait, kill if needed; the problems found, for the caller to report."""
        problems: list[str] = []
        if self._stopped:
            return problems
        self._stopped = True
        if self.proc.poll() is not None:
            problems.append(f"the emulator died before it was stopped, exit code "
                            f"{self.proc.returncode}")
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                problems.append(f"the emulator ignored SIGTERM for {timeout:.0f} s")
                self.proc.kill()
                self.proc.wait()
        if "Traceback" in self.stderr():
            problems.append(f"the emulator wrote a traceback:\n{self.stderr()[-3000:]}")
        return problems


class StartError(RuntimeError):
    pass


class HostMethods:
    """What a test asks of a host, over its admin API (``self.admin``), wherever it runs."""

    listeners: dict[str, str]
    admin: AdminClient
    host: str

    # -- where it listens -----------------------------------------------------------
    def _port(self, name: str) -> int | None:
        address = self.listeners.get(name)
        return int(address.rsplit(":", 1)[1]) if address else None

    @property
    def smb_port(self) -> int:
        port = self._port("smb")
        assert port is not None
        return port

    @property
    def netbios_port(self) -> int | None:
        return self._port("netbios")

    @property
    def rdp_port(self) -> int | None:
        """None on an edition without a Remote Desktop host (xp-home)."""
        return self._port("rdp")

    # -- what tests ask of it ---------------------------------------------------------
    def add_user(self, name: str, password: str) -> None:
        self.admin.call("POST", "/api/users", {"name": name, "password": password})

    def add_share(self, name: str, path: str | os.PathLike[str]) -> None:
        self.admin.call("POST", "/api/shares", {"name": name, "path": str(path)})

    def limits(self) -> dict[str, int | None]:
        return {row["protocol"]: row["limit"] for row in self.admin.call("GET", "/api/limits")}

    def set_limit(self, protocol: str, limit: int | None) -> None:
        self.admin.call("PUT", f"/api/limits/{protocol}", {"limit": limit})

    def sessions(self, protocol: str | None = None) -> list[dict[str, Any]]:
        query = f"?protocol={protocol}" if protocol else ""
        result: list[dict[str, Any]] = self.admin.call("GET", f"/api/sessions{query}")
        return result

    def events(self, event_id: int | None = None) -> list[dict[str, Any]]:
        query = f"?id={event_id}" if event_id is not None else ""
        result: list[dict[str, Any]] = self.admin.call("GET", f"/api/events{query}")
        return result

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock: autodisconnect and expiry timers fire at once."""
        self.admin.call("POST", "/api/clock/advance", {"seconds": seconds})

    def reset(self) -> None:
        """End every session, restore the edition's limits and rules, clear the faults."""
        self.admin.call("POST", "/api/reset", {})

    # -- faults (README "Faults") -------------------------------------------------------
    def inject(self, protocol: str, command: str = "*", **fault: Any) -> dict[str, Any]:
        """Arm a fault: ``host.inject("smb", "READ", status="STATUS_INSUFFICIENT_RESOURCES")``;
        the fields are those of POST /api/faults (action, status, delay, credits, errinfo,
        count, after, user, client, share, path). Returns the fault as listed."""
        result: dict[str, Any] = self.admin.call(
            "POST", "/api/faults", {"protocol": protocol, "command": command, **fault})
        return result

    def faults(self) -> list[dict[str, Any]]:
        """Every armed (or spent) fault with its hits."""
        result: list[dict[str, Any]] = self.admin.call("GET", "/api/faults")
        return result

    def clear_faults(self) -> None:
        self.admin.call("DELETE", "/api/faults")

    def expire_sessions(self, user: str | None = None) -> list[int]:
        """SMB2 sessions (of ``user``) get STATUS_NETWORK_SESSION_EXPIRED until the client
        re-authenticates; returns their session ids."""
        result: dict[str, Any] = self.admin.call("POST", "/api/sessions/expire", {"user": user})
        return list(result["expired"])

    def remove_share(self, name: str) -> None:
        """Delete a share under its connected trees (STATUS_NETWORK_NAME_DELETED)."""
        self.admin.call("DELETE", f"/api/shares/{name}")

    def restart(self, downtime: float = 5) -> dict[str, Any]:
        """Restart the Server service: SMB connections reset, the SMB ports closed for
        ``downtime`` seconds of the host's clock (advance() it under a virtual clock)."""
        result: dict[str, Any] = self.admin.call("POST", "/api/restart", {"downtime": downtime})
        return result

    def reboot(self, downtime: float = 30) -> dict[str, Any]:
        """Reboot: every session (RDP too) gone, every port closed for ``downtime``."""
        result: dict[str, Any] = self.admin.call("POST", "/api/reboot", {"downtime": downtime})
        return result

    def rdp_end(self, session_id: int, errinfo: str | int = "ERRINFO_RPC_INITIATED_DISCONNECT",
                *, logoff: bool = False) -> dict[str, Any]:
        """End a Remote Desktop session's connection with a Set Error Info code by name
        (``host.rdp_end(3, errinfo="ERRINFO_LOGOFF_BY_USER")``): the session stays
        disconnected, or with ``logoff`` ends."""
        verb = "reset" if logoff else "disconnect"
        result: dict[str, Any] = self.admin.call(
            "POST", f"/api/sessions/{session_id}/{verb}", {"errinfo": errinfo})
        return result



class EmulatedHost(HostMethods):
    """One emulator process configured by a TOML file. A context manager, or ``close()``."""

    def __init__(self, edition: str = DEFAULT_EDITION, users: dict[str, str] | None = None,
                 shares: dict[str, str | os.PathLike[str]] | None = None, *,
                 virtual_clock: bool = True, host: str = "127.0.0.1",
                 **config: Any) -> None:
        get_edition(edition)  # fail fast on a typo, before a process starts
        self.edition = edition
        self._dir = Path(tempfile.mkdtemp(prefix="smbrdp-host-"))
        self.token = secrets.token_urlsafe(16)
        if shares is None:
            (self._dir / "public").mkdir()
            shares = {"public": self._dir / "public"}
        settings = {
            "edition": edition, "host": host, "smb_port": 0, "netbios_port": 0,
            "rdp_port": 0, "nbns_port": -1, "admin_port": 0, "admin_token": self.token,
            "virtual_clock": virtual_clock, "event_log": str(self._dir / "events.jsonl"),
            **config,
        }
        config_path = self._dir / "emulator.toml"
        write_config(config_path, settings, dict(users or {"user": "password"}),
                     {name: str(path) for name, path in shares.items()})
        try:
            self.process = ServerProcess(["serve", "--config", str(config_path)],
                                         stderr_path=self._dir / "stderr.log")
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self.listeners = self.process.listeners
        self.host = host
        self.admin = AdminClient(self.listeners["admin"], self.token)

    @property
    def admin_url(self) -> str:
        return self.listeners["admin"]

    def stderr(self) -> str:
        return self.process.stderr()

    # -- teardown -------------------------------------------------------------------------
    def close(self) -> list[str]:
        """Stop the process and remove its temporary directory: nothing is left behind.
        Returns the problems seen (a crash, a traceback) for the caller to report."""
        problems = self.process.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
        return problems

    def __enter__(self) -> EmulatedHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



class KeepAliveClient(AdminClient):
    """The admin client over one kept-alive HTTP/1.1 connection (a lab's hosts come and go
    a call each: a new TCP connection per call would be most of the cost). A connection
    the server closed is opened again once."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(url, token)
        self._netloc = urlsplit(self.url).netloc
        self._conn: http.client.HTTPConnection | None = None

    def call_raw(self, method: str, path: str, body: Any = None) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", "Authorization": f"Bearer {self.token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._netloc, timeout=self.timeout)
            try:
                self._conn.request(method, path, data, headers)
                response = self._conn.getresponse()
                answer = response.read()
                break
            except (OSError, http.client.HTTPException) as err:
                self._conn.close()
                self._conn = None
                if attempt == 2:
                    raise AdminError(f"cannot reach the admin API at {self.url}: {err}",
                                     1) from None
        if response.status >= 400:
            try:
                message = json.loads(answer)["error"]
            except (ValueError, KeyError, TypeError):
                message = response.reason
            raise AdminError(f"{message} ({response.status})")
        return answer

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class HostClient(AdminClient):
    """The admin API of one host of a lab: every path under /api/hosts/NAME, over the
    lab's client."""

    def __init__(self, lab_client: AdminClient, name: str) -> None:
        super().__init__(lab_client.url, lab_client.token)
        self.lab_client = lab_client
        self.prefix = f"/api/hosts/{name}"

    def call_raw(self, method: str, path: str, body: Any = None) -> bytes:
        return self.lab_client.call_raw(method, self.prefix + path.removeprefix("/api"), body)


class LabProcess:
    """`smbrdp-emu lab` with no host of its own, as a child process: hosts are added to it
    and removed through its admin API in milliseconds (the pytest plugin holds one per
    worker process)."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="smbrdp-lab-"))
        self.token = secrets.token_urlsafe(16)
        (self._dir / "lab.toml").write_text("", encoding="utf-8")
        self._names = itertools.count(1)
        try:
            self.process = ServerProcess(
                # "--admin-token=T": a generated token may begin with "-", which argparse
                # would take for an option.
                ["lab", str(self._dir / "lab.toml"), "--admin-port", "0",
                 f"--admin-token={self.token}"], stderr_path=self._dir / "stderr.log")
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self.admin = KeepAliveClient(self.process.listeners["admin"], self.token)

    def new_name(self) -> str:
        return f"T{os.getpid() % 10000:04d}X{next(self._names):05d}"[-15:]

    def stderr_size(self) -> int:
        try:
            return (self._dir / "stderr.log").stat().st_size
        except FileNotFoundError:
            return 0

    def stderr_since(self, offset: int) -> str:
        with open(self._dir / "stderr.log", "rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", "replace")

    def alive(self) -> bool:
        return self.process.proc.poll() is None

    def stop(self) -> list[str]:
        self.admin.close()
        problems = self.process.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
        return problems


class LabHost(HostMethods):
    """A host in a `LabProcess`: the same methods as `EmulatedHost`, made and removed with
    one admin call each. It starts empty: a new engine, users, shares, events, limits and
    clock, nothing carried over from the host before."""

    def __init__(self, lab: LabProcess, edition: str = DEFAULT_EDITION,
                 users: dict[str, str] | None = None,
                 shares: dict[str, str | os.PathLike[str]] | None = None, *,
                 virtual_clock: bool = True, host: str = "127.0.0.1", **config: Any) -> None:
        get_edition(edition)
        self.lab, self.edition, self.host = lab, edition, host
        self.name = lab.new_name()
        self._dir = Path(tempfile.mkdtemp(prefix="smbrdp-host-"))
        if shares is None:
            (self._dir / "public").mkdir()
            shares = {"public": self._dir / "public"}
        table = {"name": self.name, "address": host, "edition": edition, "smb_port": 0,
                 "netbios_port": 0, "rdp_port": 0, "nbns_port": -1,
                 "virtual_clock": virtual_clock,
                 "users": dict(users or {"user": "password"}),
                 "shares": {name: str(path) for name, path in shares.items()}, **config}
        self._stderr_at = lab.stderr_size()
        try:
            row = lab.admin.call("POST", "/api/hosts", table)
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise
        self.listeners = dict(row["listeners"])
        self.admin = HostClient(lab.admin, self.name)
        self.process = lab.process  # the lab's: shared by this worker's hosts
        self._closed = False

    def stderr(self) -> str:
        """What the lab wrote while this host was in it."""
        return self.lab.stderr_since(self._stderr_at)

    def close(self) -> list[str]:
        """Remove the host from the lab (its connections dropped, its timers cancelled)
        and its temporary directory; the problems seen while it lived (a traceback in the
        lab's log, the lab gone) for the caller to report."""
        problems: list[str] = []
        if self._closed:
            return problems
        self._closed = True
        try:
            self.lab.admin.call("DELETE", f"/api/hosts/{self.name}")
            self.lab.admin.call("GET", "/api/hosts")  # the removal's last callbacks ran
        except AdminError as exc:
            problems.append(f"the lab could not remove host {self.name}: {exc}")
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)
        if not self.lab.alive():
            problems.append("the lab process died")
        log = self.stderr()
        if "Traceback" in log:
            problems.append(f"the emulator wrote a traceback:\n{log[-3000:]}")
        return problems

    def __enter__(self) -> LabHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
