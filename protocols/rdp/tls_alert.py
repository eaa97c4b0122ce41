"""An encrypted TLS "access denied" alert, as SChannel sends when NLA fails.

CredSSP before version 3 has no errorCode: Windows answers a failed logon with a fatal
TLS alert access_denied (49), and clients such as impacket's rdp_check.py recognise the
denial by it. OpenSSL sends alerts only for its own errors, and no Python binding can ask
it for this one, so the record is built here from the session's keys: the key block from
the master secret (RFC 2246 5/6.3, RFC 5246 5/6.3), then either AES-GCM (RFC 5288) with
the explicit nonce OpenSSL uses (the sequence number), or AES-CBC with HMAC-SHA1/256/384
(MAC-then-encrypt: the listener turns encrypt-then-MAC off), whose IV is the last
ciphertext block of the previous record on TLS 1.0 and a fresh explicit IV on 1.1/1.2.

``RecordWatcher`` sits beneath the TLS layer and reads the server's own records as they
go out: the record sequence number after the ChangeCipherSpec and, for TLS 1.0, the last
ciphertext block. TLS 1.3 (whose records are sealed with traffic secrets no binding gives)
is not served on the RDP port.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CONTENT_CCS, CONTENT_ALERT = 20, 21
TLS_1_0, TLS_1_1, TLS_1_2 = 0x0301, 0x0302, 0x0303
VERSIONS = {"TLSv1": TLS_1_0, "TLSv1.1": TLS_1_1, "TLSv1.2": TLS_1_2}
ALERT_FATAL, ACCESS_DENIED = 2, 49

# The AES-GCM suites the alert was first built for (kept for callers and tests).
CIPHERS = ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
           "AES128-GCM-SHA256", "AES256-GCM-SHA384")


@dataclass(frozen=True)
class Suite:
    gcm: bool
    key_length: int
    mac: str | None  # CBC: the HMAC digest
    prf: str  # TLS 1.2's PRF digest


def suite(cipher_name: str) -> Suite:
    """OpenSSL's name of an AES suite -> how its records are sealed; ValueError otherwise."""
    parts = cipher_name.split("-")
    if "AES128" in parts:
        key_length = 16
    elif "AES256" in parts:
        key_length = 32
    else:
        raise ValueError(f"no alert for cipher {cipher_name}")
    last = parts[-1]
    if "GCM" in parts:
        return Suite(True, key_length, None, "sha384" if last == "SHA384" else "sha256")
    if last not in ("SHA", "SHA256", "SHA384") or len(parts) < 2 or "CCM" in parts:
        raise ValueError(f"no alert for cipher {cipher_name}")
    mac = {"SHA": "sha1", "SHA256": "sha256", "SHA384": "sha384"}[last]
    return Suite(False, key_length, mac, "sha384" if last == "SHA384" else "sha256")


def supported(cipher_name: str) -> bool:
    try:
        suite(cipher_name)
    except ValueError:
        return False
    return True


def _p_hash(secret: bytes, seed: bytes, length: int, digest: str) -> bytes:
    out, a = b"", seed
    while len(out) < length:
        a = hmac.new(secret, a, digest).digest()
        out += hmac.new(secret, a + seed, digest).digest()
    return out[:length]


def _prf(secret: bytes, label: bytes, seed: bytes, length: int, version: int,
         digest: str) -> bytes:
    """TLS 1.2: P_hash with the suite's digest (RFC 5246 5); TLS 1.0/1.1: P_MD5 xor
    P_SHA1 over the two halves of the secret (RFC 2246 5)."""
    if version >= TLS_1_2:
        return _p_hash(secret, label + seed, length, digest)
    half = (len(secret) + 1) // 2
    md5 = _p_hash(secret[:half], label + seed, length, "md5")
    sha = _p_hash(secret[len(secret) - half:], label + seed, length, "sha1")
    return bytes(x ^ y for x, y in zip(md5, sha, strict=True))


def access_denied_record(cipher_name: str, master_key: bytes, client_random: bytes,
                         server_random: bytes, sequence: int, *, version: int = TLS_1_2,
                         previous_block: bytes | None = None) -> bytes:
    """The alert record the server would send as its ``sequence``-th encrypted record
    (the Finished is 0). TLS 1.0 CBC chains its IV: ``previous_block`` is the last
    ciphertext block the server sent (None: the key block's IV, for the Finished)."""
    s = suite(cipher_name)
    plaintext = bytes([ALERT_FATAL, ACCESS_DENIED])
    seq = struct.pack(">Q", sequence)
    if s.gcm:
        block = _prf(master_key, b"key expansion", server_random + client_random,
                     2 * s.key_length + 8, version, s.prf)
        server_key = block[s.key_length:2 * s.key_length]
        server_salt = block[2 * s.key_length + 4:2 * s.key_length + 8]
        aad = seq + struct.pack(">BHH", CONTENT_ALERT, version, len(plaintext))
        fragment = seq + AESGCM(server_key).encrypt(server_salt + seq, plaintext, aad)
        return struct.pack(">BHH", CONTENT_ALERT, version, len(fragment)) + fragment
    assert s.mac is not None
    mac_length = hashlib.new(s.mac).digest_size
    iv_length = 16 if version == TLS_1_0 else 0
    block = _prf(master_key, b"key expansion", server_random + client_random,
                 2 * mac_length + 2 * s.key_length + 2 * iv_length, version, s.prf)
    server_mac = block[mac_length:2 * mac_length]
    at = 2 * mac_length
    server_key = block[at + s.key_length:at + 2 * s.key_length]
    at += 2 * s.key_length
    mac = hmac.new(server_mac, seq + struct.pack(">BHH", CONTENT_ALERT, version,
                                                 len(plaintext)) + plaintext, s.mac).digest()
    body = plaintext + mac
    pad = 15 - len(body) % 16
    body += bytes([pad]) * (pad + 1)
    if version == TLS_1_0:
        iv = previous_block if previous_block is not None else block[at + 16:at + 32]
        explicit = b""
    else:
        iv = explicit = os.urandom(16)
    encryptor = Cipher(algorithms.AES(server_key), modes.CBC(iv)).encryptor()
    fragment = explicit + encryptor.update(body) + encryptor.finalize()
    return struct.pack(">BHH", CONTENT_ALERT, version, len(fragment)) + fragment


class RecordWatcher:
    """Stands between the TLS layer and the raw transport and reads the record headers
    the server writes: how many records followed its ChangeCipherSpec (the next record's
    sequence number) and the last ciphertext block. Everything else is the transport's."""

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._pending = bytearray()  # an incomplete record, as written so far
        self.sequence: int | None = None  # None until the server's ChangeCipherSpec
        self.last_block: bytes | None = None

    def write(self, data: bytes) -> None:
        self._observe(data)
        self._transport.write(data)

    def writeSequence(self, seq: Any) -> None:
        for data in seq:
            self.write(data)

    def raw_write(self, data: bytes) -> None:
        """Bytes beneath TLS (the crafted alert), not counted."""
        self._transport.write(data)

    def _observe(self, data: bytes) -> None:
        buf = self._pending
        buf += data
        while len(buf) >= 5:
            kind, _, length = struct.unpack_from(">BHH", buf)
            if len(buf) < 5 + length:
                break
            if kind == CONTENT_CCS:
                self.sequence, self.last_block = 0, None
            elif self.sequence is not None:
                self.sequence += 1
                if length >= 16:
                    self.last_block = bytes(buf[5 + length - 16:5 + length])
            del buf[:5 + length]
        if len(buf) > 5 + 0x4800:
            buf.clear()  # not TLS records: nothing to watch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
