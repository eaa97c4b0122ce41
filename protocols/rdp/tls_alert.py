"""An encrypted TLS 1.2 "access denied" alert, as SChannel sends when NLA fails.

CredSSP before version 3 has no errorCode: Windows answers a failed logon with a fatal
TLS alert access_denied (49), and clients such as impacket's rdp_check.py recognise the
denial by it. OpenSSL sends alerts only for its own errors, and no Python binding can ask
it for this one, so the record is built here from the session's keys (RFC 5246 6.3 and
RFC 5288): the key block from the master secret, AES-GCM with the server's write key, and
the server's record sequence number, which the caller counts (the Finished is 0).
"""

from __future__ import annotations

import hmac
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CONTENT_ALERT = 21
TLS_1_2 = 0x0303
ALERT_FATAL, ACCESS_DENIED = 2, 49

# The RDP listener offers only these (TLS 1.2, AES-GCM): the alert needs the key layout.
CIPHERS = ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
           "AES128-GCM-SHA256", "AES256-GCM-SHA384")


def _prf(secret: bytes, label: bytes, seed: bytes, length: int, digest: str) -> bytes:
    """The TLS 1.2 PRF: P_hash(secret, label + seed) (RFC 5246 5)."""
    seed = label + seed
    out, a = b"", seed
    while len(out) < length:
        a = hmac.new(secret, a, digest).digest()
        out += hmac.new(secret, a + seed, digest).digest()
    return out[:length]


def access_denied_record(cipher_name: str, master_key: bytes, client_random: bytes,
                         server_random: bytes, sequence: int) -> bytes:
    """The alert record the server would send as its ``sequence``-th encrypted record."""
    if cipher_name not in CIPHERS:
        raise ValueError(f"no alert for cipher {cipher_name}")
    key_length = 16 if "AES128" in cipher_name else 32
    digest = "sha384" if cipher_name.endswith("SHA384") else "sha256"
    block = _prf(master_key, b"key expansion", server_random + client_random,
                 2 * key_length + 8, digest)
    server_key = block[key_length:2 * key_length]
    server_salt = block[2 * key_length + 4:2 * key_length + 8]
    explicit = struct.pack(">Q", sequence)  # the explicit nonce: the sequence, as OpenSSL
    plaintext = bytes([ALERT_FATAL, ACCESS_DENIED])
    aad = struct.pack(">QBHH", sequence, CONTENT_ALERT, TLS_1_2, len(plaintext))
    sealed = AESGCM(server_key).encrypt(server_salt + explicit, plaintext, aad)
    fragment = explicit + sealed
    return struct.pack(">BHH", CONTENT_ALERT, TLS_1_2, len(fragment)) + fragment


def records_in(length: int) -> int:
    """How many records OpenSSL cuts one write of ``length`` bytes into."""
    return max(1, -(-length // 16384))

