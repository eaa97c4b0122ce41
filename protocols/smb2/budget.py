"""One memory budget shared by every SMB connection that has not authenticated yet.

Each such connection may buffer at most one partial pre-authentication frame (see
``PREAUTH_MAX_FRAME``); the budget bounds their sum. When a connection's bytes push the
total over, the newest pre-authentication connections are closed until it fits again:
a slow-loris flood loses its latest arrivals, and the clients that were already
talking keep their place.
"""

from __future__ import annotations

from collections.abc import Callable

# Before a session is valid the largest request a client needs is a SESSION_SETUP whose
# security buffer is at most 65,535 bytes (SecurityBufferLength is 16 bits, MS-SMB2
# 2.2.5): header 64 + body 24 + 65,535, rounded up with room for NetBIOS and padding.
PREAUTH_MAX_FRAME = 64 + 24 + 0xFFFF + 1024


class PreauthBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        # connection key -> (buffered bytes, close callback); insertion order is age.
        self._held: dict[object, tuple[int, Callable[[str], None]]] = {}
        self.total = 0
        self.closed = 0  # connections closed to stay within the budget

    def join(self, key: object, close: Callable[[str], None]) -> None:
        self._held[key] = (0, close)

    def leave(self, key: object) -> None:
        entry = self._held.pop(key, None)
        if entry is not None:
            self.total -= entry[0]

    def update(self, key: object, buffered: int) -> None:
        """``key`` now buffers ``buffered`` bytes; over the budget, the newest go."""
        entry = self._held.get(key)
        if entry is None:
            return
        self.total += buffered - entry[0]
        self._held[key] = (buffered, entry[1])
        if self.total <= self.limit:
            return
        # Newest first; a connection holding nothing frees nothing, so it stays.
        for newest in [k for k in reversed(self._held) if self._held[k][0]]:
            held, close = self._held[newest]
            self.leave(newest)
            self.closed += 1
            close(f"pre-authentication buffers over the {self.limit}-byte budget "
                  f"({self.total + held} bytes held); closing the newest connection")
            if self.total <= self.limit:
                return

    @property
    def connections(self) -> int:
        return len(self._held)
