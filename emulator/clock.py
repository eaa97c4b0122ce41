"""The one clock every timer and timestamp goes through.

The engine and the protocols take an ``IReactorTime`` provider: the reactor in
production, ``twisted.internet.task.Clock`` in tests, or ``VirtualClock`` when
``serve --virtual-clock`` wants time to move only when told.
"""

from __future__ import annotations

import time

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock

__all__ = ["IReactorTime", "VirtualClock"]


class VirtualClock(Clock):
    """A ``task.Clock`` that starts at the wall-clock time, then moves only on ``advance``."""

    def __init__(self, start: float | None = None) -> None:
        super().__init__()
        self.rightNow = time.time() if start is None else start
