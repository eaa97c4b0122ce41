"""The server's RSA key and its proprietary certificate (MS-RDPBCGR 2.2.1.4.3.1.1, 5.3.3.1),
signed with the Terminal Services signing key that MS-RDPBCGR 5.3.3.1.1 publishes, and the
client random the client encrypts to that key (5.3.4.1).

RSA here is raw (no padding, little-endian integers, as RDP does it): ``pow()`` with the
numbers. XP and Server 2003 use 512-bit keys (MS-RDPELE <2>); ``cryptography`` refuses to
make keys under 1024 bits, so the key is generated here (Miller-Rabin on ``secrets``).
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from dataclasses import dataclass

from protocols.rdp.x224 import DecodeError

# MS-RDPBCGR 5.3.3.1.1, Terminal Services Signing Key (little-endian byte arrays).
TSSK_MODULUS = int.from_bytes(bytes.fromhex(
    "3d3a5ebd72433ec94dbbc11e4aba5fcb3e882087eff5c1e2d7b76b9af2524595"
    "ce63656b583afeef7ce7bffe3df65c7d6c5e06091af561bb2093095f056dea87"), "little")
TSSK_PRIVATE_EXPONENT = int.from_bytes(bytes.fromhex(
    "87a71932da11875558001616256568f8243ee6fae9674994cf92cc3399e80860"
    "179a129f24ddb12499c73ab80a7b0ddd350779170b519bb3c7100113e73ff35f"), "little")
TSSK_PUBLIC_EXPONENT = 0xC0887B5B  # bytes 5b 7b 88 c0

CERT_CHAIN_VERSION_1 = 0x00000001
SIGNATURE_ALG_RSA = 0x00000001
KEY_EXCHANGE_ALG_RSA = 0x00000001
BB_RSA_KEY_BLOB = 0x0006
BB_RSA_SIGNATURE_BLOB = 0x0008
RSA1_MAGIC = 0x31415352  # "RSA1"
PADDING = 8  # zero bytes after each little-endian number


def _probable_prime(n: int) -> bool:
    if n < 2:
        return False
    for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for _ in range(40):
        x = pow(secrets.randbelow(n - 3) + 2, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, e: int) -> int:
    while True:
        p = secrets.randbits(bits) | (3 << (bits - 2)) | 1  # top two bits: n has all its bits
        if (p - 1) % e and _probable_prime(p):
            return p


@dataclass(frozen=True)
class ServerKey:
    modulus: int
    public_exponent: int
    private_exponent: int

    @property
    def size(self) -> int:
        """The modulus in bytes (64 for 512 bits)."""
        return (self.modulus.bit_length() + 7) // 8

    @classmethod
    def generate(cls, bits: int = 512, e: int = 0x10001) -> ServerKey:
        while True:
            p, q = _prime(bits // 2, e), _prime(bits // 2, e)
            n = p * q
            if p != q and n.bit_length() == bits:
                return cls(n, e, pow(e, -1, (p - 1) * (q - 1)))

    def decrypt_client_random(self, encrypted: bytes) -> bytes:
        """The Security Exchange PDU's encryptedClientRandom (the number and its 8 zero
        bytes) -> the 32-byte client random."""
        if len(encrypted) != self.size + PADDING:
            raise DecodeError(f"encrypted client random of {len(encrypted)} bytes "
                              f"(a {self.size * 8}-bit key takes {self.size + PADDING})")
        value = int.from_bytes(encrypted, "little")
        if value >= self.modulus:
            raise DecodeError("encrypted client random is not below the modulus")
        plain = pow(value, self.private_exponent, self.modulus)
        if plain >> 256:
            raise DecodeError("decrypted client random does not fit in 32 bytes")
        return plain.to_bytes(32, "little")


def public_key_blob(key: ServerKey) -> bytes:
    """RSA_PUBLIC_KEY (2.2.1.4.3.1.1.1)."""
    keylen = key.size + PADDING
    return (struct.pack("<IIIII", RSA1_MAGIC, keylen, key.size * 8, key.size - 1,
                        key.public_exponent)
            + key.modulus.to_bytes(key.size, "little") + bytes(PADDING))


def _signed_part(key: ServerKey) -> bytes:
    blob = public_key_blob(key)
    return struct.pack("<IIIHH", CERT_CHAIN_VERSION_1, SIGNATURE_ALG_RSA, KEY_EXCHANGE_ALG_RSA,
                       BB_RSA_KEY_BLOB, len(blob)) + blob


def _signature_block(signed: bytes) -> int:
    """The 63 bytes signed (5.3.3.1.2): the MD5 hash, 0x00, 0xFF x 45, 0x01; little-endian."""
    digest = hashlib.md5(signed, usedforsecurity=False).digest()
    return int.from_bytes(digest + b"\x00" + b"\xff" * 45 + b"\x01", "little")


def proprietary_certificate(key: ServerKey) -> bytes:
    """PROPRIETARYSERVERCERTIFICATE, signed with the Terminal Services signing key."""
    signed = _signed_part(key)
    signature = pow(_signature_block(signed), TSSK_PRIVATE_EXPONENT, TSSK_MODULUS)
    sig = signature.to_bytes(64, "little") + bytes(PADDING)
    return signed + struct.pack("<HH", BB_RSA_SIGNATURE_BLOB, len(sig)) + sig


# -- client side (tests, benchmark) ----------------------------------------------------------

@dataclass(frozen=True)
class PublicKey:
    modulus: int
    exponent: int
    size: int  # bytes

    def encrypt_client_random(self, client_random: bytes) -> bytes:
        value = pow(int.from_bytes(client_random, "little"), self.exponent, self.modulus)
        return value.to_bytes(self.size, "little") + bytes(PADDING)


def parse_proprietary_certificate(cert: bytes, *, verify: bool = True) -> PublicKey:
    """The server's public key from its certificate; with ``verify``, the signature checked
    against the Terminal Services signing key."""
    if len(cert) < 16:
        raise DecodeError("proprietary certificate too short")
    version, sig_alg, key_alg, blob_type, blob_len = struct.unpack_from("<IIIHH", cert)
    if (version & 0x7FFFFFFF != CERT_CHAIN_VERSION_1 or sig_alg != SIGNATURE_ALG_RSA
            or key_alg != KEY_EXCHANGE_ALG_RSA or blob_type != BB_RSA_KEY_BLOB):
        raise DecodeError("not a proprietary RSA certificate")
    blob = cert[16:16 + blob_len]
    if len(blob) != blob_len or blob_len < 20:
        raise DecodeError("RSA public key blob runs past the end")
    magic, keylen, bitlen, _datalen, exponent = struct.unpack_from("<IIIII", blob)
    if magic != RSA1_MAGIC or keylen != len(blob) - 20 or keylen * 8 < bitlen:
        raise DecodeError("malformed RSA public key blob")
    size = bitlen // 8
    modulus = int.from_bytes(blob[20:20 + size], "little")
    if verify:
        pos = 16 + blob_len
        sig_type, sig_len = struct.unpack_from("<HH", cert, pos)
        sig = cert[pos + 4:pos + 4 + sig_len]
        if sig_type != BB_RSA_SIGNATURE_BLOB or len(sig) != sig_len:
            raise DecodeError("certificate signature blob missing")
        value = pow(int.from_bytes(sig, "little"), TSSK_PUBLIC_EXPONENT, TSSK_MODULUS)
        if value != _signature_block(cert[:pos]):
            raise DecodeError("proprietary certificate signature does not verify")
    return PublicKey(modulus, exponent, size)
