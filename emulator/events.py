"""Windows-style event records, written as JSON lines and kept in memory for the admin API."""

from __future__ import annotations

import datetime
import json
import sys
from collections import deque
from typing import IO, Any
from collections.abc import Callable

SECURITY_PROVIDER = "Microsoft-Windows-Security-Auditing"
EMULATOR_PROVIDER = "smbrdp-emulator"

# Event ids as admins know them. The "connection limit" id follows the field article
# admins copy (Srv 2003); netevent.h names 0xC00007D3 EVENT_SRV_CANT_CREATE_PROCESS,
# and no primary source names an event for the 10/20-session limit. It is configurable.
SRV_LIMIT_EVENT_ID = 2003
TS_LIMIT_EVENT_ID = 1013  # TermService EVENT_CANNOT_ALLOW_CONCURRENT
LOGON_EVENT_ID = 4624
LOGON_FAILED_EVENT_ID = 4625
LOGOFF_EVENT_ID = 4634
RECONNECT_EVENT_ID = 4778
DISCONNECT_EVENT_ID = 4779

LEVEL_INFORMATION = "Information"
LEVEL_WARNING = "Warning"
LEVEL_ERROR = "Error"

# How each way a session ends is recorded: (provider, id, level, message). Windows has
# no event for autodisconnect or an admin's delete, so those carry the emulator's ids.
REASON_EVENTS: dict[str, tuple[str, int, str, str]] = {
    "failed-logon": (SECURITY_PROVIDER, LOGON_FAILED_EVENT_ID, LEVEL_WARNING,
                     "An account failed to log on."),
    "logoff": (SECURITY_PROVIDER, LOGOFF_EVENT_ID, LEVEL_INFORMATION,
               "An account was logged off."),
    "connection-closed": (SECURITY_PROVIDER, LOGOFF_EVENT_ID, LEVEL_INFORMATION,
                          "An account was logged off (the connection closed)."),
    "disconnect": (SECURITY_PROVIDER, DISCONNECT_EVENT_ID, LEVEL_INFORMATION,
                   "A session was disconnected from a Window Station."),
    "admin-disconnect": (SECURITY_PROVIDER, DISCONNECT_EVENT_ID, LEVEL_INFORMATION,
                         "A session was disconnected from a Window Station (tsdiscon)."),
    "idle-limit": (SECURITY_PROVIDER, DISCONNECT_EVENT_ID, LEVEL_INFORMATION,
                   "A session was disconnected: the idle session limit elapsed."),
    "autodisconnect": (EMULATOR_PROVIDER, 100, LEVEL_INFORMATION,
                       "An idle session was dropped by autodisconnect."),
    "null-session-expired": (EMULATOR_PROVIDER, 101, LEVEL_INFORMATION,
                             "A null session holding no open expired."),
    "admin-delete": (EMULATOR_PROVIDER, 102, LEVEL_WARNING,
                     "A session was deleted by an administrator (net session /delete)."),
    "admin-reset": (EMULATOR_PROVIDER, 103, LEVEL_WARNING,
                    "A session was reset by an administrator (rwinsta)."),
    "setup-timeout": (EMULATOR_PROVIDER, 104, LEVEL_WARNING,
                      "A session setup stalled and gave its slot back."),
    "setup-abandoned": (EMULATOR_PROVIDER, 105, LEVEL_INFORMATION,
                        "A client left before its logon completed; the slot is free."),
}


def iso_time(seconds: float) -> str:
    stamp = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> float:
    """ISO 8601 (a trailing Z is fine) or POSIX seconds."""
    try:
        return float(text)
    except ValueError:
        stamp = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=datetime.UTC)
        return stamp.timestamp()


class EventLog:
    """Appends records; each one is flushed to the sink at once so nothing is lost on stop."""

    def __init__(self, now: Callable[[], float], sink: IO[str] | None = None,
                 keep: int = 10_000, limit_event_id: int = SRV_LIMIT_EVENT_ID) -> None:
        self._now = now
        self._sink = sink
        self.limit_event_id = limit_event_id
        self.records: deque[dict[str, Any]] = deque(maxlen=keep)

    @classmethod
    def to_path(cls, now: Callable[[], float], path: str | None, **kw: Any) -> EventLog:
        if path is None:
            return cls(now, **kw)
        sink = sys.stdout if path == "-" else open(path, "a", encoding="utf-8")  # noqa: SIM115
        return cls(now, sink, **kw)

    def record(self, *, provider: str, event_id: int, level: str, message: str,
               **data: Any) -> dict[str, Any]:
        if provider == "Srv" and event_id == SRV_LIMIT_EVENT_ID:
            event_id = self.limit_event_id
        now = self._now()
        rec = {"time": iso_time(now), "provider": provider, "id": event_id, "level": level,
               "message": message, **data}
        rec["_t"] = now
        self.records.append(rec)
        if self._sink is not None:
            self._sink.write(json.dumps({k: v for k, v in rec.items() if k != "_t"}) + "\n")
            self._sink.flush()
        return rec

    def query(self, *, event_id: int | None = None, since: float | None = None,
              provider: str | None = None) -> list[dict[str, Any]]:
        """Filter like Get-WinEvent -FilterHashtable @{Id=..; StartTime=..; ProviderName=..}."""
        return [{k: v for k, v in r.items() if k != "_t"} for r in self.records
                if (event_id is None or r["id"] == event_id)
                and (since is None or r["_t"] >= since)
                and (provider is None or r["provider"] == provider)]

    def close(self) -> None:
        if self._sink is not None and self._sink is not sys.stdout:
            self._sink.close()
        self._sink = None
