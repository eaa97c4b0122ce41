"""RDP faults with unmodified xfreerdp (FreeRDP 2.11) under Xvfb: it prints each injected
errinfo by FreeRDP's name for it (a fault at a point of the connection sequence, or an
admin ending naming one), and with /auto-reconnect it comes back into its own session by
the auto-reconnect cookie after a drop fault (its password changed in between, so the
cookie is what lets it in)."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest

from tests.interop.conftest import EmulatorProcess
from tests.interop.test_rdp_clients import TOKEN, USERS, wait_for
from tests.interop.test_rdp_clients import clients as clients  # noqa: F401  (a fixture)
from tests.interop.test_rdp_security import _warp_pointer

pytestmark = pytest.mark.interop

ADMIN = ["--admin-port", "0", "--admin-token", TOKEN]


def admin(emu: EmulatorProcess, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(emu.admin_url + path, data, method=method, headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read() or b"null")


@pytest.mark.parametrize("point, name, code", [
    ("CLIENT_INFO", "ERRINFO_LICENSE_NO_LICENSE_SERVER", 0x101),
    ("CONFIRM_ACTIVE", "ERRINFO_SERVER_INSUFFICIENT_PRIVILEGES", 0x9),
    ("FONT_LIST", "ERRINFO_LOGOFF_BY_USER", 0xC),
])
def test_xfreerdp_prints_the_injected_errinfo(emulator, clients, point, name, code):
    emu = emulator("whs", users=USERS, args=ADMIN)
    admin(emu, "POST", "/api/faults", {"protocol": "rdp", "command": point, "errinfo": name})
    c = clients(emu)
    proc = c.xfreerdp("alice")
    c.finish(proc)
    out = c.output(proc)
    assert f"{name} (0x{code:08X})" in out, out
    (fault,) = admin(emu, "GET", "/api/faults")
    assert fault["hits"] == 1 and fault["errinfo"] == name
    assert "Traceback" not in emu.stderr()


def test_an_admin_ending_names_the_errinfo_xfreerdp_prints(emulator, clients):
    emu = emulator("whs", users=USERS, args=ADMIN)
    c = clients(emu)
    proc = c.xfreerdp("alice")
    (admitted,) = wait_for(emu, 1, outcome="admitted")
    answer = admin(emu, "POST", f"/api/sessions/{admitted['session_id']}/disconnect",
                   {"errinfo": "ERRINFO_SERVER_DWM_CRASH"})
    assert answer == {"id": admitted["session_id"], "state": "disconnected", "errinfo": 0x10}
    c.finish(proc)
    assert "ERRINFO_SERVER_DWM_CRASH (0x00000010)" in c.output(proc)
    (session,) = admin(emu, "GET", "/api/sessions?protocol=rdp")
    assert session["state"] == "disconnected"


def test_xfreerdp_auto_reconnects_into_its_session_with_the_cookie(emulator, clients, xvfb):
    emu = emulator("whs", users=USERS, args=ADMIN)
    c = clients(emu)
    proc = c.xfreerdp("alice", None, "/auto-reconnect", "/auto-reconnect-max-retries:5")
    (admitted,) = wait_for(emu, 1, outcome="admitted")
    time.sleep(1.0)  # the cookie follows the desktop
    # The password changes: a reconnection that had only it would now fail its logon.
    admin(emu, "POST", "/api/users", {"name": "alice", "password": "Changed-Since-1"})
    admin(emu, "POST", "/api/faults", {"protocol": "rdp", "command": "ACTIVE",
                                       "action": "drop"})
    deadline = time.monotonic() + 20
    while not emu.events(outcome="disconnect") and time.monotonic() < deadline:
        _warp_pointer(xvfb, 20)  # input: the next PDU meets the fault
        time.sleep(0.2)
    (reconnected,) = wait_for(emu, 1, outcome="reconnect", user="alice")
    assert reconnected["session_id"] == admitted["session_id"] and reconnected["id"] == 4778
    assert "auto-reconnect cookie accepted for session" in emu.stderr()
    time.sleep(0.5)
    assert proc.poll() is None, c.output(proc)  # connected again
    assert "ERRCONNECT_CONNECT_TRANSPORT_FAILED" in c.output(proc)  # it saw the drop
    (session,) = admin(emu, "GET", "/api/sessions?protocol=rdp")
    assert session["id"] == admitted["session_id"] and session["state"] == "active"
    assert emu.events(outcome="auth-failed") == []


def test_xfreerdp_goes_through_a_deactivation_reactivation_and_stays(emulator, clients, xvfb):
    from tests.interop.test_rdp_security import desktop_on_screen

    emu = emulator("whs", users=USERS, args=ADMIN)
    # A harmless marker on the second Confirm Active: it fires only if one comes.
    admin(emu, "POST", "/api/faults", {"protocol": "rdp", "command": "CONFIRM_ACTIVE",
                                       "delay": 0.01, "after": 1})
    c = clients(emu)
    proc = c.xfreerdp("alice")
    wait_for(emu, 1, outcome="admitted")
    time.sleep(1.0)
    admin(emu, "POST", "/api/faults", {"protocol": "rdp", "command": "ACTIVE",
                                       "action": "reactivate"})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        marker, reactivate = admin(emu, "GET", "/api/faults")
        if marker["hits"]:
            break
        _warp_pointer(xvfb, 20)
        time.sleep(0.2)
    assert reactivate["hits"] == 1 and marker["hits"] == 1, (marker, reactivate, emu.stderr())
    time.sleep(1.0)
    assert proc.poll() is None, c.output(proc)
    assert desktop_on_screen(xvfb)
    (session,) = admin(emu, "GET", "/api/sessions?protocol=rdp")
    assert session["state"] == "active"
    assert "bad input" not in emu.stderr() and "Traceback" not in emu.stderr()
    assert len(emu.events(outcome="admitted")) == 1  # no second logon
