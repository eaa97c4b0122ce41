"""Input routed to the drawn dialogs, and the flows they carry: the refusal's OK (2003 /
Home Server log the session off at once), a client SKU's take-over (the second user asked,
the signed-in user asked, the timeout, No), and bad input. What the client is sent is
painted back into a picture and compared with the renderer's reference for that state."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.core.editions import get_edition
from protocols.rdp import dialog, mcs, pdu
from protocols.rdp import input as rdpinput
from protocols.rdp.input import KeyEvent, MouseEvent
from tests.unit.test_rdp_connection import DISPLAY, USERS, Client, Host, covered

ENTER, TAB, SPACE, ESC, SHIFT = 0x1C, 0x0F, 0x39, 0x01, 0x2A


def press(*scancodes: int) -> list[rdpinput.InputEvent]:
    out: list[rdpinput.InputEvent] = []
    for code in scancodes:
        out += [KeyEvent(code), KeyEvent(code, released=True)]
    return out


def click(x: int, y: int) -> list[rdpinput.InputEvent]:
    return [MouseEvent(0x0800, x, y), MouseEvent(0x9000, x, y), MouseEvent(0x1000, x, y)]


def slow(client: Client, events: list[rdpinput.InputEvent]) -> None:
    client.send_io(pdu.share_data(pdu.PDUTYPE2_INPUT, rdpinput.encode_slow_path(events)))


def fast(client: Client, events: list[rdpinput.InputEvent]) -> None:
    client.send(rdpinput.encode_fast_path(events))


def paint(rects: list[pdu.BitmapRect], size: tuple[int, int] = (1024, 768)) -> Any:
    """32 bpp bitmap updates (bottom-up BGRA rows) -> the client's screen."""
    from PIL import Image

    screen = Image.new("RGB", size)
    for r in rects:
        tile = Image.frombytes("RGB", (r.width, r.height), r.data, "raw", "BGRX", 0, -1)
        screen.paste(tile.crop((0, 0, r.visible_width, r.height)), (r.left, r.top))
    return screen


def shows(client: Client, spec: dialog.DialogSpec, focus: int | None = 0,
          pressed: int | None = None, since: int = 0) -> bool:
    """The last drawing holds the reference picture of ``spec`` in this state."""
    ref = dialog.render(spec, focus, pressed)
    x, y = dialog.origin(1024, 768, ref.width, ref.height)
    drawn = paint(client.report.rects[since:]).crop((x, y, x + ref.width, y + ref.height))
    return drawn.tobytes() == ref.tobytes()


def full_whs() -> tuple[Host, Client]:
    host = Host("whs")
    host.connect().logon("alice", USERS["alice"])
    host.connect().logon("bob", USERS["bob"])
    carol = host.connect("192.0.2.30")
    carol.logon("carol", USERS["carol"], bpp=32)
    return host, carol


# -- the dialog on its own ---------------------------------------------------------------------

YES_NO = dialog.DialogSpec("Sign in anyway?", "Windows", ("Yes", "No"), 0, 1)


def test_tab_shift_tab_arrows_move_the_focus_and_enter_chooses_the_focused_button():
    box = dialog.Dialog(YES_NO, (1024, 768))
    assert box.look == (0, None)
    for e in press(TAB):
        box.handle(e)
    assert box.focus == 1
    for e in [KeyEvent(SHIFT), *press(TAB), KeyEvent(SHIFT, released=True)]:
        box.handle(e)
    assert box.focus == 0
    box.handle(KeyEvent(0x4D, extended=True))  # right arrow
    assert box.focus == 1 and box.handle(KeyEvent(ENTER)) == "No"
    assert box.handle(KeyEvent(ENTER)) is None  # chosen once


def test_space_shows_pressed_while_held_and_chooses_on_release_escape_cancels():
    box = dialog.Dialog(YES_NO, (1024, 768))
    assert box.handle(KeyEvent(SPACE)) is None and box.pressed == 0
    assert box.handle(KeyEvent(ENTER)) is None  # other keys wait while a button is held
    assert box.handle(KeyEvent(SPACE, released=True)) == "Yes"
    assert dialog.Dialog(YES_NO, (1024, 768)).handle(KeyEvent(ESC)) == "No"
    ok_only = dialog.Dialog(dialog.DialogSpec("x", cancel=None), (1024, 768))
    assert ok_only.handle(KeyEvent(ESC)) is None


def test_mouse_down_presses_up_on_the_same_button_chooses_up_elsewhere_does_not():
    box = dialog.Dialog(YES_NO, (1024, 768))
    nx, ny = box.button_centre("No")
    box.handle(MouseEvent(0x9000, nx, ny))
    assert box.look == (1, 1)  # focused and pressed
    box.handle(MouseEvent(0x0800, 5, 5))
    assert box.pressed is None  # dragged off: shown raised
    box.handle(MouseEvent(0x0800, nx, ny))
    assert box.pressed == 1
    box.handle(MouseEvent(0x1000, 5, 5))
    assert box.chosen is None and box.pressed is None
    yx, yy = box.button_centre("Yes")
    assert [box.handle(e) for e in click(yx, yy)][-1] == "Yes"
    other = dialog.Dialog(YES_NO, (1024, 768))
    for e in click(60000, 60000) + click(-1 & 0xFFFF, 3):  # out of the screen: nothing
        assert other.handle(e) is None
    assert other.look == (0, None)


def test_each_state_is_drawn_differently_the_default_framed_the_pressed_sunken():
    pictures = {(f, p): dialog.render(YES_NO, f, p).tobytes()
                for f, p in ((0, None), (1, None), (0, 0), (1, 1))}
    assert len(set(pictures.values())) == 4
    img = dialog.render(YES_NO, 0, None)
    left, top, right, _bottom = dialog.layout(YES_NO).buttons[0]
    assert img.getpixel((left, top)) == (0, 0, 0)  # the default button's black frame
    left1, top1, _r, _b = dialog.layout(YES_NO).buttons[1]
    assert img.getpixel((left1, top1)) == dialog.WHITE  # the other: raised, highlight
    pushed = dialog.render(YES_NO, 0, 0)
    assert pushed.getpixel((left + 1, top + 1)) == dialog.SHADOW  # sunken


# -- the refusal's OK --------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["enter", "click", "fast-path enter", "space"])
def test_whs_ok_on_the_refusal_logs_off_at_once_with_the_logoff_errinfo(how):
    host, carol = full_whs()
    spec = carol.core.dialog.spec
    assert shows(carol, spec)  # the refusal with OK, default and focused
    if how == "enter":
        slow(carol, [KeyEvent(ENTER)])
    elif how == "click":
        slow(carol, click(*carol.core.dialog.button_centre("OK")))
    elif how == "space":
        slow(carol, press(SPACE))
    else:
        fast(carol, [KeyEvent(ENTER)])
    carol.pump()
    assert carol.report.errinfo == [pdu.ERRINFO_LOGOFF_BY_USER]
    assert carol.report.deactivated and carol.report.dpum_reason == mcs.RN_USER_REQUESTED
    assert carol.core.close_requested and carol.core.get_timer() is None
    carol.drop()
    assert host.engine.counted("rdp") == 2 and host.engine.counters["denied:rdp"] == 1


def test_pressing_ok_with_the_mouse_draws_it_pressed_then_letting_go_elsewhere_keeps_it():
    _host, carol = full_whs()
    spec = carol.core.dialog.spec
    x, y = carol.core.dialog.button_centre("OK")
    seen = len(carol.report.rects)
    slow(carol, [MouseEvent(0x9000, x, y)])
    carol.pump()
    assert shows(carol, spec, 0, 0, since=seen)  # sunken
    seen = len(carol.report.rects)
    slow(carol, [MouseEvent(0x1000, 3, 3)])
    carol.pump()
    assert shows(carol, spec, 0, None, since=seen) and not carol.core.close_requested
    host_clock = _host.clock
    host_clock.advance(DISPLAY)  # the display timer still ends it, with the refusal's errinfo
    carol.pump()
    assert carol.report.errinfo == [pdu.ERRINFO_SERVER_DENIED_CONNECTION]


def test_a_server_2022_ok_ends_the_refusal_as_its_timer_would():
    host = Host("server-2022")
    host.connect().logon("alice", USERS["alice"])
    host.connect().logon("bob", USERS["bob"])
    carol = host.connect()
    carol.logon("carol", USERS["carol"])
    slow(carol, [KeyEvent(ENTER)])
    carol.pump()
    assert carol.report.errinfo == [pdu.ERRINFO_SERVER_DENIED_CONNECTION]
    assert carol.report.logon_errors == [(0xC00A0013, pdu.LOGON_FAILED_OTHER)]


# -- a client SKU's take-over -------------------------------------------------------------------

def win10_asked() -> tuple[Host, Client, Client]:
    host = Host("win10")
    alice = host.connect("192.0.2.10")
    alice.logon("alice", USERS["alice"], bpp=32)
    bob = host.connect("192.0.2.20")
    bob.logon("bob", USERS["bob"], bpp=32)
    return host, alice, bob


def test_win10_bob_is_asked_with_windows_text_and_yes_asks_alice_who_times_out():
    host, alice, bob = win10_asked()
    persona = get_edition("win10").rdp_takeover
    ask = bob.core.dialog.spec
    assert ask.text == persona.ask_text and ask.buttons == ("Yes", "No")
    assert shows(bob, ask) and host.engine.counted("rdp") == 1
    slow(bob, [KeyEvent(ENTER)])  # Yes is the default
    seen = len(alice.report.rects)
    alice.pump()
    consent = alice.core.dialog.spec
    assert consent.text == persona.consent_text.format(user="EMULATOR\\bob")
    assert shows(alice, consent, since=seen) and alice.notified >= 1
    host.clock.advance(persona.consent_timeout - 1)
    alice.pump()
    assert not alice.core.close_requested and not bob.core.close_requested
    host.clock.advance(1)
    alice.pump()
    bob.pump()
    assert alice.report.errinfo == [pdu.ERRINFO_DISCONNECTED_BY_OTHERCONNECTION]
    assert alice.core.close_requested
    alice.drop()
    states = {s.user: s.state for s in host.engine.sessions("rdp")}
    assert states == {"alice": "disconnected", "bob": "active"}
    assert host.engine.counted("rdp") == 1 and not bob.core.close_requested
    assert covered(bob.report.rects[-16:]) > 0 and bob.core.dialog is None
    assert host.events.query()[-1]["outcome"] in ("admitted", "disconnect", "taken-over")


def test_alice_pressing_ok_gives_the_session_up_at_once_cancel_keeps_it():
    host, alice, bob = win10_asked()
    slow(bob, press(ENTER))
    alice.pump()
    slow(alice, click(*alice.core.dialog.button_centre("OK")))
    alice.pump()
    assert alice.report.errinfo == [pdu.ERRINFO_DISCONNECTED_BY_OTHERCONNECTION]
    assert {s.user: s.state for s in host.engine.sessions("rdp")} == {
        "alice": "disconnected", "bob": "active"}

    host, alice, bob = win10_asked()
    slow(bob, press(ENTER))
    alice.pump()
    slow(alice, [KeyEvent(ESC)])  # Cancel
    alice.pump()
    bob.pump()
    assert bob.report.errinfo == [pdu.ERRINFO_LOGOFF_BY_USER] and bob.core.close_requested
    assert not alice.core.close_requested and alice.core.dialog is None
    assert alice.core.get_timer() is None  # the prompt's timeout is gone with it
    assert [(s.user, s.state) for s in host.engine.sessions("rdp")] == [("alice", "active")]


def test_win10_no_ends_bob_and_leaves_alice_untouched():
    host, alice, bob = win10_asked()
    seen = len(bob.report.rects)
    slow(bob, press(TAB))
    bob.pump()
    assert shows(bob, bob.core.dialog.spec, 1, None, since=seen)  # focus (and frame) on No
    slow(bob, [KeyEvent(ENTER)])
    bob.pump()
    alice.pump()
    assert bob.report.errinfo == [pdu.ERRINFO_LOGOFF_BY_USER] and bob.core.close_requested
    assert alice.report.errinfo == [] and alice.core.dialog is None
    bob.drop()
    assert [(s.user, s.state) for s in host.engine.sessions("rdp")] == [("alice", "active")]
    assert host.engine.counted("rdp") == 1 and alice.core.get_timer() is None


def test_bob_leaving_while_alice_is_asked_withdraws_her_prompt():
    host, alice, bob = win10_asked()
    slow(bob, press(ENTER))
    alice.pump()
    assert alice.core.dialog is not None
    bob.drop()
    alice.pump()
    assert alice.core.dialog is None and not alice.core.close_requested
    host.clock.advance(60)
    alice.pump()
    assert not alice.core.close_requested
    assert [(s.user, s.state) for s in host.engine.sessions("rdp")] == [("alice", "active")]


def test_a_disconnected_user_is_not_asked_the_next_user_signs_in():
    host = Host("win10")
    alice = host.connect()
    alice.logon("alice", USERS["alice"])
    alice.drop()
    bob = host.connect()
    report = bob.logon("bob", USERS["bob"])
    assert covered(report.rects) == 1024 * 768 and bob.core.dialog is None
    assert {s.user: s.state for s in host.engine.sessions("rdp")} == {
        "alice": "disconnected", "bob": "active"}


# -- bad input -------------------------------------------------------------------------------

def test_fast_path_input_before_activation_is_a_clean_close_nothing_counted():
    host = Host("win10")
    client = host.connect()
    client.negotiate()
    client.core.tls_started()
    fast(client, [KeyEvent(ENTER)])
    assert client.core.close_requested and client.core.close_abruptly
    assert host.engine.sessions() == [] and len(client.logs) == 1


def test_slow_path_input_before_activation_is_ignored():
    host = Host("whs")
    client = host.connect()
    client.logon("alice", USERS["alice"])
    client.core._machine.state = client.core.state.FINALIZING  # as if the Font List were late
    slow(client, [KeyEvent(ENTER)])
    assert client.core.input_events == 0 and not client.core.close_requested
    client.core._machine.state = client.core.state.ACTIVE
    slow(client, [KeyEvent(ENTER)])  # on the desktop: decoded, nothing to press
    assert client.core.input_events == 1 and not client.core.close_requested


def test_a_flood_of_input_costs_one_screen_in_the_queue_and_no_other_session_waits():
    host, carol = full_whs()
    carol.pump()
    for _ in range(200):
        slow(carol, press(TAB) * 100)  # each PDU: 200 events, one redraw at most
    pending = carol.core.data_to_send()
    box = carol.core.dialog.layout
    assert len(pending) < box.width * box.height * 4 * 2  # about one dialog's PDUs
    assert not carol.core.close_requested and carol.core.input_events == 200 * 200
    dave = host.connect()
    dave.logon("dave", USERS["dave"], console=True)  # the console is still served
    assert dave.report.activated and covered(dave.report.rects) == 1024 * 768


def test_a_truncated_input_pdu_is_one_log_line_and_a_live_session_stays_disconnected():
    host = Host("win10")
    alice = host.connect()
    alice.logon("alice", USERS["alice"])
    alice.send_io(pdu.share_data(pdu.PDUTYPE2_INPUT, b"\x05\x00\x00\x00" + b"\x00" * 12))
    assert alice.core.close_requested and len(alice.logs) == 1
    alice.drop()
    assert [(s.user, s.state) for s in host.engine.sessions("rdp")] == [
        ("alice", "disconnected")]


def test_one_question_at_a_time_a_second_asker_is_told_no():
    host, alice, bob = win10_asked()
    slow(bob, press(ENTER))
    alice.pump()
    carol = host.connect("192.0.2.30")
    carol.logon("carol", USERS["carol"])
    assert carol.core.dialog is not None  # asked too: alice's session is still live
    slow(carol, press(ENTER))
    carol.pump()
    assert carol.report.errinfo == [pdu.ERRINFO_LOGOFF_BY_USER] and carol.core.close_requested
    assert alice.core.dialog is not None and not alice.core.close_requested  # bob's prompt
    host.clock.advance(get_edition("win10").rdp_takeover.consent_timeout)
    alice.pump()
    assert alice.report.errinfo == [pdu.ERRINFO_DISCONNECTED_BY_OTHERCONNECTION]
    assert {s.user: s.state for s in host.engine.sessions("rdp")} == {
        "alice": "disconnected", "bob": "active"}


def test_a_logon_refused_at_logon_by_per_client_grouping_still_draws_the_refusal():
    from emulator.core.engine import Rules

    host = Host("whs", rules=Rules(group_by_client=True))
    host.connect().logon("alice", USERS["alice"])
    host.connect().logon("bob", USERS["bob"])
    carol = host.connect()
    report = carol.logon("carol", USERS["carol"])  # judged at logon: the third computer
    assert host.outcomes()[-1] == "denied" and carol.core.dialog is not None
    assert covered(report.rects) < 1024 * 768 and host.engine.counted("rdp") == 2


def test_a_user_coming_back_to_a_kept_session_while_another_is_connected_is_asked():
    host = Host("win10")
    alice = host.connect()
    alice.logon("alice", USERS["alice"])
    alice.drop()
    (kept,) = host.engine.sessions("rdp")
    bob = host.connect("192.0.2.20")
    bob.logon("bob", USERS["bob"])  # signs in beside alice's disconnected session
    back = host.connect("192.0.2.30")
    back.logon("alice", USERS["alice"])
    assert back.core.dialog is not None and back.core.dialog.spec.buttons == ("Yes", "No")
    assert {s.user: s.state for s in host.engine.sessions("rdp")} == {
        "alice": "disconnected", "bob": "active"}
    slow(back, press(ENTER))
    bob.pump()
    slow(bob, press(ENTER))  # OK: bob gives the session up
    bob.pump()
    back.pump()
    assert bob.report.errinfo == [pdu.ERRINFO_DISCONNECTED_BY_OTHERCONNECTION]
    states = {s.user: (s.id, s.state) for s in host.engine.sessions("rdp")}
    assert states == {"alice": (kept.id, "active"), "bob": (states["bob"][0], "disconnected")}
    assert back.core.session is kept and back.core.dialog is None
