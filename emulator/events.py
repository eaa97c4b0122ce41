"""Windows-style event records, written as JSON lines and kept in memory for the admin API."""

from __future__ import annotations

import datetime
import json
import sys
from collections import deque
from typing import IO, Any
from collections.abc import Callable

# Event ids as admins know them. The "connection limit" id follows the field article
# admins copy (Srv 2003); netevent.h names 0xC00007D3 EVENT_SRV_CANT_CREATE_PROCESS.
SRV_LIMIT_EVENT_ID = 2003
LOGON_EVENT_ID = 4624
LOGON_FAILED_EVENT_ID = 4625
LOGOFF_EVENT_ID = 4634

LEVEL_INFORMATION = "Information"
LEVEL_WARNING = "Warning"
LEVEL_ERROR = "Error"


class EventLog:
    """Appends records; each one is flushed to the sink at once so nothing is lost on stop."""

    def __init__(self, now: Callable[[], float], sink: IO[str] | None = None,
                 keep: int = 10_000) -> None:
        self._now = now
        self._sink = sink
        self.records: deque[dict[str, Any]] = deque(maxlen=keep)

    @classmethod
    def to_path(cls, now: Callable[[], float], path: str | None) -> EventLog:
        if path is None:
            return cls(now)
        sink = sys.stdout if path == "-" else open(path, "a", encoding="utf-8")
        return cls(now, sink)

    def record(self, *, provider: str, event_id: int, level: str, message: str,
               **data: Any) -> dict[str, Any]:
        stamp = datetime.datetime.fromtimestamp(self._now(), datetime.UTC)
        rec = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "provider": provider,
            "id": event_id,
            "level": level,
            "message": message,
            **data,
        }
        self.records.append(rec)
        if self._sink is not None:
            self._sink.write(json.dumps(rec) + "\n")
            self._sink.flush()
        return rec

    def close(self) -> None:
        if self._sink is not None and self._sink is not sys.stdout:
            self._sink.close()
