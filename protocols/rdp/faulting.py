"""Faults on demand in an RDP connection (the host's ``emulator.core.faults.FaultTable``,
asked through ``RDPServerConfig.faults``): at each point of the connection sequence
(``state.FAULT_POINTS``: the client's step about to be answered; ACTIVE: any PDU once
active) the core asks whether a fault fires, and plays it:

- ``drop``: a clean close instead of the answer (TLS close_notify, FIN), nothing said;
- ``reset``: the transport aborted (RST);
- ``stall``: no answer, now or later; input is read and dropped, the timers stop; the
  connection stays until the client (or the host's removal) ends it, and then its slot
  goes as on any close;
- ``delay``: the answer (and all output after it) held on the clock for ``delay`` seconds;
- ``errinfo``: a Set Error Info PDU with the named code, then Deactivate All (once the
  Demand Active was sent), the Disconnect Provider Ultimatum and the close, as Windows ends
  a connection (MS-RDPBCGR 1.3.1.4.3). At ACTIVE, a logoff code (0x2, 0xC) ends the
  session; any other leaves it disconnected, as a dropped connection does;
- ``reactivate``: after the answer, a Deactivation-Reactivation Sequence (MS-RDPBCGR
  1.3.1.3, as on a desktop resize): Deactivate All, then a Demand Active; the client's
  Confirm Active and finalization PDUs are answered again and the screen redrawn.

A mixin over ``RDPServerConnection``."""

from __future__ import annotations

from typing import Any, Protocol

from protocols.rdp import mcs, pdu
from protocols.rdp.base import ConnectionBase
from protocols.rdp.errinfo import errinfo_code, errinfo_name
from protocols.rdp.output import io_pdu as _io
from protocols.rdp.state import IN_DOMAIN, Event, State
from protocols.rdp.x224 import x224_data

HOLD = "fault-hold"  # the deadline of a delayed answer
LOGOFF_CODES = frozenset({pdu.ERRINFO_RPC_INITIATED_LOGOFF, pdu.ERRINFO_LOGOFF_BY_USER})


class FaultSource(Protocol):
    """What the core asks of the host's fault table."""

    def match(self, protocol: str, command: str, **context: str | None) -> Any: ...


class FaultMixin(ConnectionBase):
    def _init_faults(self) -> None:
        self._stalled = False
        self._held_events: int | None = None  # events queued before the hold may go
        self._hold_until: float | None = None
        self._reactivate_due = False
        self.reactivating = False  # a Deactivation-Reactivation under way

    # -- the question, at each point -----------------------------------------------------
    def _struck(self, point: str) -> bool:
        """Ask the fault table at ``point``; True: the step is not answered (the caller
        returns at once). A delay or a reactivation lets the step run."""
        faults = self.config.faults
        if faults is None or self._stalled or self.close_requested:
            return False
        fault = faults.match("rdp", point, user=self.user or None, client=self.address)
        if fault is None:
            return False
        what = f"fault {fault.id} at {point}: {fault.action}"
        action = fault.action
        if action == "delay":
            self.log(f"rdp {self.address}: {what} {fault.delay:g} s")
            self._hold(fault.delay)
            return False
        if action == "reactivate":
            self.log(f"rdp {self.address}: {what}")
            self._reactivate_due = True
            return False
        if action == "drop":
            self._close(what)
        elif action == "reset":
            self._close(what, mode="abort")
        elif action == "stall":
            self._stall(what)
        elif action == "errinfo":
            self._end_with_errinfo(errinfo_code(fault.errinfo), what)
        else:  # not an RDP action (the table's checks keep these out)
            return False
        return True

    # -- delay and stall -------------------------------------------------------------------
    def _hold(self, seconds: float) -> None:
        until = self.config.clock.seconds() + seconds
        self._hold_until = max(until, self._hold_until or until)
        self._out.hold()
        if self._held_events is None:
            self._held_events = len(self._events)
        self._timers.set(HOLD, self._hold_until)

    def _release_hold(self) -> None:
        self._hold_until = None
        self._held_events = None
        self._timers.clear(HOLD)
        self._out.release()
        self._notify()

    def _stall(self, why: str) -> None:
        self.log(f"rdp {self.address}: {why}; nothing more is answered")
        self._stalled = True
        self._out.hold()
        if self._held_events is None:
            self._held_events = len(self._events)
        self._hold_until = None
        self._timers.clear()  # the pre-logon timeout, a message box's end, a delay

    def _visible_events(self) -> int:
        return len(self._events) if self._held_events is None else self._held_events

    def _timers_after_close(self, mode: str) -> None:
        """The close cleared the timers: a delayed answer keeps its deadline (the close
        waits behind it), an abort sends what is held at once; a stall stays silent."""
        if mode == "abort" and not self._stalled:
            if self._out.held:
                self._out.release()
                self._held_events = None
                self._hold_until = None
        elif self._hold_until is not None:
            self._timers.set(HOLD, self._hold_until)

    # -- errinfo ---------------------------------------------------------------------------
    def _end_with_errinfo(self, code: int, why: str) -> None:
        """Set Error Info (to a client that supports it), Deactivate All once the Demand
        Active was sent, DPUM, close: the session ends for a logoff code, else stays
        disconnected when the transport goes."""
        self.log(f"rdp {self.address}: {why} {errinfo_name(code)}; disconnecting")
        if code in LOGOFF_CODES and self.session is not None and self._session_live:
            session, self.session = self.session, None
            self.config.gate.release(session, "logoff")
        if self.attached and self.client is not None and self.client.core.supports_error_info:
            self._out += _io(pdu.set_error_info(code))
        if self.demand_sent and self.state in (State.CAPABILITIES, State.FINALIZING,
                                               State.ACTIVE):
            self._out += _io(pdu.deactivate_all())
        if self.state in IN_DOMAIN:
            self._out += x224_data(mcs.disconnect_provider_ultimatum(mcs.RN_USER_REQUESTED))
        self._close("", quiet=True)

    # -- Deactivation-Reactivation -----------------------------------------------------------
    def _reactivate_if_due(self) -> None:
        """After the answer to the step a ``reactivate`` fault struck: Deactivate All and a
        new Demand Active (the desktop not yet sent is dropped; a message box stays)."""
        if not self._reactivate_due or self.state != State.ACTIVE or self.close_requested:
            return
        self._reactivate_due = False
        self._out.drop_screens(keep_bounded=True)
        self._out += _io(pdu.deactivate_all())
        self._machine.fire(Event.DEACTIVATE)
        self.reactivating = True
        session_id = self.session.id if self.session is not None else 0
        self._out += _io(pdu.demand_active(self.server_capability_sets(), session_id))

    def _reactivated(self) -> None:
        """The client finalized again: what was on screen is drawn afresh."""
        self.reactivating = False
        if self._screen is not None:
            self._draw()
