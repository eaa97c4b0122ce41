"""The session engine: the one place that counts sessions against the edition's limits.

Protocols ask it for a slot when a client starts a session (SMB: the SESSION_SETUP
with SessionId 0; RDP: after logon), tell it when the logon completes, and give
the slot back on logoff, failure or disconnect. Twisted runs it on one thread, so
"check then take" is atomic: when many clients race, exactly the limit get in.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from collections.abc import Callable

from impacket import nt_errors

from emulator.clock import ClockLike
from emulator.editions import Edition
from emulator.events import (
    LEVEL_INFORMATION,
    LEVEL_WARNING,
    LOGOFF_EVENT_ID,
    LOGON_EVENT_ID,
    LOGON_FAILED_EVENT_ID,
    SRV_LIMIT_EVENT_ID,
    EventLog,
)

STATUS_REQUEST_NOT_ACCEPTED = nt_errors.STATUS_REQUEST_NOT_ACCEPTED  # 0xC00000D0
STATUS_REMOTE_SESSION_LIMIT = 0xC0000196

LIMIT_MESSAGE = (
    "No more connections can be made to this remote computer at this time because there "
    "are already as many connections as the computer can accept."
)

# Session states. "pending" holds a slot while authentication is under way.
PENDING, ACTIVE = "pending", "active"


@dataclass(eq=False)
class Session:
    id: int
    protocol: str
    address: str
    started: float
    state: str = PENDING
    user: str = ""
    client: str = ""
    anonymous: bool = False
    logon_time: float | None = None
    last_activity: float = 0.0
    opens: int = 0
    # Set by the protocol: the engine calls it to make the protocol drop the session
    # (setup timeout now; admin delete and autodisconnect later).
    close_hook: Callable[[str], None] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Admission:
    session: Session | None
    status: int = 0

    @property
    def admitted(self) -> bool:
        return self.session is not None


class SessionEngine:
    def __init__(
        self,
        edition: Edition,
        clock: ClockLike,
        events: EventLog,
        *,
        denial_status: int = STATUS_REQUEST_NOT_ACCEPTED,
        setup_timeout: float = 30.0,
        limits: dict[str, int | None] | None = None,
    ) -> None:
        self.edition = edition
        self.clock = clock
        self.events = events
        self.denial_status = denial_status
        self.setup_timeout = setup_timeout
        self._limits = {"smb": edition.smb_limit, "rdp": edition.rdp_limit}
        self._limits.update(limits or {})
        self._sessions: dict[int, Session] = {}
        self._setup_timers: dict[int, object] = {}
        self._ids = itertools.count(1)

    # -- limits -----------------------------------------------------------------
    def limit(self, protocol: str) -> int | None:
        return self._limits.get(protocol)

    def set_limit(self, protocol: str, limit: int | None) -> None:
        # A lowered limit only refuses new sessions; it never closes existing ones.
        self._limits[protocol] = limit

    def counted(self, protocol: str) -> int:
        return sum(1 for s in self._sessions.values() if s.protocol == protocol)

    def sessions(self, protocol: str | None = None) -> list[Session]:
        return [s for s in self._sessions.values() if protocol in (None, s.protocol)]

    # -- the life of a session ------------------------------------------------------
    def request_session(
        self, protocol: str, address: str, close_hook: Callable[[str], None] | None = None
    ) -> Admission:
        """Take a slot for a session that is starting, or refuse with the denial status."""
        limit = self.limit(protocol)
        if limit is not None and self.counted(protocol) >= limit:
            self.events.record(
                provider="Srv", event_id=SRV_LIMIT_EVENT_ID, level=LEVEL_WARNING,
                message=LIMIT_MESSAGE, protocol=protocol, address=address, workstation="",
                user="", outcome="denied", status=self.denial_status, limit=limit,
            )
            return Admission(None, self.denial_status)
        now = self.clock.seconds()
        session = Session(next(self._ids), protocol, address, started=now, last_activity=now,
                          close_hook=close_hook)
        self._sessions[session.id] = session
        self._setup_timers[session.id] = self.clock.callLater(
            self.setup_timeout, self._setup_expired, session)
        return Admission(session)

    def logon(self, session: Session, *, user: str, client: str, anonymous: bool) -> None:
        self._cancel_setup_timer(session)
        session.state = ACTIVE
        session.user, session.client, session.anonymous = user, client, anonymous
        session.logon_time = session.last_activity = self.clock.seconds()
        who = "anonymous" if anonymous else user
        self.events.record(
            provider="Microsoft-Windows-Security-Auditing", event_id=LOGON_EVENT_ID,
            level=LEVEL_INFORMATION, message=f"An account was successfully logged on ({who}).",
            protocol=session.protocol, address=session.address, workstation=client, user=user,
            outcome="admitted", status=0, session_id=session.id,
        )

    def release(self, session: Session, reason: str, status: int | None = None) -> None:
        """Give the slot back. Safe to call more than once."""
        if self._sessions.pop(session.id, None) is None:
            return
        self._cancel_setup_timer(session)
        if session.state == PENDING:
            event_id, level, message = (
                LOGON_FAILED_EVENT_ID, LEVEL_WARNING,
                f"An account failed to log on ({reason}).")
        else:
            event_id, level, message = (
                LOGOFF_EVENT_ID, LEVEL_INFORMATION, f"An account was logged off ({reason}).")
        self.events.record(
            provider="Microsoft-Windows-Security-Auditing", event_id=event_id, level=level,
            message=message, protocol=session.protocol, address=session.address,
            workstation=session.client, user=session.user, outcome=reason, status=status,
            session_id=session.id,
        )

    def touch(self, session: Session) -> None:
        session.last_activity = self.clock.seconds()

    # -- internals -----------------------------------------------------------------
    def _cancel_setup_timer(self, session: Session) -> None:
        timer = self._setup_timers.pop(session.id, None)
        if timer is not None and timer.active():  # type: ignore[attr-defined]
            timer.cancel()  # type: ignore[attr-defined]

    def _setup_expired(self, session: Session) -> None:
        self._setup_timers.pop(session.id, None)
        if session.state != PENDING:
            return
        self.release(session, "setup-timeout")
        if session.close_hook is not None:
            session.close_hook("setup-timeout")
