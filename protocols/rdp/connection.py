"""The RDP server connection: the sans-IO surface and the dispatch of input (MS-RDPBCGR
1.3.1.1, the connection sequence, as far as a TLS, CredSSP or Standard RDP Security client
needs it).

Bytes go in with ``receive_data``; bytes come out of ``data_to_send``. What the adapter
must do besides writing is an event: ``StartTLS`` (write what is pending, then start TLS)
and ``CloseConnection`` (how to drop the transport); ``tls_requested``, ``close_requested``,
``close_abruptly`` and ``deny_with_tls_alert`` read them. Time is passed in: ``get_timer()``
is the next deadline (the pre-logon timeout, the end of the refusal's display) and
``handle_timer(now)`` runs what is due; one ``state.TimerOwner`` arms it on the injected
clock, and output made outside ``receive_data`` (a timer, the engine's close hook) is
announced through ``on_output`` so the adapter flushes.

The states and their transitions are ``state.TRANSITIONS``; the jobs are split:
``activation.py`` (Client Info, admission, capabilities, finalization, the screen),
``ending.py`` (teardowns, closes, the engine's close hook).

Sessions are asked of the session gate (the engine) after logon: the core never counts.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocols.auth.credssp import CredSSPAcceptor
from protocols.auth.ntlm import AuthFailure
from protocols.rdp import gcc, mcs, negotiation, output, pdu, render
from protocols.rdp.activation import LOGON_FAILURE_TEXT, ActivationMixin, split_user
from protocols.rdp.ending import (
    ABORT,
    ERRINFO_FOR_REASON,
    GRACEFUL,
    TLS_ALERT,
    CloseConnection,
    EndingMixin,
    StartTLS,
)
from protocols.rdp.autoreconnect import AutoReconnectMixin, CookieJar
from protocols.rdp.faulting import HOLD, FaultMixin, FaultSource
from protocols.rdp.interaction import CONSENT
from protocols.rdp.security import StandardSecurity, StandardSecurityConfig
from protocols.rdp.state import (
    HANDSHAKE,
    Clock,
    ConnectionStateMachine,
    Event,
    State,
    TimerOwner,
    Timers,
)
from protocols.rdp.x224 import (
    CREDSSP_FRAME,
    FASTPATH_FRAME,
    PROTOCOL_HYBRID,
    PROTOCOL_HYBRID_EX,
    PROTOCOL_RDP,
    TLS_FRAME,
    X224_CR,
    X224_DR,
    X224_DT,
    DecodeError,
    Frame,
    FrameDecoder,
    connection_confirm,
    connection_confirm_without_negotiation,
    negotiation_failure,
    parse_connection_request,
    parse_x224,
    x224_data,
)
from protocols.sessions import SessionGate

__all__ = ["ABORT", "ERRINFO_FOR_REASON", "GRACEFUL", "LOGON_FAILURE_TEXT", "TLS_ALERT",
           "CloseConnection", "RDPServerConfig", "RDPServerConnection", "StartTLS", "State",
           "split_user"]

# Parse errors that mean "bad input", whichever layer raised them.
BAD_INPUT = (DecodeError, struct.error, ValueError, IndexError, KeyError, UnicodeError)


class RDPSessionGate(SessionGate, Protocol):
    """What RDP needs of the engine beyond SMB's view: sessions that outlive connections."""

    def disconnect(self, session: Any, reason: str = "disconnect") -> None: ...

    def get(self, session_id: int) -> Any: ...

    def admit_interactive(self, protocol: str, address: str,
                          close_hook: Callable[[str], None] | None, *, user: str,
                          client: str, console_requested: bool,
                          takeover_other_user: bool = False) -> Any: ...

    def ask_to_yield(self, target: Any, requester: str,
                     answer: Callable[[bool], None]) -> Callable[[], None]: ...


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
    direct_tls: bool = False  # a bare TLS ClientHello first on the connection starts TLS
    server_version: int = gcc.RDP_VERSION_5_PLUS  # TS_UD_SC_CORE version
    server_early_flags: int = 0  # TS_UD_SC_CORE earlyCapabilityFlags
    # Answer a client's CS_MULTITRANSPORT with SC_MULTITRANSPORT (RDP 8.0 and later).
    multitransport: bool = False
    refusal_logon_error: int | None = None  # Save Session Info ErrorNotificationType
    denial_errinfo: int = pdu.ERRINFO_SERVER_DENIED_CONNECTION
    refusal_display_seconds: float = 30.0
    handshake_timeout: float = 30.0  # a client not activated by then is dropped
    takeover_other_user: bool = False  # single-session hosts: a new user ends the old one
    # A one-session client SKU's take-over (editions.TakeoverPersona: the texts, buttons,
    # timeout, the declined errinfo); None: a second user is refused.
    takeover: Any = None
    refusal_ok_errinfo: int | None = None  # the refusal's OK: this errinfo (None: the timer's)
    fastpath_input_flag: int = 0  # the Input Capability Set's fast-path flag (0: slow-path)
    capability_sets: str = "minimal"  # the Demand Active's profile (capsets.py)
    computer_name: str = "EMULATOR"  # COMPUTER\user in the take-over texts
    credssp: Callable[[], CredSSPAcceptor] | None = None  # a fresh acceptor per connection
    # Records a failed logon (address, user, client name, status): an event, no slot.
    on_failed_logon: Callable[[str, str, str, int], None] | None = None
    desktop_color: tuple[int, int, int] = render.DESKTOP_COLOR
    # The security layers the host speaks: "tls" (TLS, and CredSSP with ``nla``) and
    # "rdp" (Standard RDP Security: RC4 with the proprietary certificate); both is the
    # "Negotiate" layer of 2003 SP1: TLS when the client offers it, RDP Security otherwise.
    security_layers: tuple[str, ...] = ("tls",)
    # False: every Connection Request gets a Connection Confirm without RDP_NEG_RSP, as
    # XP's RDP 5.1 server answers (Standard RDP Security follows).
    answers_negotiation: bool = True
    standard_security: StandardSecurityConfig | None = None  # made when "rdp" is a layer
    faults: FaultSource | None = None  # the host's fault table (faulting.py)
    # An admin ending's errinfo by session id, read by the close hook (Host.rdp_end).
    ending_errinfo: dict[int, int] = field(default_factory=dict)
    auto_reconnect: CookieJar | None = None  # the host's auto-reconnect cookies

    def __post_init__(self) -> None:
        if "rdp" in self.security_layers and self.standard_security is None:
            self.standard_security = StandardSecurityConfig()
        if not self.answers_negotiation and "rdp" not in self.security_layers:
            raise ValueError("a host that does not negotiate speaks Standard RDP Security")


# Server 2016 answers a client's 0x305 with 0x301: UDPFECL (lossy UDP) is not offered.
MULTITRANSPORT_ANSWERED = (gcc.TRANSPORTTYPE_UDPFECR | gcc.TRANSPORTTYPE_UDP_PREFERRED
                           | gcc.SOFTSYNC_TCP_TO_UDP)


class RDPServerConnection(ActivationMixin, EndingMixin, FaultMixin, AutoReconnectMixin):
    def __init__(self, config: RDPServerConfig, *, address: str,
                 log: Callable[[str], None] = lambda line: None) -> None:
        self.config = config
        self.address = address
        self.log = log
        self.on_output: Callable[[], None] | None = None
        self._decoder = FrameDecoder()
        self._decoder.tls_first = config.direct_tls and "tls" in config.security_layers
        self.tls_preface = b""  # bytes that came before TLS started and belong to it
        self._tls_active = False
        self._out = output.Output()
        self._machine = ConnectionStateMachine()
        self._events: list[StartTLS | CloseConnection] = []
        self._closing: CloseConnection | None = None
        self._timers = Timers()
        self._timer_owner = TimerOwner(config.clock, self.get_timer, self._on_timer)
        self.requested_protocols: int | None = None
        self.selected_protocol: int | None = None
        self.client: gcc.ClientData | None = None
        self.channels: dict[int, str] = {}
        self.user_id = 0  # handed out with the Connect Response (after the channels)
        self.attached = False
        self._credssp: CredSSPAcceptor | None = None
        self._nla_credentials: tuple[str, str, str] | None = None
        self._security: StandardSecurity | None = None  # Standard RDP Security, once chosen
        self._init_activation()
        self._init_faults()
        self._timers.set(HANDSHAKE, config.clock.seconds() + config.handshake_timeout)
        self._timer_owner.rearm()
        config.gate.note_connection("rdp")

    # -- the sans-IO surface -------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if self.close_requested or self._stalled:
            return
        if self.tls_preface:  # more of a bare ClientHello, before the adapter started TLS
            self.tls_preface += data
            return
        self._decoder.feed(data)
        try:
            while not self.close_requested and not self._stalled:
                frame = self._decoder.next_frame()
                if frame is None:
                    break
                self._dispatch(frame)
                self._reactivate_if_due()
        except BAD_INPUT as exc:
            self._abort(f"bad input in state {self.state}: {exc}")
        self._timer_owner.rearm()

    def data_to_send(self, limit: int | None = None) -> bytes:
        """What is to be sent: all of it, or (``limit``) the queued bytes and about that
        much of a screen, which is drawn only as it is taken."""
        return self._out.take(limit)

    @property
    def output_pending(self) -> bool:
        return self._out.pending

    def events(self) -> list[StartTLS | CloseConnection]:
        """What the adapter must do after writing what is pending, in order (taken once)."""
        n = self._visible_events()  # a fault's hold keeps the later ones back
        events, self._events = self._events[:n], self._events[n:]
        if self._held_events is not None:
            self._held_events = 0
        return events

    @property
    def tls_requested(self) -> bool:
        return any(isinstance(e, StartTLS) for e in self._events[:self._visible_events()])

    @property
    def close_abruptly(self) -> bool:
        return self._closing is not None and self._closing.mode == ABORT

    @property
    def deny_with_tls_alert(self) -> bool:
        """End TLS with a fatal access_denied alert (the adapter writes it)."""
        return self._closing is not None and self._closing.mode == TLS_ALERT

    @property
    def may_end_with_tls_alert(self) -> bool:
        """Whether this connection can still end with the access_denied alert: only a
        CredSSP logon (HYBRID or HYBRID_EX) can, so the adapter watches the server's TLS
        records only then (or while the protocol is unknown: TLS began with a bare
        ClientHello, the Connection Request is still to come inside it)."""
        return self.config.credssp is not None and self.selected_protocol in (
            None, PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX)

    def tls_started(self) -> None:
        """The adapter started TLS (bytes from now on are the decrypted stream) and fed it
        ``tls_preface``, the bytes of a bare ClientHello that arrived first."""
        self._events = [e for e in self._events if not isinstance(e, StartTLS)]
        self._tls_active = True
        self.tls_preface = b""

    def get_timer(self) -> float | None:
        """The next deadline, in the clock's seconds; None when nothing waits."""
        return self._timers.next_deadline()

    def handle_timer(self, now: float) -> None:
        """Run what is due at ``now``."""
        self._on_timer(now)
        self._timer_owner.rearm()

    def connection_lost(self) -> None:
        self._timers.clear()
        self._timer_owner.cancel()
        if self._closing is None:
            self._closing = CloseConnection(GRACEFUL)
            self._machine.fire(Event.CLOSE)
        self._interaction_ends()
        self._end_session()

    # -- framing and dispatch ----------------------------------------------------------------
    def _dispatch(self, frame: Frame) -> None:
        if self.state == State.ACTIVE and self._struck("ACTIVE"):
            return
        if frame.kind == CREDSSP_FRAME:
            if self._struck("CREDSSP"):
                return
            self._on_credssp(frame.data)
            return
        if frame.kind == TLS_FRAME:
            self._on_bare_tls()
            return
        if frame.kind == FASTPATH_FRAME:
            if not self.reactivating:  # input sent before the client saw Deactivate All
                self._machine.expect(State.ACTIVE, what="fast-path input")
            self._on_fast_input(frame.data)  # interaction.py: decoded, to what is shown
            return
        code, payload = parse_x224(frame.data)
        if self.state == State.X224:
            if code != X224_CR:
                raise DecodeError("expected an X.224 Connection Request")
            if self._struck("CONNECTION_REQUEST"):
                return
            self._on_connection_request(frame.data)
            return
        if code == X224_DR:
            self._close("client sent an X.224 Disconnect Request")
            return
        if code != X224_DT:
            raise DecodeError(f"unexpected X.224 TPDU 0x{code:02x}")
        if self.state == State.MCS_CONNECT:
            if self._struck("CONNECT_INITIAL"):
                return
            self._on_connect_initial(payload)
        elif self.state == State.CREDSSP:
            raise DecodeError("TPKT during CredSSP")
        else:
            self._on_domain_pdu(mcs.parse_domain_pdu(payload))

    # -- X.224 negotiation -----------------------------------------------------------------
    def _on_bare_tls(self) -> None:
        """A TLS ClientHello before any X.224 (scanners: ssl-enum-ciphers, ssl-cert): start
        TLS with those bytes; an X.224 Connection Request may follow inside it."""
        self._decoder.tls_first = False
        self.tls_preface = self._decoder.take_buffered()
        self._events.append(StartTLS())

    def _on_connection_request(self, tpdu: bytes) -> None:
        self._decoder.tls_first = False
        request = parse_connection_request(tpdu)
        requested = request.requested_protocols or 0
        self.requested_protocols = requested
        config = self.config
        layers = config.security_layers
        if not config.answers_negotiation:
            self._select_standard_security(negotiated=False)
            return
        choice = negotiation.select_protocol(
            requested, config.nla_mode or ("offered" if config.nla else "off"),
            early_user_auth=config.early_user_auth, credssp=config.credssp is not None,
            tls="tls" in layers,
            # inside a bare-TLS start only what runs over TLS can follow
            standard_security="rdp" in layers and not self._tls_active)
        if choice.selected == PROTOCOL_RDP:
            self._select_standard_security(negotiated=request.requested_protocols is not None)
            return
        if choice.selected is None:
            # Nothing the host speaks, or no CredSSP where NLA is required: what Windows
            # sends when its security layer is TLS or NLA.
            self._out += negotiation_failure(choice.failure)
            self._close(f"client offers 0x{requested:x}; RDP_NEG_FAILURE 0x{choice.failure:x}",
                        quiet=True)
            return
        selected = choice.selected
        self.selected_protocol = selected
        self._out += connection_confirm(selected, config.neg_flags)
        if not self._tls_active:  # after a bare ClientHello, TLS already runs
            self._events.append(StartTLS())
            if self._decoder.buffered:
                raise DecodeError("data after the Connection Request before TLS")
        if selected in (PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX):
            assert self.config.credssp is not None
            self._credssp = self.config.credssp()
            self._decoder.credssp = True
            self._machine.fire(Event.CREDSSP_SELECTED)
        else:
            self._machine.fire(Event.TLS_SELECTED)

    def _select_standard_security(self, *, negotiated: bool) -> None:
        """RDP_NEG_RSP selecting PROTOCOL_RDP, or (no RDP_NEG_REQ, or a host that predates
        negotiation) a Connection Confirm without rdpNegData (MS-RDPBCGR 3.3.5.3.2)."""
        assert self.config.standard_security is not None  # __post_init__ made it
        self.selected_protocol = PROTOCOL_RDP
        self._out += (connection_confirm(PROTOCOL_RDP) if negotiated
                      else connection_confirm_without_negotiation())
        self._security = StandardSecurity(self.config.standard_security)
        self._out.seal = self._security.seal
        self._machine.fire(Event.RDP_SELECTED)

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
            self._failed_logon(self._credssp.attempted_user or "", "", exc.status)
            self._close(f"NLA logon failed (0x{exc.status:08x})",
                        mode=GRACEFUL if reply else TLS_ALERT)
            return
        if step.token:
            self._out += step.token
        if step.complete:
            assert step.credentials is not None  # complete: TSCredentials checked against NTLM
            self._nla_credentials = step.credentials
            self._decoder.credssp = False
            self._machine.fire(Event.CREDSSP_DONE)
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
        self._client_data(client)
        security = gcc.server_security()
        if self._security is not None:
            if self._security.choose(client.encryption_methods) is None:
                # Client Compatible and up: no method in common ends it (MS-RDPBCGR 5.3.2).
                self._close(f"no encryption method in common (client offers "
                            f"0x{client.encryption_methods:x})")
                return
            security = self._security.server_security_block()
        self.channels[mcs.IO_CHANNEL] = "I/O"
        ids = [self._add_channel(name) for name, _options in client.channels]
        # Windows' order: core, network, security (aardwolf reads them in that order), the
        # message channel, multitransport (Server 2016's, prot-od-netcaps MS-RDSOD traces).
        blocks = (gcc.server_core(self.requested_protocols or 0, self.config.server_version,
                                  self.config.server_early_flags)
                  + gcc.server_network(mcs.IO_CHANNEL, ids) + security)
        if client.message_channel:
            blocks += gcc.server_message_channel(self._add_channel("MCS message channel"))
        if self.config.multitransport and client.multitransport_flags is not None:
            blocks += gcc.server_multitransport(
                client.multitransport_flags & MULTITRANSPORT_ANSWERED)
        # The user channel comes after every channel given out, as Windows numbers them
        # (1007 after three static channels in MS-RDPBCGR 4.1's examples; 1009 after four
        # and the message channel in Server 2016's traces).
        self.user_id = max(self.channels) + 1
        self._out += x224_data(mcs.connect_response(gcc.conference_create_response(blocks)))
        self._machine.fire(Event.CONNECT_INITIAL if self._security is None
                           else Event.CONNECT_INITIAL_RDP)

    def _add_channel(self, name: str) -> int:
        """The next channel id after the I/O channel and those given out before it."""
        channel = max(self.channels) + 1
        self.channels[channel] = name
        return channel

    # -- MCS domain ------------------------------------------------------------------------
    def _on_domain_pdu(self, p: mcs.DomainPDU) -> None:
        in_domain = self.state in (State.SECURITY_EXCHANGE, State.MCS_DOMAIN)
        if p.kind == mcs.DISCONNECT_PROVIDER_ULTIMATUM:
            self._close("client sent a Disconnect Provider Ultimatum", quiet=True)
            return
        if in_domain and p.kind == mcs.ERECT_DOMAIN_REQUEST:
            return
        if in_domain and p.kind == mcs.ATTACH_USER_REQUEST:
            if self.attached:
                raise DecodeError("second Attach User Request")
            self.attached = True
            self._out += x224_data(mcs.attach_user_confirm(self.user_id))
            return
        if in_domain and p.kind == mcs.CHANNEL_JOIN_REQUEST:
            if not self.attached or p.initiator != self.user_id:
                raise DecodeError("Channel Join Request before Attach User")
            # rdesktop numbers its static channels 1004, 1005, ... itself, whatever the
            # server network data said (and so may join the user channel twice): confirm.
            self._out += x224_data(mcs.channel_join_confirm(self.user_id, p.channel))
            return
        if p.kind == mcs.SEND_DATA_REQUEST:
            if not self.attached or p.initiator != self.user_id:
                raise DecodeError("Send Data Request from an unknown user")
            if self._security is None:
                flags, data = None, p.data
            elif self.state == State.SECURITY_EXCHANGE:
                if p.channel != mcs.IO_CHANNEL:
                    raise DecodeError("virtual channel data before the Security Exchange PDU")
                if self._struck("SECURITY_EXCHANGE"):
                    return
                self._security.security_exchange(p.data)
                self._machine.fire(Event.SECURITY_EXCHANGE)
                return
            else:  # every channel shares the cipher streams: each PDU is decrypted
                flags, data = self._security.unwrap(p.data)
            if p.channel == mcs.IO_CHANNEL:
                self._on_io_data(flags, data)
            elif self.state == State.ACTIVE:
                self._touch()  # a virtual channel: nothing is served on it
            return
        if p.kind == mcs.DETACH_USER_REQUEST:
            self._close("client detached", quiet=True)
            return
        raise DecodeError(f"MCS PDU {p.kind} in state {self.state}")

    def _on_io_data(self, flags: int | None, data: bytes) -> None:
        """``flags``: the security header's, already taken off (Standard RDP Security);
        None under TLS, where only the Client Info and licensing PDUs have a header."""
        if self.state == State.MCS_DOMAIN:
            if flags is None:
                flags, data = pdu.parse_security_header(data)
            if not flags & pdu.SEC_INFO_PKT:
                raise DecodeError(f"expected the Client Info PDU (security flags 0x{flags:x})")
            self._on_client_info(pdu.parse_client_info(data))
            return
        if flags is not None and flags & pdu.SEC_LICENSE_PKT:
            return  # a client licensing PDU: the server sent no request, nothing to answer
        for share in pdu.split_share_control(data):
            if share.pdu_type == pdu.PDUTYPE_CONFIRMACTIVEPDU:
                self._machine.expect(State.CAPABILITIES, what="Confirm Active")
                self._on_confirm_active(pdu.parse_confirm_active(share.body))
            elif share.pdu_type == pdu.PDUTYPE_DATAPDU:
                if self.reactivating and self.state == State.CAPABILITIES:
                    continue  # input sent before the client saw Deactivate All
                self._machine.expect(State.FINALIZING, State.ACTIVE, what="data PDU")
                self._on_data_pdu(pdu.parse_share_data(share.body))
            else:
                raise DecodeError(f"unexpected share control PDU type {share.pdu_type}")

    # -- time --------------------------------------------------------------------------------
    def _on_timer(self, now: float) -> None:
        for name in self._timers.expired(now):
            if name == HANDSHAKE:
                self._abort(f"no logon within {self.config.handshake_timeout:g} s "
                            f"(stalled in state {self.state})")
                self._notify()
            elif name == CONSENT:
                self._consent_timed_out()  # the engine disconnects this session
                self._notify()
            elif name == HOLD:
                self._release_hold()  # a delayed answer goes now
            else:
                self._display_over()  # the teardown notifies
