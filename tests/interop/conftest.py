"""Fixtures for the interop suite: start the emulator as a real subprocess.

Every test in this directory talks to the server only through unmodified
third-party clients (smbclient, impacket, smbprotocol, pysmb, nmap).  The
``emulator`` fixture is a factory::

    def test_x(emulator):
        emu = emulator("xp-home")
        conn = SMBConnection(emu.host, emu.host, sess_port=emu.smb_port)

It starts ``smbrdp-emu serve`` with ports 0, waits (bounded) for the
``ready ...`` line, and on teardown sends SIGTERM and fails the test if the
server wrote a Python traceback to stderr or died during the test.

Environment knobs:

* ``CI`` -- when set (anything but ``""``, ``0``, ``false``, ``no``), a missing
  client program or library is a failure instead of a skip.
* ``SMBRDP_EMU`` -- command used to start the server (split with shlex),
  default: the ``smbrdp-emu`` console script, else ``python -m emulator``.
* ``SMBRDP_EMU_READY_TIMEOUT`` -- seconds to wait for the ready line (20).
"""

from __future__ import annotations

import importlib
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from collections.abc import Callable, Iterable, Iterator, Mapping

import pytest

from emulator.harness.hosts import ServerProcess, StartError

HOST = "127.0.0.1"
PASSWORD = "Passw0rd!"
DEFAULT_USERS: dict[str, str] = {"alice": PASSWORD, "bob": "B0b-s3cret"}
READY_TIMEOUT = float(os.environ.get("SMBRDP_EMU_READY_TIMEOUT", "20"))
STOP_TIMEOUT = 10.0

STATUS_REQUEST_NOT_ACCEPTED = 0xC00000D0
STATUS_LOGON_FAILURE = 0xC000006D

# SMB2 dialect revisions, lowest first.
DIALECTS = (0x0202, 0x0210, 0x0300, 0x0302, 0x0311)
SMBCLIENT_PROTOCOL = {
    0x0202: "SMB2_02",
    0x0210: "SMB2_10",
    0x0300: "SMB3_00",
    0x0302: "SMB3_02",
    0x0311: "SMB3_11",
}


@dataclass(frozen=True)
class Edition:
    name: str
    smb_limit: int | None  # None = unlimited
    max_dialect: int  # the SMB2 cap (on SMB1-only editions: with ``--no-smb1``)
    smb2: bool = True  # False: SMB1 only by default (XP, 2003, WHS)

    @property
    def smb2_args(self) -> list[str]:
        """Serve flags that make the edition speak SMB2 (SMB1-only ones: SMB1 off)."""
        return [] if self.smb2 else ["--no-smb1"]

    @property
    def dialects(self) -> tuple[int, ...]:
        return tuple(d for d in DIALECTS if d <= self.max_dialect)


EDITIONS: dict[str, Edition] = {
    e.name: e
    for e in (
        Edition("xp-home", 5, 0x0202, smb2=False),
        Edition("xp-pro", 10, 0x0202, smb2=False),
        Edition("win7", 20, 0x0210),
        Edition("win10", 20, 0x0311),
        Edition("win11", 20, 0x0311),
        Edition("whs", None, 0x0202, smb2=False),
        Edition("server-2003", None, 0x0202, smb2=False),
        Edition("server-2022", None, 0x0311),
    )
}


def samba_smb1_args(edition: str) -> list[str]:
    """Samba's tools (smbclient, rpcclient, net) need NT1 allowed to reach an SMB1-only
    edition at all (their default minimum is SMB2_02), and IPC$ signing relaxed: they
    require it on IPC$ by default, and this server does not sign SMB1 (README)."""
    known = EDITIONS.get(edition)
    if known is None or known.smb2:
        return []
    return ["-m", "NT1", "--option=client min protocol=NT1", "--option=client ipc signing=auto"]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _missing(what: str) -> NoReturn:
    if in_ci():
        pytest.fail(f"{what} is not installed, and CI is set (CI installs every client)")
    pytest.skip(f"{what} is not installed (set CI=true to turn this skip into a failure)")


def require_binary(name: str) -> str:
    """Absolute path of a client program; skip (or fail under CI) if absent."""
    path = shutil.which(name)
    if path is None:
        _missing(f"client program {name!r}")
    return path


def require_file(path: Path, what: str) -> Path:
    """A file that scripts/install-test-deps fetches; skip (or fail under CI) if absent."""
    if not path.is_file():
        _missing(f"{what} ({path})")
    return path


def require_module(name: str) -> Any:
    """Import a client library; skip (or fail under CI) if absent."""
    try:
        return importlib.import_module(name)
    except ImportError:
        _missing(f"Python client library {name!r}")


XVFB_SIZE = "1280x1024"  # the screen the RDP client tests draw on


@pytest.fixture(scope="module")
def xvfb_screen() -> Iterator[Callable[[str], str]]:
    """A factory of X displays: ``xvfb_screen("4160x4160")`` starts an Xvfb with one 24-bit
    screen of that size and returns its display (":N"). Each size starts once per module;
    all stop at the module's end."""
    exe = require_binary("Xvfb")
    started: dict[str, tuple[subprocess.Popen[bytes], str]] = {}

    def start(size: str) -> str:
        if size in started:
            return started[size][1]
        for number in random.sample(range(40, 700), 40):
            if not os.path.exists(f"/tmp/.X{number}-lock") and \
                    not os.path.exists(f"/tmp/.X11-unix/X{number}"):
                break
        proc = subprocess.Popen([exe, f":{number}", "-screen", "0", f"{size}x24", "-nolisten",
                                 "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(f"/tmp/.X11-unix/X{number}"):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"Xvfb :{number} did not start")
            time.sleep(0.05)
        started[size] = (proc, f":{number}")
        return f":{number}"

    yield start
    for proc, _display in started.values():
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def xvfb(xvfb_screen: Callable[[str], str]) -> str:
    """The module's X display, XVFB_SIZE."""
    return xvfb_screen(XVFB_SIZE)


def server_command() -> list[str]:
    override = os.environ.get("SMBRDP_EMU")
    if override:
        return shlex.split(override)
    exe = shutil.which("smbrdp-emu")
    if exe:
        return [exe]
    return [sys.executable, "-m", "emulator"]


def parse_ready_line(line: str) -> dict[str, tuple[str, int]]:
    """``ready smb=127.0.0.1:4455 netbios=127.0.0.1:1399 ...`` -> {name: (host, port)}.

    Tokens that are not ``key=host:port`` are ignored, so later additions
    (``rdp=``, ``admin=``, free-form words) do not break the parser.
    """
    listeners: dict[str, tuple[str, int]] = {}
    for token in line.split()[1:]:
        key, sep, value = token.partition("=")
        if not sep:
            continue
        value = value.split("://", 1)[-1]  # admin=http://HOST:PORT
        host, colon, port = value.rpartition(":")
        if not colon or not port.isdigit():
            continue
        listeners[key] = (host.strip("[]"), int(port))
    return listeners


@dataclass
class EmulatorProcess:
    edition: str
    users: dict[str, str]
    shares: dict[str, Path]
    workdir: Path
    command: list[str]
    extra_args: list[str] = field(default_factory=list)
    process: ServerProcess | None = None
    listeners: dict[str, tuple[str, int]] = field(default_factory=dict)
    ready_line: str = ""
    stdout_lines: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"<emulator {self.edition} {self.ready_line or 'not ready'}>"

    # -- addresses -------------------------------------------------------
    @property
    def host(self) -> str:
        return self.listeners["smb"][0]

    @property
    def smb_port(self) -> int:
        return self.listeners["smb"][1]

    @property
    def netbios_port(self) -> int:
        return self.listeners["netbios"][1]

    @property
    def admin_url(self) -> str:
        """``http://HOST:PORT`` of the admin API (needs ``serve --admin-port``)."""
        host, port = self.listeners["admin"]
        return f"http://{host}:{port}"

    @property
    def share_dir(self) -> Path:
        """Directory behind the ``docs`` share (or the first share)."""
        if "docs" in self.shares:
            return self.shares["docs"]
        return next(iter(self.shares.values()))

    @property
    def info(self) -> Edition:
        return EDITIONS[self.edition]

    @property
    def event_log(self) -> Path:
        return self.workdir / "events.jsonl"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / "stderr.txt"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    # -- event log -------------------------------------------------------
    def events(self, **match: Any) -> list[dict[str, Any]]:
        """Parsed event log; keyword arguments filter on equal field values."""
        try:
            text = self.event_log.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out = []
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines) - 1:  # last line still being written
                    continue
                raise AssertionError(f"event log line {i + 1} is not JSON: {line!r}") from None
            if all(event.get(k) == v for k, v in match.items()):
                out.append(event)
        return out

    def wait_events(self, count: int, timeout: float = 5.0, **match: Any) -> list[dict[str, Any]]:
        """Poll the event log until ``count`` events match (or time out)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.events(**match)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def stderr(self) -> str:
        return self.process.stderr() if self.process is not None else ""

    # -- life cycle (the shared harness: emulator.harness.hosts.ServerProcess) ---
    def start(self) -> None:
        args = ["serve", "--edition", self.edition, "--host", HOST, "--smb-port", "0",
                "--netbios-port", "0", "--rdp-port", "0", "--event-log", str(self.event_log)]
        for user, password in self.users.items():
            args += ["--user", f"{user}:{password}"]
        for name, path in self.shares.items():
            args += ["--share", f"{name}={path}"]
        args += self.extra_args
        try:
            self.process = ServerProcess(args, command=self.command, cwd=self.workdir,
                                         stderr_path=self.stderr_path,
                                         env=dict(os.environ, PYTHONUNBUFFERED="1"),
                                         timeout=READY_TIMEOUT)
        except StartError as exc:
            pytest.fail(str(exc))
        self.ready_line = self.process.ready_line
        self.stdout_lines = self.process.stdout_lines
        self.listeners = parse_ready_line(self.ready_line)
        missing = {"smb", "netbios"} - set(self.listeners)
        if missing:
            self.stop()
            pytest.fail(f"ready line names no {sorted(missing)} listener: {self.ready_line!r}")

    def stop(self) -> list[str]:
        """Stop the server; return the problems found (crash, traceback)."""
        if self.process is None:
            return []
        return [f"{self.edition}: {p}" for p in self.process.stop(STOP_TIMEOUT)]


Factory = Callable[..., EmulatorProcess]


@pytest.fixture
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterable[Factory]:
    """Factory: ``emulator(edition="win10", users=None, shares=None, args=())``.

    ``users`` maps user -> password (default alice/Passw0rd! and bob);
    ``shares`` maps share name -> directory, or None for a fresh temp dir
    (default: one share ``docs``); ``args`` are extra ``serve`` flags.
    """
    started: list[EmulatorProcess] = []

    def start(
        edition: str = "win10",
        users: Mapping[str, str] | None = None,
        shares: Mapping[str, str | Path | None] | None = None,
        args: Iterable[str] = (),
    ) -> EmulatorProcess:
        workdir = tmp_path_factory.mktemp(f"emu-{edition}")
        share_map: dict[str, Path] = {}
        for name, path in (shares if shares is not None else {"docs": None}).items():
            if path is None:
                path = workdir / "shares" / name
                path.mkdir(parents=True)
            share_map[name] = Path(path)
        srv = EmulatorProcess(
            edition=edition,
            users=dict(users if users is not None else DEFAULT_USERS),
            shares=share_map,
            workdir=workdir,
            command=server_command(),
            extra_args=list(args),
        )
        started.append(srv)
        srv.start()
        return srv

    yield start

    problems: list[str] = []
    for srv in started:
        problems += srv.stop()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# -- smbclient (Samba's command line client) ----------------------------


@pytest.fixture
def smbclient_conf(tmp_path: Path) -> Path:
    """An empty smb.conf so the host's /etc/samba/smb.conf cannot interfere."""
    conf = tmp_path / "client-smb.conf"
    conf.write_text("[global]\n")
    return conf


def run_smbclient(
    emu: EmulatorProcess,
    conf: Path,
    *args: str,
    share: str = "docs",
    user: str | None = "alice",
    password: str | None = None,
    commands: str | None = None,
    protocol: int | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run ``smbclient //HOST/SHARE -p PORT ...``; stdout and stderr are merged.

    ``protocol`` pins both ``client min protocol`` and ``client max protocol``
    to one dialect, so a successful run proves that dialect was negotiated.
    ``user=None`` means anonymous (``-N``).
    """
    exe = require_binary("smbclient")
    cmd = [exe, f"//{emu.host}/{share}", "-p", str(emu.smb_port), "--configfile", str(conf)]
    if user is None:
        cmd.append("-N")
    else:
        pw = emu.users.get(user, "") if password is None else password
        cmd += ["-U", f"{user}%{pw}"]
    if protocol is not None:
        name = SMBCLIENT_PROTOCOL[protocol]
        cmd += [
            "-m",
            name,
            f"--option=client min protocol={name}",
            f"--option=client max protocol={name}",
        ]
    cmd += list(args)
    if commands is not None:
        cmd += ["-c", commands]
    return subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )
