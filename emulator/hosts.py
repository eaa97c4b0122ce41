"""An emulated Windows host in a child process, driven through its admin API.

The pytest plugin, the scenario runner and the benchmarks use this one class. The
server runs in its own process (so blocking clients such as impacket or smbclient
work from a plain synchronous test) on ephemeral ports, with a virtual clock that
moves only on ``advance``.
"""

from __future__ import annotations

import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from emulator.admin.client import AdminClient
from emulator.editions import DEFAULT_EDITION, get_edition

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


class EmulatedHost:
    """One emulator process. Use as a context manager, or call ``close()``."""

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
            "admin_port": 0, "admin_token": self.token, "virtual_clock": virtual_clock,
            "event_log": str(self._dir / "events.jsonl"), **config,
        }
        if "rdp_port" in _config_keys():
            settings.setdefault("rdp_port", 0)
        config_path = self._dir / "emulator.toml"
        write_config(config_path, settings, dict(users or {"user": "password"}),
                     {name: str(path) for name, path in shares.items()})
        self._stderr = open(self._dir / "stderr.log", "w+", encoding="utf-8")  # noqa: SIM115
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "emulator", "serve", "--config", str(config_path)],
            stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            start_new_session=True)  # a signal aimed at the test run does not reach it early
        try:
            self.listeners = self._wait_ready()
        except BaseException:
            self.close()
            raise
        self.host = host
        self.admin = AdminClient(self.listeners["admin"], self.token)

    def _wait_ready(self) -> dict[str, str]:
        assert self._proc.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if select.select([self._proc.stdout], [], [], 0.1)[0]:
                line = self._proc.stdout.readline()
                if line.startswith("ready"):
                    return dict(tok.split("=", 1) for tok in line.split()[1:])
                if not line:
                    break
        raise RuntimeError(f"the emulator did not start: {self.stderr()[-2000:]}")

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

    @property
    def admin_url(self) -> str:
        return self.listeners["admin"]

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
        """End every session and restore the edition's limits and rules."""
        self.admin.call("POST", "/api/reset", {})

    def stderr(self) -> str:
        self._stderr.flush()
        return (self._dir / "stderr.log").read_text(encoding="utf-8", errors="replace")

    # -- teardown -------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the process and remove its temporary directory: nothing is left behind."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._stderr.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> EmulatedHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _config_keys() -> set[str]:
    from dataclasses import fields

    from emulator.config import Config

    return {f.name for f in fields(Config)}
