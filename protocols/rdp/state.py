"""The RDP connection's states, the events that move it, and the one table of allowed
transitions (h11's ``_state.py`` is the model); and its timers as deadlines (aioquic's
``get_timer()`` / ``handle_timer(now)``), armed on the injected clock by one owner.

MS-RDPBCGR 1.3.1.1, the connection sequence, as far as a server needs it:

    X224 --CONNECTION_REQUEST--> (TLS/RDP) MCS_CONNECT | (CredSSP) CREDSSP | CLOSED
    CREDSSP --CREDSSP_DONE--> MCS_CONNECT
    MCS_CONNECT --CONNECT_INITIAL--> MCS_DOMAIN (TLS) | SECURITY_EXCHANGE (RDP Security)
    SECURITY_EXCHANGE --SECURITY_EXCHANGE--> MCS_DOMAIN
    MCS_DOMAIN --CLIENT_INFO--> CAPABILITIES  (licensing and the Demand Active are sent)
    CAPABILITIES --CONFIRM_ACTIVE--> FINALIZING --FONT_LIST--> ACTIVE
    ACTIVE --DEACTIVATE--> CAPABILITIES  (Deactivate All and a new Demand Active, 1.3.1.3)
    any --CLOSE--> CLOSED
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Protocol

from protocols.rdp.x224 import DecodeError


class State(enum.Enum):
    X224 = "x224"
    CREDSSP = "credssp"
    MCS_CONNECT = "mcs-connect"
    SECURITY_EXCHANGE = "security-exchange"  # Standard RDP Security: the client random
    MCS_DOMAIN = "mcs-domain"  # Erect Domain, Attach User, Channel Joins, Client Info
    CAPABILITIES = "capabilities"  # Demand Active sent, waiting for Confirm Active
    FINALIZING = "finalizing"
    ACTIVE = "active"
    CLOSED = "closed"

    def __str__(self) -> str:
        return self.value


class Event(enum.Enum):
    TLS_SELECTED = "tls-selected"  # Connection Request answered: TLS
    CREDSSP_SELECTED = "credssp-selected"  # ... CredSSP (NLA)
    RDP_SELECTED = "rdp-selected"  # ... Standard RDP Security
    CREDSSP_DONE = "credssp-done"
    CONNECT_INITIAL = "connect-initial"  # MCS Connect Response sent (TLS/CredSSP)
    CONNECT_INITIAL_RDP = "connect-initial-rdp"  # ... with the server random and certificate
    SECURITY_EXCHANGE = "security-exchange"
    CLIENT_INFO = "client-info"
    CONFIRM_ACTIVE = "confirm-active"
    FONT_LIST = "font-list"
    DEACTIVATE = "deactivate"  # Deactivation-Reactivation: Deactivate All, Demand Active
    CLOSE = "close"


S, E = State, Event

# Where a fault may strike an RDP connection (emulator.core.faults): the client's step of
# the connection sequence about to be answered, or any PDU once ACTIVE.
FAULT_POINTS = ("CONNECTION_REQUEST", "CREDSSP", "CONNECT_INITIAL", "SECURITY_EXCHANGE",
                "CLIENT_INFO", "CONFIRM_ACTIVE", "FONT_LIST", "ACTIVE")

TRANSITIONS: dict[tuple[State, Event], State] = {
    (S.X224, E.TLS_SELECTED): S.MCS_CONNECT,
    (S.X224, E.RDP_SELECTED): S.MCS_CONNECT,
    (S.X224, E.CREDSSP_SELECTED): S.CREDSSP,
    (S.CREDSSP, E.CREDSSP_DONE): S.MCS_CONNECT,
    (S.MCS_CONNECT, E.CONNECT_INITIAL): S.MCS_DOMAIN,
    (S.MCS_CONNECT, E.CONNECT_INITIAL_RDP): S.SECURITY_EXCHANGE,
    (S.SECURITY_EXCHANGE, E.SECURITY_EXCHANGE): S.MCS_DOMAIN,
    (S.MCS_DOMAIN, E.CLIENT_INFO): S.CAPABILITIES,
    (S.CAPABILITIES, E.CONFIRM_ACTIVE): S.FINALIZING,
    (S.FINALIZING, E.FONT_LIST): S.ACTIVE,
    (S.ACTIVE, E.DEACTIVATE): S.CAPABILITIES,
}
for _state in State:
    TRANSITIONS[(_state, E.CLOSE)] = S.CLOSED

# States in which the MCS domain exists (Attach User, Send Data): an ending sends a DPUM.
IN_DOMAIN = frozenset({S.SECURITY_EXCHANGE, S.MCS_DOMAIN, S.CAPABILITIES, S.FINALIZING,
                       S.ACTIVE})


class ProtocolStateError(DecodeError):
    """An event the current state does not allow: bad input, the connection is dropped."""


class ConnectionStateMachine:
    def __init__(self) -> None:
        self.state = State.X224

    def fire(self, event: Event) -> State:
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise ProtocolStateError(f"{event.value} is not allowed in state {self.state}") \
                from None
        return self.state

    def expect(self, *states: State, what: str) -> None:
        if self.state not in states:
            raise ProtocolStateError(f"{what} in state {self.state}")


# -- time -------------------------------------------------------------------------------------

HANDSHAKE = "handshake"  # the pre-logon timeout: one deadline, one owner

class Timers:
    """Named deadlines (absolute clock seconds). The core sets and clears them; its owner
    asks ``next_deadline()`` and calls back with ``expired(now)``."""

    def __init__(self) -> None:
        self._deadlines: dict[str, float] = {}

    def set(self, name: str, when: float) -> None:
        self._deadlines[name] = when

    def clear(self, name: str | None = None) -> None:
        if name is None:
            self._deadlines.clear()
        else:
            self._deadlines.pop(name, None)

    def __contains__(self, name: str) -> bool:
        return name in self._deadlines

    def next_deadline(self) -> float | None:
        return min(self._deadlines.values(), default=None)

    def expired(self, now: float) -> list[str]:
        """The names due at ``now``, earliest first; they are cleared."""
        due = sorted((when, name) for name, when in self._deadlines.items() if when <= now)
        for _when, name in due:
            del self._deadlines[name]
        return [name for _when, name in due]


class Clock(Protocol):
    def seconds(self) -> float: ...

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any,
                  **kw: Any) -> Any: ...


class TimerOwner:
    """The one clock call a connection holds: armed for ``get_timer()`` of its core, re-armed
    after every call into the core, cancelled when there is no deadline."""

    def __init__(self, clock: Clock, get_timer: Callable[[], float | None],
                 handle_timer: Callable[[float], None]) -> None:
        self._clock = clock
        self._get_timer = get_timer
        self._handle_timer = handle_timer
        self._call: Any = None
        self._when: float | None = None

    def rearm(self) -> None:
        when = self._get_timer()
        if when == self._when and (when is None or self._active()):
            return
        self.cancel()
        if when is not None:
            self._when = when
            self._call = self._clock.callLater(max(0.0, when - self._clock.seconds()),
                                               self._fire)

    def cancel(self) -> None:
        call, self._call, self._when = self._call, None, None
        if call is not None and call.active():
            call.cancel()

    def _active(self) -> bool:
        return self._call is not None and self._call.active()

    def _fire(self) -> None:
        when, self._call, self._when = self._when, None, None
        # The clock fired the call it was given: the deadline is due, whatever rounding
        # ``when - now`` met on the way.
        self._handle_timer(max(self._clock.seconds(), when or 0.0))
        self.rearm()
