"""Standard RDP Security with unmodified clients under Xvfb: xfreerdp /sec:rdp and rdesktop
log on to xp-pro (whose Connection Confirm never carries RDP_NEG_RSP) and see the desktop;
nmap's rdp-enum-encryption reads XP's and 2003's layers and RC4 levels; the Home Server
story over RDP Security; and both RC4 streams past their key update (4096 packets) with
FreeRDP on the other end."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from tests.interop.conftest import EmulatorProcess, require_binary
from tests.interop.test_rdp_clients import (
    TOKEN,
    USERS,
    Clients,
    _fixed_port_emulator,
    _nmap,
    api,
    find_image,
    screenshot,
    wait_for,
)
from tests.interop.test_rdp_clients import clients as clients  # noqa: F401  (a fixture)

pytestmark = pytest.mark.interop


def desktop_on_screen(display: str) -> bool:
    from PIL import Image

    from protocols.rdp.render import DESKTOP_COLOR

    return find_image(screenshot(display), Image.new("RGB", (200, 200), DESKTOP_COLOR)) \
        is not None


def no_traceback(emu: EmulatorProcess) -> None:
    assert "Traceback" not in emu.stderr() and "bad input" not in emu.stderr(), emu.stderr()


@pytest.mark.parametrize("edition, client", [
    ("xp-pro", "xfreerdp /sec:rdp"), ("xp-pro", "rdesktop -a 24"),
    # Windows 7's Negotiate layer with "any version" allowed: RDP Security for a client
    # that asks for it (/sec:rdp) or sends no RDP_NEG_REQ (rdesktop -4).
    ("win7", "xfreerdp /sec:rdp"), ("win7", "rdesktop -4")])
def test_logon_over_standard_rdp_security_shows_the_desktop(emulator, clients, xvfb, edition,
                                                            client, tmp_path):
    emu = emulator(edition, users=USERS)
    c = clients(emu)
    program, *args = client.split()
    proc = (c.xfreerdp("alice", None, *args) if program == "xfreerdp"
            else c.rdesktop("alice", *args))
    (admitted,) = wait_for(emu, 1, outcome="admitted")
    assert admitted["user"] == "alice"
    # Generous: on 2 loaded cores rdesktop -4 (8 bpp) was seen to finish drawing after 15 s.
    deadline = time.monotonic() + 40
    while not desktop_on_screen(xvfb):
        if time.monotonic() > deadline:
            screenshot(xvfb).save(tmp_path / "no-desktop.png")
            pytest.fail(f"the desktop is not on the screen ({tmp_path}/no-desktop.png)\n"
                        + c.output(proc))
        time.sleep(0.2)
    assert proc.poll() is None, c.output(proc)
    no_traceback(emu)


def test_xp_pro_refuses_a_tls_only_client_as_xp_does(emulator, clients):
    emu = emulator("xp-pro", users=USERS)
    c = clients(emu)
    proc = c.xfreerdp("alice", None, "/sec:tls")
    assert c.finish(proc) != 0
    assert "protocol security negotiation or connection failure" in c.output(proc).lower() \
        or "ERRCONNECT_SECURITY_NEGO_CONNECT_FAILED" in c.output(proc), c.output(proc)
    assert emu.events(protocol="rdp", outcome="admitted") == []


def test_nmap_reads_native_rdp_and_the_rc4_levels_xp_offers(emulator):
    emu = _fixed_port_emulator(emulator, "xp-pro")
    out = _nmap(emu.listeners["rdp"][0], "rdp-enum-encryption")
    # XP sends no rdpNegData: nmap cannot tell any layer ("Unknown"), none succeeds.
    for layer in ("Native RDP", "SSL", "CredSSP (NLA)"):
        assert f"{layer}: Unknown" in out, out
    assert "SUCCESS" not in out.split("RDP Encryption level")[0], out
    assert "RDP Encryption level: Client Compatible" in out, out
    for method in ("40-bit RC4", "56-bit RC4", "128-bit RC4"):
        assert f"{method}: SUCCESS" in out, out
    assert "FIPS 140-1: SUCCESS" not in out, out


def test_nmap_on_2003_finds_tls_and_native_rdp_negotiated(emulator):
    emu = _fixed_port_emulator(emulator, "server-2003")
    out = _nmap(emu.listeners["rdp"][0], "rdp-enum-encryption")
    assert "SSL: SUCCESS" in out and "Native RDP: SUCCESS" in out, out
    assert "128-bit RC4: SUCCESS" in out and "Client Compatible" in out, out


def test_nmap_on_win7_finds_credssp_tls_and_native_rdp_negotiated(emulator):
    emu = _fixed_port_emulator(emulator, "win7")
    out = _nmap(emu.listeners["rdp"][0], "rdp-enum-encryption")
    for layer in ("CredSSP (NLA)", "SSL", "Native RDP"):
        assert f"{layer}: SUCCESS" in out, out
    assert "128-bit RC4: SUCCESS" in out and "Client Compatible" in out, out


def test_home_server_story_over_rdp_security(emulator, clients, xvfb, tmp_path):
    """rdesktop -4 sends no RDP_NEG_REQ, so whs answers with Standard RDP Security (as
    2003 SP1's Negotiate layer does); xfreerdp /sec:rdp asks for PROTOCOL_RDP."""
    from emulator.core.editions import TS_REFUSAL_2003
    from protocols.rdp.render import render_message_box

    emu = emulator("whs", users=USERS, args=["--refusal-display-seconds", "4"])
    c = clients(emu)
    alice = c.rdesktop("alice", "-4")
    bob = c.xfreerdp("bob", None, "/sec:rdp")
    wait_for(emu, 2, outcome="admitted")
    assert alice.poll() is None and bob.poll() is None

    carol = c.xfreerdp("carol", None, "/sec:rdp")
    (denied,) = wait_for(emu, 1, outcome="denied")
    assert denied["user"] == "carol" and denied["message"] == TS_REFUSAL_2003
    time.sleep(1.0)  # the client draws what it received
    shot = screenshot(xvfb)
    shot.save(tmp_path / "refused-rdpsec.png")
    assert find_image(shot, render_message_box(TS_REFUSAL_2003)) is not None
    assert c.finish(carol) == 7
    assert "ERRINFO_SERVER_DENIED_CONNECTION" in c.output(carol)
    # An RDP 4 client announces no Set Error Info support: refused after the box, no code.
    carol_rd = c.rdesktop("carol", "-4")
    c.finish(carol_rd)
    assert len(wait_for(emu, 2, outcome="denied")) == 2, c.output(carol_rd)

    dave = c.xfreerdp("dave", None, "/sec:rdp", "/admin")  # the console does not count
    (console,) = wait_for(emu, 1, outcome="admitted", user="dave")
    assert console["session_id"] == 0
    time.sleep(0.5)
    assert dave.poll() is None
    no_traceback(emu)


# -- past the key update (MS-RDPBCGR 5.3.7: a new key every 4096 packets) ---------------------

def _warp_pointer(display: str, moves: int) -> None:
    """Move the X pointer ``moves`` times (libX11 through ctypes: no xdotool needed); the
    client sends an input PDU for each motion over its window."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("X11")
    if name is None:
        pytest.skip("libX11 not found")
    x11 = ctypes.cdll.LoadLibrary(name)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x11.XDefaultRootWindow.restype = ctypes.c_ulong
    x11.XWarpPointer.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_int,
                                 ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_int]
    x11.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    dpy = x11.XOpenDisplay(display.encode())
    root = x11.XDefaultRootWindow(dpy)
    for i in range(moves):
        x11.XWarpPointer(dpy, 0, root, 0, 0, 0, 0, 100 + i % 300, 100 + (i // 300) % 300)
        x11.XSync(dpy, 0)
    x11.XCloseDisplay(dpy)


def _tcp_counters(port: int) -> dict[str, int]:
    """bytes_sent / bytes_acked / bytes_received of the server's accepted socket (ss)."""
    out = subprocess.run([require_binary("ss"), "-tinH", f"sport = :{port}"],
                         capture_output=True, text=True, timeout=10).stdout
    return {k: int(v) for k, v in re.findall(r"(bytes_\w+):(\d+)", out)}


def test_both_rc4_streams_outlive_their_key_update_with_xfreerdp(emulator, xvfb_screen,
                                                                 tmp_path):
    # xfreerdp asks for no larger a desktop than its screen: a 4160 x 4160 one.
    big_xvfb = xvfb_screen("4160x4160")
    emu = emulator("xp-pro", users=USERS, args=["--admin-port", "0", "--admin-token", TOKEN])
    c = Clients(big_xvfb, tmp_path, emu)
    try:
        _past_the_key_updates(emu, c, big_xvfb)
    finally:
        c.close()


def _past_the_key_updates(emu: EmulatorProcess, c: Clients, display: str) -> None:
    port = emu.listeners["rdp"][1]
    # 4096 x 4096 at 32 bpp: some 4140 update PDUs of 16 KB, past the server's key update.
    proc = c.xfreerdp("alice", None, "/sec:rdp", "/size:4096x4096")
    wait_for(emu, 1, outcome="admitted")
    deadline = time.monotonic() + 120
    while _tcp_counters(port).get("bytes_acked", 0) < 4100 * 16200:
        assert time.monotonic() < deadline, _tcp_counters(port)
        assert proc.poll() is None, c.output(proc)
        time.sleep(0.25)
    # Client to server: every motion is an encrypted input PDU; 5000 of them, past the
    # client's key update; a MAC the server cannot verify would drop the connection.
    before = _tcp_counters(port)["bytes_received"]
    _warp_pointer(display, 5000)
    deadline = time.monotonic() + 30
    while _tcp_counters(port)["bytes_received"] - before < 4200 * 20:
        assert time.monotonic() < deadline, "the client did not send its input"
        time.sleep(0.25)
    time.sleep(0.5)
    assert proc.poll() is None, c.output(proc)
    no_traceback(emu)
    # The Set Error Info after the server's key update decrypts and verifies at the client.
    (session,) = [s for s in api(emu, "GET", "/api/sessions") if s["protocol"] == "rdp"]
    api(emu, "POST", f"/api/sessions/{session['id']}/disconnect")
    assert c.finish(proc) == 1
    out = c.output(proc)
    assert "ERRINFO_RPC_INITIATED_DISCONNECT" in out, out
    assert "invalid packet signature" not in out, out
