"""The server certificate: given (PEM files), or self-signed and generated on first run.

Windows Remote Desktop also starts with a self-signed certificate named after the host;
generated once, kept on disk, so clients that chose to trust it keep trusting it.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from protocols.auth.credssp import subject_public_key


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

    def context_factory(self) -> object:
        """A Twisted TLS server context (pyOpenSSL): TLS 1.2 with AES-GCM, what SChannel
        negotiates with current clients, and the layout tls_alert can seal an alert in."""
        from OpenSSL import crypto
        from twisted.internet import ssl

        from protocols.rdp.tls_alert import CIPHERS

        return ssl.CertificateOptions(
            privateKey=crypto.load_privatekey(crypto.FILETYPE_PEM, self.key_pem),
            certificate=crypto.load_certificate(crypto.FILETYPE_PEM, self.cert_pem),
            lowerMaximumSecurityTo=ssl.TLSVersion.TLSv1_2,
            acceptableCiphers=ssl.AcceptableCiphers.fromOpenSSLCipherString(":".join(CIPHERS)),
        )


def generate(common_name: str) -> ServerCertificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=180))  # as Windows' RDP cert
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                         content_commitment=False, data_encipherment=True,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=False)
            .sign(key, hashes.SHA256()))
    return ServerCertificate(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()))


def default_directory() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                             "state")
    return Path(base) / "smbrdp-emulator"


def load_or_create(cert_path: str | None, key_path: str | None, common_name: str,
                   directory: Path | None = None) -> ServerCertificate:
    """The given PEM files (the key may sit in the certificate file, before it), or the
    generated pair under ``directory`` (created on first run)."""
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
    path = folder / "rdp-tls.pem"  # key and certificate in one file, replaced atomically
    try:
        found = _split_pem(path.read_bytes())
        expires = found.certificate.not_valid_after_utc
        if expires > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1):
            return found
    except (OSError, ValueError):
        pass  # missing, unreadable or expiring: make a new one
    made = generate(common_name)
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
