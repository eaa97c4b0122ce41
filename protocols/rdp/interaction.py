"""What the user does in the session: input events (``input.py``) routed to what the
session shows, and the flows of the drawn dialogs (``dialog.py``):

- the refusal / logon failure box: OK (click, Enter, Space, Escape) ends it at once, with
  the edition's ``refusal_ok_errinfo`` (2003 / Home Server: the logoff errinfo 0xC) or the
  ending its display timer would have had;
- a one-session client SKU's take-over (``RDPServerConfig.takeover``): the new user is
  asked (Yes / No); Yes asks the signed-in user through the engine (``ask_to_yield``),
  whose connection draws the consent prompt with its timeout; the engine disconnects that
  session when it is given up, and the new user's session starts; No ends the new user's
  connection, nothing counted.

Input is looked at only once the session is active (earlier slow-path input is ignored;
fast-path input before activation is bad input); each PDU's events are bounded
(``input.MAX_EVENTS_PER_PDU``) and cost a table lookup each; a dialog is redrawn at most
once per PDU, from a per-state picture cache, and a redraw replaces one not yet sent.
A mixin over ``RDPServerConnection``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from protocols.rdp import dialog, mcs
from protocols.rdp import input as rdpinput
from protocols.rdp.base import ConnectionBase
from protocols.rdp.state import State

CONSENT = "consent"  # the deadline of the signed-in user's take-over prompt

# What a dialog is for: what its chosen button does.
REFUSAL, ASK, CONSENT_PROMPT = "refusal", "ask", "consent"


class InteractionMixin(ConnectionBase):
    # activation.py's, used here
    desktop: tuple[int, int]
    bpp: int
    fastpath_output: bool
    user: str
    refused_status: int | None
    _screen: tuple[Any, ...] | None
    _after_display: tuple[int | None, int, tuple[int, int] | None] | None

    def _init_interaction(self) -> None:
        self.dialog: dialog.Dialog | None = None  # what takes input, when a dialog shows
        self._dialog_purpose = ""
        self._displaces: Any = None  # the session this user was asked about taking over
        self._withdraw: Callable[[], None] | None = None  # our pending question to another
        self._consent_reply: Callable[[bool], None] | None = None  # another's question to us
        self.input_events = 0  # decoded, for the tests and the log

    # -- input ---------------------------------------------------------------------------
    def _on_slow_input(self, data: bytes) -> None:
        if self.state != State.ACTIVE:
            return  # before activation: ignored (Windows has nothing to give it to)
        self._on_input(rdpinput.decode_slow_path(data))

    def _on_fast_input(self, frame: bytes) -> None:
        num, _flags, body = rdpinput.fastpath_body(frame)
        if self._security is not None:
            body = self._security.unwrap_fastpath(frame)  # the MAC checked, the stream kept
        events = rdpinput.decode_fast_path_events(num, body)
        if self.state != State.ACTIVE:  # sent before the client saw a Deactivate All
            self._touch()
            return
        self._on_input(events)

    def _on_input(self, events: list[rdpinput.InputEvent]) -> None:
        self.input_events += len(events)
        self._touch()
        box = self.dialog
        if box is None or not events:
            return
        look = box.look
        for event in events:
            chosen = box.handle(event)
            if chosen is not None:
                self.dialog = None
                self._chosen(self._dialog_purpose, box.spec.buttons.index(chosen))
                return
        if box.look != look:
            self._draw()

    # -- dialogs -------------------------------------------------------------------------
    def _dialog_spec(self, text: str, title: str = "Logon Message",
                     buttons: tuple[str, ...] = ("OK",), cancel: int | None = 0
                     ) -> dialog.DialogSpec:
        return dialog.DialogSpec(text, title, buttons, 0, cancel,
                                 width=dialog.box_width(self.desktop[0]))

    def _show_dialog(self, spec: dialog.DialogSpec, purpose: str) -> None:
        self.dialog = dialog.Dialog(spec, self.desktop)
        self._dialog_purpose = purpose
        self._screen = (spec.text, *self.desktop, self.bpp, self.fastpath_output,
                        self.config.desktop_color)
        self._draw()

    def _chosen(self, purpose: str, index: int) -> None:
        if purpose == REFUSAL:
            self._refusal_closed()
        elif purpose == ASK:
            self._asked(accepted=index == 0)
        elif purpose == CONSENT_PROMPT:
            self._consent(accepted=index == 0)

    def _refusal_closed(self) -> None:
        """OK on the refusal (or the logon failure): the session is logged off now."""
        ending, self._after_display = self._after_display, None
        self._timers.clear("display")
        if ending is None:
            return
        errinfo, dpum, logon_error = ending
        if self.refused_status is not None and self.config.refusal_ok_errinfo is not None:
            errinfo = self.config.refusal_ok_errinfo
        self._teardown(errinfo, dpum, logon_error)

    # -- take-over: the new user's side ------------------------------------------------------
    def _show_takeover_question(self) -> None:
        persona = self.config.takeover
        text = persona.ask_text.format(user=self._other(self._displaces.user))
        self._show_dialog(self._dialog_spec(text, persona.ask_title, persona.ask_buttons,
                                            cancel=1), ASK)

    def _other(self, user: str) -> str:
        return f"{self.config.computer_name}\\{user}"

    def _asked(self, *, accepted: bool) -> None:
        if not accepted:
            self._declined()
            return
        target, self._displaces = self._displaces, None
        self._show(None)  # while the signed-in user decides: an empty desktop
        self._withdraw = self.config.gate.ask_to_yield(target, self._other(self.user),
                                                       self._answered)

    def _answered(self, accepted: bool) -> None:
        self._withdraw = None
        if self.close_requested:
            return
        if accepted:
            assert self.client is not None
            self._admit(self.client.core.client_name)
            if self._displaces is not None:  # another user's session went live meanwhile
                self._show_takeover_question()
            else:
                self._start_session()
        else:
            self._declined()
        self._notify()
        self._timer_owner.rearm()

    def _declined(self) -> None:
        self._teardown(self.config.takeover.declined_errinfo, mcs.RN_USER_REQUESTED, None)

    # -- take-over: the signed-in user's side ------------------------------------------------
    def _asked_to_yield(self, requester: str, reply: Callable[[bool], None]) -> Callable[[], None]:
        """The engine's prompt hook: draw the consent prompt, or (the edition does not ask)
        give the session up at once."""
        persona = self.config.takeover
        if persona is None or persona.consent_text is None or self.close_requested:
            reply(True)
            return lambda: None
        if self._consent_reply is not None:  # one question at a time: the newcomer is told No
            reply(False)
            return lambda: None
        self._consent_reply = reply
        text = persona.consent_text.format(user=requester)
        self._show_dialog(self._dialog_spec(text, persona.consent_title,
                                            persona.consent_buttons, cancel=1), CONSENT_PROMPT)
        self._timers.set(CONSENT, self.config.clock.seconds() + persona.consent_timeout)
        self._timer_owner.rearm()
        self._notify()
        return self._consent_withdrawn

    def _consent(self, *, accepted: bool) -> None:
        reply, self._consent_reply = self._consent_reply, None
        self._timers.clear(CONSENT)
        self.dialog = None
        if not accepted:
            self._show(None)  # back to the desktop
        if reply is not None:
            reply(accepted)  # accepted: the engine disconnects us (errinfo 0x5)

    def _consent_withdrawn(self) -> None:
        """The asker left before an answer: the prompt goes, the session stays."""
        self._consent_reply = None
        self._timers.clear(CONSENT)
        if self.dialog is not None and self._dialog_purpose == CONSENT_PROMPT:
            self.dialog = None
            self._show(None)
            self._notify()
        self._timer_owner.rearm()

    def _consent_timed_out(self) -> None:
        if self._consent_reply is not None:
            self._consent(accepted=True)

    def _interaction_ends(self) -> None:
        """The connection goes: withdraw a question we asked; a prompt we were shown is
        answered by the session leaving (the engine finds it disconnected)."""
        withdraw, self._withdraw = self._withdraw, None
        if withdraw is not None:
            withdraw()
        reply, self._consent_reply = self._consent_reply, None
        if reply is not None:
            reply(True)
