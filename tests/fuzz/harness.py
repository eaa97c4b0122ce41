"""What every fuzz test shares: the recorded vectors, mutations of them, a host (engine on a
task.Clock + the SMB and RDP configs) and the replay of a real conversation that must still
be served after each hostile case.

The vectors are real clients' bytes (tests/vectors/record.py). A replay feeds a recorded
client stream to a fresh connection core; for SMB the recorded NTLM challenge and clock
value are handed back to the acceptor, so the recorded AUTHENTICATE verifies again, and the
SessionId of each later request is rewritten to the one this engine handed out.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from emulator.core.editions import get_edition
from emulator.core.engine import SessionEngine
from emulator.core.events import EventLog
from protocols.auth import ntlm as ntlm_module
from protocols.auth.ntlm import version_field
from protocols.rdp.connection import RDPServerConfig, RDPServerConnection
from protocols.rdp.state import State
from protocols.smb2 import session_setup as smb_session_setup
from protocols.smb2.connection import SMB2ServerConnection, SMBServerConfig
from protocols.smb2.fs import DiskShare

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
LONG = os.environ.get("FUZZ_LONG", "") not in ("", "0")

# A few seconds per decoder by default; FUZZ_LONG=1 for the long run (README: Fuzzing).
settings.register_profile(
    "fuzz-short", max_examples=150, deadline=None, derandomize=False, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much])
settings.register_profile(
    "fuzz-long", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20000")), deadline=None,
    database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.filter_too_much])
PROFILE = settings.get_profile("fuzz-long" if LONG else "fuzz-short")


def examples(short: int) -> settings:
    """The settings of one fuzz test: ``short`` cases normally, the long profile's count
    under FUZZ_LONG=1."""
    return settings(PROFILE, max_examples=PROFILE.max_examples if LONG else short)


# -- vectors -----------------------------------------------------------------------------

@dataclass
class Vector:
    name: str
    meta: dict[str, list[str]]
    chunks: list[tuple[str, bytes]]  # ("C" | "S" | "P", bytes)

    @property
    def client(self) -> list[bytes]:
        return [data for d, data in self.chunks if d == "C"]

    @property
    def server(self) -> bytes:
        return b"".join(data for d, data in self.chunks if d == "S")

    @property
    def pdus(self) -> list[bytes]:
        return [data for d, data in self.chunks if d == "P"]

    @property
    def ntlm(self) -> list[tuple[bytes, float]]:
        out = []
        for value in self.meta.get("ntlm", []):
            challenge, now = value.split()
            out.append((bytes.fromhex(challenge), float(now)))
        return out


def load(path: Path) -> Vector:
    meta: dict[str, list[str]] = {}
    chunks: list[tuple[str, bytes]] = []
    for line in path.read_text(encoding="ascii").splitlines():
        if line.startswith("# "):
            key, _, value = line[2:].partition(": ")
            meta.setdefault(key, []).append(value)
        elif line:
            direction, _, data = line.partition(" ")
            chunks.append((direction, bytes.fromhex(data)))
    return Vector(path.stem, meta, chunks)


def vectors(kind: str) -> list[Vector]:
    found = sorted((VECTORS / kind).glob("*.hex"))
    assert found, f"no {kind} vectors in {VECTORS / kind}: run tests/vectors/record.py"
    return [load(p) for p in found]


def smb_frames(stream: bytes) -> list[bytes]:
    """Cut a direct-TCP stream into SMB payloads (a well-formed recording)."""
    out, pos = [], 0
    while pos + 4 <= len(stream):
        length = struct.unpack_from(">I", stream, pos)[0] & 0xFFFFFF
        out.append(stream[pos + 4:pos + 4 + length])
        pos += 4 + length
    return out


def smb_messages(payload: bytes) -> Iterator[bytes]:
    """The messages of one SMB2 payload (compound), plaintext only."""
    while payload[:4] == b"\xfeSMB" and len(payload) >= 64:
        (next_command,) = struct.unpack_from("<I", payload, 20)
        if next_command == 0:
            yield payload
            return
        yield payload[:next_command]
        payload = payload[next_command:]


def security_buffers(vector: Vector) -> list[bytes]:
    """The SESSION_SETUP security buffers (SPNEGO / NTLM tokens) a client sent."""
    out = []
    for payload in smb_frames(b"".join(vector.client)):
        for msg in smb_messages(payload):
            if struct.unpack_from("<H", msg, 12)[0] == 1 and len(msg) >= 88:
                offset, length = struct.unpack_from("<HH", msg, 64 + 12)
                if length and offset + length <= len(msg):
                    out.append(msg[offset:offset + length])
    return out


# -- mutations ---------------------------------------------------------------------------

@st.composite
def mutated(draw: Any, seeds: list[bytes]) -> bytes:
    """A seed after a few hostile edits: bit flips, truncation, length-field rewrites,
    byte runs inserted or deleted, splices with another seed."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "length", "insert", "delete",
                                   "splice", "byte"]))
        n = len(data)
        if op == "flip" and n:
            i = draw(st.integers(0, n - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and n:
            data[draw(st.integers(0, n - 1))] = draw(st.integers(0, 255))
        elif op == "truncate" and n:
            del data[draw(st.integers(0, n - 1)):]
        elif op == "length" and n >= 2:
            width = draw(st.sampled_from([1, 2, 4]))
            i = draw(st.integers(0, max(0, n - width)))
            value = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0xFFFFFFFF,
                                          n, n + 1, n - 1])) & ((1 << (8 * width)) - 1)
            order = draw(st.sampled_from(["<", ">"]))
            fmt = order + {1: "B", 2: "H", 4: "I"}[width]
            data[i:i + width] = struct.pack(fmt, value)[:len(data[i:i + width])]
        elif op == "insert":
            i = draw(st.integers(0, n))
            data[i:i] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete" and n:
            i = draw(st.integers(0, n - 1))
            del data[i:i + draw(st.integers(1, 16))]
        elif op == "splice":
            other = draw(st.sampled_from(seeds))
            i, j = draw(st.integers(0, n)), draw(st.integers(0, len(other)))
            data = data[:i] + bytearray(other[j:])
    return bytes(data)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` split at the given offsets (sorted, within range)."""
    points = sorted({c % (len(data) + 1) for c in cuts}) if data else []
    out, start = [], 0
    for p in points + [len(data)]:
        out.append(data[start:p])
        start = p
    return [c for c in out if c]


# -- the host ---------------------------------------------------------------------------

@dataclass
class Host:
    """One emulated host: the engine on a task.Clock and the SMB and RDP configs.
    Limits are 1 per protocol: a leaked slot makes the next real client's logon fail."""

    share_dir: Path
    clock: Clock = field(default_factory=Clock)
    logs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clock.advance(1_700_000_000)
        edition = get_edition("server-2022")
        self.events = EventLog(self.clock.seconds)
        self.engine = SessionEngine(edition, self.clock, self.events, setup_timeout=30.0,
                                    limits={"smb": 1, "rdp": 1})
        users = {"alice": "Passw0rd!"}
        self.smb = SMBServerConfig(
            gate=self.engine, lookup_password=users.get,
            shares={"public": DiskShare("public", str(self.share_dir))},
            now=self.clock.seconds, max_dialect=edition.max_dialect, pipes=_pipes(),
            # The recorded CHALLENGEs (which the AUTHENTICATE's MIC covers) carried the
            # edition's Version, as the server builds it.
            ntlm_version=version_field(*edition.version, edition.build, edition.ntlm_revision))
        self.rdp = RDPServerConfig(
            gate=self.engine, lookup_password=users.get, clock=self.clock,
            refusal_text=edition.rdp_refusal_text, nla=False,
            refusal_display_seconds=5.0, handshake_timeout=30.0)

    def smb_connection(self) -> SMB2ServerConnection:
        return SMB2ServerConnection(self.smb, address="127.0.0.1", log=self.logs.append)

    def rdp_connection(self) -> RDPServerConnection:
        return RDPServerConnection(self.rdp, address="127.0.0.1", log=self.logs.append)

    def internal_errors(self) -> list[str]:
        return [line for line in self.logs if "internal error" in line]

    def assert_clean(self) -> None:
        """After connection_lost: no SMB session, no pending or active RDP session, no
        timer (setup, pre-logon, refusal display, expiry) left on the clock."""
        held = [(s.protocol, s.state) for s in self.engine.sessions()
                if s.protocol == "smb" or s.state != "disconnected"]
        assert not held, f"sessions left behind: {held}"
        assert not self.clock.getDelayedCalls(), \
            f"timers left behind: {self.clock.getDelayedCalls()}"

    def forget_disconnected(self) -> None:
        """A logged-on RDP session outlives its connection (disconnected, as on Windows);
        end it so the next case starts from an empty host."""
        for s in self.engine.sessions():
            self.engine.end(s.id, "admin-reset")


def _pipes() -> Any:
    from protocols.dcerpc.pipes import PipeService
    from tests.unit.dcerpc_helpers import FakeView

    return PipeService(FakeView())


# -- replays -----------------------------------------------------------------------------

@contextmanager
def recorded_ntlm(vector: Vector) -> Iterator[None]:
    """NTLM acceptors built while this is active draw the recorded challenge and time."""
    recorded = list(vector.ntlm)
    original = ntlm_module.NTLMAcceptor

    def factory(*args: Any, **kw: Any) -> Any:
        if recorded:
            challenge, now = recorded.pop(0)
            kw.update(challenge=challenge, now=lambda: now)
        return original(*args, **kw)

    with mock.patch.object(smb_session_setup, "NTLMAcceptor", factory):
        yield


def _responses(out: bytes) -> list[tuple[int, int, int]]:
    """(command, status, session id) of each plaintext response message."""
    found = []
    for payload in smb_frames(out):
        for msg in smb_messages(payload):
            status, command = struct.unpack_from("<IH", msg, 8)
            found.append((command, status, struct.unpack_from("<Q", msg, 40)[0]))
    return found


def replay_smb(host: Host, vector: Vector) -> SMB2ServerConnection:
    """Replay a recorded SMB conversation up to its successful SESSION_SETUP; assert the
    engine admitted and logged the session on. Returns the open connection."""
    recorded_ids = [sid for cmd, status, sid in _responses(vector.server)
                    if cmd == 1 and sid]
    ids: dict[int, int] = {}
    conn = host.smb_connection()
    with recorded_ntlm(vector):
        for payload in smb_frames(b"".join(vector.client)):
            payload = bytearray(payload)
            pos = 0
            while payload[pos:pos + 4] == b"\xfeSMB":
                (sid,) = struct.unpack_from("<Q", payload, pos + 40)
                if sid in ids:
                    struct.pack_into("<Q", payload, pos + 40, ids[sid])
                (next_command,) = struct.unpack_from("<I", payload, pos + 20)
                if not next_command:
                    break
                pos += next_command
            conn.receive_data(struct.pack(">I", len(payload)) + bytes(payload))
            assert not conn.close_requested, f"{vector.name}: closed: {host.logs[-3:]}"
            for command, status, sid in _responses(conn.data_to_send()):
                if command == 1 and sid and len(ids) < len(recorded_ids):
                    ids.setdefault(recorded_ids[len(ids)], sid)
                if command == 1 and status == 0:
                    assert host.engine.counted("smb") == 1
                    assert [s.state for s in host.engine.sessions("smb")] == ["active"]
                    return conn
                assert status in (0, 0xC0000016), \
                    f"{vector.name}: command {command} answered 0x{status:08x}"
    raise AssertionError(f"{vector.name}: the replay never completed a SESSION_SETUP")


def replay_rdp(host: Host, vector: Vector) -> RDPServerConnection:
    """Replay a recorded (TLS, non-NLA) RDP logon; assert it is activated and counted."""
    conn = host.rdp_connection()
    for chunk in vector.client:
        conn.receive_data(chunk)
        if conn.tls_requested:
            conn.tls_started()
        conn.data_to_send()
        assert not conn.close_requested, f"{vector.name}: closed: {host.logs[-3:]}"
    assert conn.state is State.ACTIVE, f"{vector.name}: state {conn.state}"
    assert [s.state for s in host.engine.sessions("rdp")] == ["active"]
    return conn


def served_again(host: Host, smb: Vector | None = None, rdp: Vector | None = None) -> None:
    """The invariant after each case: the next real conversation is served, and leaves
    the host as it found it."""
    if smb is not None:
        conn = replay_smb(host, smb)
        conn.connection_lost()
    if rdp is not None:
        rconn = replay_rdp(host, rdp)
        rconn.connection_lost()
        host.forget_disconnected()
    host.assert_clean()
