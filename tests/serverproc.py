"""Start `smbrdp-emu serve` as a child process and read its ready line (shared by tests)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time


class ServerProcess:
    def __init__(self, args: list[str], *, prefix: list[str] | None = None,
                 timeout: float = 20.0, env: dict[str, str] | None = None) -> None:
        cmd = [*(prefix or []), sys.executable, "-m", "emulator", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.ready = self._read_ready(timeout)
        self.listeners = dict(tok.split("=", 1) for tok in self.ready.split()[1:])

    def _read_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith("ready"):
                    return line.strip()
                if not line and self.proc.poll() is not None:
                    break
        self.stop()
        raise RuntimeError(f"server did not get ready: {self.stderr_text}")

    def port(self, name: str) -> int:
        return int(self.listeners[name].rsplit(":", 1)[1])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr_text = self.proc.stderr.read() if self.proc.stderr else ""
        return self.proc.returncode

    stderr_text = ""


def run(args: list[str], prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(prefix or []), sys.executable, "-m", "emulator", *args],
                          capture_output=True, text=True, timeout=60, env=os.environ.copy())
