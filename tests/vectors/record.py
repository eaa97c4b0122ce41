#!/usr/bin/env python3
"""Regenerate the recorded real-client conversations in tests/vectors/ (the fuzzers' seeds).

The emulator runs in this process (Twisted reactor, loopback, ports 0); the real clients
(Debian's smbclient, impacket, smbprotocol, xfreerdp under Xvfb, the project's RDP test
client) run against it one after another. The sans-IO cores are wrapped so every byte
string they are given (the decrypted stream for RDP: TLS sits in the adapter) and every
byte string they answer is written down, in order, per connection. DCE/RPC PDUs are also
written per pipe association.

File format (text): ``# key: value`` metadata lines, then one chunk per line,
``C <hex>`` (client to server, as one ``receive_data`` call) or ``S <hex>`` (server to
client); DCE/RPC files hold ``P <hex>`` lines (one request PDU each). For SMB the
metadata records, per NTLM exchange, the server challenge and the clock value the
CHALLENGE was built with (``ntlm: <challenge hex> <now>``), so a replay can rebuild the
same CHALLENGE and the recorded AUTHENTICATE verifies again.

    PYTHONPATH=$PWD python3 tests/vectors/record.py          # rewrites tests/vectors/*/
    PYTHONPATH=$PWD python3 tests/vectors/record.py rdp      # only tests/vectors/rdp/
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from twisted.internet import reactor  # noqa: E402

from emulator.config import Config  # noqa: E402
from emulator.server import EmulatorServer  # noqa: E402
from protocols.auth import ntlm as ntlm_module  # noqa: E402
from protocols.dcerpc import pipes  # noqa: E402
from protocols.rdp.connection import RDPServerConnection  # noqa: E402
from protocols.smb2.connection import SMB2ServerConnection  # noqa: E402

VECTORS = Path(__file__).resolve().parent
USER, PASSWORD = "alice", "Passw0rd!"
EDITION = "server-2022"


class Recording:
    """Chunks per core instance, in the order the cores saw them."""

    def __init__(self) -> None:
        self.streams: dict[int, list[tuple[str, bytes]]] = {}
        self.ntlm: dict[int, list[tuple[bytes, float]]] = {}
        self.kinds: dict[int, str] = {}
        self.pdus: dict[int, tuple[str, list[bytes]]] = {}
        self.current: int | None = None
        self.order: list[int] = []

    def chunk(self, core: Any, kind: str, direction: str, data: bytes) -> None:
        key = id(core)
        if key not in self.streams:
            self.streams[key], self.kinds[key] = [], kind
            self.order.append(key)
        if data:
            self.streams[key].append((direction, bytes(data)))

    def take(self) -> list[tuple[str, list[tuple[str, bytes]], list[tuple[bytes, float]]]]:
        out = [(self.kinds[k], self.streams[k], self.ntlm.get(k, [])) for k in self.order]
        self.streams.clear(), self.ntlm.clear(), self.kinds.clear(), self.order.clear()
        return out

    def take_pdus(self) -> list[tuple[str, list[bytes]]]:
        out = list(self.pdus.values())
        self.pdus.clear()
        return out


REC = Recording()


def _wrap(cls: type, kind: str) -> None:
    receive, send = cls.receive_data, cls.data_to_send

    def receive_data(self: Any, data: bytes) -> None:
        REC.chunk(self, kind, "C", data)
        REC.current = id(self)
        try:
            receive(self, data)
        finally:
            REC.current = None

    def data_to_send(self: Any, *limit: Any) -> bytes:  # RDP's takes a chunk size
        out = send(self, *limit)
        REC.chunk(self, kind, "S", out)
        return out

    cls.receive_data, cls.data_to_send = receive_data, data_to_send


def _wrap_ntlm() -> None:
    original = ntlm_module.NTLMAcceptor.process_negotiate

    def process_negotiate(self: Any, token: bytes) -> bytes:
        now = self._now()
        self._now = lambda: now
        if REC.current is not None:
            REC.ntlm.setdefault(REC.current, []).append((self.server_challenge, now))
        return original(self, token)

    ntlm_module.NTLMAcceptor.process_negotiate = process_negotiate


def _wrap_pipes() -> None:
    original = pipes.Association.receive

    def receive(self: Any, pdu: bytes) -> list[bytes]:
        REC.pdus.setdefault(id(self), (self.pipe_name, []))[1].append(bytes(pdu))
        return original(self, pdu)

    pipes.Association.receive = receive


def write_stream(path: Path, client: str, kind: str, chunks: list[tuple[str, bytes]],
                 ntlm: list[tuple[bytes, float]]) -> None:
    lines = [f"# client: {client}", f"# protocol: {kind}", f"# edition: {EDITION}",
             f"# user: {USER} {PASSWORD}"]
    lines += [f"# ntlm: {challenge.hex()} {now!r}" for challenge, now in ntlm]
    lines += [f"{d} {data.hex()}" for d, data in chunks]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


# -- the clients ----------------------------------------------------------------------------

def smbclient(port: int, *args: str) -> None:
    subprocess.run(["smbclient", "-p", str(port), "-U", f"{USER}%{PASSWORD}", *args],
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)


def impacket_session(port: int) -> None:
    from impacket.smbconnection import SMBConnection

    conn = SMBConnection("127.0.0.1", "127.0.0.1", sess_port=port, timeout=10)
    conn.login(USER, PASSWORD)
    conn.listShares()
    conn.connectTree("public")
    conn.listPath("public", "*")
    conn.getFile("public", "hello.txt", lambda data: None)
    conn.logoff()
    conn.getSMBServer().close_session()


def impacket_anonymous(port: int) -> None:
    from impacket.smbconnection import SMBConnection

    conn = SMBConnection("127.0.0.1", "127.0.0.1", sess_port=port, timeout=10,
                         preferredDialect=0x0210)
    conn.login("", "")
    conn.listShares()
    conn.close()


def smbprotocol_encrypted(port: int) -> None:
    import uuid

    from smbprotocol.connection import Connection
    from smbprotocol.open import (CreateDisposition, CreateOptions, FilePipePrinterAccessMask,
                                  ImpersonationLevel, Open, ShareAccess)
    from smbprotocol.session import Session
    from smbprotocol.tree import TreeConnect

    conn = Connection(uuid.uuid4(), "127.0.0.1", port)
    conn.connect(timeout=10)
    try:
        session = Session(conn, USER, PASSWORD, require_encryption=True, auth_protocol="ntlm")
        session.connect()
        tree = TreeConnect(session, r"\\127.0.0.1\public")
        tree.connect()
        handle = Open(tree, "hello.txt")
        handle.create(ImpersonationLevel.Impersonation, FilePipePrinterAccessMask.GENERIC_READ,
                      0, ShareAccess.FILE_SHARE_READ, CreateDisposition.FILE_OPEN,
                      CreateOptions.FILE_NON_DIRECTORY_FILE)
        handle.read(0, 5)
        handle.close()
        tree.disconnect()
        session.disconnect()
    finally:
        conn.disconnect()


def rdp_test_client(port: int) -> None:
    from emulator.harness.rdp_client import RDPTestClient

    client = RDPTestClient("127.0.0.1", port)
    try:
        client.negotiate()
        client.logon(USER, PASSWORD)
        client.read_until_drawn()
    finally:
        client.close()


def xfreerdp(port: int, display: str, *extra: str) -> None:
    env = dict(os.environ, HOME=tempfile.mkdtemp(prefix="xfreerdp-home-"), DISPLAY=display)
    cmd = ["xfreerdp", f"/v:127.0.0.1:{port}", f"/u:{USER}", f"/p:{PASSWORD}", "/cert:ignore",
           "/size:800x600", "/bpp:16", *extra]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    try:
        proc.wait(8)  # a full logon stays connected: give it time to draw, then leave
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(10)
    shutil.rmtree(env["HOME"], ignore_errors=True)


def start_xvfb() -> tuple[subprocess.Popen[bytes] | None, str | None]:
    if not shutil.which("Xvfb"):
        return None, None
    for number in range(420, 460):
        if not os.path.exists(f"/tmp/.X11-unix/X{number}"):
            break
    proc = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1024x768x24", "-nolisten",
                             "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists(f"/tmp/.X11-unix/X{number}") and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc, f":{number}"


# -- the run ---------------------------------------------------------------------------------

def main() -> int:
    _wrap(SMB2ServerConnection, "smb")
    _wrap(RDPServerConnection, "rdp")
    _wrap_ntlm()
    _wrap_pipes()
    share = Path(tempfile.mkdtemp(prefix="vectors-share-"))
    (share / "hello.txt").write_text("hello from the emulator\n")
    config = Config(edition=EDITION, smb_port=0, netbios_port=None, rdp_port=0,
                    users={USER: PASSWORD}, shares={"public": str(share)},
                    refusal_display_seconds=1.0,
                    rdp_nla="offered")  # the TLS-only clients log on too (2022 requires NLA)
    server = EmulatorServer(config, reactor)
    server.start()
    ports = {lst.name: lst.port.getHost().port for lst in server.listeners}
    xvfb, display = start_xvfb()
    smb, rdp = ports["smb"], ports["rdp"]
    runs: list[tuple[str, str, Callable[[], None]]] = [
        ("smb", "smbclient-L-smb3", lambda: smbclient(smb, "-L", "//127.0.0.1", "-m", "SMB3")),
        ("smb", "smbclient-get-smb2", lambda: smbclient(
            smb, "//127.0.0.1/public", "-m", "SMB2", "-c", "ls; get hello.txt /dev/null")),
        ("smb", "smbclient-ls-smb3-signed", lambda: smbclient(
            smb, "//127.0.0.1/public", "-m", "SMB3", "--client-protection=sign", "-c", "ls")),
        ("smb", "smbclient-ls-encrypted", lambda: smbclient(
            smb, "//127.0.0.1/public", "-m", "SMB3", "--client-protection=encrypt", "-c", "ls")),
        ("smb", "impacket-session", lambda: impacket_session(smb)),
        ("smb", "impacket-anonymous-smb21", lambda: impacket_anonymous(smb)),
        ("smb", "smbprotocol-encrypted-read", lambda: smbprotocol_encrypted(smb)),
        ("rdp", "rdp-test-client-tls", lambda: rdp_test_client(rdp)),
    ]
    if display:  # xfreerdp opens the display before it connects, even for +auth-only
        runs += [("rdp", "xfreerdp-tls-logon", lambda: xfreerdp(rdp, display, "/sec:tls")),
                 ("rdp", "xfreerdp-nla-logon", lambda: xfreerdp(rdp, display, "/sec:nla"))]
    # Only the protocols named on the command line (smb also writes dcerpc), else all.
    protocols = set(sys.argv[1:]) or {"smb", "rdp"}
    runs = [run for run in runs if run[0] in protocols]
    written: list[str] = []

    def run_all() -> None:
        try:
            for _kind, name, run in runs:
                try:
                    run()
                except Exception:  # noqa: BLE001 - a missing client costs its vector only
                    traceback.print_exc()
                time.sleep(0.5)  # the connection's last bytes and close reach the reactor
                done = threading.Event()
                reactor.callFromThread(lambda n=name, d=done: (save(n), d.set()))
                done.wait(10)
        finally:
            reactor.callFromThread(reactor.stop)

    def save(name: str) -> None:
        for index, (kind, chunks, ntlm) in enumerate(REC.take()):
            if not any(d == "C" for d, _ in chunks):
                continue
            suffix = f"-{index}" if index else ""
            path = VECTORS / kind / f"{name}{suffix}.hex"
            path.parent.mkdir(exist_ok=True)
            write_stream(path, name, kind, chunks, ntlm)
            written.append(str(path.relative_to(VECTORS)))
        for index, (pipe, pdus) in enumerate(REC.take_pdus()):
            path = VECTORS / "dcerpc" / f"{name}-{pipe.strip(chr(92)).lower()}-{index}.hex"
            path.parent.mkdir(exist_ok=True)
            path.write_text(f"# client: {name}\n# pipe: {pipe}\n"
                            + "".join(f"P {p.hex()}\n" for p in pdus), encoding="ascii")
            written.append(str(path.relative_to(VECTORS)))

    for sub in ({"smb", "dcerpc"} if "smb" in protocols else set()) | (protocols & {"rdp"}):
        for old in (VECTORS / sub).glob("*.hex"):
            old.unlink()
    reactor.callWhenRunning(lambda: threading.Thread(target=run_all, daemon=True).start())
    reactor.run()
    server.close()
    if xvfb is not None:
        xvfb.terminate()
        xvfb.wait(10)
    shutil.rmtree(share, ignore_errors=True)
    print("\n".join(sorted(written)))
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
