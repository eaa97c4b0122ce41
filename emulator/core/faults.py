"""Faults on demand: the table of a host's armed faults, and the one question protocols ask.

Sans-IO and protocol-neutral. A protocol core calls ``FaultTable.match(protocol, command,
...)`` where a request (or a point of a connection sequence) is about to be answered; the
table says which armed fault, if any, fires there, and counts it. What a fault *does* on
the wire (an NT status, a dropped connection, a late reply, an RDP errinfo) is the
protocol's job; the table only keeps the specs, their counts and their hits.

A fault matches a request when its protocol and command agree ("*" is any command) and
each of its optional filters (user, client address, share, path) equals the request's,
case-insensitively (a path filter may end with "*": a prefix). Of the matching requests
the first ``after`` are let through; the next ``count`` fire it (``count`` None: every
one). A spent fault stays listed, with its hits, until cleared.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from impacket import nt_errors

# Actions a fault may take instead of (or before) the normal answer. "status" answers
# with the fault's NT status; the rest are connection-level (see README "Faults").
ACTIONS = ("status", "drop", "reset", "truncate", "stall", "delay", "pending", "credits",
           "errinfo", "reactivate")
FILTERS = ("user", "client", "share", "path")
MAX_DELAY = 3600.0  # seconds: a late reply, not a timer left for hours

_STATUS_BY_NAME = {name: code for code, (name, _text) in nt_errors.ERROR_MESSAGES.items()}


class FaultError(ValueError):
    """A bad fault request; the message names the field (the admin API answers 400)."""


def status_code(value: Any) -> int:
    """An NT status from its name as impacket knows it ("STATUS_LOGON_FAILURE") or a
    number (0xC000006D, or its text "0xc000006d")."""
    if isinstance(value, bool):
        raise FaultError(f"status: {value!r} is not an NT status")
    if isinstance(value, int):
        code = value
    elif isinstance(value, str):
        text = value.strip()
        if text.upper() in _STATUS_BY_NAME:
            return _STATUS_BY_NAME[text.upper()]
        try:
            code = int(text, 0)
        except ValueError:
            raise FaultError(f"status: unknown NT status name {text[:60]!r}") from None
    else:
        raise FaultError(f"status: {type(value).__name__} is not an NT status")
    if not 0 <= code <= 0xFFFFFFFF:
        raise FaultError(f"status: {code} is outside 0..0xFFFFFFFF")
    return code


def status_name(code: int) -> str:
    found = nt_errors.ERROR_MESSAGES.get(code)
    return found[0] if found else f"0x{code:08X}"


@dataclass
class Fault:
    """One armed fault: what it matches, what it does, and what it has done."""

    id: int
    protocol: str
    command: str
    action: str
    status: int | None = None
    delay: float = 0.0
    credits: int | None = None
    errinfo: str | None = None
    count: int | None = 1
    after: int = 0
    user: str | None = None
    client: str | None = None
    share: str | None = None
    path: str | None = None
    seen: int = 0  # matching requests so far (the skipped ones too)
    hits: int = 0  # times it fired

    @property
    def spent(self) -> bool:
        return self.count is not None and self.hits >= self.count

    def matches(self, protocol: str, command: str, context: Mapping[str, str | None]) -> bool:
        if protocol != self.protocol or self.command not in ("*", command):
            return False
        for name in FILTERS:
            wanted = getattr(self, name)
            if wanted is None:
                continue
            got = (context.get(name) or "").lower()
            want = wanted.lower()
            if want.endswith("*") and name == "path":
                if not got.startswith(want[:-1]):
                    return False
            elif got != want:
                return False
        return True

    def to_dict(self) -> dict[str, Any]:
        row = {k: v for k, v in asdict(self).items() if v is not None}
        if self.status is not None:
            row["status"] = status_name(self.status)
            row["status_code"] = f"0x{self.status:08X}"
        row["spent"] = self.spent
        return row


@dataclass
class FaultTable:
    """A host's faults. ``commands`` maps each protocol the host serves to the command
    (or sequence point) names it accepts; ``on_fire(fault, command, context)`` is told of
    every firing (the host logs an event and counts a metric there); ``checks`` holds a
    protocol's own checks of a parsed fault (RDP: its actions, points and errinfo names),
    which raise ValueError with the reason."""

    commands: Mapping[str, Collection[str]]
    on_fire: Callable[[Fault, str, Mapping[str, str | None]], None] | None = None
    checks: Mapping[str, Callable[[Fault], None]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def add(self, spec: Mapping[str, Any]) -> Fault:
        """Validate a fault request (the admin API's JSON body, the CLI's or a scenario
        step's keys) and arm it."""
        fault = self._parse(spec)
        check = self.checks.get(fault.protocol)
        if check is not None:
            try:
                check(fault)
            except ValueError as exc:
                raise FaultError(str(exc)) from None
        self.faults.append(fault)
        return fault

    def _parse(self, spec: Mapping[str, Any]) -> Fault:
        if not isinstance(spec, Mapping):
            raise FaultError("a fault is an object of fields")
        known = {"protocol", "command", "action", "status", "delay", "credits", "errinfo",
                 "count", "after", *FILTERS}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise FaultError(f"unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
        protocol = spec.get("protocol")
        if protocol not in self.commands:
            served = ", ".join(sorted(self.commands)) or "none"
            raise FaultError(f"protocol: {protocol!r} is not served by this host ({served})")
        command = spec.get("command", "*")
        if not isinstance(command, str):
            raise FaultError("command: a name")
        command = command.upper()
        if command != "*" and command not in self.commands[protocol]:
            raise FaultError(f"command: unknown {protocol} command {command[:40]!r} (known: "
                             f"{', '.join(sorted(self.commands[protocol]))})")
        status = None if spec.get("status") is None else status_code(spec["status"])
        delay = _number(spec.get("delay", 0), "delay", 0.0, MAX_DELAY)
        credits = spec.get("credits")
        if credits is not None:
            credits = int(_number(credits, "credits", 1, 8192, integral=True))
        errinfo = spec.get("errinfo")
        if errinfo is not None and not isinstance(errinfo, str):
            raise FaultError("errinfo: a name (ERRINFO_...) or a number as text")
        action = spec.get("action")
        if action is None:  # the fields given say which
            action = ("status" if status is not None else "credits" if credits is not None
                      else "errinfo" if errinfo is not None else "delay" if delay else None)
            if action is None:
                raise FaultError("a fault needs an action, a status, credits, errinfo or a delay")
        if action not in ACTIONS:
            raise FaultError(f"action: unknown {action!r} (known: {', '.join(ACTIONS)})")
        if action == "status" and status is None:
            raise FaultError("action status: needs a status")
        if action == "credits" and credits is None:
            raise FaultError("action credits: needs credits")
        if action == "errinfo" and errinfo is None:
            raise FaultError("action errinfo: needs errinfo")
        if action in ("delay", "pending") and not delay:
            raise FaultError(f"action {action}: needs a delay in seconds")
        count = spec.get("count", 1)
        if count is not None:
            count = int(_number(count, "count", 1, 10**9, integral=True))
        after = int(_number(spec.get("after", 0), "after", 0, 10**9, integral=True))
        filters = {}
        for name in FILTERS:
            value = spec.get(name)
            if value is not None and (not isinstance(value, str) or not value):
                raise FaultError(f"{name}: a non-empty text")
            filters[name] = value
        return Fault(id=next(self._ids), protocol=protocol, command=command, action=action,
                     status=status, delay=float(delay), credits=credits, errinfo=errinfo,
                     count=count, after=after, **filters)

    def match(self, protocol: str, command: str, **context: str | None) -> Fault | None:
        """The fault that fires on this request, counted; None when none does. Every
        armed fault that matches sees the request (its ``after`` counts down), the first
        one not skipping it fires."""
        fired = None
        for fault in self.faults:
            if fault.spent or not fault.matches(protocol, command, context):
                continue
            fault.seen += 1
            if fired is None and fault.seen > fault.after:
                fault.hits += 1
                fired = fault
        if fired is not None and self.on_fire is not None:
            self.on_fire(fired, command, context)
        return fired

    def armed(self, protocol: str) -> bool:
        """Any fault left for this protocol (a cheap test before building a context)."""
        return any(f.protocol == protocol and not f.spent for f in self.faults)

    def remove(self, fault_id: int) -> Fault | None:
        for i, fault in enumerate(self.faults):
            if fault.id == fault_id:
                return self.faults.pop(i)
        return None

    def clear(self) -> int:
        gone = len(self.faults)
        self.faults.clear()
        return gone

    def rows(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self.faults]


def _number(value: Any, name: str, low: float, high: float, *, integral: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultError(f"{name}: a number")
    if integral and value != int(value):
        raise FaultError(f"{name}: a whole number")
    if not low <= value <= high:
        raise FaultError(f"{name}: {value} is outside {low:g}..{high:g}")
    return value
