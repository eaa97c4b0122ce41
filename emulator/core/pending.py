"""The pending-setup bounds' counters: how many setups not yet authenticated (SMB's
SessionId-0 rounds) each connection and each client address holds, kept as sessions
enter and leave the pending state, so that a SESSION_SETUP needs no scan of the table.

The engine calls ``enter`` when it creates a pending session that came with a
connection and ``leave`` wherever a session stops being pending (logon, release of any
kind, disconnect, reconnect); ``leave`` gives the place back once however often it is
called. Keys are (protocol, id(connection)) and (protocol, address): a counted session
holds its connection, so the id cannot be reused while it counts.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Protocol


class PendingSession(Protocol):
    protocol: str
    address: str
    connection: object | None
    pending_keys: tuple[tuple[str, int], tuple[str, str]] | None


class PendingSetups:
    def __init__(self) -> None:
        self._on_connection: Counter[tuple[str, int]] = Counter()
        self._from_address: Counter[tuple[str, str]] = Counter()

    def on_connection(self, protocol: str, connection: object) -> int:
        return self._on_connection[(protocol, id(connection))]

    def from_address(self, protocol: str, address: str) -> int:
        return self._from_address[(protocol, address)]

    def enter(self, session: PendingSession) -> None:
        if session.pending_keys is not None:
            return
        keys = ((session.protocol, id(session.connection)), (session.protocol, session.address))
        session.pending_keys = keys
        self._on_connection[keys[0]] += 1
        self._from_address[keys[1]] += 1

    def leave(self, session: PendingSession) -> None:
        keys, session.pending_keys = session.pending_keys, None
        if keys is None:
            return
        _drop(self._on_connection, keys[0])
        _drop(self._from_address, keys[1])

    def __len__(self) -> int:
        """Setups counted, over all connections."""
        return sum(self._on_connection.values())


def _drop(counter: Counter[Any], key: Any) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]
