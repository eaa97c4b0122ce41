"""Standard RDP Security on one server connection: the Server Security Data with the
server random and the proprietary certificate, the Security Exchange PDU, the security
header of every PDU after it (MS-RDPBCGR 2.2.8.1.1.2), fast-path's encryption flags
(2.2.8.1.2, 2.2.9.1.2), and the output sealed in the order it goes on the wire.

Licensing PDUs carry SEC_LICENSE_PKT (and SEC_LICENSE_ENCRYPT_CS, "the server is capable
of processing encrypted licensing packets"); they are encrypted only when the client said
it can read encrypted licensing PDUs (SEC_LICENSE_ENCRYPT_SC in its Security Exchange PDU,
MS-RDPBCGR 2.2.8.1.1.2.1). Everything else goes encrypted in both directions (the
Client Compatible level and above)."""

from __future__ import annotations

import functools

import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass

from protocols.rdp import gcc, mcs
from protocols.rdp.proprietary_cert import ServerKey, proprietary_certificate
from protocols.rdp.rdpsec import (
    ENCRYPTION_LEVEL_CLIENT_COMPATIBLE,
    ENCRYPTION_LEVEL_HIGH,
    ENCRYPTION_METHOD_40BIT,
    ENCRYPTION_METHOD_56BIT,
    ENCRYPTION_METHOD_128BIT,
    MAC_SIZE,
    RANDOM_SIZE,
    SecurityContext,
    choose_method,
)
from protocols.rdp.x224 import TPKT_VERSION, X224_DATA_HEADER, DecodeError, x224_data

# Security header flags (2.2.8.1.1.2.1) beyond pdu.py's.
SEC_EXCHANGE_PKT = 0x0001
SEC_ENCRYPT = 0x0008
SEC_LICENSE_PKT = 0x0080
SEC_LICENSE_ENCRYPT_CS = 0x0200  # server -> client: the server can read encrypted licensing
SEC_LICENSE_ENCRYPT_SC = 0x0200  # client -> server (in the Security Exchange PDU): likewise
SEC_SECURE_CHECKSUM = 0x0800  # a salted MAC
# fast-path encryptionFlags (the top two bits of the header byte).
FASTPATH_SECURE_CHECKSUM = 0x1
FASTPATH_ENCRYPTED = 0x2

RC4_METHODS = ENCRYPTION_METHOD_40BIT | ENCRYPTION_METHOD_56BIT | ENCRYPTION_METHOD_128BIT


@dataclass(frozen=True)
class StandardSecurityConfig:
    """What a host offers under Standard RDP Security: its level, its methods, its key.

    The key (and its proprietary certificate) is the host's own, made on the first
    connection that needs it when none is given: ~20 ms of pure-Python prime search that a
    lab's hosts nobody reaches over RDP Security never pay."""

    encryption_level: int = ENCRYPTION_LEVEL_CLIENT_COMPATIBLE
    encryption_methods: int = RC4_METHODS
    key: ServerKey | None = None
    certificate: bytes = b""
    random: Callable[[int], bytes] = secrets.token_bytes  # the server randoms' source

    def __post_init__(self) -> None:
        if self.encryption_level not in (ENCRYPTION_LEVEL_CLIENT_COMPATIBLE,
                                         ENCRYPTION_LEVEL_HIGH):
            raise ValueError(f"encryption level {self.encryption_level}: only Client "
                             "Compatible (2) and High (3) are built (both ways encrypted)")
        if not self.encryption_methods & RC4_METHODS or self.encryption_methods & ~RC4_METHODS:
            raise ValueError(f"encryption methods 0x{self.encryption_methods:x}: 40-, 56- "
                             "and 128-bit RC4 only")

    @functools.cached_property
    def server_key(self) -> ServerKey:
        return self.key or ServerKey.generate()

    @functools.cached_property
    def server_certificate(self) -> bytes:
        return self.certificate or proprietary_certificate(self.server_key)


def header(flags: int) -> bytes:
    return struct.pack("<HH", flags, 0)


class StandardSecurity:
    """The server side of one connection."""

    def __init__(self, config: StandardSecurityConfig) -> None:
        self.config = config
        self.server_random = config.random(RANDOM_SIZE)
        self.method: int | None = None
        self.context: SecurityContext | None = None
        self.salted = False  # the client sends salted MACs: so does the server
        self.license_encrypted = False
        self.client_random: bytes | None = None  # the auto-reconnect verifier covers it

    # -- MCS connect -------------------------------------------------------------------------
    def choose(self, client_methods: int) -> int | None:
        self.method = choose_method(client_methods, self.config.encryption_methods)
        return self.method

    def server_security_block(self) -> bytes:
        assert self.method is not None
        return gcc.server_security_rdp(self.method, self.config.encryption_level,
                                       self.server_random, self.config.server_certificate)

    # -- the Security Exchange PDU (2.2.1.10) -------------------------------------------------
    def security_exchange(self, data: bytes) -> None:
        if len(data) < 8:
            raise DecodeError("Security Exchange PDU too short")
        flags, _hi, length = struct.unpack_from("<HHI", data)
        if not flags & SEC_EXCHANGE_PKT:
            raise DecodeError(f"expected the Security Exchange PDU (security flags 0x{flags:x})")
        if length != len(data) - 8:
            raise DecodeError(f"Security Exchange length {length} for {len(data) - 8} bytes")
        client_random = self.config.server_key.decrypt_client_random(data[8:])
        self.client_random = client_random
        assert self.method is not None
        self.context = SecurityContext.for_server(client_random, self.server_random,
                                                  self.method)
        self.license_encrypted = bool(flags & SEC_LICENSE_ENCRYPT_SC)

    # -- input -------------------------------------------------------------------------------
    def unwrap(self, data: bytes) -> tuple[int, bytes]:
        """A Send Data Request's payload -> (security flags, the plain PDU)."""
        if self.context is None:
            raise DecodeError("data before the Security Exchange PDU")
        if len(data) < 4:
            raise DecodeError("security header too short")
        (flags,) = struct.unpack_from("<H", data)
        if not flags & SEC_ENCRYPT:
            if flags & SEC_LICENSE_PKT:
                return flags, data[4:]  # a licensing PDU the client did not encrypt
            raise DecodeError(f"unencrypted PDU under Standard RDP Security (0x{flags:x})")
        if len(data) < 4 + MAC_SIZE:
            raise DecodeError("encrypted PDU shorter than its MAC")
        salted = bool(flags & SEC_SECURE_CHECKSUM)
        self.salted = self.salted or salted
        return flags, self.context.decrypt(data[4:12], data[12:], salted)

    def unwrap_fastpath(self, frame: bytes) -> bytes:
        """A fast-path input PDU -> its plain events (numEvents onwards)."""
        if self.context is None:
            raise DecodeError("fast-path input before the Security Exchange PDU")
        flags = frame[0] >> 6
        start = 3 if frame[1] & 0x80 else 2
        if not flags & FASTPATH_ENCRYPTED:
            raise DecodeError("unencrypted fast-path input under Standard RDP Security")
        if len(frame) < start + MAC_SIZE:
            raise DecodeError("encrypted fast-path PDU shorter than its MAC")
        return self.context.decrypt(frame[start:start + MAC_SIZE], frame[start + MAC_SIZE:],
                                    bool(flags & FASTPATH_SECURE_CHECKSUM))

    # -- output ------------------------------------------------------------------------------
    def wrap(self, payload: bytes, flags: int = 0) -> bytes:
        """A PDU for a Send Data Indication, with its security header."""
        if flags & SEC_LICENSE_PKT:
            flags |= SEC_LICENSE_ENCRYPT_CS
            if not self.license_encrypted:
                return header(flags) + payload
        assert self.context is not None
        flags |= SEC_ENCRYPT | (SEC_SECURE_CHECKSUM if self.salted else 0)
        signature, encrypted = self.context.encrypt(payload, self.salted)
        return header(flags) + signature + encrypted

    def seal(self, piece: bytes, flags: int = 0) -> bytes:
        """Whole server frames as the core made them -> as they go on the wire: each Send
        Data Indication's PDU behind a security header, each fast-path PDU encrypted. Run as
        the bytes are taken, so the RC4 streams advance in wire order."""
        if self.context is None:
            return piece  # the Connection Confirm, the MCS connect and domain PDUs
        out = bytearray()
        pos, end = 0, len(piece)
        while pos < end:
            if piece[pos] == TPKT_VERSION:
                (length,) = struct.unpack_from(">H", piece, pos + 2)
                frame = piece[pos:pos + length]
                tpdu = frame[4:]
                if tpdu[:3] == X224_DATA_HEADER and tpdu[3] >> 2 == mcs.SEND_DATA_INDICATION:
                    channel, payload = mcs.parse_send_data_indication(tpdu[3:])
                    out += x224_data(mcs.send_data_indication(channel,
                                                              self.wrap(payload, flags)))
                else:
                    out += frame  # MCS control PDUs (the DPUM) have no security header
            else:  # fast-path output (2.2.9.1.2), always written with a two-byte length
                (length,) = struct.unpack_from(">H", piece, pos + 1)
                length &= 0x7FFF
                assert self.context is not None
                signature, encrypted = self.context.encrypt(piece[pos + 3:pos + length],
                                                            self.salted)
                enc = FASTPATH_ENCRYPTED | (FASTPATH_SECURE_CHECKSUM if self.salted else 0)
                out += bytes([piece[pos] | enc << 6])
                out += struct.pack(">H", 0x8000 | (3 + MAC_SIZE + len(encrypted)))
                out += signature + encrypted
            pos += length
        return bytes(out)
