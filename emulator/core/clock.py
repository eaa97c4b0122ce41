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

__all__ = ["ClockLike", "VirtualClock"]


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
