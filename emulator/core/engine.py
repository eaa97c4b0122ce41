"""The session engine: the one place that counts sessions against the edition's limits.

Protocols ask it for a slot when a client starts a session (SMB: the SESSION_SETUP
with SessionId 0; RDP: after logon), tell it when the logon completes, and give
the slot back on logoff, failure or disconnect. Twisted runs it on one thread, so
"check then take" is atomic: when many clients race, exactly the limit get in.

Every timer is the injected clock's: the setup timeout of a half-done logon, and one
expiry timer that fires at the earliest autodisconnect / null-session / idle-limit
deadline among all sessions.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

from impacket import nt_errors

from emulator.core.clock import ClockLike
from emulator.core.editions import Edition
from emulator.core.takeover import TakeoverMixin
from emulator.core.events import (
    EMULATOR_PROVIDER,
    LEVEL_INFORMATION,
    LEVEL_WARNING,
    REASON_EVENTS,
    SRV_LIMIT_EVENT_ID,
    EventLog,
    LOGON_EVENT_ID,
    logon_failure,
    RECONNECT_EVENT_ID,
    SECURITY_PROVIDER,
    TS_LIMIT_EVENT_ID,
    iso_time,
)
from emulator.core.pending import PendingSetups

STATUS_REQUEST_NOT_ACCEPTED = nt_errors.STATUS_REQUEST_NOT_ACCEPTED  # 0xC00000D0
STATUS_REMOTE_SESSION_LIMIT = 0xC0000196

LIMIT_MESSAGE = (
    "No more connections can be made to this remote computer at this time because there "
    "are already as many connections as the computer can accept."
)

# Session states. "pending" holds a slot while authentication is under way; "idle" is
# derived (an active session without activity for Rules.idle_after seconds).
PENDING, ACTIVE, IDLE, DISCONNECTED = "pending", "active", "idle", "disconnected"

# What each way of ending a session adds to (the Windows "Server" counters).
# (A setup timeout ends a pending session: a logon error. The RDP idle limit disconnects.)
TIMED_OUT_REASONS = {"autodisconnect", "null-session-expired"}
FORCED_OFF_REASONS = {"admin-delete", "admin-reset"}
ERRORED_OUT_REASONS = {"connection-closed"}

# qwinsta shows the console as session 0.
CONSOLE_SESSION_ID = 0

# Setups not yet authenticated (SMB's SessionId-0 rounds) that one connection, and one
# client address, may hold at once: each holds a slot until it finishes or times out.
# Windows documents no such bound (none found); these keep one client from filling the host.
DEFAULT_PENDING_PER_CONNECTION = 2
DEFAULT_PENDING_PER_ADDRESS = 8

# `autodisconnect 0` means "within seconds" on Windows.
AUTODISCONNECT_ZERO_SECONDS = 10.0


@dataclass
class Rules:
    """Counting rules beyond the limits; configurable, and changeable while running."""

    autodisconnect_minutes: int = 15  # -1 = off
    null_session_timeout: float = 60.0  # a null session holding no open expires (30-90 s)
    restrict_anonymous: bool = False  # RestrictNullSessAccess
    null_session_pipes: list[str] = field(default_factory=list)  # NullSessionPipes
    null_session_shares: list[str] = field(default_factory=list)  # NullSessionShares
    group_by_client: bool = False  # all sessions of one workstation count once
    rdp_idle_limit: float | None = None  # seconds; None = off
    idle_after: float = 60.0  # seconds without activity before a session shows as idle

    @property
    def autodisconnect_seconds(self) -> float | None:
        if self.autodisconnect_minutes < 0:
            return None
        return self.autodisconnect_minutes * 60.0 or AUTODISCONNECT_ZERO_SECONDS


@dataclass(eq=False)
class Session:
    id: int
    protocol: str
    address: str
    started: float
    state: str = PENDING
    user: str = ""
    # What `net session` shows: SMB's Connection.ClientName (the address over direct TCP,
    # the NetBIOS calling name over 139); RDP's client computer name.
    client: str = ""
    workstation: str = ""  # the NTLM workstation (the 4624 "Workstation Name"); '' = client
    anonymous: bool = False
    console: bool = False
    logon_time: float | None = None
    last_activity: float = 0.0
    open_files: list[str] = field(default_factory=list)
    trees: list[str] = field(default_factory=list)  # SMB: shares it is connected to
    no_opens_since: float = 0.0  # when it last held no open (for null-session expiry)
    # Set by the protocol: closes the n-th of open_files (NetrFileClose, `net files /close`).
    file_closer: Callable[[int], bool] | None = field(default=None, repr=False)
    # Set by the protocol: the engine calls it to make the protocol drop (or, for RDP,
    # disconnect) the session: setup timeout, admin delete/reset, autodisconnect...
    close_hook: Callable[[str], None] | None = field(default=None, repr=False)
    # The connection a not-yet-authenticated setup came on (SMB), for the pending bounds.
    connection: object | None = field(default=None, repr=False)
    # Set by RDP on a live session: asks its user to give it up (takeover.py).
    prompt_hook: Callable[..., Any] | None = field(default=None, repr=False)
    # While it counts against those bounds: its keys in the engine's pending counters.
    pending_keys: tuple[tuple[str, int], tuple[str, str]] | None = field(default=None,
                                                                         repr=False)

    @property
    def opens(self) -> int:
        return len(self.open_files)

    def group_key(self, by_client: bool) -> tuple[str, object]:
        if by_client and self.client and not self.anonymous and self.state != PENDING:
            return ("client", self.client.lower())
        return ("session", self.id)

    def shown_state(self, now: float, idle_after: float) -> str:
        if self.state == ACTIVE and now - self.last_activity >= idle_after:
            return IDLE
        return self.state

    def to_dict(self, now: float, idle_after: float) -> dict[str, Any]:
        return {
            "id": self.id, "protocol": self.protocol, "user": self.user,
            "client": self.client, "address": self.address,
            "workstation": self.workstation or self.client,
            "state": self.shown_state(now, idle_after), "console": self.console,
            "anonymous": self.anonymous, "opens": self.opens,
            "open_files": list(self.open_files),
            "open_file_ids": [file_id(self.id, i) for i in range(len(self.open_files))],
            "trees": list(self.trees),
            "idle_seconds": int(max(0.0, now - self.last_activity)),
            "logon_time": iso_time(self.logon_time) if self.logon_time is not None else None,
        }


def file_id(session_id: int, index: int) -> int:
    """The id `net files` and NetrFileEnum show for a session's index-th open:
    (session id << 16) | (1 + index), in the 32 bits of the RPC field."""
    return ((session_id & 0xFFFF) << 16) | ((index + 1) & 0xFFFF)


@dataclass(frozen=True)
class Admission:
    session: Session | None
    status: int = 0
    reattached: bool = False  # an existing session moved to this connection
    displaces: Session | None = None  # a client SKU's live session the user may take over

    @property
    def admitted(self) -> bool:
        return self.session is not None


class SessionEngine(TakeoverMixin):
    def __init__(
        self,
        edition: Edition,
        clock: ClockLike,
        events: EventLog,
        *,
        denial_status: int = STATUS_REQUEST_NOT_ACCEPTED,
        setup_timeout: float = 30.0,
        limits: dict[str, int | None] | None = None,
        rules: Rules | None = None,
        pending_per_connection: int = DEFAULT_PENDING_PER_CONNECTION,
        pending_per_address: int = DEFAULT_PENDING_PER_ADDRESS,
    ) -> None:
        self.edition = edition
        self.clock = clock
        self.events = events
        self.denial_status = denial_status
        self.setup_timeout = setup_timeout
        self.pending_per_connection = pending_per_connection
        self.pending_per_address = pending_per_address
        self.rules = rules or Rules()
        self._limits = {"smb": edition.smb_limit, "rdp": edition.rdp_limit}
        self._limits.update(limits or {})
        self._sessions: dict[int, Session] = {}
        self._setup_timers: dict[int, Any] = {}
        self.pending = PendingSetups()  # the pending bounds' counts, per connection/address
        self._expiry_timer: Any = None
        self._ids = itertools.count(1)
        self.counters: Counter[str] = Counter()
        # Completed logons per account (lower-cased name): how many, and the last one's time.
        self._logons: dict[str, tuple[int, float]] = {}

    # -- limits and rules -------------------------------------------------------------
    def limit(self, protocol: str) -> int | None:
        return self._limits.get(protocol)

    def limits(self) -> dict[str, int | None]:
        return dict(self._limits)

    def set_limit(self, protocol: str, limit: int | None) -> None:
        # A lowered limit only refuses new sessions; it never closes existing ones.
        self._limits[protocol] = limit

    def set_autodisconnect(self, minutes: int) -> None:
        self.rules.autodisconnect_minutes = minutes
        self.rules_changed()

    def rules_changed(self) -> None:
        """Re-plan the expiry timer after any change to ``self.rules``."""
        self._schedule_expiry()

    def reset(self, limits: dict[str, int | None], rules: Rules) -> None:
        """End every session and restore limits and rules (a fresh host for the next test)."""
        for session in list(self._sessions.values()):
            self.end(session.id, "admin-reset")
        self._limits = dict(limits)
        self.rules = rules
        self.counters.clear()
        self._logons.clear()
        self.rules_changed()

    def counted(self, protocol: str) -> int:
        """Slots in use: sessions (or, grouped, client computers) that count, any state."""
        return len({s.group_key(self.rules.group_by_client) for s in self._counting(protocol)})

    def _counting(self, protocol: str) -> list[Session]:
        # The console (or /admin) session never counts. With per-client grouping a pending
        # session's computer is not known yet, so it is judged at logon instead.
        return [s for s in self._sessions.values() if s.protocol == protocol
                and not s.console
                and not (self.rules.group_by_client and s.state == PENDING)
                and not (s.state == DISCONNECTED and not self._counts_disconnected(protocol))]

    def logon_history(self) -> dict[str, tuple[int, float]]:
        """Completed logons per account (lower-cased name): (count, last logon time)."""
        return dict(self._logons)

    def sessions(self, protocol: str | None = None) -> list[Session]:
        return [s for s in self._sessions.values() if protocol in (None, s.protocol)]

    def get(self, session_id: int) -> Session | None:
        return self._sessions.get(session_id)

    def now(self) -> float:
        return self.clock.seconds()

    def anonymous_may_open(self, kind: str, name: str) -> bool:
        """May a null session reach this share ("share") or named pipe ("pipe")?

        IPC$ is always reachable (that is what null sessions are for); disk shares only
        when listed in NullSessionShares; pipes only when listed in NullSessionPipes
        while RestrictNullSessAccess is on.
        """
        name = name.lower().removeprefix("\\pipe\\").strip("\\")
        if kind == "share":
            return name == "ipc$" or name in {n.lower() for n in self.rules.null_session_shares}
        if not self.rules.restrict_anonymous:
            return True
        return name in {n.lower() for n in self.rules.null_session_pipes}

    # -- the life of a session ------------------------------------------------------------
    def note_connection(self, protocol: str) -> None:
        self.counters[f"connections:{protocol}"] += 1

    def request_session(
        self, protocol: str, address: str, close_hook: Callable[[str], None] | None = None,
        *, console: bool = False, user: str = "", client: str = "",
        connection: object | None = None,
    ) -> Admission:
        """Take a slot for a session that is starting, or refuse with the denial status.

        ``console``: the console (session 0) or an /admin session, which does not count;
        the caller takes an existing console over with ``take_over`` instead.
        ``connection``: given for a setup that starts before authentication (SMB): such
        pending setups are bounded per connection and per client address, and one over
        either bound is refused (counted, no event: nothing was judged against the limit).
        """
        if connection is not None and self._too_many_pending(protocol, address, connection):
            self.counters[f"pending_refused:{protocol}"] += 1
            return Admission(None, self.denial_status)
        # With per-client grouping the computer is known only at logon: judged there.
        if not console and not self.rules.group_by_client and self._full(protocol, None):
            return self._refuse(protocol, address, client, user)
        now = self.clock.seconds()
        session_id = CONSOLE_SESSION_ID if console and protocol == "rdp" and \
            self.get(CONSOLE_SESSION_ID) is None else next(self._ids)
        session = Session(session_id, protocol, address, started=now, last_activity=now,
                          no_opens_since=now, close_hook=close_hook, console=console,
                          user=user, client=client, connection=connection)
        self._sessions[session.id] = session
        if connection is not None:
            self.pending.enter(session)
        self._setup_timers[session.id] = self.clock.callLater(
            self.setup_timeout, self._setup_expired, session)
        return Admission(session)

    def _too_many_pending(self, protocol: str, address: str, connection: object) -> bool:
        if self.pending.on_connection(protocol, connection) >= self.pending_per_connection:
            return True
        # The address bound guards the licence slots, so it applies only under a limit:
        # many clients behind one address (a CI runner, loopback) logging on at once to an
        # unlimited host are never refused for it.
        if self.limit(protocol) is None:
            return False
        return self.pending.from_address(protocol, address) >= self.pending_per_address

    def _full(self, protocol: str, candidate: Session | None) -> bool:
        limit = self.limit(protocol)
        if limit is None:
            return False
        used = {s.group_key(self.rules.group_by_client) for s in self._counting(protocol)
                if s is not candidate}
        if candidate is not None and candidate.group_key(self.rules.group_by_client) in used:
            return False  # its computer already holds a slot
        return len(used) >= limit

    def _refuse(self, protocol: str, address: str, client: str, user: str) -> Admission:
        self.counters[f"denied:{protocol}"] += 1
        limit = self.limit(protocol)
        if protocol == "rdp":
            provider, event_id, message = ("TermService", TS_LIMIT_EVENT_ID,
                                           self.edition.rdp_refusal_text)
        else:
            provider, event_id, message = "Srv", SRV_LIMIT_EVENT_ID, LIMIT_MESSAGE
        self.events.record(
            provider=provider, event_id=event_id, level=LEVEL_WARNING, message=message,
            protocol=protocol, address=address, workstation=client, user=user,
            outcome="denied", status=self.denial_status, limit=limit,
        )
        return Admission(None, self.denial_status)

    def logon(self, session: Session, *, user: str, client: str, anonymous: bool,
              console: bool = False, workstation: str = "") -> int:
        """Logon finished. Returns 0, or the denial status when per-client grouping finds
        the limit full now that the client computer is known (the session is then gone)."""
        self._cancel_setup_timer(session)
        self.pending.leave(session)
        session.user, session.client, session.anonymous = user, client, anonymous
        session.workstation = workstation
        session.console = console
        if self.rules.group_by_client:
            session.state = ACTIVE
            if self._full(session.protocol, session):
                self._sessions.pop(session.id, None)
                return self._refuse(session.protocol, session.address,
                                    workstation or client, user).status
        session.state = ACTIVE
        session.logon_time = session.last_activity = session.no_opens_since = self.now()
        if not anonymous and user:
            count, _last = self._logons.get(user.lower(), (0, 0.0))
            self._logons[user.lower()] = (count + 1, self.now())
        who = "anonymous" if anonymous else user
        self.events.record(
            provider=SECURITY_PROVIDER, event_id=LOGON_EVENT_ID, level=LEVEL_INFORMATION,
            message=f"An account was successfully logged on ({who}).",
            protocol=session.protocol, address=session.address,
            workstation=workstation or client, user=user,
            outcome="admitted", status=0, session_id=session.id,
        )
        self._schedule_expiry()
        return 0

    def release(self, session: Session, reason: str, status: int | None = None) -> None:
        """Give the slot back. Safe to call more than once."""
        if self._sessions.pop(session.id, None) is None:
            return
        self._cancel_setup_timer(session)
        self.pending.leave(session)
        if session.state == PENDING:
            # A half-done logon: bad credentials are a failed logon (4625); a stall past
            # the timeout counts as a logon error too; a client that just leaves does not.
            if reason in ("auth-failed", "logon-refused", "setup-timeout"):
                self.counters["logon_errors"] += 1
            event = {"auth-failed": "failed-logon", "logon-refused": "failed-logon",
                     "setup-timeout": "setup-timeout"}.get(reason, "setup-abandoned")
            # A logon refused with good credentials (an injected status): 4625's Status
            # and Sub Status as Windows logs them for that status.
            detail = logon_failure(status) if reason == "logon-refused" else {}
            self._record(session, reason, status, event=event, **detail)
        else:
            for counter, reasons in (("timed_out", TIMED_OUT_REASONS),
                                     ("forced_off", FORCED_OFF_REASONS),
                                     ("errored_out", ERRORED_OUT_REASONS)):
                if reason in reasons:
                    self.counters[counter] += 1
            if reason == "logoff":
                self.counters["logged_off"] += 1
            self._record(session, reason, status)
        self._schedule_expiry()

    def failed_logon(self, protocol: str, address: str, user: str, client: str,
                     status: int) -> None:
        """A logon refused before any session existed (RDP: wrong password, failed NLA)."""
        self.counters["logon_errors"] += 1
        provider, event_id, level, message = REASON_EVENTS["failed-logon"]
        self.events.record(provider=provider, event_id=event_id, level=level, message=message,
                           protocol=protocol, address=address, workstation=client, user=user,
                           outcome="auth-failed", status=status)

    def touch(self, session: Session) -> None:
        session.last_activity = self.clock.seconds()

    def set_open_files(self, session: Session, paths: list[str]) -> None:
        """The protocol reports what the session holds open (`net files`, expiry rules)."""
        if paths == session.open_files:
            return
        session.open_files = list(paths)
        if not paths:
            session.no_opens_since = self.now()
        self._schedule_expiry()

    def set_trees(self, session: Session, shares: list[str]) -> None:
        session.trees = list(shares)

    def close_file(self, open_id: int) -> bool:
        """`net files ID /close`, NetrFileClose: the protocol closes the open. The id keeps
        16 bits of the session id, so it names an open only while one session has them."""
        low_id, index = open_id >> 16, (open_id & 0xFFFF) - 1
        owners = [s for s in self._sessions.values() if s.id & 0xFFFF == low_id]
        if len(owners) != 1:
            return False
        session = owners[0]
        if session.file_closer is None or not 0 <= index < len(session.open_files):
            return False
        return session.file_closer(index)

    # -- RDP-style life: disconnected sessions still count ---------------------------------
    def disconnect(self, session: Session, reason: str = "disconnect") -> None:
        """The client is gone but the session stays, counted, until logoff or reset."""
        if session.id not in self._sessions or session.state == DISCONNECTED:
            return
        self.pending.leave(session)
        session.state = DISCONNECTED
        session.close_hook = session.prompt_hook = None
        self._record(session, reason, None)
        self._schedule_expiry()

    def take_over(self, session: Session, address: str,
                  close_hook: Callable[[str], None] | None, reason: str = "replaced") -> None:
        """A new connection takes a live session (same user again, or the console): the
        old connection is told ``reason`` (RDP: errinfo 0x5) and the session moves over."""
        old_hook = session.close_hook
        session.close_hook = None
        if old_hook is not None:
            old_hook(reason)
        self.reconnect(session, address, close_hook)

    def find_active(self, protocol: str, *, user: str | None = None,
                    console: bool | None = None) -> list[Session]:
        return [s for s in self._sessions.values() if s.protocol == protocol
                and s.state in (ACTIVE, DISCONNECTED)
                and (user is None or s.user.lower() == user.lower())
                and (console is None or s.console == console)]

    def reconnect(self, session: Session, address: str,
                  close_hook: Callable[[str], None] | None) -> None:
        self.pending.leave(session)
        session.state, session.address, session.close_hook = ACTIVE, address, close_hook
        session.prompt_hook = None  # the new connection sets its own
        session.last_activity = self.now()
        self.events.record(
            provider=SECURITY_PROVIDER, event_id=RECONNECT_EVENT_ID, level=LEVEL_INFORMATION,
            message="A session was reconnected to a Window Station.", protocol=session.protocol,
            address=address, workstation=session.client, user=session.user,
            outcome="reconnect", status=0, session_id=session.id)

    # -- administration -------------------------------------------------------------------
    def end(self, session_id: int, reason: str) -> bool:
        """Close a session from outside the protocol (admin delete/reset, timers)."""
        session = self._sessions.get(session_id)
        if session is None:
            return False
        hook = session.close_hook
        self.release(session, reason)
        if hook is not None:
            hook(reason)
        return True

    def admin_disconnect(self, session_id: int) -> bool:
        """tsdiscon: the client is told and dropped; the session stays, counted."""
        session = self._sessions.get(session_id)
        if session is None or session.state == PENDING:
            return False
        hook = session.close_hook
        self.disconnect(session, "admin-disconnect")
        if hook is not None:
            hook("admin-disconnect")
        return True

    def delete_matching(self, *, client: str | None = None, user: str | None = None,
                        protocol: str = "smb") -> list[int]:
        """`net session \\\\CLIENT /delete`: every session of that client (name or address)."""
        wanted = client.lstrip("\\").lower() if client else None
        ids = [s.id for s in self.sessions(protocol) if s.state != PENDING
               and (wanted is None or wanted in (s.client.lower(), s.address.lower()))
               and (user is None or s.user.lower() == user.lower())]
        for session_id in ids:
            self.end(session_id, "admin-delete")
        return ids

    # -- internals ----------------------------------------------------------------------------
    def _record(self, session: Session, reason: str, status: int | None, *,
                event: str | None = None, **detail: Any) -> None:
        """One event for a session's end or change; ``event`` picks the record when the
        outcome (``reason``) alone does not say which."""
        provider, event_id, level, message = REASON_EVENTS.get(
            event or reason,
            (EMULATOR_PROVIDER, 199, LEVEL_INFORMATION, f"Session ended ({reason})."))
        self.events.record(
            provider=provider, event_id=event_id, level=level, message=message,
            protocol=session.protocol, address=session.address,
            workstation=session.workstation or session.client,
            user=session.user, outcome=reason, status=status, session_id=session.id, **detail,
        )

    def _cancel_setup_timer(self, session: Session) -> None:
        timer = self._setup_timers.pop(session.id, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _setup_expired(self, session: Session) -> None:
        self._setup_timers.pop(session.id, None)
        if session.state == PENDING:
            self.end(session.id, "setup-timeout")

    def _deadline(self, s: Session) -> tuple[float, str] | None:
        """When, and why, this session will be dropped if nothing happens before."""
        if s.state != ACTIVE or s.opens:
            return None
        candidates = []
        if s.protocol == "smb":
            if s.anonymous:
                candidates.append((s.no_opens_since + self.rules.null_session_timeout,
                                   "null-session-expired"))
            ad = self.rules.autodisconnect_seconds
            if ad is not None:
                candidates.append((s.last_activity + ad, "autodisconnect"))
        elif s.protocol == "rdp" and self.rules.rdp_idle_limit is not None:
            candidates.append((s.last_activity + self.rules.rdp_idle_limit, "idle-limit"))
        return min(candidates) if candidates else None

    def _schedule_expiry(self) -> None:
        if self._expiry_timer is not None and self._expiry_timer.active():
            self._expiry_timer.cancel()
        self._expiry_timer = None
        deadlines = [d for d in map(self._deadline, self._sessions.values()) if d]
        if deadlines:
            when = min(deadlines)[0]
            self._expiry_timer = self.clock.callLater(max(0.0, when - self.now()),
                                                      self._expire)

    def _expire(self) -> None:
        self._expiry_timer = None
        now = self.now()
        for session in list(self._sessions.values()):
            deadline = self._deadline(session)
            if deadline is None or deadline[0] > now:
                continue
            if session.protocol == "rdp":
                # Windows' default for the idle limit: disconnect, keep the session.
                hook = session.close_hook
                self.disconnect(session, deadline[1])
                if hook is not None:
                    hook(deadline[1])
            else:
                self.end(session.id, deadline[1])
        self._schedule_expiry()
