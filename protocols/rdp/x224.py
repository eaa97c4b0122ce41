"""TPKT (RFC 1006), X.224 (ISO 8073 class 0) and RDP security negotiation
(MS-RDPBCGR 2.2.1.1-2.2.1.2).

Also the input framing: slow-path PDUs ride in TPKT (first byte 0x03); fast-path input
(MS-RDPBCGR 2.2.8.1.2) starts with an action byte whose low two bits are 0; CredSSP
(MS-CSSP) sends bare DER TSRequests (0x30) between the TLS handshake and MCS.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from protocols.auth.credssp import ts_request_length
from protocols.auth.ntlm import AuthFailure

TPKT_VERSION = 3
TPKT_HEADER = 4
MAX_TPKT = 0xFFFF

# X.224 TPDU codes (upper nibble of the second byte).
X224_CR = 0xE0  # connection request
X224_CC = 0xD0  # connection confirm
X224_DR = 0x80  # disconnect request
X224_DT = 0xF0  # data
X224_DATA_HEADER = b"\x02\xf0\x80"  # LI=2, DT, EOT

# RDP_NEG_* types and protocols.
TYPE_RDP_NEG_REQ = 0x01
TYPE_RDP_NEG_RSP = 0x02
TYPE_RDP_NEG_FAILURE = 0x03
TYPE_RDP_CORRELATION_INFO = 0x06
NO_NEGOTIATION = 0x00  # parse_connection_confirm: the server sent no rdpNegData
PROTOCOL_RDP = 0x0
PROTOCOL_SSL = 0x1
PROTOCOL_HYBRID = 0x2
PROTOCOL_RDSTLS = 0x4
PROTOCOL_HYBRID_EX = 0x8

# RDP_NEG_FAILURE codes.
SSL_REQUIRED_BY_SERVER = 0x1
SSL_NOT_ALLOWED_BY_SERVER = 0x2
SSL_CERT_NOT_ON_SERVER = 0x3
INCONSISTENT_FLAGS = 0x4
HYBRID_REQUIRED_BY_SERVER = 0x5
SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER = 0x6


class DecodeError(ValueError):
    """Input that is not what the protocol allows: the connection is dropped."""


@dataclass(frozen=True)
class ConnectionRequest:
    cookie: bytes  # "Cookie: mstshash=NAME" (or a routing token), without CR LF; b"" if none
    requested_protocols: int | None  # None: no RDP_NEG_REQ (a pre-RDP 5.2 client)
    neg_flags: int = 0

    @property
    def mstshash(self) -> str:
        prefix = b"Cookie: mstshash="
        return self.cookie[len(prefix):].decode("latin-1") if self.cookie.startswith(prefix) else ""


def tpkt(payload: bytes) -> bytes:
    if len(payload) + TPKT_HEADER > MAX_TPKT:
        raise ValueError("TPKT payload too large")
    return struct.pack(">BBH", TPKT_VERSION, 0, len(payload) + TPKT_HEADER) + payload


def x224_data(payload: bytes) -> bytes:
    """A whole TPKT frame carrying one X.224 Data TPDU."""
    return tpkt(X224_DATA_HEADER + payload)


def parse_x224(tpdu: bytes) -> tuple[int, bytes]:
    """X.224 TPDU (the TPKT payload) -> (code, user data after the fixed header)."""
    if len(tpdu) < 2:
        raise DecodeError("X.224 TPDU too short")
    li, code = tpdu[0], tpdu[1] & 0xF0
    if code == X224_DT:
        if li != 2 or len(tpdu) < 3 or tpdu[2] != 0x80:
            raise DecodeError("bad X.224 Data TPDU header")
        return code, tpdu[3:]
    if li + 1 != len(tpdu) or li < 6:
        raise DecodeError(f"X.224 length indicator {li} does not match {len(tpdu)} bytes")
    return code, tpdu[7:]


def parse_connection_request(tpdu: bytes) -> ConnectionRequest:
    code, rest = parse_x224(tpdu)
    if code != X224_CR:
        raise DecodeError(f"expected an X.224 Connection Request, got code 0x{code:02x}")
    cookie = b""
    if rest.startswith(b"Cookie:"):
        end = rest.find(b"\r\n")
        if end < 0:
            raise DecodeError("routing token or cookie without CR LF")
        cookie, rest = rest[:end], rest[end + 2:]
    if not rest:
        return ConnectionRequest(cookie, None)
    if len(rest) < 8 or rest[0] != TYPE_RDP_NEG_REQ:
        raise DecodeError("bad RDP_NEG_REQ")
    _, flags, length, protocols = struct.unpack_from("<BBHI", rest)
    if length != 8:
        raise DecodeError(f"RDP_NEG_REQ length {length}")
    extra = rest[8:]
    if extra and not (len(extra) == 36 and extra[0] == TYPE_RDP_CORRELATION_INFO):
        raise DecodeError("trailing bytes after RDP_NEG_REQ")
    return ConnectionRequest(cookie, protocols, flags)


def connection_request(requested_protocols: int | None, cookie: bytes = b"",
                       flags: int = 0) -> bytes:
    """Client side, for tests and the benchmark."""
    var = cookie + b"\r\n" if cookie else b""
    if requested_protocols is not None:
        var += struct.pack("<BBHI", TYPE_RDP_NEG_REQ, flags, 8, requested_protocols)
    return tpkt(bytes([6 + len(var), X224_CR]) + b"\x00\x00\x00\x00\x00" + var)


def _connection_confirm(neg: bytes) -> bytes:
    # dst-ref 0, src-ref 0x1234, class 0: what Windows sends.
    return tpkt(bytes([6 + len(neg), X224_CC]) + b"\x00\x00\x12\x34\x00" + neg)


def connection_confirm(selected_protocol: int, flags: int = 0) -> bytes:
    return _connection_confirm(struct.pack("<BBHI", TYPE_RDP_NEG_RSP, flags, 8, selected_protocol))


def connection_confirm_without_negotiation() -> bytes:
    """An LI=6 Connection Confirm without rdpNegData: what a server that predates RDP
    security negotiation (XP) answers to every Connection Request; the client goes on with
    Standard RDP Security (MS-RDPBCGR 3.2.5.3.2)."""
    return _connection_confirm(b"")


def negotiation_failure(code: int) -> bytes:
    return _connection_confirm(struct.pack("<BBHI", TYPE_RDP_NEG_FAILURE, 0, 8, code))


def parse_connection_confirm(tpdu: bytes) -> tuple[int, int]:
    """Client side: -> (TYPE_RDP_NEG_RSP or TYPE_RDP_NEG_FAILURE, protocol or failure code);
    (NO_NEGOTIATION, PROTOCOL_RDP) for a Connection Confirm without rdpNegData."""
    code, rest = parse_x224(tpdu)
    if code == X224_CC and not rest:
        return NO_NEGOTIATION, PROTOCOL_RDP
    if code != X224_CC or len(rest) != 8:
        raise DecodeError("not a Connection Confirm with a negotiation response")
    kind, _, _, value = struct.unpack("<BBHI", rest)
    return kind, value


# -- input framing ---------------------------------------------------------------------

TPKT_FRAME, FASTPATH_FRAME, CREDSSP_FRAME = "tpkt", "fastpath", "credssp"


@dataclass(frozen=True)
class Frame:
    kind: str
    data: bytes  # TPKT: the payload (X.224 TPDU); fast-path: the whole PDU; CredSSP: the DER


class FrameDecoder:
    """Cuts the byte stream into frames, one at a time (the caller may switch mode between
    frames: CredSSP ends where MCS begins). Sizes are checked from the header, before
    buffering the body."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.credssp = False  # expect bare DER TSRequests

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def next_frame(self) -> Frame | None:
        buf = self._buf
        if not buf:
            return None
        if self.credssp:
            return self._der()
        first = buf[0]
        if first == TPKT_VERSION:
            if len(buf) < TPKT_HEADER:
                return None
            if buf[1] != 0:
                raise DecodeError("TPKT reserved byte is not 0")
            (length,) = struct.unpack_from(">H", buf, 2)
            if length < TPKT_HEADER + 2:
                raise DecodeError(f"TPKT length {length} too small")
            if len(buf) < length:
                return None
            frame = Frame(TPKT_FRAME, bytes(buf[TPKT_HEADER:length]))
            del buf[:length]
            return frame
        if first & 0x03 == 0:  # FASTPATH_INPUT_ACTION_FASTPATH
            if len(buf) < 2:
                return None
            if buf[1] & 0x80:
                if len(buf) < 3:
                    return None
                length = ((buf[1] & 0x7F) << 8) | buf[2]
            else:
                length = buf[1]
            if length < 2:
                raise DecodeError(f"fast-path length {length} too small")
            if len(buf) < length:
                return None
            frame = Frame(FASTPATH_FRAME, bytes(buf[:length]))
            del buf[:length]
            return frame
        raise DecodeError(f"neither TPKT nor fast-path (first byte 0x{first:02x})")

    def _der(self) -> Frame | None:
        try:  # from the DER header (tag, then at most five length bytes), before buffering
            length = ts_request_length(bytes(self._buf[:6]))
        except AuthFailure as exc:
            raise DecodeError(f"CredSSP: {exc.detail}") from None
        if length is None or len(self._buf) < length:
            return None
        frame = Frame(CREDSSP_FRAME, bytes(self._buf[:length]))
        del self._buf[:length]
        return frame
