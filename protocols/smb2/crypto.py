"""SMB2/3 server-side cryptography, sans-IO.

Signing (MS-SMB2 3.1.4.1), the SP800-108 key derivation (3.1.4.2), session key
derivation as the server does it (3.3.5.5.3), the SMB2 TRANSFORM_HEADER
encryption (2.2.41, 3.1.4.3) and the SMB 3.1.1 preauth integrity hash (3.3.5.4).
All primitives come from ``cryptography``; nothing here touches a socket.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import cmac, hashes
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFHMAC, CounterLocation, Mode

__all__ = [
    "AES_128_CCM",
    "AES_128_GCM",
    "AES_256_CCM",
    "AES_256_GCM",
    "SMB2_FLAGS_SIGNED",
    "DecryptError",
    "PreauthHash",
    "SessionKeys",
    "decrypt",
    "derive_session_keys",
    "encrypt",
    "kdf",
    "parse_transform_session_id",
    "sign",
    "verify",
]

# SMB2_ENCRYPTION_CAPABILITIES cipher ids (2.2.3.1.2)
AES_128_CCM, AES_128_GCM, AES_256_CCM, AES_256_GCM = 1, 2, 3, 4

SMB2_FLAGS_SIGNED = 0x8

DIALECT_3_0 = 0x0300
DIALECT_3_1_1 = 0x0311

SMB2_HEADER_SIZE = 64
_FLAGS = slice(16, 20)
_SIGNATURE = slice(48, 64)

TRANSFORM_PROTOCOL_ID = b"\xfdSMB"
# ProtocolId, Signature, Nonce, OriginalMessageSize, Reserved, Flags, SessionId
_TRANSFORM = struct.Struct("<4s16s16sIHHQ")
TRANSFORM_HEADER_SIZE = _TRANSFORM.size  # 52
_TRANSFORM_FLAG_ENCRYPTED = 0x0001
_TAG_SIZE = 16

# cipher id -> (AEAD class, key length, nonce length)
_CIPHERS = {
    AES_128_CCM: (AESCCM, 16, 11),
    AES_128_GCM: (AESGCM, 16, 12),
    AES_256_CCM: (AESCCM, 32, 11),
    AES_256_GCM: (AESGCM, 32, 12),
}


class DecryptError(ValueError):
    """A TRANSFORM_HEADER message that is malformed or fails authentication."""


# --- key derivation ---------------------------------------------------------


def kdf(key: bytes, label: bytes, context: bytes, length_bits: int = 128) -> bytes:
    """SP800-108 counter mode, PRF HMAC-SHA256, r = 32 (MS-SMB2 3.1.4.2).

    ``label`` and ``context`` are passed as MS-SMB2 lists them, trailing NUL
    included; the KDF itself adds the 0x00 separator between them.
    """
    return KBKDFHMAC(
        algorithm=hashes.SHA256(),
        mode=Mode.CounterMode,
        length=length_bits // 8,
        rlen=4,
        llen=4,
        location=CounterLocation.BeforeFixed,
        label=label,
        context=context,
        fixed=None,
    ).derive(key)


@dataclass(frozen=True)
class SessionKeys:
    signing: bytes
    encryption: bytes  # server -> client
    decryption: bytes  # client -> server
    application: bytes


def derive_session_keys(
    dialect: int,
    session_key: bytes,
    preauth_hash: bytes | None = None,
    cipher: int = AES_128_CCM,
) -> SessionKeys:
    """The server's keys for a session (MS-SMB2 3.3.5.5.3).

    ``session_key`` is the full GSS session key; Session.SessionKey is its first
    16 bytes, zero padded. For 3.1.1 ``preauth_hash`` is the session's
    PreauthIntegrityHashValue and ``cipher`` the connection's CipherId; 3.0 and
    3.0.2 always use AES-128-CCM, so ``cipher`` is ignored there.
    """
    key16 = bytes(session_key[:16]).ljust(16, b"\0")
    if dialect < DIALECT_3_0:
        return SessionKeys(signing=key16, encryption=b"", decryption=b"", application=key16)
    if dialect < DIALECT_3_1_1:
        return SessionKeys(
            signing=kdf(key16, b"SMB2AESCMAC\0", b"SmbSign\0"),
            encryption=kdf(key16, b"SMB2AESCCM\0", b"ServerOut\0"),
            decryption=kdf(key16, b"SMB2AESCCM\0", b"ServerIn \0"),
            application=kdf(key16, b"SMB2APP\0", b"SmbRpc\0"),
        )
    if preauth_hash is None or len(preauth_hash) != 64:
        raise ValueError("SMB 3.1.1 key derivation needs the 64-byte preauth hash")
    if cipher not in _CIPHERS:
        raise ValueError(f"unknown cipher id {cipher:#x}")
    if cipher in (AES_256_CCM, AES_256_GCM):
        enc_key, bits = bytes(session_key), 256  # Session.FullSessionKey
    else:
        enc_key, bits = key16, 128
    return SessionKeys(
        signing=kdf(key16, b"SMBSigningKey\0", preauth_hash),
        encryption=kdf(enc_key, b"SMBS2CCipherKey\0", preauth_hash, bits),
        decryption=kdf(enc_key, b"SMBC2SCipherKey\0", preauth_hash, bits),
        application=kdf(key16, b"SMBAppKey\0", preauth_hash),
    )


# --- signing ------------------------------------------------------------------


def _signature(dialect: int, key: bytes, message: bytes) -> bytes:
    data = message[:48] + b"\0" * 16 + message[64:]
    if dialect < DIALECT_3_0:
        return hmac.new(key, data, hashlib.sha256).digest()[:16]
    c = cmac.CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


def sign(dialect: int, key: bytes, message: bytes) -> bytes:
    """Return ``message`` (one SMB2 message, header + body) signed with ``key``."""
    if len(message) < SMB2_HEADER_SIZE:
        raise ValueError("an SMB2 message is at least 64 bytes")
    msg = bytearray(message)
    flags = int.from_bytes(msg[_FLAGS], "little") | SMB2_FLAGS_SIGNED
    msg[_FLAGS] = flags.to_bytes(4, "little")
    msg[_SIGNATURE] = _signature(dialect, key, bytes(msg))
    return bytes(msg)


def verify(dialect: int, key: bytes, message: bytes) -> bool:
    """True if ``message`` carries SMB2_FLAGS_SIGNED and a valid signature."""
    if len(message) < SMB2_HEADER_SIZE:
        return False
    message = bytes(message)
    if not int.from_bytes(message[_FLAGS], "little") & SMB2_FLAGS_SIGNED:
        return False
    return hmac.compare_digest(_signature(dialect, key, message), message[_SIGNATURE])


# --- preauth integrity ----------------------------------------------------------


class PreauthHash:
    """SMB 3.1.1 preauth integrity hash value, SHA-512 (MS-SMB2 3.3.5.4)."""

    def __init__(self, initial: bytes = b"\0" * 64) -> None:
        if len(initial) != 64:
            raise ValueError("a SHA-512 preauth hash value is 64 bytes")
        self._value = bytes(initial)

    def update(self, message: bytes) -> None:
        self._value = hashlib.sha512(self._value + bytes(message)).digest()

    @property
    def value(self) -> bytes:
        return self._value

    def copy(self) -> PreauthHash:
        return PreauthHash(self._value)


# --- encryption -----------------------------------------------------------------


def encrypt(
    cipher: int, key: bytes, session_id: int, message: bytes, nonce: bytes | None = None
) -> bytes:
    """Wrap ``message`` in an SMB2 TRANSFORM_HEADER encrypted with ``key``.

    ``nonce`` is either the AEAD nonce (11 bytes for CCM, 12 for GCM; zero
    padded to the 16-byte Nonce field) or the whole 16-byte Nonce field, whose
    leading 11/12 bytes are the AEAD nonce. ``None`` draws a random one; the
    caller must never reuse a nonce with the same key.
    """
    if cipher not in _CIPHERS:
        raise ValueError(f"unknown cipher id {cipher:#x}")
    aead_cls, key_len, nonce_len = _CIPHERS[cipher]
    if len(key) != key_len:
        raise ValueError(f"cipher {cipher} needs a {key_len}-byte key")
    if nonce is None:
        nonce = os.urandom(nonce_len)
    if len(nonce) not in (nonce_len, 16):
        raise ValueError(f"nonce must be {nonce_len} or 16 bytes")
    nonce_field = bytes(nonce).ljust(16, b"\0")
    header = _TRANSFORM.pack(
        TRANSFORM_PROTOCOL_ID,
        b"\0" * 16,
        nonce_field,
        len(message),
        0,
        _TRANSFORM_FLAG_ENCRYPTED,
        session_id,
    )
    sealed = aead_cls(key).encrypt(nonce_field[:nonce_len], bytes(message), header[20:])
    ciphertext, tag = sealed[:-_TAG_SIZE], sealed[-_TAG_SIZE:]
    return header[:4] + tag + header[20:] + ciphertext


def parse_transform_session_id(transform: bytes) -> int:
    """The SessionId of a TRANSFORM_HEADER message, to pick the session's key."""
    if len(transform) < TRANSFORM_HEADER_SIZE or bytes(transform[:4]) != TRANSFORM_PROTOCOL_ID:
        raise DecryptError("not an SMB2 TRANSFORM_HEADER message")
    return int.from_bytes(transform[44:52], "little")


def decrypt(cipher: int, key: bytes, transform: bytes) -> bytes:
    """Authenticate and decrypt a TRANSFORM_HEADER message; DecryptError on any fault."""
    try:
        aead_cls, key_len, nonce_len = _CIPHERS[cipher]
        data = bytes(transform)
        if len(key) != key_len:
            raise DecryptError(f"cipher {cipher} needs a {key_len}-byte key")
        if len(data) <= TRANSFORM_HEADER_SIZE:
            raise DecryptError("transform message too short")
        proto, tag, nonce, size, _reserved, flags, _sid = _TRANSFORM.unpack_from(data)
        if proto != TRANSFORM_PROTOCOL_ID:
            raise DecryptError("bad transform protocol id")
        if flags != _TRANSFORM_FLAG_ENCRYPTED:
            raise DecryptError(f"bad transform Flags/EncryptionAlgorithm {flags:#x}")
        ciphertext = data[TRANSFORM_HEADER_SIZE:]
        if size != len(ciphertext) or size < SMB2_HEADER_SIZE:
            raise DecryptError("OriginalMessageSize does not match the payload")
        aad = data[20:TRANSFORM_HEADER_SIZE]
        return aead_cls(bytes(key)).decrypt(nonce[:nonce_len], ciphertext + tag, aad)
    except InvalidTag:
        raise DecryptError("transform message failed authentication") from None
    except DecryptError:
        raise
    except (KeyError, TypeError, ValueError, OverflowError, struct.error) as exc:
        # unknown cipher id, bad key or input type: callers see one exception type
        raise DecryptError(f"cannot decrypt transform message: {exc}") from None
