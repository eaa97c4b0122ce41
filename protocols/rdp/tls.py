"""The server certificate: given (PEM files), or self-signed and generated on first run;
and the TLS context the RDP port serves, per edition (``TLSProfile``).

Windows Remote Desktop also starts with a self-signed certificate named after the host;
generated once, kept on disk, so clients that chose to trust it keep trusting it. A new
computer name makes a new one (as Windows does when the host is renamed); 7-era hosts
sign it with SHA-1.

What SChannel does and OpenSSL cannot (README "TLS on the RDP port"): RC4 and 3DES
suites (this OpenSSL has neither), and the ServerHello extension order.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from protocols.auth.credssp import subject_public_key

# The private keys pyOpenSSL's Context.use_privatekey takes.
_TLS_KEYS = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, dsa.DSAPrivateKey,
             ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)


@dataclass(frozen=True)
class ServerCertificate:
    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    def public_key_bytes(self) -> bytes:
        """The SubjectPublicKey (for RSA, the PKCS#1 RSAPublicKey DER): what CredSSP binds
        to in pubKeyAuth."""
        return subject_public_key(self.cert_pem)

    def context_factory(self, profile: TLSProfile | None = None) -> ContextFactory:
        """A TLS server context (pyOpenSSL) as the edition's SChannel serves it."""
        return ContextFactory(lambda: self, profile or TLSProfile())


# Protocol names as the editions table spells them -> OpenSSL's.
_VERSIONS = {"1.0": 0x0301, "1.1": 0x0302, "1.2": 0x0303}
# SSL_OP_NO_ENCRYPT_THEN_MAC (OpenSSL 1.1.0+; pyOpenSSL has no name for it): SChannel
# answers MAC-then-encrypt, and tls_alert seals its CBC alert that way.
OP_NO_ENCRYPT_THEN_MAC = 0x00080000
# RFC 3526 group 14 (2048-bit MODP) for the DHE suites: Server 2019 answers "DH (2048
# bits)" (sslyze issue #463); Windows 7 used 1024-bit DH (rdesktop issue #97).
DH_PARAMETERS = b"""-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA///////////JD9qiIWjCNMTGYouA3BzRKQJOCIpnzHQCC76mOxOb
IlFKCHmONATd75UZs806QxswKwpt8l8UN0/hNW1tUcJF5IW1dmJefsb0TELppjft
awv/XLb0Brft7jhr+1qJn6WunyQRfEsf5kkoZlHs5Fs9wgB8uKFjvwWY2kg2HFXT
mmkWP6j9JM9fg2VdI9yjrZYcYvNWIIVSu57VKQdwlpZtZww1Tkq8mATxdGwIyhgh
fDKQXkYuNs474553LBgOhgObJ4Oi7Aeij7XFXfBvTFLJ3ivL9pVYFxg5lUl86pVq
5RXSJhiY+gUQFXKOWoqsqmj//////////wIBAg==
-----END DH PARAMETERS-----
"""


@dataclass(frozen=True)
class TLSProfile:
    """Protocol range and suites (OpenSSL names, SChannel's order) of one edition."""

    versions: tuple[str, str] = ("1.2", "1.2")
    ciphers: tuple[str, ...] = ("ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256",
                                "AES256-GCM-SHA384", "AES128-GCM-SHA256")
    # ECDHE curves in order (OpenSSL names: "P-256", "P-384", "P-521"), or None:
    # OpenSSL's list (X25519 first, as SChannel's since Windows 10 1607).
    curves: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        low, high = self.versions
        if low not in _VERSIONS or high not in _VERSIONS or _VERSIONS[low] > _VERSIONS[high]:
            raise ValueError(f"bad TLS version range {self.versions}")
        if self.curves is not None and not set(self.curves) <= {"P-256", "P-384", "P-521"}:
            raise ValueError(f"unknown ECDHE curves {self.curves}")
        from protocols.rdp.tls_alert import supported

        unsealable = [c for c in self.ciphers if not supported(c)]
        if unsealable:  # the failed-NLA alert could not be sent on them
            raise ValueError(f"no access-denied alert for {', '.join(unsealable)}")


def _implements_context_factory(cls: type) -> type:
    from twisted.internet.interfaces import IOpenSSLContextFactory
    from zope.interface import implementer

    return implementer(IOpenSSLContextFactory)(cls)


@_implements_context_factory
class ContextFactory:
    """Twisted's server context factory interface (``getContext``). The certificate
    (``make``) and the context are made on first use and kept: a lab's hosts that nobody
    reaches over RDP cost neither the ~10 ms nor the ~30 kB."""

    def __init__(self, make: Callable[[], ServerCertificate], profile: TLSProfile) -> None:
        self._make = make
        self._cert: ServerCertificate | None = None
        self.profile = profile
        self._context: Any = None

    @property
    def certificate(self) -> ServerCertificate:
        if self._cert is None:
            self._cert = self._make()
        return self._cert

    @functools.cached_property
    def public_key(self) -> bytes:
        """What CredSSP binds to (``ServerCertificate.public_key_bytes``), once."""
        return self.certificate.public_key_bytes()

    def getContext(self) -> Any:  # noqa: N802 (Twisted's name)
        if self._context is None:
            self._context = self._build(self.certificate, self.profile)
        return self._context

    @staticmethod
    def _build(cert: ServerCertificate, profile: TLSProfile) -> Any:
        from OpenSSL import SSL

        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.set_min_proto_version(_VERSIONS[profile.versions[0]])
        ctx.set_max_proto_version(_VERSIONS[profile.versions[1]])
        # Security level 0: TLS 1.0/1.1, SHA-1 signatures and 1024-bit keys where the
        # edition had them; the suites are exactly the profile's, in its order.
        ctx.set_cipher_list((":".join(profile.ciphers) + ":@SECLEVEL=0").encode())
        ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE
                        | SSL.OP_NO_TICKET | OP_NO_ENCRYPT_THEN_MAC)
        # A server-side session cache: the ServerHello carries a 32-byte session id, as
        # SChannel's does (FreeRDP issue #7769 quotes one).
        ctx.set_session_id(b"smbrdp-emulator-rdp")
        ctx.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
        # Validated when loaded or made (load_or_create): the RSA checks cost ~70 ms a host.
        key = serialization.load_pem_private_key(cert.key_pem, password=None,
                                                 unsafe_skip_rsa_key_validation=True)
        if not isinstance(key, _TLS_KEYS):  # pyOpenSSL would refuse it (TypeError)
            raise ValueError(f"RDP certificate key of type {type(key).__name__} cannot sign TLS")
        ctx.use_privatekey(key)
        ctx.use_certificate(x509.load_pem_x509_certificate(cert.cert_pem))
        ctx.check_privatekey()
        if profile.curves is not None:
            _set_groups(ctx, profile.curves)
        with tempfile.NamedTemporaryFile(suffix=".pem") as fh:  # load_tmp_dh reads a file
            fh.write(DH_PARAMETERS)
            fh.flush()
            ctx.load_tmp_dh(fh.name.encode())
        return ctx


def _set_groups(ctx: Any, curves: tuple[str, ...]) -> None:
    """SSL_CTX_set1_groups_list, which pyOpenSSL binds (as set1_curves_list) but does not
    expose; set_tmp_ecdh would leave one curve and no finite-field group, so no DHE. The
    FFDHE groups stay so that DHE suites are still chosen by clients that list them."""
    from OpenSSL._util import lib

    names = ":".join(curves + ("ffdhe2048", "ffdhe3072")).encode()
    if lib.SSL_CTX_set1_curves_list(ctx._context, names) != 1:
        raise ValueError(f"OpenSSL refused the groups {names!r}")


def generate(common_name: str, hash_name: str = "sha256") -> ServerCertificate:
    if hash_name not in HASHES:
        raise ValueError(f"certificate hash {hash_name!r} (known: {', '.join(HASHES)})")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.UTC)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    # as Windows' RDP certificate: valid for 180 days
    return ServerCertificate(_issue(key, common_name, x509.random_serial_number(),
                                    now - datetime.timedelta(days=1),
                                    now + datetime.timedelta(days=180), hash_name), key_pem)


def for_name(base: ServerCertificate, common_name: str,
             hash_name: str = "sha256") -> ServerCertificate:
    """``base``'s key and validity window under another computer name, for a lab's hosts:
    one key is made (or loaded) per run, each host's certificate is signed in a
    millisecond. The same bytes on every run (the serial comes from the name and the key;
    PKCS#1 v1.5 signatures are deterministic), so a client that chose to trust a host's
    certificate keeps trusting it."""
    cert = base.certificate
    names = [n.value for n in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    used = cert.signature_hash_algorithm
    if names == [common_name] and used is not None and used.name == hash_name:
        return base
    # Every key that reaches here was validated when it was loaded or made.
    key = serialization.load_pem_private_key(base.key_pem, password=None,
                                             unsafe_skip_rsa_key_validation=True)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the RDP certificate's key is not an RSA key")
    digest = hashlib.sha256(common_name.encode() + b"\0" + base.public_key_bytes()).digest()
    serial = int.from_bytes(digest[:16], "big") | 1  # positive, at most 20 octets
    return ServerCertificate(_issue(key, common_name, serial, cert.not_valid_before_utc,
                                    cert.not_valid_after_utc, hash_name), base.key_pem)


def _issue(key: rsa.RSAPrivateKey, common_name: str, serial: int,
           not_before: datetime.datetime, not_after: datetime.datetime,
           hash_name: str) -> bytes:
    """A self-signed server certificate (PEM) as Windows' Remote Desktop makes one."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                         content_commitment=False, data_encipherment=True,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=False)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    return _resign_sha1(cert_pem, key) if hash_name == "sha1" else cert_pem


HASHES = ("sha1", "sha256")


def _resign_sha1(cert_pem: bytes, key: rsa.RSAPrivateKey) -> bytes:
    """cryptography no longer signs with SHA-1; OpenSSL does, through pyOpenSSL's
    (deprecated) X509.sign: the same certificate, signed sha1WithRSAEncryption."""
    import warnings

    from OpenSSL import crypto

    x509_obj = crypto.load_certificate(crypto.FILETYPE_PEM, cert_pem)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        x509_obj.sign(crypto.PKey.from_cryptography_key(key), "sha1")
    return crypto.dump_certificate(crypto.FILETYPE_PEM, x509_obj)


def default_directory() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                             "state")
    return Path(base) / "smbrdp-emulator"


def load_or_create(cert_path: str | None, key_path: str | None, common_name: str,
                   directory: Path | None = None, hash_name: str = "sha256") -> ServerCertificate:
    """The given PEM files (the key may sit in the certificate file, before it), or the
    generated pair under ``directory`` (created on first run, made again when it is about to
    expire; kept per signature hash). Another computer name gets a certificate of its own
    over the same key (``for_name``), not written."""
    if cert_path:
        cert_pem = Path(cert_path).read_bytes()
        if key_path:
            given = ServerCertificate(cert_pem, Path(key_path).read_bytes())
            serialization.load_pem_private_key(given.key_pem, password=None)
        else:
            given = _split_pem(cert_pem)  # the key in the certificate file
        x509.load_pem_x509_certificate(given.cert_pem)  # fail early on a bad file
        return given
    folder = directory or default_directory()
    # Key and certificate in one file, replaced atomically; one per signature hash, so a
    # 7-era and a current edition run from the same home keep theirs.
    path = folder / ("rdp-tls.pem" if hash_name == "sha256" else f"rdp-tls-{hash_name}.pem")
    try:
        found = _split_pem(path.read_bytes())
        cert = found.certificate
        expires = cert.not_valid_after_utc
        if expires > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1):
            return for_name(found, common_name, hash_name)
    except (OSError, ValueError):
        pass  # missing, unreadable or expiring: make a new one
    made = generate(common_name, hash_name)
    tmp = folder / f".rdp-tls.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(made.key_pem + made.cert_pem)
        os.replace(tmp, path)
    except OSError:
        pass  # nowhere to keep it (a read-only home): this run's certificate only
    return made


def _split_pem(data: bytes) -> ServerCertificate:
    marker = b"-----BEGIN CERTIFICATE-----"
    at = data.find(marker)
    if at < 0:
        raise ValueError("no certificate in the PEM file")
    found = ServerCertificate(data[at:], data[:at])
    serialization.load_pem_private_key(found.key_pem, password=None)
    return found
