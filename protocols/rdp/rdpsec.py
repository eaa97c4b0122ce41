"""Standard RDP Security (MS-RDPBCGR 5.3): session keys from the client and server randoms
(5.3.5.1), RC4 encryption with MACs, salted when the sender asks (5.3.6.1, 5.3.6.1.1), and
the key update every 4096 packets (5.3.7.1). Non-FIPS methods only (40-, 56- and 128-bit
RC4); the FIPS level (3DES, HMAC-SHA1) is not offered.

RC4 is ``cryptography``'s ARC4 (in its ``decrepit`` module since 43); MD5 and SHA-1 are
``hashlib``'s. No I/O: ``SecurityContext`` is one connection's pair of cipher streams.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
except ImportError:  # cryptography < 43
    from cryptography.hazmat.primitives.ciphers.algorithms import ARC4  # type: ignore
from cryptography.hazmat.primitives.ciphers import Cipher

from protocols.rdp.x224 import DecodeError

# Encryption methods (TS_UD_CS_SEC / TS_UD_SC_SEC1) and levels (MS-RDPBCGR 2.2.1.4.3).
ENCRYPTION_METHOD_NONE = 0x00
ENCRYPTION_METHOD_40BIT = 0x01
ENCRYPTION_METHOD_128BIT = 0x02
ENCRYPTION_METHOD_56BIT = 0x08
ENCRYPTION_METHOD_FIPS = 0x10
ENCRYPTION_LEVEL_NONE = 0
ENCRYPTION_LEVEL_LOW = 1
ENCRYPTION_LEVEL_CLIENT_COMPATIBLE = 2
ENCRYPTION_LEVEL_HIGH = 3
ENCRYPTION_LEVEL_FIPS = 4

RC4_METHODS_ALL = ENCRYPTION_METHOD_40BIT | ENCRYPTION_METHOD_56BIT | ENCRYPTION_METHOD_128BIT

# The strongest first: what "Client Compatible" picks from the client's list (5.3.2).
METHOD_PREFERENCE = (ENCRYPTION_METHOD_128BIT, ENCRYPTION_METHOD_56BIT, ENCRYPTION_METHOD_40BIT)

KEY_UPDATE_INTERVAL = 4096  # packets per key (5.3.7)
MAC_SIZE = 8
RANDOM_SIZE = 32

PAD1 = b"\x36" * 40
PAD2 = b"\x5c" * 48


class MACError(DecodeError):
    """A MAC that does not match the decrypted data: the connection is dropped."""


def rc4(key: bytes) -> object:
    """An RC4 key stream (``.update(data)``)."""
    return Cipher(ARC4(key), mode=None).encryptor()


def _md5(*parts: bytes) -> bytes:
    return hashlib.md5(b"".join(parts), usedforsecurity=False).digest()


def _sha1(*parts: bytes) -> bytes:
    return hashlib.sha1(b"".join(parts), usedforsecurity=False).digest()


def salted_hash(secret: bytes, i: bytes, client_random: bytes, server_random: bytes) -> bytes:
    """SaltedHash(S, I) = MD5(S + SHA(I + S + ClientRandom + ServerRandom)) (5.3.5.1)."""
    return _md5(secret, _sha1(i, secret, client_random, server_random))


def _reduce(key128: bytes, method: int) -> bytes:
    """The key the method uses: 128-bit whole; 56- and 40-bit the first 64 bits with the
    first one or three bytes replaced by the salt 0xD1269E (5.3.5.1)."""
    if method == ENCRYPTION_METHOD_128BIT:
        return key128
    if method == ENCRYPTION_METHOD_56BIT:
        return b"\xd1" + key128[1:8]
    if method == ENCRYPTION_METHOD_40BIT:
        return b"\xd1\x26\x9e" + key128[3:8]
    raise ValueError(f"no RC4 key for encryption method 0x{method:x}")


@dataclass(frozen=True)
class SessionKeys:
    """The keys of one side: ``encrypt`` what it sends, ``decrypt`` what it receives."""

    mac_key: bytes
    encrypt: bytes
    decrypt: bytes


def session_keys(client_random: bytes, server_random: bytes, method: int, *,
                 server: bool = True) -> SessionKeys:
    """MS-RDPBCGR 5.3.5.1: PreMasterSecret, MasterSecret, SessionKeyBlob, then the MAC key
    and the two initial keys, reduced to the method's length."""
    if len(client_random) != RANDOM_SIZE or len(server_random) != RANDOM_SIZE:
        raise ValueError("the client and server randoms are 32 bytes")
    cr, sr = client_random, server_random
    pre_master = cr[:24] + sr[:24]
    master = b"".join(salted_hash(pre_master, i, cr, sr) for i in (b"A", b"BB", b"CCC"))
    blob = b"".join(salted_hash(master, i, cr, sr) for i in (b"X", b"YY", b"ZZZ"))
    mac_key = _reduce(blob[:16], method)
    client_decrypt = _reduce(_md5(blob[16:32], cr, sr), method)  # = the server's encrypt key
    client_encrypt = _reduce(_md5(blob[32:48], cr, sr), method)
    if server:
        return SessionKeys(mac_key, client_decrypt, client_encrypt)
    return SessionKeys(mac_key, client_encrypt, client_decrypt)


def mac_signature(mac_key: bytes, data: bytes, count: int | None = None) -> bytes:
    """MACSignature (5.3.6.1), or the salted MAC with the sender's encryption count
    (5.3.6.1.1, SEC_SECURE_CHECKSUM)."""
    salt = b"" if count is None else (count & 0xFFFFFFFF).to_bytes(4, "little")
    sha = _sha1(mac_key, PAD1, len(data).to_bytes(4, "little"), data, salt)
    return _md5(mac_key, PAD2, sha)[:MAC_SIZE]


def update_key(initial: bytes, current: bytes, method: int) -> bytes:
    """The next key of a stream after 4096 packets (5.3.7.1)."""
    n = len(initial)
    sha = _sha1(initial[:n], PAD1, current[:n])
    temp = _md5(initial[:n], PAD2, sha)[:n]
    new = rc4(temp).update(temp)  # type: ignore[attr-defined]
    if method == ENCRYPTION_METHOD_128BIT:
        return new
    return _reduce(new + bytes(16 - n), method)


class CipherStream:
    """One direction's RC4 stream: its key, how often it has been used since the last key
    update, and in all (the salted MAC's count)."""

    def __init__(self, key: bytes, method: int) -> None:
        self.method = method
        self.initial = key
        self.key = key
        self._rc4 = rc4(key)
        self.uses = 0  # since the last key update
        self.total = 0  # packets in all

    def process(self, data: bytes) -> bytes:
        if self.uses >= KEY_UPDATE_INTERVAL:
            self.key = update_key(self.initial, self.key, self.method)
            self._rc4 = rc4(self.key)
            self.uses = 0
        self.uses += 1
        self.total += 1
        return self._rc4.update(data)  # type: ignore[attr-defined,no-any-return]


class SecurityContext:
    """One side of a connection under Standard RDP Security."""

    def __init__(self, keys: SessionKeys, method: int) -> None:
        self.method = method
        self.mac_key = keys.mac_key
        self._out = CipherStream(keys.encrypt, method)
        self._in = CipherStream(keys.decrypt, method)

    @classmethod
    def for_server(cls, client_random: bytes, server_random: bytes,
                   method: int) -> SecurityContext:
        return cls(session_keys(client_random, server_random, method), method)

    @classmethod
    def for_client(cls, client_random: bytes, server_random: bytes,
                   method: int) -> SecurityContext:
        return cls(session_keys(client_random, server_random, method, server=False), method)

    def encrypt(self, data: bytes, salted: bool = False) -> tuple[bytes, bytes]:
        """-> (dataSignature, encrypted data)."""
        signature = mac_signature(self.mac_key, data, self._out.total if salted else None)
        return signature, self._out.process(data)

    def decrypt(self, signature: bytes, data: bytes, salted: bool = False) -> bytes:
        count = self._in.total
        plain = self._in.process(data)
        expected = mac_signature(self.mac_key, plain, count if salted else None)
        if not hmac.compare_digest(signature, expected):
            raise MACError("MAC of an encrypted PDU does not match")
        return plain


def choose_method(offered: int, supported: int) -> int | None:
    """Client Compatible: the strongest RC4 method both sides have; None if none."""
    for method in METHOD_PREFERENCE:
        if offered & supported & method:
            return method
    return None
