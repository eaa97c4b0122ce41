"""Windows-style event records, written as JSON lines and kept in memory for the admin API.

The log has Windows' shape: a maximum size, and when it is reached the oldest records are
overwritten ("Overwrite events as needed", EventLogMode.Circular: "each new incoming event
replaces the oldest event in the log"), so nothing a client sends can grow it without
bound. The default is Windows' default for the Security log since Vista, 20 MB (the
"Specify the maximum log file size (KB)" policy: "it defaults to 20 megabytes"; XP kept
512 KB). The count of overwritten records is kept (`dropped`, /metrics).
"""

from __future__ import annotations

import datetime
import json
import os
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
FAULT_EVENT_ID = 110  # the emulator's own: an injected fault fired (Windows logs none)

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
    "taken-over": (SECURITY_PROVIDER, DISCONNECT_EVENT_ID, LEVEL_INFORMATION,
                   "A session was disconnected from a Window Station (another user signed in)."),
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
    # A reboot ends every session (emulator.service_faults); Windows' own records for
    # logoffs at shutdown are not modelled (unknown which it writes for network logons).
    "shutdown": (EMULATOR_PROVIDER, 106, LEVEL_INFORMATION,
                 "A session ended: the host shut down."),
}


# 4625's Status and Sub Status for a logon refused with good credentials, by the status
# the client is answered (Microsoft's "4625(F): An account failed to log on": locked out is
# Status 0xC0000234, Sub Status 0x0; the table of codes: 0xC000006A bad password,
# 0xC000006E an account restriction, 0xC0000071 expired password, 0xC0000072 disabled).
LOGON_FAILURES: dict[int, tuple[int, int]] = {
    0xC000006D: (0xC000006D, 0xC000006A),  # STATUS_LOGON_FAILURE: as a bad password
    0xC0000234: (0xC0000234, 0x0),  # STATUS_ACCOUNT_LOCKED_OUT
    0xC0000071: (0xC000006E, 0xC0000071),  # STATUS_PASSWORD_EXPIRED
    0xC0000072: (0xC000006E, 0xC0000072),  # STATUS_ACCOUNT_DISABLED
}


def logon_failure(status: int | None) -> dict[str, str]:
    """A 4625 record's Status and SubStatus fields (hex, as Event Viewer shows them)."""
    if status is None:
        return {}
    main, sub = LOGON_FAILURES.get(status, (status, 0))
    return {"failure_status": f"0x{main:08x}", "sub_status": f"0x{sub:x}"}


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


DEFAULT_MAX_KB = 20480  # Windows' Security log since Vista: 20 MB
MIN_MAX_KB = 64  # the smallest log Windows XP's Event Viewer allows (sizes step by 64 KB)

# One record kept in memory: (POSIX time, event id, provider, its JSON line). The line is
# what the file holds and what the size counts; it is decoded only when a query wants it.
_Entry = tuple[float, int, str, str]


class EventLog:
    """Appends records to a log of at most ``max_bytes`` (the JSON lines' bytes), dropping
    the oldest as needed. Each record is flushed to the sink at once so nothing is lost on
    stop. A file sink given by path is kept under the same cap in two halves: PATH holds
    the newest records, PATH.1 the half before; when PATH would pass half the cap it
    becomes PATH.1 (the older PATH.1 is overwritten)."""

    def __init__(self, now: Callable[[], float], sink: IO[str] | None = None, *,
                 max_bytes: int = DEFAULT_MAX_KB * 1024,
                 limit_event_id: int = SRV_LIMIT_EVENT_ID, path: str | None = None) -> None:
        if max_bytes <= 0:
            raise ValueError("the event log's maximum size must be positive")
        self._now = now
        self._sink = sink
        self._path = path  # set when the sink is a file this log may rotate
        self._file_size = os.path.getsize(path) if path is not None else 0
        self.max_bytes = max_bytes
        self.limit_event_id = limit_event_id
        self._entries: deque[_Entry] = deque()
        self.size = 0  # bytes of the records kept in memory, at most max_bytes
        self.dropped = 0  # records overwritten (dropped oldest-first) since start

    @classmethod
    def to_path(cls, now: Callable[[], float], path: str | None, **kw: Any) -> EventLog:
        if path is None:
            return cls(now, **kw)
        if path == "-":
            return cls(now, sys.stdout, **kw)
        sink = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        return cls(now, sink, path=path, **kw)

    def record(self, *, provider: str, event_id: int, level: str, message: str,
               **data: Any) -> dict[str, Any]:
        if provider == "Srv" and event_id == SRV_LIMIT_EVENT_ID:
            event_id = self.limit_event_id
        now = self._now()
        rec = {"time": iso_time(now), "provider": provider, "id": event_id, "level": level,
               "message": message, **data}
        line = json.dumps(rec) + "\n"  # ASCII (non-ASCII is escaped): len() is the byte count
        self._entries.append((now, event_id, provider, line))
        self.size += len(line)
        while self.size > self.max_bytes:  # overwrite events as needed: oldest first
            _t, _id, _provider, old = self._entries.popleft()
            self.size -= len(old)
            self.dropped += 1
        if self._sink is not None:
            self._write(line)
        return rec

    def _write(self, line: str) -> None:
        assert self._sink is not None
        if self._path is not None:
            half = self.max_bytes // 2
            if len(line) > half:
                return  # larger than the file may hold: kept in memory only, while it fits
            if self._file_size + len(line) > half:
                self._rotate()
            self._file_size += len(line)
        self._sink.write(line)
        self._sink.flush()

    def _rotate(self) -> None:
        """PATH becomes PATH.1 (the older half is overwritten) and a new PATH starts."""
        assert self._sink is not None and self._path is not None
        self._sink.close()
        try:
            os.replace(self._path, self._path + ".1")
        except OSError:
            pass  # cannot rename: start PATH over instead (still under the cap)
        self._sink = open(self._path, "w", encoding="utf-8")  # noqa: SIM115
        self._file_size = 0

    @property
    def records(self) -> list[dict[str, Any]]:
        """Every record kept, oldest first."""
        return [json.loads(line) for _t, _id, _provider, line in self._entries]

    def query(self, *, event_id: int | None = None, since: float | None = None,
              provider: str | None = None) -> list[dict[str, Any]]:
        """Filter like Get-WinEvent -FilterHashtable @{Id=..; StartTime=..; ProviderName=..}."""
        return [json.loads(line) for t, eid, prov, line in self._entries
                if (event_id is None or eid == event_id)
                and (since is None or t >= since)
                and (provider is None or prov == provider)]

    def clear(self) -> None:
        """Forget the records kept in memory (the file and the dropped count stay)."""
        self._entries.clear()
        self.size = 0

    def close(self) -> None:
        if self._sink is not None and self._sink is not sys.stdout:
            self._sink.close()
        self._sink = None
