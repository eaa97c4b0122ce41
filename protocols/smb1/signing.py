"""SMB1 message signing (MS-CIFS 3.1.4.1 / 3.1.5.1, MS-SMB 3.3.5.1 and 3.3.5.3).

MAC = the first 8 bytes of MD5(SigningSessionKey + SigningChallengeResponse + message),
the message carrying its 32-bit sequence number in SecuritySignature (the other 4 bytes
zero). Signing is per connection: it starts with the first successful, non-null,
non-guest SESSION_SETUP_ANDX when the server requires it or the client asks for it
(FLAGS2 SECURITY_SIGNATURE / _REQUIRED) and the server has it enabled; that response is
signed with sequence number 1 and the next request expects 2. Each request takes its
number and its responses the next one (ServerNextReceiveSequenceNumber += 2; NT_CANCEL,
which has no response, += 1). Oplock break notifications are never signed.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from impacket import smb as i

from protocols.smb1.messages import FLAGS2_SIGNATURE

SIGNATURE_OFFSET = 14  # SecuritySignature in the 32-byte header
FLAGS2_OFFSET = 10
FLAGS2_SIGNATURE_REQUIRED = i.SMB.FLAGS2_SMB_SECURITY_SIGNATURE_REQUIRED


def mac(key: bytes, response: bytes, message: bytes, sequence: int) -> bytes:
    """The 8-byte signature of ``message`` under ``sequence``."""
    seq = struct.pack("<II", sequence & 0xFFFFFFFF, 0)
    digest = hashlib.md5(key + response + message[:SIGNATURE_OFFSET] + seq
                         + message[SIGNATURE_OFFSET + 8:]).digest()
    return digest[:8]


def sign(key: bytes, response: bytes, message: bytes, sequence: int) -> bytes:
    """``message`` with FLAGS2_SMB_SECURITY_SIGNATURE set and its signature in place."""
    out = bytearray(message)
    (flags2,) = struct.unpack_from("<H", out, FLAGS2_OFFSET)
    struct.pack_into("<H", out, FLAGS2_OFFSET, flags2 | FLAGS2_SIGNATURE)
    out[SIGNATURE_OFFSET:SIGNATURE_OFFSET + 8] = mac(key, response, bytes(out), sequence)
    return bytes(out)


def wants_signing(flags2: int) -> bool:
    return bool(flags2 & (FLAGS2_SIGNATURE | FLAGS2_SIGNATURE_REQUIRED))


class Signing:
    """One connection's signing state: inactive until ``activate``."""

    def __init__(self) -> None:
        self.active = False
        self.key = b""
        self.response = b""
        self.next_receive = 0

    def activate(self, key: bytes, response: bytes) -> None:
        """Signing starts: the activating SESSION_SETUP request counted as 0, its
        response is signed with 1, the next request carries 2."""
        self.active, self.key, self.response = True, key.ljust(16, b"\0"), response
        self.next_receive = 2

    def receive(self, message: bytes, command: int) -> tuple[int, bool]:
        """(the sequence number for this request's responses, whether its signature is
        right); advances the expected number either way, as Windows does."""
        sequence = self.next_receive
        self.next_receive += 1 if command == i.SMB.SMB_COM_NT_CANCEL else 2
        signature = message[SIGNATURE_OFFSET:SIGNATURE_OFFSET + 8]
        ok = hmac.compare_digest(signature, mac(self.key, self.response, message, sequence))
        return sequence + 1, ok

    def sign(self, message: bytes, sequence: int) -> bytes:
        return sign(self.key, self.response, message, sequence)
