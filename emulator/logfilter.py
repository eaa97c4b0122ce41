"""Log observers between Twisted's log events and the operator's stderr.

When the process runs out of file descriptors, Twisted's listening port logs up to three
lines for every connection it has to refuse (``twisted.internet.tcp._accept``: the EMFILE
recovery closes each waiting client), and a traceback when it cannot re-reserve its spare
descriptor. A client flood then turns into a log flood. ``AcceptErrorThrottle`` passes
every other event through untouched and turns those into one line when the trouble
starts and one line per interval with the count, on the injected clock.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import ILogObserver, LogLevel, formatEvent
from zope.interface import implementer

from emulator.core.clock import ClockLike

ACCEPT_LOG_INTERVAL = 60.0  # seconds between two summary lines

# Twisted's own format strings (twisted/internet/tcp.py), matched exactly.
REFUSED_FORMATS = {  # each such event is one connection refused
    "EMFILE recovery: Closed socket from {address}",
    "Could not accept new connection ({acceptError})",
}
NOISE_FORMATS = {  # the bookkeeping around them: counted as nothing, shown as nothing
    "EMFILE encountered; releasing reserved file descriptor.",
    "Re-reserving EMFILE recovery file descriptor.",
    "Could not reserve EMFILE recovery file descriptor.",
    "Could not re-reserve EMFILE recovery file descriptor.",
}


@implementer(ILogObserver)
class AcceptErrorThrottle:
    def __init__(self, observer: Any, clock: ClockLike,
                 interval: float = ACCEPT_LOG_INTERVAL) -> None:
        self.observer = observer
        self.clock = clock
        self.interval = interval
        self.refused = 0  # in the current interval
        self.total = 0
        self._timer: Any = None

    def __call__(self, event: dict[str, Any]) -> None:
        fmt = event.get("log_format")
        if fmt not in REFUSED_FORMATS and fmt not in NOISE_FORMATS:
            self.observer(event)
            return
        if fmt in REFUSED_FORMATS:
            self.refused += 1
            self.total += 1
        if self._timer is None:
            # The first sign of trouble is shown at once, then the counts follow.
            self._emit(f"cannot accept connections ({_reason(event)}): refusing them; "
                       f"a count follows every {self.interval:g} s while it lasts")
            self._timer = self.clock.callLater(self.interval, self._flush)

    def _flush(self) -> None:
        self._timer = None
        if not self.refused:
            return  # quiet for a whole interval: the next trouble starts a new report
        self._emit(f"{self.refused} connections refused in the last {self.interval:g} s "
                   f"(descriptors exhausted; {self.total} in all)")
        self.refused = 0
        self._timer = self.clock.callLater(self.interval, self._flush)

    def _emit(self, text: str) -> None:
        self.observer({"log_format": "{text}", "text": text, "log_level": LogLevel.warn,
                       "log_namespace": "emulator.accept", "log_time": self.clock.seconds()})

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


def _reason(event: dict[str, Any]) -> str:
    error = event.get("acceptError")
    if error:
        return str(error)
    text = formatEvent(event)
    return "EMFILE" if "EMFILE" in text else text
