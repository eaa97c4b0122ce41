"""The RDP server connection: a sans-IO state machine (MS-RDPBCGR 1.3.1.1, the connection
sequence, as far as a TLS or CredSSP client needs it).

Bytes go in with ``receive_data``; bytes come out of ``data_to_send``. The adapter
watches three flags: ``tls_requested`` (write what is pending, then start TLS),
``close_requested`` (drop the transport) and ``close_abruptly`` (do not wait for a TLS
close). Timers (the pre-logon timeout, how long the refusal stays on screen) run on the
injected clock; when one fires, or the engine calls the close hook, output appears
outside ``receive_data`` and the core calls ``on_output`` so the adapter flushes.

Sessions are asked of the session gate (the engine) after logon: the core never counts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Protocol
from collections.abc import Callable

from protocols.auth.credssp import CredSSPAcceptor
from protocols.auth.ntlm import AuthFailure
from protocols.rdp import gcc, mcs, negotiation, output, pdu, render
from protocols.rdp.output import io_pdu as _io
from protocols.rdp.x224 import (
    CREDSSP_FRAME,
    FASTPATH_FRAME,
    PROTOCOL_HYBRID,
    PROTOCOL_HYBRID_EX,
    TLS_FRAME,
    X224_CR,
    X224_DR,
    X224_DT,
    DecodeError,
    Frame,
    FrameDecoder,
    connection_confirm,
    negotiation_failure,
    parse_connection_request,
    parse_x224,
    x224_data,
)
from protocols.sessions import SessionGate

STATUS_LOGON_FAILURE = 0xC000006D
STATUS_CTX_LICENSE_NOT_AVAILABLE = 0xC00A0013

LOGON_FAILURE_TEXT = ("The system could not log you on. Make sure your User name and domain "
                      "are correct, then type your password again. Letters in passwords must "
                      "be typed using the correct case.")

# What the client is told when the engine ends or disconnects its session.
ERRINFO_FOR_REASON = {
    "admin-disconnect": pdu.ERRINFO_RPC_INITIATED_DISCONNECT,
    "admin-reset": pdu.ERRINFO_RPC_INITIATED_LOGOFF,
    "admin-delete": pdu.ERRINFO_RPC_INITIATED_LOGOFF,
    "idle-limit": pdu.ERRINFO_IDLE_TIMEOUT,
    "replaced": pdu.ERRINFO_DISCONNECTED_BY_OTHERCONNECTION,
    "setup-timeout": pdu.ERRINFO_LOGON_TIMEOUT,
}

# Parse errors that mean "bad input", whichever layer raised them.
BAD_INPUT = (DecodeError, struct.error, ValueError, IndexError, KeyError, UnicodeError)

# States.
X224, CREDSSP, MCS_CONNECT, MCS_DOMAIN, CAPABILITIES, FINALIZING, ACTIVE = (
    "x224", "credssp", "mcs-connect", "mcs-domain", "capabilities", "finalizing", "active")


class Clock(Protocol):
    def seconds(self) -> float: ...

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any,
                  **kw: Any) -> Any: ...


class RDPSessionGate(SessionGate, Protocol):
    """What RDP needs of the engine beyond SMB's view: sessions that outlive connections."""

    def disconnect(self, session: Any, reason: str = "disconnect") -> None: ...

    def admit_interactive(self, protocol: str, address: str,
                          close_hook: Callable[[str], None] | None, *, user: str,
                          client: str, console_requested: bool,
                          takeover_other_user: bool = False) -> Any: ...


@dataclass
class RDPServerConfig:
    """What the RDP core needs to know about the host it plays."""

    gate: RDPSessionGate
    lookup_password: Callable[[str], str | None]
    clock: Clock
    refusal_text: str
    nla: bool = False  # the edition wants CredSSP when the client offers it
    # NLA as configured: "required" / "offered" / "off"; None: "offered" if nla else "off".
    nla_mode: str | None = None
    early_user_auth: bool = False  # HYBRID_EX (the Early User Authorization Result PDU)
    neg_flags: int = 0  # RDP_NEG_RSP flags
    server_version: int = gcc.RDP_VERSION_5_PLUS  # TS_UD_SC_CORE version
    refusal_logon_error: int | None = None  # Save Session Info ErrorNotificationType
    denial_errinfo: int = pdu.ERRINFO_SERVER_DENIED_CONNECTION
    refusal_display_seconds: float = 30.0
    handshake_timeout: float = 30.0  # a client not activated by then is dropped
    takeover_other_user: bool = False  # single-session hosts: a new user ends the old one
    credssp: Callable[[], CredSSPAcceptor] | None = None  # a fresh acceptor per connection
    # Records a failed logon (address, user, client name, status): an event, no slot.
    on_failed_logon: Callable[[str, str, str, int], None] | None = None
    desktop_color: tuple[int, int, int] = render.DESKTOP_COLOR


def split_user(name: str, domain: str) -> tuple[str, str]:
    """'DOMAIN\\user' and 'user@domain' -> (user, domain)."""
    if "\\" in name:
        domain, _, name = name.partition("\\")
    elif "@" in name and not domain:
        name, _, domain = name.partition("@")
    return name, domain


class RDPServerConnection:
    def __init__(self, config: RDPServerConfig, *, address: str,
                 log: Callable[[str], None] = lambda line: None) -> None:
        self.config = config
        self.address = address
        self.log = log
        self._decoder = FrameDecoder()
        self._decoder.tls_first = True
        self.tls_preface = b""  # bytes that came before TLS started and belong to it
        self._tls_active = False
        self._out = output.Output()
        self.close_requested = False
        self.close_abruptly = False
        self.deny_with_tls_alert = False  # end TLS with a fatal access_denied alert
        self.tls_requested = False
        self.on_output: Callable[[], None] | None = None
        self.state = X224
        self.requested_protocols: int | None = None
        self.selected_protocol: int | None = None
        self.client: gcc.ClientData | None = None
        self.bpp = 16
        self.channels: dict[int, str] = {}
        self.user_id = mcs.USER_ID
        self.attached = False
        self.info: pdu.ClientInfo | None = None
        self.user = ""
        self.domain = ""
        self._credssp: CredSSPAcceptor | None = None
        self._nla_credentials: tuple[str, str, str] | None = None
        self.session: Any = None  # the engine's session while this connection holds it
        self._session_live = False  # logged on (or reattached): a drop disconnects it
        self._new_logon = False  # call gate.logon when activation completes
        self.refused_status: int | None = None
        self.logon_failed = False
        self.demand_sent = False
        self.desktop = (1024, 768)  # the session's desktop: the client's ask, clamped
        self._screen: tuple[Any, ...] | None = None  # what is on screen: output.screen's args
        self.fastpath_output = False
        self._timer: Any = config.clock.callLater(config.handshake_timeout, self._handshake_expired)
        config.gate.note_connection("rdp")

    # -- the sans-IO surface -------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if self.close_requested:
            return
        if self.tls_preface:  # more of a bare ClientHello, before the adapter started TLS
            self.tls_preface += data
            return
        self._decoder.feed(data)
        try:
            while not self.close_requested:
                frame = self._decoder.next_frame()
                if frame is None:
                    break
                self._dispatch(frame)
        except BAD_INPUT as exc:
            self._abort(f"bad input in state {self.state}: {exc}")

    def data_to_send(self, limit: int | None = None) -> bytes:
        """What is to be sent: all of it, or (``limit``) the queued bytes and about that
        much of a screen, which is drawn only as it is taken."""
        return self._out.take(limit)

    @property
    def output_pending(self) -> bool:
        return self._out.pending

    def tls_started(self) -> None:
        """The adapter started TLS (bytes from now on are the decrypted stream) and fed it
        ``tls_preface``, the bytes of a bare ClientHello that arrived first."""
        self.tls_requested = False
        self._tls_active = True
        self.tls_preface = b""

    def connection_lost(self) -> None:
        self._cancel_timer()
        self.close_requested = True
        session, self.session = self.session, None
        if session is None:
            return
        if self._session_live:
            self.config.gate.disconnect(session)  # stays, counted; the user may come back
        else:
            self.config.gate.release(session, "connection-closed")

    # -- framing and dispatch ----------------------------------------------------------------
    def _dispatch(self, frame: Frame) -> None:
        if frame.kind == CREDSSP_FRAME:
            self._on_credssp(frame.data)
            return
        if frame.kind == TLS_FRAME:
            self._on_bare_tls()
            return
        if frame.kind == FASTPATH_FRAME:
            if self.state != ACTIVE:
                raise DecodeError("fast-path input before activation")
            self._touch()
            return
        code, payload = parse_x224(frame.data)
        if self.state == X224:
            if code != X224_CR:
                raise DecodeError("expected an X.224 Connection Request")
            self._on_connection_request(frame.data)
            return
        if code == X224_DR:
            self._close("client sent an X.224 Disconnect Request")
            return
        if code != X224_DT:
            raise DecodeError(f"unexpected X.224 TPDU 0x{code:02x}")
        if self.state == MCS_CONNECT:
            self._on_connect_initial(payload)
        elif self.state == CREDSSP:
            raise DecodeError("TPKT during CredSSP")
        else:
            self._on_domain_pdu(mcs.parse_domain_pdu(payload))

    # -- X.224 negotiation -----------------------------------------------------------------
    def _on_bare_tls(self) -> None:
        """A TLS ClientHello before any X.224 (scanners: ssl-enum-ciphers, ssl-cert): start
        TLS with those bytes; an X.224 Connection Request may follow inside it."""
        self._decoder.tls_first = False
        self.tls_preface = self._decoder.take_buffered()
        self.tls_requested = True

    def _on_connection_request(self, tpdu: bytes) -> None:
        self._decoder.tls_first = False
        request = parse_connection_request(tpdu)
        requested = request.requested_protocols or 0
        self.requested_protocols = requested
        config = self.config
        choice = negotiation.select_protocol(
            requested, config.nla_mode or ("offered" if config.nla else "off"),
            early_user_auth=config.early_user_auth, credssp=config.credssp is not None)
        if choice.selected is None:
            # Standard RDP Security only (or no RDP_NEG_REQ at all), or no CredSSP where
            # NLA is required: what Windows sends when its security layer is TLS or NLA.
            self._out += negotiation_failure(choice.failure)
            self._close(f"client offers 0x{requested:x}; RDP_NEG_FAILURE 0x{choice.failure:x}",
                        quiet=True)
            return
        selected = choice.selected
        self.selected_protocol = selected
        self._out += connection_confirm(selected, config.neg_flags)
        self.tls_requested = not self._tls_active
        if self._decoder.buffered and not self._tls_active:
            raise DecodeError("data after the Connection Request before TLS")
        if selected in (PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX):
            assert self.config.credssp is not None
            self._credssp = self.config.credssp()
            self._decoder.credssp = True
            self.state = CREDSSP
        else:
            self.state = MCS_CONNECT

    # -- CredSSP (NLA) ---------------------------------------------------------------------
    def _on_credssp(self, ts_request: bytes) -> None:
        assert self._credssp is not None  # the decoder cuts TSRequests only in CREDSSP
        try:
            step = self._credssp.step(ts_request)
        except AuthFailure as exc:
            # Windows answers a TSRequest carrying the error; CredSSP versions without an
            # errorCode get a fatal TLS access_denied alert instead (the adapter sends it).
            reply = self._credssp.error_reply(exc.status)
            self._out += reply
            self.deny_with_tls_alert = not reply
            self._failed_logon(self._credssp.attempted_user or "", "", exc.status)
            self._close(f"NLA logon failed (0x{exc.status:08x})")
            return
        if step.token:
            self._out += step.token
        if step.complete:
            assert step.credentials is not None  # complete: TSCredentials checked against NTLM
            self._nla_credentials = step.credentials
            self._decoder.credssp = False
            self.state = MCS_CONNECT
            if self.selected_protocol == PROTOCOL_HYBRID_EX:
                self._out += negotiation.early_user_authorization_result()

    # -- MCS connect -----------------------------------------------------------------------
    def _on_connect_initial(self, payload: bytes) -> None:
        initial = mcs.parse_connect_initial(payload)
        client = gcc.parse_client_data(gcc.parse_conference_create_request(initial.user_data))
        if (client.core.server_selected_protocol is not None
                and client.core.server_selected_protocol != self.selected_protocol):
            raise DecodeError("client core data names another selected protocol")
        self.client = client
        self.bpp = client.core.session_bpp()
        self.desktop = output.clamp_desktop(client.core.desktop_width,
                                            client.core.desktop_height)
        self.channels[mcs.IO_CHANNEL] = "I/O"
        ids = [self._add_channel(name) for name, _options in client.channels]
        # Windows' order: core, network, security (aardwolf reads them in that order).
        blocks = (gcc.server_core(self.requested_protocols or 0, self.config.server_version)
                  + gcc.server_network(mcs.IO_CHANNEL, ids) + gcc.server_security())
        if client.message_channel:
            blocks += gcc.server_message_channel(self._add_channel("MCS message channel"))
        self._out += x224_data(mcs.connect_response(gcc.conference_create_response(blocks)))
        self.state = MCS_DOMAIN

    def _add_channel(self, name: str) -> int:
        """The next free channel id after the I/O channel, skipping the user's id."""
        channel = max(self.channels) + 1
        if channel == self.user_id:
            channel += 1
        self.channels[channel] = name
        return channel

    # -- MCS domain ------------------------------------------------------------------------
    def _on_domain_pdu(self, p: mcs.DomainPDU) -> None:
        if p.kind == mcs.DISCONNECT_PROVIDER_ULTIMATUM:
            self._close("client sent a Disconnect Provider Ultimatum", quiet=True)
            return
        if self.state == MCS_DOMAIN and p.kind == mcs.ERECT_DOMAIN_REQUEST:
            return
        if self.state == MCS_DOMAIN and p.kind == mcs.ATTACH_USER_REQUEST:
            if self.attached:
                raise DecodeError("second Attach User Request")
            self.attached = True
            self._out += x224_data(mcs.attach_user_confirm(self.user_id))
            return
        if self.state == MCS_DOMAIN and p.kind == mcs.CHANNEL_JOIN_REQUEST:
            if not self.attached or p.initiator != self.user_id:
                raise DecodeError("Channel Join Request before Attach User")
            # rdesktop numbers its static channels 1004, 1005, ... itself, whatever the
            # server network data said (and so may join the user channel twice): confirm.
            self._out += x224_data(mcs.channel_join_confirm(self.user_id, p.channel))
            return
        if p.kind == mcs.SEND_DATA_REQUEST:
            if not self.attached or p.initiator != self.user_id:
                raise DecodeError("Send Data Request from an unknown user")
            if p.channel == mcs.IO_CHANNEL:
                self._on_io_data(p.data)
            elif self.state == ACTIVE:
                self._touch()  # a virtual channel: nothing is served on it
            return
        if p.kind == mcs.DETACH_USER_REQUEST:
            self._close("client detached", quiet=True)
            return
        raise DecodeError(f"MCS PDU {p.kind} in state {self.state}")

    def _on_io_data(self, data: bytes) -> None:
        if self.state == MCS_DOMAIN:
            flags, body = pdu.parse_security_header(data)
            if not flags & pdu.SEC_INFO_PKT:
                raise DecodeError(f"expected the Client Info PDU (security flags 0x{flags:x})")
            self._on_client_info(pdu.parse_client_info(body))
            return
        for share in pdu.split_share_control(data):
            if share.pdu_type == pdu.PDUTYPE_CONFIRMACTIVEPDU:
                if self.state != CAPABILITIES:
                    raise DecodeError("unexpected Confirm Active")
                confirm = pdu.parse_confirm_active(share.body)
                if confirm.share_id != pdu.SHARE_ID:
                    raise DecodeError("Confirm Active for another share")
                self.fastpath_output = pdu.client_fastpath_output(confirm.capabilities)
                self.state = FINALIZING
                # Windows sends its Synchronize at once (aardwolf waits for it before its
                # own); the client's Synchronize then needs no answer.
                self._out += _io(pdu.synchronize())
            elif share.pdu_type == pdu.PDUTYPE_DATAPDU:
                if self.state not in (FINALIZING, ACTIVE):
                    raise DecodeError("data PDU before Confirm Active")
                self._on_data_pdu(pdu.parse_share_data(share.body))
            else:
                raise DecodeError(f"unexpected share control PDU type {share.pdu_type}")

    # -- logon -----------------------------------------------------------------------------
    def _on_client_info(self, info: pdu.ClientInfo) -> None:
        self.info = info
        assert self.client is not None
        client_name = self.client.core.client_name
        if self._nla_credentials is not None:
            domain, user, _ = self._nla_credentials
            self.user, self.domain = split_user(user, domain)
        else:
            self.user, self.domain = split_user(info.user, info.domain)
            expected = self.config.lookup_password(self.user) if self.user else None
            if expected is None or expected != info.password:
                self.logon_failed = True
                self._failed_logon(self.user, client_name, STATUS_LOGON_FAILURE)
        if not self.logon_failed:
            self._admit(client_name)
        self._out += _io(pdu.license_valid_client())
        session_id = self.session.id if self.session is not None else 0
        caps = pdu.server_capabilities(*self.desktop, self.bpp)  # the client follows these
        self._out += _io(pdu.demand_active(caps, session_id))
        self.demand_sent = True
        self.state = CAPABILITIES

    def _admit(self, client_name: str) -> None:
        """Ask the engine: reattach, take the console, a new session, or the refusal."""
        assert self.client is not None
        admission = self.config.gate.admit_interactive(
            "rdp", self.address, self._engine_closes, user=self.user, client=client_name,
            console_requested=self.client.console_requested,
            takeover_other_user=self.config.takeover_other_user)
        if not admission.admitted:
            self.refused_status = admission.status
            return
        self.session = admission.session
        if admission.reattached:
            self._session_live = True
            # Another user taking the console over is a new logon on it.
            self._new_logon = self.session.user.lower() != self.user.lower()
        else:
            self._new_logon = True

    def _failed_logon(self, user: str, client: str, status: int) -> None:
        if self.config.on_failed_logon is not None:
            self.config.on_failed_logon(self.address, user, client, status)

    # -- share data PDUs -------------------------------------------------------------------
    def _on_data_pdu(self, data: pdu.ShareData) -> None:
        kind = data.pdu_type2
        if kind == pdu.PDUTYPE2_SYNCHRONIZE:
            pass  # answered when the Confirm Active arrived
        elif kind == pdu.PDUTYPE2_CONTROL:
            if len(data.payload) < 8:
                raise DecodeError("Control PDU too short")
            (action,) = struct.unpack_from("<H", data.payload)
            if action == pdu.CTRLACTION_COOPERATE:
                self._out += _io(pdu.control(pdu.CTRLACTION_COOPERATE))
            elif action == pdu.CTRLACTION_REQUEST_CONTROL:
                self._out += _io(pdu.control(pdu.CTRLACTION_GRANTED_CONTROL, self.user_id,
                                             mcs.SERVER_CHANNEL))
        elif kind == pdu.PDUTYPE2_FONTLIST:
            self._out += _io(pdu.font_map())
            if self.state == FINALIZING:
                self.state = ACTIVE
                self._activated()
        elif kind == pdu.PDUTYPE2_SHUTDOWN_REQUEST:
            self._out += _io(pdu.shutdown_denied())  # Windows asks the user instead
        elif kind == pdu.PDUTYPE2_REFRESH_RECT and self.state == ACTIVE and self._screen:
            self._draw()
        elif kind in (pdu.PDUTYPE2_INPUT, pdu.PDUTYPE2_SUPPRESS_OUTPUT):
            if self.state == ACTIVE:
                self._touch()
        # Anything else (persistent key lists, frame acks, ...) is ignored, as Windows does.

    # -- after activation --------------------------------------------------------------------
    def _activated(self) -> None:
        self._cancel_timer()
        assert self.client is not None
        core = self.client.core
        if self.logon_failed:
            self._show(LOGON_FAILURE_TEXT)
            self._timer = self.config.clock.callLater(
                self.config.refusal_display_seconds, self._teardown, None,
                mcs.RN_USER_REQUESTED, (STATUS_LOGON_FAILURE, pdu.LOGON_FAILED_BAD_PASSWORD))
            return
        if self.refused_status is None and self.session is not None and self._new_logon:
            status = self.config.gate.logon(self.session, user=self.user, client=core.client_name,
                                            anonymous=False, console=self.session.console)
            if status:
                self.session, self.refused_status = None, status
            else:
                self._session_live = True
        if self.refused_status is not None or self.session is None:
            self._show(self.config.refusal_text)
            logon_error = None
            if self.config.refusal_logon_error is not None:
                logon_error = (self.config.refusal_logon_error, pdu.LOGON_FAILED_OTHER)
            self._timer = self.config.clock.callLater(
                self.config.refusal_display_seconds, self._teardown,
                self.config.denial_errinfo, mcs.RN_USER_REQUESTED, logon_error)
            return
        self._show(None)

    def _show(self, text: str | None) -> None:
        """Draw the desktop (``text`` None) or a message box; the PDUs are made as the
        adapter takes them, so a held session costs no screen copy."""
        self._screen = (text, *self.desktop, self.bpp, self.fastpath_output,
                        self.config.desktop_color)
        self._draw()

    def _draw(self) -> None:
        assert self._screen is not None
        text = self._screen[0]
        self._out.add_screen(output.screen(*self._screen), bounded=text is not None)

    def _touch(self) -> None:
        if self.session is not None and self._session_live:
            self.config.gate.touch(self.session)

    # -- endings ---------------------------------------------------------------------------
    def _engine_closes(self, reason: str) -> None:
        """The engine ends, disconnects or hands over this connection's session (admin
        API, timers, another connection): tell the client why, then drop it."""
        self.session = None  # the engine has already settled the session's fate
        errinfo = ERRINFO_FOR_REASON.get(reason)
        dpum = mcs.RN_PROVIDER_INITIATED if reason == "admin-disconnect" else mcs.RN_USER_REQUESTED
        self._teardown(errinfo, dpum, None)

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
            if self.demand_sent:
                self._out += _io(pdu.deactivate_all())
        if self.state not in (X224, CREDSSP, MCS_CONNECT):
            self._out += x224_data(mcs.disconnect_provider_ultimatum(dpum_reason))
        self._close("", quiet=True)
        self._notify()

    def _handshake_expired(self) -> None:
        self._timer = None
        self._abort(f"no logon within {self.config.handshake_timeout:g} s "
                    f"(stalled in state {self.state})")
        self._notify()

    def _abort(self, why: str) -> None:
        self.close_abruptly = True
        self._close(why)

    def _close(self, why: str, quiet: bool = False) -> None:
        if why and not quiet:
            self.log(f"rdp {self.address}: {why}; disconnecting")
        self._cancel_timer()
        # What is left of a desktop no longer matters; a message box is finished first
        # (its size does not grow with the desktop), unless the connection is aborted.
        self._out.drop_screens(keep_bounded=not self.close_abruptly)
        self.close_requested = True

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _notify(self) -> None:
        if self.on_output is not None:
            self.on_output()
