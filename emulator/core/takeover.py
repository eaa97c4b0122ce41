"""Who gets Remote Desktop's interactive session (``admit_interactive``: the console, the
user's own session, a new one), and how a one-session client SKU (Windows 10/11 Pro, 7,
XP Pro) shares its session: the second user is not refused but asked (the edition's
``rdp_takeover``), and on Yes the signed-in user is asked to give the session up; when
they accept, or their prompt times out, their session is disconnected (kept: these
editions count only the connected session, ``rdp_counts_disconnected``) and the second
user signs in. A mixin over ``SessionEngine`` (engine.py holds the session table and the
counting): the engine decides and counts, the protocol draws the prompts.
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

    # SessionEngine's, used by admit_interactive.
    denial_status: int
    find_active: Callable[..., list[Session]]
    take_over: Callable[..., None]
    request_session: Callable[..., Any]
    end: Callable[[int, str], bool]
    limit: Callable[[str], int | None]

    def admit_interactive(self, protocol: str, address: str,
                          close_hook: Callable[[str], None] | None, *, user: str,
                          client: str, console_requested: bool,
                          takeover_other_user: bool = False) -> Any:
        """Remote Desktop's rules, after the credentials were checked.

        A console (or /admin) request, on an edition that exempts one, takes the console
        session over or opens it (id 0, not counted). A user who already has a session,
        live or disconnected, takes it over (the old connection is told "replaced").
        On a one-session host with ``takeover_other_user``, another user's session ends.
        Otherwise a new session is asked for, which may be refused.
        """
        from emulator.core.engine import DISCONNECTED, Admission

        if console_requested and self.edition.rdp_exempt in ("console", "admin"):
            consoles = self.find_active(protocol, console=True)
            if consoles:
                self.take_over(consoles[0], address, close_hook)
                return Admission(consoles[0], reattached=True)
            return self.request_session(protocol, address, close_hook, console=True,
                                        user=user, client=client)
        mine = self.find_active(protocol, user=user, console=False)
        if mine:
            old = min(mine, key=lambda s: s.state != DISCONNECTED)  # a disconnected one first
            if old.state == DISCONNECTED and not self._counts_disconnected(protocol):
                # Back to a kept session while another user's is the connected one: asked.
                displaced = self._displaceable(protocol)
                if displaced is not None:
                    return Admission(None, self.denial_status, displaces=displaced)
            self.take_over(old, address, close_hook)
            return Admission(old, reattached=True)
        if takeover_other_user and self.limit(protocol) == 1:
            for other in self.find_active(protocol, console=False):  # all another user's
                self.end(other.id, "replaced")
        displaced = self._displaceable(protocol)
        if displaced is not None:
            return Admission(None, self.denial_status, displaces=displaced)
        return self.request_session(protocol, address, close_hook, user=user, client=client)

    def _displaceable(self, protocol: str) -> Session | None:
        """The live session a new user may ask to take over, when the host is full and the
        edition asks instead of refusing; None otherwise."""
        from emulator.core.engine import ACTIVE

        if protocol != "rdp" or self.edition.rdp_takeover is None or \
                not self._full(protocol, None):
            return None
        live = [s for s in self._sessions.values() if s.protocol == protocol
                and s.state == ACTIVE and not s.console]
        return live[0] if live else None

    def ask_to_yield(self, target: Session, requester: str,
                     answer: Callable[[bool], None]) -> Callable[[], None]:
        """The new user chose Yes: ask ``target``'s user (through its connection's prompt
        hook; a connection that does not ask, or none, is taken at once). ``answer(True)``
        once the session is disconnected, ``answer(False)`` if its user declines. Returns
        a withdrawal for when the asker leaves before the answer."""
        from emulator.core.engine import ACTIVE

        state = {"open": True}

        def reply(accepted: bool) -> None:
            if not state["open"]:
                return
            state["open"] = False
            if accepted and target.id in self._sessions and target.state == ACTIVE:
                hook = target.close_hook
                self.disconnect(target, "taken-over")
                if hook is not None:
                    hook("replaced")  # the client is told: errinfo 0x5
            answer(accepted)

        prompt = target.prompt_hook
        if target.id not in self._sessions or target.state != ACTIVE or prompt is None:
            reply(True)
            return lambda: None
        withdraw_prompt = prompt(requester, reply)

        def withdraw() -> None:
            if state["open"]:
                state["open"] = False
                withdraw_prompt()

        return withdraw
