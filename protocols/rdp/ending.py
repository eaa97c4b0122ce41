"""How an RDP connection ends: the server-initiated disconnect (MS-RDPBCGR 1.3.1.4.3:
logon error, Set Error Info, Deactivate All, Disconnect Provider Ultimatum), the engine's
close hook, the abrupt close on bad input or the pre-logon timeout, and what becomes of
the session when the transport goes. A mixin over ``RDPServerConnection``."""

from __future__ import annotations

from dataclasses import dataclass

from protocols.rdp.base import ConnectionBase
from protocols.rdp import mcs, pdu
from protocols.rdp.output import io_pdu as _io
from protocols.rdp.state import IN_DOMAIN, Event
from protocols.rdp.x224 import x224_data

# How the adapter drops the transport.
GRACEFUL = "graceful"  # after what is written (TLS: close_notify)
ABORT = "abort"  # at once: bad input, the pre-logon timeout
TLS_ALERT = "tls-alert"  # a fatal TLS access_denied alert beneath the TLS layer


@dataclass(frozen=True)
class StartTLS:
    """Write what is pending, then start TLS (bytes from then on are the TLS stream)."""


@dataclass(frozen=True)
class CloseConnection:
    mode: str  # GRACEFUL, ABORT or TLS_ALERT


# What the client is told when the engine ends or disconnects its session.
ERRINFO_FOR_REASON = {
    "admin-disconnect": pdu.ERRINFO_RPC_INITIATED_DISCONNECT,
    "admin-reset": pdu.ERRINFO_RPC_INITIATED_LOGOFF,
    "admin-delete": pdu.ERRINFO_RPC_INITIATED_LOGOFF,
    "idle-limit": pdu.ERRINFO_IDLE_TIMEOUT,
    "replaced": pdu.ERRINFO_DISCONNECTED_BY_OTHERCONNECTION,
    "setup-timeout": pdu.ERRINFO_LOGON_TIMEOUT,
}


class EndingMixin(ConnectionBase):
    def _engine_closes(self, reason: str) -> None:
        """The engine ends, disconnects or hands over this connection's session (admin
        API, timers, another connection): tell the client why, then drop it."""
        session, self.session = self.session, None  # the engine settled the session's fate
        # An admin ending may name the errinfo (Host.rdp_end); else the reason's.
        errinfo = (self.config.ending_errinfo.get(session.id) if session is not None else None
                   ) or ERRINFO_FOR_REASON.get(reason)
        dpum = mcs.RN_PROVIDER_INITIATED if reason == "admin-disconnect" else mcs.RN_USER_REQUESTED
        self._teardown(errinfo, dpum, None)
        self._timer_owner.rearm()

    def _teardown(self, errinfo: int | None, dpum_reason: int,
                  logon_error: tuple[int, int] | None) -> None:
        """Server-initiated disconnect (MS-RDPBCGR 1.3.1.4.3): logon error, Set Error Info,
        Deactivate All, Disconnect Provider Ultimatum, close."""
        if self.close_requested:
            return
        if self.attached and self.info is not None:
            if logon_error is not None and self.info.wants_logon_errors:
                self._out += _io(pdu.save_session_info_logon_error(*logon_error))
            if errinfo and self.client is not None and self.client.core.supports_error_info:
                self._out += _io(pdu.set_error_info(errinfo))
            if self.demand_sent:  # the Client Info PDU was answered
                self._out += _io(pdu.deactivate_all())
        if self.state in IN_DOMAIN:
            self._out += x224_data(mcs.disconnect_provider_ultimatum(dpum_reason))
        self._close("", quiet=True)
        self._notify()

    def _abort(self, why: str) -> None:
        self._close(why, mode=ABORT)

    def _close(self, why: str, quiet: bool = False, mode: str = GRACEFUL) -> None:
        if self._closing is not None:
            return
        if why and not quiet:
            self.log(f"rdp {self.address}: {why}; disconnecting")
        self._timers.clear()
        self._timers_after_close(mode)  # a delayed answer keeps its deadline
        # What is left of a desktop no longer matters; a message box is finished first
        # (its size does not grow with the desktop), unless the connection is aborted.
        self._out.drop_screens(keep_bounded=mode != ABORT)
        self._closing = CloseConnection(mode)
        self._events.append(self._closing)
        self._machine.fire(Event.CLOSE)
        self._interaction_ends()  # a take-over question or prompt under way: settled

    def _end_session(self) -> None:
        """The transport is gone: a logged-on session stays (disconnected, counted), a
        half-done one gives its slot back."""
        session, self.session = self.session, None
        if session is None:
            return
        if self._session_live:
            self.config.gate.disconnect(session)  # stays, counted; the user may come back
        else:
            self.config.gate.release(session, "connection-closed")

    def _notify(self) -> None:
        if self.on_output is not None:
            self.on_output()
