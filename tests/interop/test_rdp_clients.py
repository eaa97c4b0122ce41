"""Remote Desktop with unmodified clients: xfreerdp (FreeRDP 2.11) and rdesktop 1.9 under Xvfb,
aardwolf (headless Python), impacket's rdp_check.py (NLA) and nmap's RDP scripts.

The Home Server story: two users connected, a third refused after logon with the refusal
drawn in the session (checked in a screenshot of the Xvfb screen against the bitmap the
emulator renders), /admin admitted on top, a killed client leaves a disconnected session
that still refuses the next user, and an admin reset frees it. Standard RDP Security (XP,
2003's Negotiate layer) is in test_rdp_security.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.interop.conftest import EmulatorProcess, require_binary, require_module

pytestmark = pytest.mark.interop

USERS = {"alice": "Passw0rd!", "bob": "B0b-s3cret", "carol": "C4rol-pw", "dave": "D4ve-pw"}
TOKEN = "rdp-interop-token"
DISPLAY_SECONDS = 4.0  # the refusal stays on screen this long (Windows: ~30 s)
SIZE = (1024, 768)


# -- an X display and the clients ------------------------------------------------------------

class Clients:
    def __init__(self, display: str, home: Path, emu: EmulatorProcess) -> None:
        self.env = dict(os.environ, DISPLAY=display, HOME=str(home))
        self.emu = emu
        self.host, self.port = emu.listeners["rdp"]
        self.logs = home
        self.procs: list[subprocess.Popen[str]] = []

    def xfreerdp(self, user: str, password: str | None = None, *extra: str) -> Any:
        exe = require_binary("xfreerdp")
        log = open(self.logs / f"xfreerdp-{user}-{len(self.procs)}.log", "w+")  # noqa: SIM115
        # 2003-era and 7 editions speak TLS 1.0 as those Windows did: OpenSSL 3 allows it at
        # security level 0 only (FreeRDP issue #7839, its FAQ: /tls-seclevel:0).
        cmd = [exe, f"/v:{self.host}:{self.port}", f"/u:{user}",
               f"/p:{USERS[user] if password is None else password}", "/cert:ignore",
               f"/size:{SIZE[0]}x{SIZE[1]}", "/bpp:32", "/log-level:INFO", "/tls-seclevel:0",
               *extra]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, text=True, env=self.env)
        proc.log = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def rdesktop(self, user: str, *extra: str) -> Any:
        exe = require_binary("rdesktop")
        log = open(self.logs / f"rdesktop-{user}-{len(self.procs)}.log", "w+")  # noqa: SIM115
        cmd = [exe, "-u", user, "-p", USERS[user], "-g", f"{SIZE[0]}x{SIZE[1]}", *extra,
               f"{self.host}:{self.port}"]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log,
                                stderr=subprocess.STDOUT, text=True, env=self.env)
        assert proc.stdin is not None
        proc.stdin.write("yes\n")  # "Do you trust this certificate (yes/no)?"
        proc.stdin.flush()
        proc.log = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    @staticmethod
    def output(proc: Any) -> str:
        proc.log.flush()
        proc.log.seek(0)
        return str(proc.log.read())

    @staticmethod
    def finish(proc: Any, timeout: float = 30) -> int:
        return int(proc.wait(timeout))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            proc.log.close()


@pytest.fixture
def clients(xvfb: str, tmp_path: Path) -> Any:
    made: list[Clients] = []

    def start(emu: EmulatorProcess) -> Clients:
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        made.append(Clients(xvfb, home, emu))
        return made[-1]

    yield start
    for c in made:
        c.close()


def wait_for(emu: EmulatorProcess, count: int, timeout: float = 20.0, **match: Any) -> list[Any]:
    found = emu.wait_events(count, timeout=timeout, protocol="rdp", **match)
    assert len(found) >= count, (f"waited for {count} rdp events {match}; got "
                                 f"{emu.events(protocol='rdp')}\nstderr:\n{emu.stderr()}")
    return found


def api(emu: EmulatorProcess, method: str, path: str) -> Any:
    request = urllib.request.Request(emu.admin_url + path, method=method,
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read() or b"null")


# -- the screenshot check ------------------------------------------------------------------------

def find_image(screen: Any, needle: Any) -> tuple[int, int] | None:
    """Where ``needle`` (RGB) sits pixel for pixel in ``screen`` (RGB), or None."""
    sw, nw = screen.width, needle.width
    sbytes, nbytes = screen.tobytes(), needle.tobytes()
    first = nbytes[:nw * 3]
    for y in range(screen.height - needle.height + 1):
        row = sbytes[y * sw * 3:(y + 1) * sw * 3]
        x = row.find(first)
        while x >= 0:
            if x % 3 == 0 and all(
                    sbytes[(y + dy) * sw * 3 + x:(y + dy) * sw * 3 + x + nw * 3]
                    == nbytes[dy * nw * 3:(dy + 1) * nw * 3] for dy in range(needle.height)):
                return x // 3, y
            x = row.find(first, x + 1)
    return None


def find_image_near(screen: Any, needle: Any, tolerance: int = 8) -> tuple[int, int] | None:
    """As find_image, each channel within ``tolerance``: a 15/16 bpp session keeps 5 or 6
    bits a channel, and the server rounds where the client's expansion does not."""
    import numpy as np

    big = np.asarray(screen.convert("RGB"), dtype=np.int16)
    small = np.asarray(needle.convert("RGB"), dtype=np.int16)
    h, w = small.shape[:2]
    corner = np.abs(big - small[0, 0]).max(axis=2) <= tolerance
    for y, x in zip(*np.nonzero(corner), strict=True):
        if y + h <= big.shape[0] and x + w <= big.shape[1] and \
                np.abs(big[y:y + h, x:x + w] - small).max() <= tolerance:
            return int(x), int(y)
    return None


def screenshot(display: str) -> Any:
    from PIL import ImageGrab

    return ImageGrab.grab(xdisplay=display).convert("RGB")


# -- the Home Server story -----------------------------------------------------------------------

def test_home_server_story_with_xfreerdp_and_rdesktop(emulator, clients, xvfb, tmp_path):
    from emulator.core.editions import TS_REFUSAL_2003
    from protocols.rdp.render import render_message_box

    emu = emulator("whs", users=USERS, args=[
        "--refusal-display-seconds", str(DISPLAY_SECONDS), "--admin-port", "0",
        "--admin-token", TOKEN])
    c = clients(emu)
    alice = c.xfreerdp("alice")
    bob = c.rdesktop("bob")
    wait_for(emu, 2, outcome="admitted")
    assert alice.poll() is None and bob.poll() is None  # both stay connected

    # The third user: logged on, shown the refusal, then turned away.
    carol = c.xfreerdp("carol")
    (denied,) = wait_for(emu, 1, outcome="denied")
    assert denied["user"] == "carol" and denied["message"] == TS_REFUSAL_2003
    time.sleep(1.0)  # the client draws what it received
    shot = screenshot(xvfb)
    shot.save(tmp_path / "refused-xfreerdp.png")
    box = render_message_box(TS_REFUSAL_2003)
    assert find_image(shot, box) is not None, "the refusal box is not on the screen"
    other = render_message_box("The number of connections to this computer is limited.")
    assert find_image(shot, other) is None  # the check can tell texts apart
    assert c.finish(carol) == 7  # xfreerdp exits with the errinfo it was given
    out = c.output(carol)
    assert "ERRINFO_SERVER_DENIED_CONNECTION (0x00000007):The server denied the connection." \
        in out
    elapsed = [e for e in emu.events(protocol="rdp") if e["outcome"] == "denied"]
    assert len(elapsed) == 1

    carol_rd = c.rdesktop("carol")
    assert c.finish(carol_rd) == 7
    assert "disconnect: The server denied the connection." in c.output(carol_rd)

    # The console session (/admin) does not count: admitted on top of the two.
    dave = c.xfreerdp("dave", None, "/admin")
    (console,) = wait_for(emu, 1, outcome="admitted", user="dave")
    assert console["session_id"] == 0
    time.sleep(0.5)
    assert dave.poll() is None
    sessions = {s["user"]: s for s in api(emu, "GET", "/api/sessions")
                if s["protocol"] == "rdp"}
    assert sessions["dave"]["console"] is True and sessions["alice"]["console"] is False

    # A killed client leaves a disconnected session that still counts.
    alice.send_signal(signal.SIGKILL)
    alice.wait(10)
    wait_for(emu, 1, outcome="disconnect", user="alice")
    carol = c.xfreerdp("carol")
    assert c.finish(carol) == 7
    assert len(emu.events(protocol="rdp", outcome="denied")) == 3

    # rwinsta (admin reset) frees it; now carol gets in.
    session_id = next(s["id"] for s in api(emu, "GET", "/api/sessions")
                      if s["protocol"] == "rdp" and s["user"] == "alice")
    api(emu, "POST", f"/api/sessions/{session_id}/reset")
    wait_for(emu, 1, outcome="admin-reset", user="alice")
    carol = c.xfreerdp("carol")
    wait_for(emu, 1, outcome="admitted", user="carol")
    time.sleep(0.5)
    assert carol.poll() is None


def test_rwinsta_on_a_live_session_logs_the_client_off(emulator, clients):
    emu = emulator("whs", users=USERS, args=["--admin-port", "0", "--admin-token", TOKEN])
    c = clients(emu)
    bob = c.rdesktop("bob")
    alice = c.xfreerdp("alice")
    wait_for(emu, 2, outcome="admitted")
    ids = {s["user"]: s["id"] for s in api(emu, "GET", "/api/sessions")
           if s["protocol"] == "rdp"}
    api(emu, "POST", f"/api/sessions/{ids['alice']}/reset")
    api(emu, "POST", f"/api/sessions/{ids['bob']}/reset")
    assert c.finish(alice) == 2  # ERRINFO_RPC_INITIATED_LOGOFF
    assert "ERRINFO_RPC_INITIATED_LOGOFF" in c.output(alice)
    c.finish(bob)
    assert "disconnect: Administrator initiated logout." in c.output(bob)


# -- NLA (CredSSP) -------------------------------------------------------------------------------

def test_xfreerdp_with_nla_on_server_2022_refusal_and_wrong_password(emulator, clients):
    emu = emulator("server-2022", users=USERS, args=["--refusal-display-seconds", "1"])
    c = clients(emu)
    c.xfreerdp("alice")
    c.xfreerdp("bob")
    wait_for(emu, 2, outcome="admitted")
    carol = c.xfreerdp("carol")
    assert c.finish(carol) == 7
    out = c.output(carol)
    assert "Logon Error Info LOGON_FAILED_OTHER" in out
    assert "ERRINFO_SERVER_DENIED_CONNECTION" in out
    wrong = c.xfreerdp("carol", "not-the-password")
    c.finish(wrong)
    assert "STATUS_LOGON_FAILURE" in c.output(wrong)
    (failed,) = wait_for(emu, 1, outcome="auth-failed")
    assert failed["id"] == 4625


def _fixed_port_emulator(emulator: Any, edition: str, *args: str) -> EmulatorProcess:
    """rdp_check.py and nmap's RDP scripts only talk to port 3389: give the emulator a
    loopback address of its own (127.x.y.z) so 3389 is free there."""
    for _ in range(5):
        host = f"127.{random.randint(16, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"
        try:
            return emulator(edition, users=USERS,
                            args=["--host", host, "--rdp-port", "3389", *args])
        except pytest.fail.Exception:
            continue
    pytest.fail("no loopback address with a free port 3389")


def test_impacket_rdp_check_grants_the_right_password_and_denies_a_wrong_one(emulator):
    exe = shutil.which("rdp_check.py") or require_binary("rdp_check.py")
    emu = _fixed_port_emulator(emulator, "win10")
    host = emu.listeners["rdp"][0]
    good = subprocess.run([exe, f"alice:{USERS['alice']}@{host}"], capture_output=True,
                          text=True, timeout=60)
    assert "[*] Access Granted" in good.stdout + good.stderr
    bad = subprocess.run([exe, f"alice:wrong@{host}"], capture_output=True, text=True,
                         timeout=60)
    assert "Access Granted" not in bad.stdout + bad.stderr
    # CredSSP v2 has no errorCode: the TLS access_denied alert is how Windows says it.
    assert "[-] Access Denied" in bad.stdout + bad.stderr
    (failed,) = wait_for(emu, 1, outcome="auth-failed")
    assert failed["status"] == 0xC000006D
    assert emu.events(protocol="rdp", outcome="admitted") == []  # rdp_check stops at NLA


def _nmap(host: str, scripts: str, env: dict[str, str] | None = None) -> str:
    exe = require_binary("nmap")
    # -d: rdp-enum-encryption lists the refused layers (with the RDP_NEG_FAILURE code) too.
    return subprocess.run([exe, "-d", "-Pn", "-n", "-p", "3389", "--script", scripts, host],
                          capture_output=True, text=True, timeout=120, env=env).stdout


def test_nmap_rdp_scripts_report_the_security_layers_and_ntlm_info(emulator):
    emu = _fixed_port_emulator(emulator, "server-2022")
    out = _nmap(emu.listeners["rdp"][0], "rdp-enum-encryption,rdp-ntlm-info")
    # NLA required, as Server 2016 and later ship (nmap PR #1614 shows the same answers).
    assert "CredSSP (NLA): SUCCESS" in out, out
    assert "CredSSP with Early User Auth: SUCCESS" in out, out
    assert "SSL: FAILED (HYBRID_REQUIRED_BY_SERVER)" in out, out
    assert "Native RDP: FAILED (HYBRID_REQUIRED_BY_SERVER)" in out, out
    # A workgroup host names itself as the NTLM domain too; Server 2022 is 10.0.20348.
    assert "NetBIOS_Computer_Name: EMULATOR" in out and "Target_Name: EMULATOR" in out, out
    assert "NetBIOS_Domain_Name: EMULATOR" in out, out
    assert "Product_Version: 10.0.20348" in out, out


@pytest.mark.parametrize("edition, version", [("win7", "6.1.7601"), ("server-2016", "10.0.14393")])
def test_rdp_ntlm_info_shows_the_editions_build(emulator, edition, version, tmp_path):
    emu = _fixed_port_emulator(emulator, edition)
    # Windows 7 speaks TLS 1.0 only: nmap's OpenSSL 3 needs security level 0 for it.
    (tmp_path / "openssl.cnf").write_text(_LEGACY_OPENSSL)
    out = _nmap(emu.listeners["rdp"][0], "rdp-ntlm-info",
                env=dict(os.environ, OPENSSL_CONF=str(tmp_path / "openssl.cnf")))
    assert f"Product_Version: {version}" in out, out
    assert "NetBIOS_Computer_Name: EMULATOR" in out, out


# -- aardwolf, headless ----------------------------------------------------------------------------

async def _aardwolf(url: str, seconds: float, seen: dict[str, Any] | None = None
                   ) -> tuple[Any, Any]:
    from aardwolf.commons.factory import RDPConnectionFactory
    from aardwolf.commons.iosettings import RDPIOSettings
    from aardwolf.commons.queuedata.constants import VIDEO_FORMAT

    settings = RDPIOSettings()
    settings.channels = []
    settings.video_width, settings.video_height = SIZE
    settings.video_bpp_max = 32
    settings.video_out_format = VIDEO_FORMAT.PIL
    settings.clipboard_use_pyperclip = False
    conn = RDPConnectionFactory.from_url(url, settings).get_connection(settings)
    try:
        _, err = await conn.connect()
        if seen is not None:  # what the server selected, and the Early User Auth result
            seen.update(protocol=conn.x224_protocol, authz=getattr(conn, "authz_result", None))
        await asyncio.sleep(seconds)
        image = (conn.get_desktop_buffer(VIDEO_FORMAT.PIL).convert("RGB")
                 if conn.desktop_buffer_has_data else None)
    finally:
        await conn.terminate()
    return err, image


# TLS (aardwolf's TLS stops at 1.2 security levels: the NLA-less edition is a current one
# with NLA off), then NLA.
@pytest.mark.parametrize("edition, nla", [("server-2022", "off"), ("win10", "required")])
def test_aardwolf_gets_the_desktop_then_the_refusal(emulator, edition, nla):
    require_module("aardwolf")
    from protocols.rdp.render import DESKTOP_COLOR, message_box_origin, render_message_box

    emu = emulator(edition, users=USERS, args=["--refusal-display-seconds", "2",
                                               "--rdp-nla", nla])
    host, port = emu.listeners["rdp"]
    url = "rdp+ntlm-password://{}:{}@" + f"{host}:{port}"
    err, image = asyncio.run(asyncio.wait_for(
        _aardwolf(url.format("alice", USERS["alice"]), 1.5), 30))
    assert err is None and image is not None
    # aardwolf runs a 16 bpp session: colours come back within the 5/6-bit quantization.
    for point in ((10, 10), (1000, 700)):
        assert close(image.getpixel(point), DESKTOP_COLOR), image.getpixel(point)
    wait_for(emu, 1, outcome="disconnect", user="alice")  # it left; the session stays
    if edition == "server-2022":  # two sessions: bob takes the second
        asyncio.run(asyncio.wait_for(_aardwolf(url.format("bob", USERS["bob"]), 0.5), 30))
    err, image = asyncio.run(asyncio.wait_for(
        _aardwolf(url.format("carol", USERS["carol"]), 1.0), 30))
    assert image is not None
    if edition == "win10":
        # A client SKU counts only the connected session: alice's disconnected one stays
        # and carol signs in beside it (test_rdp_dialogs.py has the take-over of a live one).
        assert close(image.getpixel((10, 10)), DESKTOP_COLOR), image.getpixel((10, 10))
        wait_for(emu, 1, outcome="admitted", user="carol")
        return
    edition_text = emu.events(protocol="rdp", outcome="denied")[0]["message"]
    box = render_message_box(edition_text)
    x, y = message_box_origin(*SIZE, box)
    drawn = image.crop((x, y, x + box.width, y + box.height))
    assert all(close(a, b) for a, b in zip(pixels(drawn), pixels(box), strict=True))
    wrong = render_message_box("The terminal server is fine.")
    assert not all(close(a, b) for a, b in zip(pixels(drawn), pixels(wrong), strict=True))


def pixels(image: Any) -> list[tuple[int, ...]]:
    raw = image.convert("RGB").tobytes()
    return [tuple(raw[i:i + 3]) for i in range(0, len(raw), 3)]


def close(a: Any, b: Any, tolerance: int = 8) -> bool:
    return all(abs(int(p) - int(q)) <= tolerance for p, q in zip(a, b, strict=True))


def test_xp_home_has_no_remote_desktop_host(emulator):
    emu = emulator("xp-home")
    assert "rdp" not in emu.listeners and "smb" in emu.listeners, emu.ready_line


def test_a_client_offering_only_standard_rdp_security_gets_the_windows_failure(emulator):
    from emulator.harness.rdp_client import RDPTestClient

    emu = emulator("win11", users=USERS)
    client = RDPTestClient(*emu.listeners["rdp"])
    try:
        assert client.negotiate(requested=0) is False
        assert client.report.failure_code == 0x5  # HYBRID_REQUIRED_BY_SERVER
    finally:
        client.close()
    assert emu.events(protocol="rdp") == []


# -- the edition's security layers, as FreeRDP meets them -------------------------------------

def test_win10_requires_nla_tls_only_xfreerdp_is_refused_hybrid_ex_logs_on(emulator, clients):
    emu = emulator("win10", users=USERS)
    c = clients(emu)
    tls_only = c.xfreerdp("alice", None, "/sec:tls")
    c.finish(tls_only)
    assert "HYBRID_REQUIRED_BY_SERVER" in c.output(tls_only), c.output(tls_only)
    assert emu.events(protocol="rdp") == []  # refused at X.224: nothing to count
    # FreeRDP 2.11 cannot finish HYBRID_EX (/sec:ext: "no protocol has been selected yet");
    # aardwolf offers it and reads the Early User Authorization Result after CredSSP.
    require_module("aardwolf")
    from aardwolf.protocol.x224.constants import SUPP_PROTOCOLS

    host, port = emu.listeners["rdp"]
    seen: dict[str, Any] = {}
    err, image = asyncio.run(asyncio.wait_for(_aardwolf(
        f"rdp+ntlm-password://alice:{USERS['alice']}@{host}:{port}", 1.0, seen), 30))
    assert err is None and image is not None
    assert SUPP_PROTOCOLS.HYBRID_EX in seen["protocol"] and seen["authz"] == 0, seen
    wait_for(emu, 1, outcome="admitted", user="alice")


# -- through pyrdp-mitm ---------------------------------------------------------------------------

# pyrdp-mitm's own OpenSSL (cryptography's) refuses TLS 1.0 as any OpenSSL 3 does: against a
# 2003-era host it needs what this config allows, as against a real Windows Home Server.
_LEGACY_OPENSSL = """openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MinProtocol = TLSv1
CipherString = DEFAULT@SECLEVEL=0
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_xfreerdp_through_pyrdp_mitm_to_whs_two_admitted_the_third_refused(emulator, clients,
                                                                           xvfb, tmp_path):
    """pyrdp-mitm (PyPI pyrdp-mitm; it pins its own cryptography, so it lives in its own
    virtualenv: PYRDP_MITM names its script, else .venv-pyrdp/ (scripts/install-test-deps)
    or PATH) rewrites the GCC Conference Create Request with connectPDU length 0x2A, which
    Windows accepts."""
    venv = Path(__file__).resolve().parents[2] / ".venv-pyrdp" / "bin" / "pyrdp-mitm"
    exe = os.environ.get("PYRDP_MITM") or (str(venv) if venv.exists() else None) \
        or require_binary("pyrdp-mitm")
    from emulator.core.editions import TS_REFUSAL_2003
    from protocols.rdp.render import render_message_box

    emu = emulator("whs", users=USERS, args=["--refusal-display-seconds", str(DISPLAY_SECONDS)])
    host, port = emu.listeners["rdp"]
    listen = _free_port()
    (tmp_path / "openssl.cnf").write_text(_LEGACY_OPENSSL)
    (tmp_path / "pyrdp").mkdir()
    log = open(tmp_path / "pyrdp.log", "w+")  # noqa: SIM115
    proxy = subprocess.Popen(
        [exe, "-a", "127.0.0.1", "-l", str(listen), "-o", str(tmp_path / "pyrdp"),
         f"{host}:{port}"], cwd=tmp_path / "pyrdp", stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, env=dict(os.environ, OPENSSL_CONF=str(tmp_path / "openssl.cnf")))
    try:
        deadline = time.monotonic() + 20
        while "MITM Server listening" not in (tmp_path / "pyrdp.log").read_text():
            assert proxy.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "pyrdp.log").read_text()
            time.sleep(0.1)
        c = clients(emu)
        c.host, c.port = "127.0.0.1", listen  # every client goes through the proxy
        alice = c.xfreerdp("alice")
        bob = c.xfreerdp("bob")
        wait_for(emu, 2, outcome="admitted")
        assert alice.poll() is None and bob.poll() is None
        carol = c.xfreerdp("carol")
        (denied,) = wait_for(emu, 1, outcome="denied")
        assert denied["user"] == "carol"
        time.sleep(1.0)  # the client draws what the proxy relayed
        shot = screenshot(xvfb)
        shot.save(tmp_path / "refused-through-pyrdp.png")
        # pyrdp runs the session in high colour: compare within its quantization.
        box = render_message_box(TS_REFUSAL_2003)
        assert find_image_near(shot, box) is not None, "the refusal box is not on the screen"
        other = render_message_box("The number of connections to this computer is limited.")
        assert find_image_near(shot, other) is None  # the check can tell texts apart
        # pyrdp logs the Set Error Info, then drops the client when the server closes: the
        # client ends with a reset rather than the errinfo (pyrdp's doing, not the host's).
        assert c.finish(carol) != 0
        text = (tmp_path / "pyrdp.log").read_text()
        assert "Client Info: username = 'carol" in text
        assert "RDP Error Info: The server denied the connection." in text
    finally:
        proxy.terminate()
        proxy.wait(10)
        log.close()
