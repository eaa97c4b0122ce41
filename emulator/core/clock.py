"""The one clock every timer and timestamp goes through.

The engine and the protocols take an ``IReactorTime`` provider: the reactor in
production, ``twisted.internet.task.Clock`` in tests, or ``VirtualClock`` when
``serve --virtual-clock`` wants time to move only when told.
"""

from __future__ import annotations

import time
from typing import Any, Protocol
from collections.abc import Callable

from twisted.internet.task import Clock

__all__ = ["ClockLike", "OwnedClock", "VirtualClock"]


class ClockLike(Protocol):
    """The part of ``IReactorTime`` the engine uses, as a type mypy can check."""

    def seconds(self) -> float: ...

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any,
                  **kw: Any) -> Any: ...


class VirtualClock(Clock):
    """A ``task.Clock`` that starts at the wall-clock time, then moves only on ``advance``."""

    def __init__(self, start: float | None = None) -> None:
        super().__init__()
        self.rightNow = time.time() if start is None else start


class OwnedClock:
    """One host's view of a clock: it keeps every call it schedules until the call runs or
    is cancelled, so `cancel_all` (a host removed from its lab) leaves none behind on the
    reactor, and `pending` tells how many are left (tests, the lab's leak checks)."""

    def __init__(self, base: ClockLike) -> None:
        self.base = base
        self._calls: set[Any] = set()
        self._prune_at = 64

    def seconds(self) -> float:
        return self.base.seconds()

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any,
                  **kw: Any) -> Any:
        calls = self._calls
        holder: list[Any] = []

        def run() -> Any:
            calls.discard(holder[0])
            return callable(*args, **kw)

        call = self.base.callLater(delay, run)
        holder.append(call)
        calls.add(call)
        if len(calls) > self._prune_at:  # calls cancelled by their owners: forget them
            self._calls = calls = {c for c in calls if c.active()}
            self._prune_at = max(64, 2 * len(calls))
        return call

    @property
    def pending(self) -> int:
        return sum(1 for c in self._calls if c.active())

    def cancel_all(self) -> None:
        for call in self._calls:
            if call.active():
                call.cancel()
        self._calls = set()
