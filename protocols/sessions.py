"""What a protocol core needs from the session engine, without importing it.

``emulator.core.engine.SessionEngine`` satisfies this; tests may pass a fake.
"""

from __future__ import annotations

from typing import Any, Protocol
from collections.abc import Callable


class AdmissionLike(Protocol):
    @property
    def session(self) -> Any: ...

    @property
    def status(self) -> int: ...

    @property
    def admitted(self) -> bool: ...


class SessionGate(Protocol):
    def note_connection(self, protocol: str) -> None: ...

    def request_session(self, protocol: str, address: str,
                        close_hook: Callable[[str], None] | None = None, *,
                        console: bool = False, user: str = "", client: str = "",
                        connection: object | None = None) -> AdmissionLike: ...

    def logon(self, session: Any, *, user: str, client: str, anonymous: bool,
              console: bool = False, workstation: str = "") -> int: ...

    def release(self, session: Any, reason: str, status: int | None = None) -> None: ...

    def touch(self, session: Any) -> None: ...

    def set_open_files(self, session: Any, paths: list[str]) -> None: ...

    def set_trees(self, session: Any, shares: list[str]) -> None: ...

    def anonymous_may_open(self, kind: str, name: str) -> bool: ...
