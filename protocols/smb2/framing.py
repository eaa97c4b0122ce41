"""Transport framing for SMB: direct TCP (port 445) and the NetBIOS session service (139).

Both carry messages behind a 4-byte header. Direct TCP: a zero byte and a 24-bit
length (MS-SMB2 2.1). NetBIOS (RFC 1002 4.3): a type byte, a flags byte whose
low bit extends the length to 17 bits, and a 16-bit length; before any message
the client sends a SESSION REQUEST that must be answered POSITIVE RESPONSE.

The length is checked before the payload is buffered, so an oversized frame
costs four bytes of memory, not sixteen megabytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

NB_SESSION_MESSAGE = 0x00
NB_SESSION_REQUEST = 0x81
NB_POSITIVE_RESPONSE = 0x82
NB_NEGATIVE_RESPONSE = 0x83
NB_KEEPALIVE = 0x85

_NETBIOS_TYPES = (NB_SESSION_MESSAGE, NB_SESSION_REQUEST, NB_KEEPALIVE)
POSITIVE_RESPONSE = bytes([NB_POSITIVE_RESPONSE, 0, 0, 0])
NB_UNSPECIFIED_ERROR = 0x8F
# What Windows answers a session message sent before the SESSION REQUEST, then closes
# (nmap-service-probes matches `^\x83\0\0\x01\x8f$` as "Microsoft Windows netbios-ssn").
NEGATIVE_RESPONSE = bytes([NB_NEGATIVE_RESPONSE, 0, 0, 1, NB_UNSPECIFIED_ERROR])


class FramingError(Exception):
    """The peer broke the framing; the only answer is to close the connection."""


@dataclass(frozen=True)
class Frame:
    payload: bytes


@dataclass(frozen=True)
class SessionRequest:
    """NetBIOS session request (RFC 1002 4.3.2). Any called name is accepted; the calling
    name is the client's name (MS-SMB2 Connection.ClientName over NetBIOS). ``None``
    names: the request was malformed (answered with NEGATIVE_RESPONSE)."""

    called: str | None = None
    calling: str | None = None

    @property
    def valid(self) -> bool:
        return self.called is not None and self.calling is not None


@dataclass(frozen=True)
class NotInSession:
    """A session message before any SESSION REQUEST: NEGATIVE_RESPONSE, then close."""


def decode_netbios_name(data: bytes, pos: int = 0) -> tuple[str, int]:
    """One first-level encoded NetBIOS name (RFC 1001 14.1) at ``pos``: the 15-character
    name without its padding (suffix byte dropped) and the offset after it (past any scope
    labels). ValueError when it is not such a name."""
    if pos >= len(data) or data[pos] != 32 or pos + 33 > len(data):
        raise ValueError("not a 32-byte encoded name")
    half = data[pos + 1:pos + 33]
    if any(not 0x41 <= c <= 0x50 for c in half):
        raise ValueError("name outside A..P")
    raw = bytes(((half[i] - 0x41) << 4) | (half[i + 1] - 0x41) for i in range(0, 32, 2))
    pos += 33
    while True:  # scope labels, ending with a zero length
        if pos >= len(data):
            raise ValueError("unterminated name")
        label = data[pos]
        if label == 0:
            pos += 1
            break
        if label > 63:
            raise ValueError("bad scope label")
        pos += 1 + label
    name = raw[:15].decode("latin-1").rstrip(" \0")
    if not name or not name.isprintable():
        raise ValueError("empty or unprintable name")
    return name, pos


def encode_netbios_name(name: str, suffix: int = 0x20) -> bytes:
    """First-level encoding of ``name`` padded to 15 characters plus ``suffix``."""
    raw = name.upper().encode("latin-1")[:15].ljust(15, b" ") + bytes([suffix])
    return bytes([32]) + bytes(b for c in raw for b in (0x41 + (c >> 4), 0x41 + (c & 15))) + b"\0"


def _session_request(payload: bytes) -> SessionRequest:
    try:
        called, pos = decode_netbios_name(payload)
        calling, end = decode_netbios_name(payload, pos)
    except ValueError:
        return SessionRequest()
    return SessionRequest(called, calling) if end == len(payload) else SessionRequest()


class FrameDecoder:
    def __init__(self, *, netbios: bool, max_payload: int) -> None:
        self.netbios = netbios
        self.max_payload = max_payload
        self._buf = bytearray()
        self.in_session = not netbios  # NetBIOS: after a SESSION REQUEST

    def feed(self, data: bytes) -> list[Frame | SessionRequest | NotInSession]:
        self._buf += data
        out: list[Frame | SessionRequest | NotInSession] = []
        while len(self._buf) >= 4:
            kind = self._buf[0]
            allowed = _NETBIOS_TYPES if self.netbios else (NB_SESSION_MESSAGE,)
            if kind not in allowed:
                raise FramingError(f"frame type 0x{kind:02x}")
            # Like Windows, read 24 bits on port 139 too: the RFC's 17-bit length is the
            # same number whenever the reserved flag bits are zero, and large-MTU SMB2
            # clients exceed 128 KiB.
            length = struct.unpack_from(">I", self._buf, 0)[0] & 0xFFFFFF
            if length > self.max_payload:
                raise FramingError(f"frame of {length} bytes exceeds the {self.max_payload} cap")
            if len(self._buf) < 4 + length:
                break
            payload = bytes(self._buf[4:4 + length])
            del self._buf[:4 + length]
            if kind == NB_SESSION_MESSAGE:
                if not self.in_session:
                    self._buf.clear()
                    out.append(NotInSession())
                    break
                out.append(Frame(payload))
            elif kind == NB_SESSION_REQUEST:
                request = _session_request(payload)
                self.in_session = self.in_session or request.valid
                out.append(request)
            # keep-alives are dropped
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)


def frame(payload: bytes) -> bytes:
    """Both transports frame a session message the same way (type 0, 24-bit length)."""
    return struct.pack(">I", len(payload)) + payload
