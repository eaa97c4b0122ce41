"""Runnable scenarios: a TOML file of steps, each with its expected outcome.

A scenario starts its own emulated host (a child process with a virtual clock) and
plays the story with real client code: impacket for SMB, the admin API for what an
administrator does. Each step prints what was expected and what was observed.

    name = "xp-pro"
    title = "XP Professional: the eleventh computer gets System error 71"
    edition = "xp-pro"
    [users]
    alice = "Passw0rd!"
    [[steps]]
    do = "smb_logon"
    clients = "PC01..PC10"
    expect = "admitted"
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from impacket import nmb, nt_errors
from impacket.smbconnection import SessionError, SMBConnection

from emulator.admin.client import AdminError
from emulator.core.editions import get_edition
from emulator.harness.fault_steps import FAULT_ACTIONS, client_error
from emulator.harness.hosts import EmulatedHost
from emulator.harness.netbios_smb import NetBIOSSMBConnection

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "scenarios"
FILE_GENERIC_READ_WRITE = 0x0012019F


class ScenarioError(ValueError):
    """The scenario file itself is wrong (not the emulator's behaviour)."""


@dataclass
class StepResult:
    number: int
    say: str
    expected: str
    observed: str

    @property
    def passed(self) -> bool:
        return _same(self.expected, self.observed)


@dataclass
class Scenario:
    path: Path
    name: str
    title: str
    edition: str
    users: dict[str, str]
    config: dict[str, Any]
    steps: list[dict[str, Any]]

    @classmethod
    def load(cls, path: Path) -> Scenario:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ScenarioError(f"{path}: {exc}") from None
        try:
            return cls(path, data.get("name", path.stem), data["title"], data["edition"],
                       data.get("users", {"alice": "Passw0rd!"}), data.get("config", {}),
                       data["steps"])
        except KeyError as exc:
            raise ScenarioError(f"{path}: missing {exc}") from None


class RdpClients:
    """Live RDP connections held by a scenario: aardwolf (a real client, NLA or TLS) in a
    background asyncio loop, or the project's own TLS test client for a console request
    (aardwolf cannot ask for one) and for hosts whose TLS stops at 1.0 (2003-era, 7:
    aardwolf's Python ssl context starts at TLS 1.2)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.held: dict[str, Any] = {}

    def connect(self, label: str, host: str, port: int, user: str, password: str,
                console: bool, legacy_tls: bool = False) -> None:
        if console or legacy_tls:
            from emulator.harness.rdp_client import RDPTestClient

            client = RDPTestClient(host, port)
            client.negotiate()
            client.logon(user, password, console=console)
            self.held[label] = client
            return
        self.held[label] = asyncio.run_coroutine_threadsafe(
            self._aardwolf(f"rdp+ntlm-password://{user}:{password}@{host}:{port}"),
            self.loop).result(30)

    async def _aardwolf(self, url: str) -> Any:
        from aardwolf.commons.factory import RDPConnectionFactory
        from aardwolf.commons.iosettings import RDPIOSettings

        settings = RDPIOSettings()
        settings.channels = []
        settings.clipboard_use_pyperclip = False
        conn = RDPConnectionFactory.from_url(url, settings).get_connection(settings)
        _, err = await conn.connect()
        if err is not None:
            raise err
        return conn

    def close(self, label: str) -> None:
        """The user closes the window: TCP goes, no logoff."""
        client = self.held.pop(label)
        if hasattr(client, "terminate"):
            asyncio.run_coroutine_threadsafe(client.terminate(), self.loop).result(30)
        else:
            client.close()

    def shutdown(self) -> None:
        for label in list(self.held):
            try:
                self.close(label)
            except Exception:  # noqa: S110 - the host is going away anyway
                pass
        # aardwolf leaves reader tasks behind: end them before the loop goes.
        asyncio.run_coroutine_threadsafe(_cancel_tasks(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def _cancel_tasks() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class Run:
    """The state of one scenario run: the host and the clients it holds."""

    host: EmulatedHost
    users: dict[str, str]
    smb: dict[str, SMBConnection] = field(default_factory=dict)
    rdp: RdpClients | None = None
    copies: dict[str, Any] = field(default_factory=dict)  # background copies (fault_steps)
    arc: dict[str, Any] = field(default_factory=dict)  # RDP clients keeping a reconnect cookie

    def default_user(self) -> tuple[str, str]:
        return next(iter(self.users.items()))

    def rdp_clients(self) -> RdpClients:
        if self.rdp is None:
            self.rdp = RdpClients()
        return self.rdp

    def wait(self, check: Callable[[], str | None], timeout: float = 15.0) -> str:
        """Poll the host (real time: the client and the server talk meanwhile)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(0.05)
        return "no outcome"


def expand_clients(spec: str | list[str]) -> list[str]:
    """"PC01..PC10" -> PC01, PC02 ... PC10 (the width of the first number is kept)."""
    if isinstance(spec, list):
        return spec
    m = re.fullmatch(r"(.*?)(\d+)\.\.(.*?)(\d+)", spec)
    if not m:
        return [spec]
    prefix, first, _, last = m.groups()
    return [f"{prefix}{n:0{len(first)}d}" for n in range(int(first), int(last) + 1)]


def status_name(status: int) -> str:
    name = nt_errors.ERROR_MESSAGES.get(status, (f"0x{status:08X}",))[0]
    return f"{name} (0x{status:08X})"


def _same(expected: str, observed: str) -> bool:
    """An expectation naming a status by name or by number matches either spelling."""
    e, o = expected.strip().lower(), observed.strip().lower()
    return e == o or (e != "" and (e in o.split(" ") or f"({e})" in o.split(" ")))


# -- actions: each returns the observed outcome as text ------------------------------------
def _smb_logon(run: Run, step: dict[str, Any]) -> str:
    """Log on from each named workstation. A name already holding a connection retries on
    it (a refused client may); with `as_new_connections` it opens another connection
    under the same name (held as NAME#2, NAME#3, ...)."""
    outcomes = []
    user = step.get("user", run.default_user()[0])
    password = step.get("password", run.users.get(user, ""))
    if step.get("anonymous"):
        user, password = "", ""
    for client in expand_clients(step.get("clients", step.get("client", "PC"))):
        label = client
        if step.get("as_new_connections"):
            label = next(f"{client}#{n}" for n in itertools.count(2)
                         if f"{client}#{n}" not in run.smb)
        conn = run.smb.get(label)
        try:
            if conn is not None:  # a refused client retries on its TCP connection...
                try:
                    conn.login(user, password)
                except (nmb.NetBIOSError, OSError):  # ...unless the server closed it (an
                    conn = None  # unauthenticated connection times out; a restart): reconnect
            if conn is None:
                run.smb.pop(label, None)
                conn = run.smb[label] = _computer(run, client)
                conn.login(user, password)
        except SessionError as err:
            outcomes.append(status_name(err.getErrorCode()))
            continue
        except (nmb.NetBIOSError, OSError) as exc:  # nothing listens (a restart's downtime)
            outcomes.append(client_error(exc))
            continue
        outcomes.append("admitted")
    return _summarise(outcomes)


def _computer(run: Run, client: str) -> SMBConnection:
    """A connection from the computer named ``client``. Windows names a session by the
    client's address over direct TCP, so every "computer" of a scenario (all on loopback)
    would be one; over the NetBIOS session service it is the calling name, as a real
    office's PCs would show in `net session`."""
    port = run.host.netbios_port
    if port is None:
        return SMBConnection(run.host.host, run.host.host, myName=client,
                             sess_port=run.host.smb_port)
    return NetBIOSSMBConnection(run.host.host, run.host.host, myName=client, sess_port=port)


def _smb_logoff(run: Run, step: dict[str, Any]) -> str:
    for client in expand_clients(step.get("clients", step.get("client", ""))):
        run.smb.pop(client).logoff()
    return "done"


def _smb_close(run: Run, step: dict[str, Any]) -> str:
    """The user closes the window: the TCP connection goes, no LOGOFF is sent."""
    for client in expand_clients(step.get("clients", step.get("client", ""))):
        run.smb.pop(client).close()
    return "done"


def _smb_open_pipe(run: Run, step: dict[str, Any]) -> str:
    outcomes = []
    for client in expand_clients(step.get("clients", step.get("client", ""))):
        conn = run.smb[client]
        try:
            tid = conn.connectTree("IPC$")
            conn.openFile(tid, "\\" + step["pipe"],
                          desiredAccess=FILE_GENERIC_READ_WRITE)  # what a print client asks
            outcomes.append("opened")
        except SessionError as err:
            outcomes.append(status_name(err.getErrorCode()))
    return _summarise(outcomes)


def _net_session_delete(run: Run, step: dict[str, Any]) -> str:
    """`net session \\\\CLIENT /delete`."""
    try:
        answer = run.host.admin.call("POST", "/api/sessions/delete", {"client": step["client"]})
    except AdminError:  # the API answers 404 when the client has no session
        return "0 deleted"
    return f"{len(answer['deleted'])} deleted"


def _rdp_logon(run: Run, step: dict[str, Any]) -> str:
    """A Remote Desktop logon; observed through the engine: admitted (a live session of
    this user) or refused (the limit event naming this user)."""
    user = step["user"]
    password = step.get("password", run.users.get(user, ""))
    port = run.host.rdp_port
    if port is None:
        return "no RDP host"
    denials_before = len(_rdp_denials(run, user))
    try:
        legacy_tls = get_edition(run.host.edition).rdp_tls_versions[1] == "1.0"
        run.rdp_clients().connect(step.get("as", user), run.host.host, port, user, password,
                                  bool(step.get("console")), legacy_tls)
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"

    def outcome() -> str | None:
        if len(_rdp_denials(run, user)) > denials_before:
            return "refused"
        live = [s for s in run.host.sessions("rdp")
                if s["user"].lower() == user.lower() and s["state"] in ("active", "idle")]
        return "admitted" if live else None

    return run.wait(outcome)


def _rdp_denials(run: Run, user: str) -> list[dict[str, Any]]:
    return [e for e in run.host.events() if e.get("protocol") == "rdp"
            and e.get("outcome") == "denied" and e.get("user", "").lower() == user.lower()]


def _rdp_close(run: Run, step: dict[str, Any]) -> str:
    user = step["user"]
    run.rdp_clients().close(step.get("as", user))

    def disconnected() -> str | None:
        states = [s["state"] for s in run.host.sessions("rdp") if s["user"] == user]
        return "disconnected" if "disconnected" in states else None

    return run.wait(disconnected)


def _rwinsta(run: Run, step: dict[str, Any]) -> str:
    """`rwinsta` on every RDP session of a user: a reset logs it off and frees the slot."""
    ids = [s["id"] for s in run.host.sessions("rdp") if s["user"].lower() == step["user"].lower()]
    for session_id in ids:
        run.host.admin.call("POST", f"/api/sessions/{session_id}/reset", {})
    return f"{len(ids)} reset"


def _set_rules(run: Run, step: dict[str, Any]) -> str:
    run.host.admin.call("PATCH", "/api/rules", step["rules"])
    return "done"


def _set_limit(run: Run, step: dict[str, Any]) -> str:
    run.host.set_limit(step["protocol"], step["limit"])
    return "done"


def _advance(run: Run, step: dict[str, Any]) -> str:
    run.host.advance(step["seconds"])
    return "done"


def _count_sessions(run: Run, step: dict[str, Any]) -> str:
    sessions = [s for s in run.host.sessions(step.get("protocol"))
                if step.get("state") in (None, s["state"])]
    return f"{len(sessions)} sessions"


def _count_events(run: Run, step: dict[str, Any]) -> str:
    return f"{len(run.host.events(step['id']))} events"


def _metric(run: Run, step: dict[str, Any]) -> str:
    """The value of one Prometheus sample, e.g. metric = 'smbrdp_denied_total{protocol="smb"}'
    (the host's own label, which every sample carries, left out)."""
    text = run.host.admin.call_text("GET", "/metrics")
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if re.sub(r'host="[^"]*",?', "", key).replace("{}", "") == step["metric"]:
            return value
    return "absent"


ACTIONS: dict[str, Callable[[Run, dict[str, Any]], str]] = {
    "smb_logon": _smb_logon,
    "smb_logoff": _smb_logoff,
    "smb_close": _smb_close,
    "smb_open_pipe": _smb_open_pipe,
    "net_session_delete": _net_session_delete,
    "rdp_logon": _rdp_logon,
    "rdp_close": _rdp_close,
    "rwinsta": _rwinsta,
    "set_rules": _set_rules,
    "set_limit": _set_limit,
    "advance": _advance,
    "count_sessions": _count_sessions,
    "count_events": _count_events,
    "metric": _metric,
    **FAULT_ACTIONS,
}


def _summarise(outcomes: list[str]) -> str:
    """"admitted" x10 reads as "admitted"; a mix lists each outcome with its count."""
    if len(set(outcomes)) == 1:
        return outcomes[0]
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o] = counts.get(o, 0) + 1
    return ", ".join(f"{n} {o}" for o, n in counts.items())


def run_scenario(scenario: Scenario, report: Callable[[StepResult], None] | None = None
                 ) -> list[StepResult]:
    for i, step in enumerate(scenario.steps, 1):
        if step.get("do") not in ACTIONS:
            raise ScenarioError(f"{scenario.path}: step {i}: unknown action {step.get('do')!r}"
                                f" (known: {', '.join(ACTIONS)})")
    results = []
    with EmulatedHost(scenario.edition, scenario.users, **scenario.config) as host:
        run = Run(host, scenario.users)
        try:
            for i, step in enumerate(scenario.steps, 1):
                try:
                    observed = ACTIONS[step["do"]](run, step)
                except Exception as exc:  # a client error is an observation, not a crash
                    observed = f"error: {type(exc).__name__}: {exc}"
                result = StepResult(i, step.get("say", step["do"]), str(step.get("expect",
                                                                                  "done")),
                                    observed)
                results.append(result)
                if report:
                    report(result)
        finally:
            for conn in run.smb.values():
                try:
                    conn.close()
                except Exception:  # noqa: S110 - the host is going away anyway
                    pass
            if run.rdp is not None:
                run.rdp.shutdown()
            for held in run.arc.values():
                held["client"].close()
    return results


def find_scenarios(directory: Path = SCENARIO_DIR) -> list[Scenario]:
    return [Scenario.load(p) for p in sorted(directory.glob("*.toml"))]


def resolve(name_or_file: str, directory: Path = SCENARIO_DIR) -> Scenario:
    path = Path(name_or_file)
    if path.suffix == ".toml" and path.exists():
        return Scenario.load(path)
    for scenario in find_scenarios(directory):
        if scenario.name == name_or_file:
            return scenario
    raise ScenarioError(f"no scenario {name_or_file!r} in {directory}")


def describe(scenarios: list[Scenario]) -> str:
    return json.dumps([{"name": s.name, "title": s.title, "edition": s.edition,
                        "steps": len(s.steps), "file": str(s.path)} for s in scenarios],
                      indent=2)
