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


class FramingError(Exception):
    """The peer broke the framing; the only answer is to close the connection."""


@dataclass(frozen=True)
class Frame:
    payload: bytes


@dataclass(frozen=True)
class SessionRequest:
    """NetBIOS session request (the called/calling names are not checked, as Windows)."""


class FrameDecoder:
    def __init__(self, *, netbios: bool, max_payload: int) -> None:
        self.netbios = netbios
        self.max_payload = max_payload
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame | SessionRequest]:
        self._buf += data
        out: list[Frame | SessionRequest] = []
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
                out.append(Frame(payload))
            elif kind == NB_SESSION_REQUEST:
                out.append(SessionRequest())
            # keep-alives are dropped
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)


def frame(payload: bytes) -> bytes:
    """Both transports frame a session message the same way (type 0, 24-bit length)."""
    return struct.pack(">I", len(payload)) + payload
