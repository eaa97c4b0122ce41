"""How a one-session client SKU (Windows 10/11 Pro, 7, XP Pro) shares its session: the
second user is not refused but asked (the edition's ``rdp_takeover``), and on Yes the
signed-in user is asked to give the session up; when they accept, or their prompt times
out, their session is disconnected (kept: these editions count only the connected
session, ``rdp_counts_disconnected``) and the second user signs in. A mixin over
``SessionEngine``: the engine decides and counts, the protocol draws the prompts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulator.core.engine import Session


class TakeoverMixin:
    edition: Any
    _sessions: dict[int, Session]

    def _counts_disconnected(self, protocol: str) -> bool:
        return protocol != "rdp" or self.edition.rdp_counts_disconnected

    def _full(self, protocol: str, candidate: Session | None) -> bool:
        raise NotImplementedError  # SessionEngine's

    def disconnect(self, session: Session, reason: str = "disconnect") -> None:
        raise NotImplementedError  # SessionEngine's

    def _displaceable(self, protocol: str) -> Session | None:
        """The live session a new user may ask to take over, when the host is full and the
        edition asks instead of refusing; None otherwise."""
        if protocol != "rdp" or self.edition.rdp_takeover is None or \
                not self._full(protocol, None):
            return None
        live = [s for s in self._sessions.values() if s.protocol == protocol
                and s.state == "active" and not s.console]
        return live[0] if live else None

    def ask_to_yield(self, target: Session, requester: str,
                     answer: Callable[[bool], None]) -> Callable[[], None]:
        """The new user chose Yes: ask ``target``'s user (through its connection's prompt
        hook; a connection that does not ask, or none, is taken at once). ``answer(True)``
        once the session is disconnected, ``answer(False)`` if its user declines. Returns
        a withdrawal for when the asker leaves before the answer."""
        state = {"open": True}

        def reply(accepted: bool) -> None:
            if not state["open"]:
                return
            state["open"] = False
            if accepted and target.id in self._sessions and target.state == "active":
                hook = target.close_hook
                self.disconnect(target, "taken-over")
                if hook is not None:
                    hook("replaced")  # the client is told: errinfo 0x5
            answer(accepted)

        prompt = target.prompt_hook
        if target.id not in self._sessions or target.state != "active" or prompt is None:
            reply(True)
            return lambda: None
        withdraw_prompt = prompt(requester, reply)

        def withdraw() -> None:
            if state["open"]:
                state["open"] = False
                withdraw_prompt()

        return withdraw
