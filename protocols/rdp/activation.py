"""From the Client Info PDU to an active session (MS-RDPBCGR 1.3.1.1 phases 8-10): the
password check, the one question to the engine (admission), licensing, the Demand
Active, the client's Confirm Active and finalization PDUs, and what is drawn: the
desktop, the refusal or the logon failure. A mixin over ``RDPServerConnection``."""

from __future__ import annotations

import struct
from typing import Any

from protocols.rdp import capsets, gcc, mcs, output, pdu
from protocols.rdp.interaction import InteractionMixin
from protocols.rdp.output import io_pdu as _io
from protocols.rdp.state import HANDSHAKE, Event, State
from protocols.rdp.x224 import DecodeError

STATUS_LOGON_FAILURE = 0xC000006D

LOGON_FAILURE_TEXT = ("The system could not log you on. Make sure your User name and domain "
                      "are correct, then type your password again. Letters in passwords must "
                      "be typed using the correct case.")

DISPLAY = "display"  # the deadline of a message box on screen, then the teardown


def split_user(name: str, domain: str) -> tuple[str, str]:
    """'DOMAIN\\user' and 'user@domain' -> (user, domain)."""
    if "\\" in name:
        domain, _, name = name.partition("\\")
    elif "@" in name and not domain:
        name, _, domain = name.partition("@")
    return name, domain


class ActivationMixin(InteractionMixin):
    def _init_activation(self) -> None:
        self.bpp = 16
        self.desktop = (1024, 768)  # the session's desktop: the client's ask, clamped
        self.info: pdu.ClientInfo | None = None
        self.user = ""
        self.domain = ""
        self.session: Any = None  # the engine's session while this connection holds it
        self._session_live = False  # logged on (or reattached): a drop disconnects it
        self._new_logon = False  # call gate.logon when activation completes
        self.refused_status: int | None = None
        self.logon_failed = False
        self.fastpath_output = False
        self.confirm_caps: dict[int, bytes] = {}  # the client's capability sets
        self._screen: tuple[Any, ...] | None = None  # what is on screen: output.screen's args
        # What ends the message box on screen: (errinfo, DPUM reason, logon error).
        self._after_display: tuple[int | None, int, tuple[int, int] | None] | None = None
        self._init_interaction()

    def _client_data(self, client: gcc.ClientData) -> None:
        self.bpp = client.core.session_bpp()
        self.desktop = output.clamp_desktop(client.core.desktop_width,
                                            client.core.desktop_height)

    # -- logon -----------------------------------------------------------------------------
    def _on_client_info(self, info: pdu.ClientInfo) -> None:
        if self._struck("CLIENT_INFO"):
            return
        self._machine.fire(Event.CLIENT_INFO)
        self.info = info
        assert self.client is not None
        client_name = self.client.core.client_name
        target = self._reconnect_target(info)  # a good auto-reconnect cookie's session
        if self._nla_credentials is not None:
            domain, user, _ = self._nla_credentials
            self.user, self.domain = split_user(user, domain)
        elif target is not None:  # no password check: the cookie stands for it (5.5)
            self.user, self.domain = target.user, split_user(info.user, info.domain)[1]
        else:
            self.user, self.domain = split_user(info.user, info.domain)
            expected = self.config.lookup_password(self.user) if self.user else None
            if expected is None or expected != info.password:
                self.logon_failed = True
                self._failed_logon(self.user, client_name, STATUS_LOGON_FAILURE)
        if not self.logon_failed:
            self._admit(client_name, target)
        if self._security is None:
            self._out += _io(pdu.license_valid_client())
        else:  # its security header is the security layer's to write
            self._out.add(_io(pdu.license_valid_client_message()), pdu.SEC_LICENSE_PKT)
        session_id = self.session.id if self.session is not None else 0
        self._out += _io(pdu.demand_active(self.server_capability_sets(), session_id))

    def server_capability_sets(self) -> list[bytes]:
        """The Demand Active's sets, the edition's (the client follows these)."""
        return capsets.demand_active_sets(self.config.capability_sets, *self.desktop,
                                          self.bpp, self.config.fastpath_input_flag)

    def _admit(self, client_name: str, target: Any = None) -> None:
        """Ask the engine: reattach, take the console, a new session, or the refusal.
        ``target``: the session an auto-reconnect cookie names (its user's, or the
        console): the engine moves it here."""
        assert self.client is not None
        console = self.client.console_requested if target is None else target.console
        admission = self.config.gate.admit_interactive(
            "rdp", self.address, self._engine_closes, user=self.user, client=client_name,
            console_requested=console,
            takeover_other_user=self.config.takeover_other_user)
        if not admission.admitted:
            if admission.displaces is not None and self.config.takeover is not None:
                self._displaces = admission.displaces  # asked after activation: interaction
                return
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

    # -- capabilities and finalization -------------------------------------------------------
    def _on_confirm_active(self, confirm: pdu.ConfirmActive) -> None:
        if confirm.share_id != pdu.SHARE_ID:
            raise DecodeError("Confirm Active for another share")
        if self._struck("CONFIRM_ACTIVE"):
            return
        self._machine.fire(Event.CONFIRM_ACTIVE)
        self.fastpath_output = pdu.client_fastpath_output(confirm.capabilities)
        self.confirm_caps = confirm.capabilities
        # Windows sends its Synchronize at once (aardwolf waits for it before its own); the
        # client's Synchronize then needs no answer.
        self._out += _io(pdu.synchronize())

    def _on_data_pdu(self, data: pdu.ShareData) -> None:
        kind = data.pdu_type2
        active = self.state == State.ACTIVE
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
            if self.state == State.FINALIZING and self._struck("FONT_LIST"):
                return
            self._out += _io(pdu.font_map())
            if self.state == State.FINALIZING:
                self._machine.fire(Event.FONT_LIST)
                if self.reactivating:
                    self._reactivated()
                else:
                    self._activated()
        elif kind == pdu.PDUTYPE2_SHUTDOWN_REQUEST:
            self._out += _io(pdu.shutdown_denied())  # Windows asks the user instead
        elif kind == pdu.PDUTYPE2_REFRESH_RECT and active and self._screen:
            self._draw()
        elif kind == pdu.PDUTYPE2_INPUT:
            self._on_slow_input(data.payload)  # interaction.py
        elif kind == pdu.PDUTYPE2_SUPPRESS_OUTPUT:
            if active:
                self._touch()
        # Anything else (persistent key lists, frame acks, ...) is ignored, as Windows does.

    # -- after activation --------------------------------------------------------------------
    def _activated(self) -> None:
        self._timers.clear(HANDSHAKE)  # the pre-logon timeout is over
        if self.logon_failed:
            self._show(LOGON_FAILURE_TEXT)
            self._display_then(None, mcs.RN_USER_REQUESTED,
                               (STATUS_LOGON_FAILURE, pdu.LOGON_FAILED_BAD_PASSWORD))
            return
        if self._displaces is not None:  # a client SKU's signed-in user: ask (interaction)
            self._show_takeover_question()
            return
        self._start_session()

    def _start_session(self) -> None:
        """Log the admitted session on and draw the desktop, or draw the refusal."""
        assert self.client is not None
        core = self.client.core
        if self.refused_status is None and self.session is not None and self._new_logon:
            status = self.config.gate.logon(self.session, user=self.user, client=core.client_name,
                                            anonymous=False, console=self.session.console)
            if status:
                self.session, self.refused_status = None, status
            else:
                self._session_live = True
                self.session.prompt_hook = self._asked_to_yield
        elif self.session is not None and self._session_live:
            self.session.prompt_hook = self._asked_to_yield  # reattached
        if self.refused_status is not None or self.session is None:
            self._show(self.config.refusal_text)
            logon_error = None
            if self.config.refusal_logon_error is not None:
                logon_error = (self.config.refusal_logon_error, pdu.LOGON_FAILED_OTHER)
            self._display_then(self.config.denial_errinfo, mcs.RN_USER_REQUESTED, logon_error)
            return
        self._show(None)
        self._send_reconnect_cookie()

    def _display_then(self, errinfo: int | None, dpum_reason: int,
                      logon_error: tuple[int, int] | None) -> None:
        """Keep the message box on screen ``refusal_display_seconds``, then tear down."""
        self._after_display = (errinfo, dpum_reason, logon_error)
        self._timers.set(DISPLAY, self.config.clock.seconds()
                         + self.config.refusal_display_seconds)

    def _display_over(self) -> None:
        ending, self._after_display = self._after_display, None
        if ending is not None:
            self._teardown(*ending)

    def _show(self, text: str | None) -> None:
        """Draw the desktop (``text`` None) or a message box with OK (interaction.py takes
        its input); the PDUs are made as the adapter takes them, so a held session costs no
        screen copy."""
        if text is not None:
            self._show_dialog(self._dialog_spec(text), "refusal")
            return
        self.dialog = None
        self._screen = (text, *self.desktop, self.bpp, self.fastpath_output,
                        self.config.desktop_color)
        self._draw()

    def _draw(self) -> None:
        assert self._screen is not None
        if self.dialog is not None:
            self._out.add_screen(output.dialog_screen(
                self.dialog.spec, *self.dialog.look, *self.desktop, self.bpp,
                self.fastpath_output), bounded=True)
            return
        self._out.add_screen(output.screen(*self._screen), bounded=self._screen[0] is not None)

    def _touch(self) -> None:
        if self.session is not None and self._session_live:
            self.config.gate.touch(self.session)
