"""The drawn dialogs with unmodified xfreerdp and rdesktop under Xvfb, driven by xdotool:
the Home Server's refusal box logged off by its OK (Enter, or a click on the button), and a
client SKU's take-over (Windows 10: the second user asked, the signed-in user asked, the
prompt's timeout on the host's virtual clock; XP Pro: XP's question). Each dialog on the
screen is compared pixel for pixel with the picture the renderer makes for that state."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from typing import Any

import pytest

from tests.interop.conftest import EmulatorProcess, require_binary
from tests.interop.test_rdp_clients import (
    SIZE,
    TOKEN,
    USERS,
    api,
    find_image,
    screenshot,
    wait_for,
)
from tests.interop.test_rdp_clients import clients as clients  # noqa: F401  (a fixture)

pytestmark = pytest.mark.interop

ADMIN = ["--admin-port", "0", "--admin-token", TOKEN]


def xdo(display: str, *args: str) -> str:
    exe = require_binary("xdotool")
    return subprocess.run([exe, *args], env=dict(os.environ, DISPLAY=display), check=True,
                          capture_output=True, text=True, timeout=20).stdout


def window_of(display: str, proc: Any, timeout: float = 20.0) -> str:
    """The client's window (by its _NET_WM_PID, which both clients set)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = xdo(display, "search", "--onlyvisible", "--pid", str(proc.pid)).split()
        except subprocess.CalledProcessError:
            found = []
        if found:
            return found[-1]
        assert proc.poll() is None, "the client left before it opened its window"
        time.sleep(0.2)
    pytest.fail(f"no window for pid {proc.pid}")


def to_front(display: str, window: str) -> None:
    xdo(display, "windowraise", window)
    xdo(display, "windowfocus", window)
    time.sleep(0.3)  # the client redraws what was under the raised window


def wait_on_screen(display: str, picture: Any, what: str, tmp_path: Any,
                   timeout: float = 20.0, window: str | None = None) -> tuple[int, int]:
    """Where ``picture`` shows on the screen, pixel for pixel (polled: the client draws as
    the bitmaps arrive). ``window`` is raised again each second it is not seen: a raise
    that lands before the client has mapped and painted its window does not stay."""
    deadline = time.monotonic() + timeout
    raised = time.monotonic()
    while True:
        shot = screenshot(display)
        where = find_image(shot, picture)
        if where is not None:
            return where
        if window is not None and time.monotonic() - raised > 1.0:
            to_front(display, window)
            raised = time.monotonic()
        if time.monotonic() > deadline:
            shot.save(tmp_path / f"no-{what}.png")
            picture.save(tmp_path / f"want-{what}.png")
            pytest.fail(f"{what} is not on the screen ({tmp_path}/no-{what}.png)")
        time.sleep(0.25)


def centre(spec: Any, where: tuple[int, int], label: str) -> tuple[int, int]:
    from protocols.rdp import dialog

    left, top, right, bottom = dialog.layout(spec).buttons[spec.buttons.index(label)]
    return where[0] + (left + right) // 2, where[1] + (top + bottom) // 2


def spec_for(text: str, title: str = "Logon Message", buttons: tuple[str, ...] = ("OK",),
             cancel: int | None = 0) -> Any:
    from protocols.rdp import dialog

    return dialog.DialogSpec(text, title, buttons, 0, cancel, width=min(520, SIZE[0] - 8))


def advance(emu: EmulatorProcess, seconds: float) -> None:
    request = urllib.request.Request(
        emu.admin_url + "/api/clock/advance", method="POST",
        data=json.dumps({"seconds": seconds}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200


def rdp_sessions(emu: EmulatorProcess) -> dict[str, str]:
    return {s["user"]: s["state"] for s in api(emu, "GET", "/api/sessions")
            if s["protocol"] == "rdp"}


def qwinsta(emu: EmulatorProcess) -> str:
    import argparse

    from emulator.admin.client import AdminClient
    from emulator.admin.verbs import qwinsta as verb

    _rows, text = verb(AdminClient(emu.admin_url, TOKEN), argparse.Namespace())
    return str(text)


# -- the Home Server's refusal: OK logs the session off -------------------------------------

@pytest.mark.parametrize("client", ["xfreerdp", "rdesktop"])
def test_whs_refusal_ok_by_enter_and_by_click_logs_the_third_user_off(emulator, clients, xvfb,
                                                                      client, tmp_path):
    from emulator.core.editions import TS_REFUSAL_2003
    from protocols.rdp import dialog

    # The display timer is far away: only the OK can end the refusal within the test.
    emu = emulator("whs", users=USERS, args=["--refusal-display-seconds", "300", *ADMIN])
    c = clients(emu)
    c.xfreerdp("alice")
    c.rdesktop("bob")
    wait_for(emu, 2, outcome="admitted")
    spec = spec_for(TS_REFUSAL_2003)
    box = dialog.render(spec)  # OK default and focused
    for n, how in enumerate(("enter", "click")):
        carol = c.xfreerdp("carol") if client == "xfreerdp" else c.rdesktop("carol", "-a", "24")
        wait_for(emu, n + 1, outcome="denied")
        window = window_of(xvfb, carol)
        to_front(xvfb, window)
        where = wait_on_screen(xvfb, box, f"refusal-{client}-{how}", tmp_path, window=window)
        if how == "enter":
            xdo(xvfb, "key", "Return")
        else:
            x, y = centre(spec, where, "OK")
            xdo(xvfb, "mousemove", str(x), str(y), "click", "1")
        code = c.finish(carol, timeout=20)
        out = c.output(carol)
        if client == "xfreerdp":
            assert "ERRINFO_LOGOFF_BY_USER" in out, out
        else:
            assert "disconnect: Logout initiated by user" in out, out
        assert code != 0
        assert rdp_sessions(emu) == {"alice": "active", "bob": "active"}  # nothing left
    assert len(emu.events(protocol="rdp", outcome="denied")) == 2


# -- a client SKU's take-over ------------------------------------------------------------------

def _takeover_story(emu: EmulatorProcess, c: Any, display: str, tmp_path: Any,
                    extra: tuple[str, ...], ask: Any, consent: Any | None,
                    timeout: float) -> None:
    from protocols.rdp import dialog

    alice = c.xfreerdp("alice", None, *extra)
    wait_for(emu, 1, outcome="admitted", user="alice")
    alice_window = window_of(display, alice)

    # No: bob leaves, alice untouched.
    bob = c.xfreerdp("bob", None, *extra)
    bob_window = window_of(display, bob)
    to_front(display, bob_window)
    where = wait_on_screen(display, dialog.render(ask), "ask", tmp_path)
    xdo(display, "key", "Tab")  # the focus (and the default frame) moves to No
    wait_on_screen(display, dialog.render(ask, 1, None), "ask-no-focused", tmp_path)
    x, y = centre(ask, where, "No")
    xdo(display, "mousemove", str(x), str(y), "click", "1")
    c.finish(bob, timeout=20)
    assert "ERRINFO_LOGOFF_BY_USER" in c.output(bob), c.output(bob)
    assert alice.poll() is None
    assert rdp_sessions(emu) == {"alice": "active"}

    # Yes: alice is asked (or, XP, not), does nothing, and is disconnected.
    bob = c.xfreerdp("bob", None, *extra)
    bob_window = window_of(display, bob)
    to_front(display, bob_window)
    wait_on_screen(display, dialog.render(ask), "ask-again", tmp_path)
    xdo(display, "key", "Return")
    if consent is not None:
        to_front(display, alice_window)
        wait_on_screen(display, dialog.render(consent), "consent", tmp_path)
        time.sleep(0.5)
        assert alice.poll() is None  # she does nothing: the prompt waits for its timeout
        assert rdp_sessions(emu).get("bob") is None
        advance(emu, timeout)
    c.finish(alice, timeout=20)
    assert "ERRINFO_DISCONNECTED_BY_OTHER_CONNECTION" in c.output(alice), c.output(alice)
    wait_for(emu, 1, outcome="admitted", user="bob")
    assert rdp_sessions(emu) == {"alice": "disconnected", "bob": "active"}
    table = qwinsta(emu)
    rows = {line.split()[0] if "rdp-tcp" not in line else line.split()[1]: line.split()[-1]
            for line in table.splitlines()[1:] if "alice" in line or "bob" in line}
    assert rows == {"alice": "Disc", "bob": "Active"}, table
    assert bob.poll() is None


def test_win10_takeover_no_then_yes_and_the_prompt_times_out(emulator, clients, xvfb, tmp_path):
    from emulator.core.editions import get_edition

    persona = get_edition("win10").rdp_takeover
    emu = emulator("win10", users=USERS, args=["--virtual-clock", *ADMIN])
    ask = spec_for(persona.ask_text, persona.ask_title, persona.ask_buttons, cancel=1)
    consent = spec_for(persona.consent_text.format(user="EMULATOR\\bob"),
                       persona.consent_title, persona.consent_buttons, cancel=1)
    _takeover_story(emu, clients(emu), xvfb, tmp_path, (), ask, consent,
                    persona.consent_timeout)


def test_xp_pro_takeover_with_xps_question(emulator, clients, xvfb, tmp_path):
    from emulator.core.editions import get_edition

    persona = get_edition("xp-pro").rdp_takeover
    emu = emulator("xp-pro", users=USERS, args=["--virtual-clock", *ADMIN])
    ask = spec_for(persona.ask_text.format(user="EMULATOR\\alice"), persona.ask_title,
                   persona.ask_buttons, cancel=1)
    assert persona.consent_text is None  # XP: the logged-on user is not asked (README)
    _takeover_story(emu, clients(emu), xvfb, tmp_path, ("/sec:rdp",), ask, None, 0)


@pytest.mark.parametrize("edition, fast_path", [("whs", False), ("server-2003", True)])
def test_the_harness_client_presses_ok_on_the_refusal(emulator, edition, fast_path):
    """emulator.harness.rdp_client sends input too: Enter on the refusal (slow-path over
    TLS; fast-path, encrypted, over 2003's Standard RDP Security) logs the session off."""
    from emulator.harness.rdp_client import RDPTestClient
    from protocols.rdp.input import KeyEvent
    from protocols.rdp.x224 import PROTOCOL_RDP, PROTOCOL_SSL

    emu = emulator(edition, users=USERS, args=["--refusal-display-seconds", "300"])
    host, port = emu.listeners["rdp"]
    held = []
    for user in ("alice", "bob", "carol"):
        client = RDPTestClient(host, port)
        assert client.negotiate(PROTOCOL_RDP if fast_path else PROTOCOL_SSL)
        client.logon(user, USERS[user])
        client.read_until_drawn()
        held.append(client)
    carol = held[-1]
    carol.send_input([KeyEvent(0x1C)], fast_path=fast_path)
    report = carol.read_until_closed()
    assert report.errinfo == [0xC] and report.closed
    for client in held:
        client.close()
