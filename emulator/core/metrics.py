"""Prometheus text exposition (format 0.0.4) of the engine's sessions, limits and counters.

The counters mirror the Windows "Server" performance object (Sessions Timed Out,
Sessions Logged Off, Sessions Errored Out, Sessions Forced Off, Errors Logon), so
dashboards built for a real file server read the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from emulator.core.engine import ACTIVE, DISCONNECTED, IDLE, PENDING, SessionEngine

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATES = (PENDING, ACTIVE, IDLE, DISCONNECTED)

Sample = tuple[dict[str, str], float | int | None]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _value(value: float | int | None) -> str:
    # An unlimited limit is +Inf rather than a missing series: `used / limit` then reads
    # 0 instead of vanishing from a dashboard.
    if value is None:
        return "+Inf"
    return str(value) if isinstance(value, int) else repr(float(value))


def _family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{label_text}}} {_value(value)}" if labels
                     else f"{name} {_value(value)}")
    return lines


# The engine's counters that are not per protocol, as the Windows "Server" object names them.
SERVER_COUNTERS = (
    ("smbrdp_sessions_timed_out_total", "timed_out",
     "Sessions ended by a timer (autodisconnect, null-session expiry)."),
    ("smbrdp_sessions_logged_off_total", "logged_off", "Sessions ended by a client logoff."),
    ("smbrdp_sessions_errored_out_total", "errored_out",
     "Sessions ended by the connection dropping."),
    ("smbrdp_sessions_forced_off_total", "forced_off", "Sessions ended by an administrator."),
    ("smbrdp_logon_errors_total", "logon_errors",
     "Logons that failed or stalled (a setup timeout, a wrong password)."),
)


Family = tuple[str, str, str, list[Sample]]


def _families(engine: SessionEngine, host: dict[str, str]) -> list[Family]:
    """Every family of one engine; ``host`` ({"host": NAME} in a lab) labels each sample."""
    now, idle_after = engine.now(), engine.rules.idle_after
    counters = engine.counters
    # Per-protocol counters are keyed "denied:smb", "connections:rdp", ...
    protocols = sorted(set(engine.limits())
                       | {key.split(":", 1)[1] for key in counters if ":" in key})
    by_state = Counter((s.protocol, s.shown_state(now, idle_after)) for s in engine.sessions())

    def per_protocol(value: Callable[[str], float | int | None]) -> list[Sample]:
        return [({**host, "protocol": p}, value(p)) for p in protocols]

    families: list[Family] = [
        ("smbrdp_sessions", "gauge", "Sessions by protocol and state.",
         [({**host, "protocol": p, "state": st}, by_state[(p, st)])
          for p in protocols for st in STATES]),
        ("smbrdp_session_slots_used", "gauge",
         "Slots counted against the limit (differs from sessions when grouped by "
         "client computer).", per_protocol(engine.counted)),
        ("smbrdp_session_limit", "gauge",
         "The session limit in force; +Inf when unlimited.", per_protocol(engine.limit)),
        ("smbrdp_denied_total", "counter", "Sessions refused at the limit.",
         per_protocol(lambda p: counters[f"denied:{p}"])),
        ("smbrdp_connections_total", "counter", "Transport connections accepted.",
         per_protocol(lambda p: counters[f"connections:{p}"])),
    ]
    for name, key, help_text in SERVER_COUNTERS:
        families.append((name, "counter", help_text, [(dict(host), counters[key])]))
    faults = sorted(key for key in counters if key.startswith("fault:"))
    families.append(("smbrdp_faults_fired_total", "counter",
                     "Injected faults that fired, by kind (the fault's action).",
                     [({**host, "kind": key.split(":", 1)[1]}, counters[key]) for key in faults]))
    events = engine.events
    families += [
        ("smbrdp_events_dropped_total", "counter",
         "Event records overwritten because the event log reached its maximum size.",
         [(dict(host), events.dropped)]),
        ("smbrdp_event_log_bytes", "gauge", "Bytes of the event records kept.",
         [(dict(host), events.size)]),
        ("smbrdp_event_log_max_bytes", "gauge", "The event log's maximum size.",
         [(dict(host), events.max_bytes)]),
    ]
    return families


def render(engine: SessionEngine, host: str | None = None) -> str:
    """One engine's metrics (with a ``host`` label when named)."""
    return render_hosts([(host, engine)])


def render_hosts(engines: list[tuple[str | None, SessionEngine]]) -> str:
    """A lab's metrics: each family once, a sample per host labelled ``host="NAME"``."""
    merged: dict[str, Family] = {}
    for name, engine in engines:
        for family, kind, help_text, samples in _families(
                engine, {"host": name} if name is not None else {}):
            merged.setdefault(family, (family, kind, help_text, []))[3].extend(samples)
    lines: list[str] = []
    for family, kind, help_text, samples in merged.values():
        lines += _family(family, kind, help_text, samples)
    return "\n".join(lines) + "\n" if lines else ""
