"""Server side of CredSSP (MS-CSSP), sans-IO, for a server that owns its TLS.

The RDP layer runs TLS itself (Twisted ``startTLS``), frames the plaintext
stream into TSRequests (``ts_request_length``), passes each one to
``CredSSPAcceptor.step`` and sends back whatever token it returns. Inside, the
negoTokens are SPNEGO (or raw NTLMSSP, as impacket's ``rdp_check.py`` and
nmap send) and go to ``SpnegoAcceptor``/``NTLMAcceptor``, so NLA uses the same
user store and NTLM code as SMB. pubKeyAuth and authInfo are sealed with the
NTLM session keys (``NTLMAcceptor.wrap``/``unwrap``).

Exchange (MS-CSSP 3.1.5), client -> server:

1. TSRequest{negoTokens: SPNEGO negTokenInit / NTLM NEGOTIATE}
   <- TSRequest{negoTokens: CHALLENGE}
2. TSRequest{negoTokens: AUTHENTICATE, pubKeyAuth, clientNonce (v5+)}
   <- TSRequest{negoTokens: final negTokenResp (mechListMIC) if any, pubKeyAuth}
3. TSRequest{authInfo: sealed TSCredentials}
   (nothing is sent back: the RDP connection sequence continues)

pubKeyAuth, versions 2-4: the client seals the server's SubjectPublicKey and the
server answers with the same bytes, first byte + 1. Versions 5 and later
(CVE-2018-0886 fix): the client seals SHA256("CredSSP Client-To-Server Binding
Hash\\0" + clientNonce + key), the server answers SHA256("CredSSP
Server-To-Client Binding Hash\\0" + clientNonce + key).

The DER codec is pyasn1 (EXPLICIT tags, as the MS-CSSP ASN.1 module says).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.type import namedtype, tag, univ

from protocols.auth.ntlm import (
    STATUS_INVALID_PARAMETER,
    STATUS_LOGON_FAILURE,
    AuthFailure,
    AuthResult,
    NTLMAcceptor,
)
from protocols.auth.spnego import SpnegoAcceptor

# Highest TSRequest version this acceptor speaks (Windows since the 2018 update).
CREDSSP_VERSION = 6
MIN_CREDSSP_VERSION = 2

CRED_TYPE_PASSWORD = 1  # TSPasswordCreds
CRED_TYPE_SMARTCARD = 2  # TSSmartCardCreds
CRED_TYPE_REMOTE_GUARD = 6  # TSRemoteGuardCreds

CLIENT_SERVER_MAGIC = b"CredSSP Client-To-Server Binding Hash\x00"
SERVER_CLIENT_MAGIC = b"CredSSP Server-To-Client Binding Hash\x00"

# A TSRequest carrying NTLM is a few KB; anything far larger is refused before
# it is buffered.
MAX_TS_REQUEST = 64 * 1024


# -- ASN.1 (MS-CSSP 2.2.1) --------------------------------------------------------------


def _ctx(n: int) -> tag.Tag:
    return tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, n)


def _explicit(asn1: Any, n: int) -> Any:
    return asn1.subtype(explicitTag=_ctx(n))


class _NegoDataItem(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("negoToken", _explicit(univ.OctetString(), 0)),
    )


class _NegoData(univ.SequenceOf):
    componentType = _NegoDataItem()


class _TSRequest(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("version", _explicit(univ.Integer(), 0)),
        namedtype.OptionalNamedType("negoTokens", _explicit(_NegoData(), 1)),
        namedtype.OptionalNamedType("authInfo", _explicit(univ.OctetString(), 2)),
        namedtype.OptionalNamedType("pubKeyAuth", _explicit(univ.OctetString(), 3)),
        namedtype.OptionalNamedType("errorCode", _explicit(univ.Integer(), 4)),
        namedtype.OptionalNamedType("clientNonce", _explicit(univ.OctetString(), 5)),
    )


class _TSCredentials(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("credType", _explicit(univ.Integer(), 0)),
        namedtype.NamedType("credentials", _explicit(univ.OctetString(), 1)),
    )


class _TSPasswordCreds(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("domainName", _explicit(univ.OctetString(), 0)),
        namedtype.NamedType("userName", _explicit(univ.OctetString(), 1)),
        namedtype.NamedType("password", _explicit(univ.OctetString(), 2)),
    )


def _decode(data: bytes, spec: Any, what: str) -> Any:
    """DER-decode ``data`` as exactly one ``spec``; AuthFailure on anything else."""
    try:
        value, rest = der_decoder.decode(bytes(data), asn1Spec=spec)
    except Exception as exc:  # pyasn1 raises PyAsn1Error and, on odd input, others
        raise AuthFailure(STATUS_INVALID_PARAMETER, f"malformed {what}: {exc}") from exc
    if rest:
        raise AuthFailure(STATUS_INVALID_PARAMETER, f"{len(rest)} bytes after the {what}")
    return value


def _opt_bytes(seq: Any, name: str) -> bytes | None:
    value = seq[name]
    return bytes(value) if value.isValue else None


def _signed32(status: int) -> int:
    """NTSTATUS as the signed 32-bit INTEGER Windows and FreeRDP put on the wire."""
    status &= 0xFFFFFFFF
    return status - (1 << 32) if status & 0x80000000 else status


@dataclass
class TSRequest:
    """One TSRequest; ``nego_tokens`` lists the negoToken of each NegoData item."""

    version: int
    nego_tokens: list[bytes] = field(default_factory=list)
    auth_info: bytes | None = None
    pub_key_auth: bytes | None = None
    error_code: int | None = None  # NTSTATUS, unsigned
    client_nonce: bytes | None = None

    def encode(self) -> bytes:
        req = _TSRequest()
        req["version"] = self.version
        if self.nego_tokens:
            nego = req["negoTokens"]
            for i, token in enumerate(self.nego_tokens):
                nego[i]["negoToken"] = token
        if self.auth_info is not None:
            req["authInfo"] = self.auth_info
        if self.pub_key_auth is not None:
            req["pubKeyAuth"] = self.pub_key_auth
        if self.error_code is not None:
            req["errorCode"] = _signed32(self.error_code)
        if self.client_nonce is not None:
            req["clientNonce"] = self.client_nonce
        return bytes(der_encoder.encode(req))

    @classmethod
    def decode(cls, data: bytes) -> TSRequest:
        """Parse one DER TSRequest; AuthFailure(STATUS_INVALID_PARAMETER) if malformed."""
        req = _decode(data, _TSRequest(), "TSRequest")
        nego = req["negoTokens"]
        tokens = [bytes(item["negoToken"]) for item in nego] if nego.isValue else []
        error = req["errorCode"]
        return cls(
            version=int(req["version"]),
            nego_tokens=tokens,
            auth_info=_opt_bytes(req, "authInfo"),
            pub_key_auth=_opt_bytes(req, "pubKeyAuth"),
            error_code=int(error) & 0xFFFFFFFF if error.isValue else None,
            client_nonce=_opt_bytes(req, "clientNonce"),
        )


def encode_ts_credentials(domain: str, user: str, password: str) -> bytes:
    """TSCredentials{credType 1, TSPasswordCreds} DER (the client side; used by tests)."""
    creds = _TSPasswordCreds()
    creds["domainName"] = domain.encode("utf-16le")
    creds["userName"] = user.encode("utf-16le")
    creds["password"] = password.encode("utf-16le")
    outer = _TSCredentials()
    outer["credType"] = CRED_TYPE_PASSWORD
    outer["credentials"] = der_encoder.encode(creds)
    return bytes(der_encoder.encode(outer))


def decode_ts_credentials(data: bytes) -> tuple[str, str, str]:
    """TSCredentials DER -> (domain, user, password). Only TSPasswordCreds is accepted."""
    outer = _decode(data, _TSCredentials(), "TSCredentials")
    cred_type = int(outer["credType"])
    if cred_type != CRED_TYPE_PASSWORD:
        # Smart-card PINs and Remote Credential Guard cannot be checked here.
        raise AuthFailure(STATUS_LOGON_FAILURE, f"unsupported credType {cred_type}")
    creds = _decode(bytes(outer["credentials"]), _TSPasswordCreds(), "TSPasswordCreds")
    try:
        return (
            bytes(creds["domainName"]).decode("utf-16le"),
            bytes(creds["userName"]).decode("utf-16le"),
            bytes(creds["password"]).decode("utf-16le"),
        )
    except UnicodeDecodeError as exc:
        raise AuthFailure(STATUS_INVALID_PARAMETER, f"TSPasswordCreds UTF-16: {exc}") from exc


def ts_request_length(data: bytes, limit: int = MAX_TS_REQUEST) -> int | None:
    """Total length of the TSRequest at the start of ``data``, or None if more bytes are needed.

    For framing the decrypted TLS stream: a TSRequest may span TLS records, or
    share one. Raises AuthFailure if this is not a DER SEQUENCE or it exceeds ``limit``.
    """
    if not data:
        return None
    if data[0] != 0x30:
        raise AuthFailure(STATUS_INVALID_PARAMETER, "TSRequest is not a SEQUENCE")
    if len(data) < 2:
        return None
    first = data[1]
    if first < 0x80:
        total = 2 + first
    else:
        n = first & 0x7F
        if not 1 <= n <= 4:  # 0x80 would be BER's indefinite length: not DER
            raise AuthFailure(STATUS_INVALID_PARAMETER, "bad TSRequest length")
        if len(data) < 2 + n:
            return None
        total = 2 + n + int.from_bytes(data[2 : 2 + n], "big")
    if total > limit:
        raise AuthFailure(STATUS_INVALID_PARAMETER, f"TSRequest of {total} bytes")
    return total


def has_error_code(version: int) -> bool:
    """Whether TSRequest ``version`` carries errorCode (MS-CSSP 2.2.1: 3, 4 and 6 on)."""
    return version in (3, 4) or version >= 6


def error_ts_request(version: int, status: int) -> bytes:
    """The TSRequest a server sends when the logon fails (errorCode = NTSTATUS).

    Versions 2 and 5 have no errorCode: Windows just closes the connection, and
    b'' is returned (nothing to send). errorCode is written as the signed
    32-bit INTEGER FreeRDP expects (0xC000006D -> 02 04 C0 00 00 6D).
    """
    if not has_error_code(version):
        return b""
    return TSRequest(version=version, error_code=status).encode()


def subject_public_key(certificate: bytes) -> bytes:
    """The SubjectPublicKey (BIT STRING contents) of a DER or PEM X.509 certificate.

    This is what CredSSP binds to: for RSA, the RSAPublicKey DER.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    if certificate.lstrip().startswith(b"-----BEGIN"):
        cert = x509.load_pem_x509_certificate(certificate)
    else:
        cert = x509.load_der_x509_certificate(certificate)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    value, _ = der_decoder.decode(spki)  # SEQUENCE { AlgorithmIdentifier, BIT STRING }
    return bytes(value[1].asOctets())


# -- acceptor -------------------------------------------------------------------------------


@dataclass
class CredSSPStep:
    token: bytes  # TSRequest DER to send back (b'' when nothing to send)
    complete: bool  # credentials received and verified
    result: AuthResult | None  # NTLM result, set once NTLM has verified the user
    credentials: tuple[str, str, str] | None  # (domain, user, password) from TSPasswordCreds


def _same_user(a: str, b: str) -> bool:
    def bare(name: str) -> str:
        return name.rpartition("\\")[2].partition("@")[0].casefold()

    return a.casefold() == b.casefold() or bare(a) == bare(b)


_NEGO, _PUBKEY, _CREDS, _DONE, _FAILED = range(5)


class CredSSPAcceptor:
    """One CredSSP authentication, server side. Use a new instance per connection.

    ``lookup_password(user) -> str | None`` is the same lookup SMB uses;
    ``server_public_key`` is the SubjectPublicKey of the certificate the TLS
    layer presents (see ``subject_public_key``). Extra keyword arguments go to
    ``NTLMAcceptor`` (netbios_name, dns_name, ...); anonymous NTLM is refused
    unless ``allow_anonymous=True`` is passed (it could not pass the
    TSCredentials check anyway). ``max_version=`` (2..6, default 6) is the
    version this server announces in its TSRequests; the version used is the
    smaller of it and the client's.
    """

    def __init__(
        self,
        lookup_password: Callable[[str], str | None],
        server_public_key: bytes,
        **ntlm_kwargs: Any,
    ) -> None:
        # max_version travels in the keyword arguments so that callers can pass
        # one settings dict (mypy rejects **dict[str, object] against a typed keyword).
        max_version = ntlm_kwargs.pop("max_version", CREDSSP_VERSION)
        if not isinstance(max_version, int) or not (
            MIN_CREDSSP_VERSION <= max_version <= CREDSSP_VERSION
        ):
            raise ValueError(f"CredSSP version {max_version!r} not supported")
        if not server_public_key:
            raise ValueError("server_public_key is empty")
        self._lookup = lookup_password
        self._public_key = bytes(server_public_key)
        self.max_version = max_version
        ntlm_kwargs.setdefault("allow_anonymous", False)
        self.ntlm = NTLMAcceptor(self._recording_lookup, **ntlm_kwargs)
        self.spnego = SpnegoAcceptor(self.ntlm)
        self.client_version: int | None = None
        self.result: AuthResult | None = None
        self.attempted_user: str | None = None  # user named in the AUTHENTICATE, even if refused
        self.credentials: tuple[str, str, str] | None = None
        self._verified_password: str | None = None
        self._state = _NEGO
        self._spnego_final: bytes = b""

    @property
    def version(self) -> int:
        """The version in use: min(client's, ours); ours until the client has spoken."""
        if self.client_version is None:
            return self.max_version
        return min(self.client_version, self.max_version)

    @property
    def complete(self) -> bool:
        return self._state == _DONE

    def error_reply(self, status: int) -> bytes:
        """``error_ts_request`` for the version in use (b'' for versions 2 and 5)."""
        return error_ts_request(self.version, status)

    def _recording_lookup(self, user: str) -> str | None:
        if self.attempted_user is None:
            self.attempted_user = user
        password = self._lookup(user)
        if password is not None:
            # NTLMAcceptor verifies against the last password it looked up.
            self._verified_password = password
        return password

    # -- steps -------------------------------------------------------------------------

    def step(self, ts_request: bytes) -> CredSSPStep:
        """Process one client TSRequest; AuthFailure(status) ends the authentication."""
        if self._state == _DONE:
            raise AuthFailure(STATUS_INVALID_PARAMETER, "CredSSP already complete")
        if self._state == _FAILED:
            raise AuthFailure(STATUS_INVALID_PARAMETER, "CredSSP already failed")
        try:
            return self._step(bytes(ts_request))
        except AuthFailure:
            self._state = _FAILED
            raise
        except Exception as exc:  # a hostile message must not escape as anything else
            self._state = _FAILED
            raise AuthFailure(STATUS_INVALID_PARAMETER, f"bad TSRequest: {exc}") from exc

    def _step(self, data: bytes) -> CredSSPStep:
        req = TSRequest.decode(data)
        if req.version < 1:
            raise AuthFailure(STATUS_INVALID_PARAMETER, f"TSRequest version {req.version}")
        if req.error_code is not None:
            # The client gave up (v3+ clients may report why); nothing to answer.
            raise AuthFailure(
                req.error_code or STATUS_INVALID_PARAMETER,
                f"client reported error 0x{req.error_code:08X}",
            )
        if self.client_version is None:
            self.client_version = req.version

        if self._state == _NEGO:
            return self._nego(req)
        if self._state == _PUBKEY:
            if req.nego_tokens:
                raise AuthFailure(STATUS_INVALID_PARAMETER, "negoTokens after SPNEGO finished")
            return self._pubkey(req)
        return self._creds(req)

    def _nego(self, req: TSRequest) -> CredSSPStep:
        if len(req.nego_tokens) != 1:
            raise AuthFailure(STATUS_INVALID_PARAMETER, "expected one negoToken")
        if req.auth_info is not None:
            raise AuthFailure(STATUS_INVALID_PARAMETER, "authInfo before authentication")
        spnego_step = self.spnego.step(req.nego_tokens[0])
        if not spnego_step.complete:
            if req.pub_key_auth is not None:
                raise AuthFailure(STATUS_INVALID_PARAMETER, "pubKeyAuth before authentication")
            reply = TSRequest(self.max_version, nego_tokens=[spnego_step.token])
            return CredSSPStep(reply.encode(), False, None, None)

        self.result = spnego_step.result
        self._spnego_final = spnego_step.token
        self._state = _PUBKEY
        if req.pub_key_auth is None:
            # MS-CSSP wants pubKeyAuth with the last token; tolerate it coming
            # next, after the final SPNEGO token (pyspnego's acceptor does too).
            token = b""
            if self._spnego_final:
                token = TSRequest(self.max_version, nego_tokens=[self._spnego_final]).encode()
                self._spnego_final = b""
            return CredSSPStep(token, False, self.result, None)
        return self._pubkey(req)

    def _pubkey(self, req: TSRequest) -> CredSSPStep:
        if req.pub_key_auth is None or req.auth_info is not None:
            raise AuthFailure(STATUS_INVALID_PARAMETER, "expected pubKeyAuth")
        client_value = self.ntlm.unwrap(req.pub_key_auth)  # AuthFailure if the seal is bad
        if self.version >= 5:
            nonce = req.client_nonce
            if nonce is None or len(nonce) != 32:
                raise AuthFailure(STATUS_INVALID_PARAMETER, "v5+ without a 32-byte clientNonce")
            expected = hashlib.sha256(CLIENT_SERVER_MAGIC + nonce + self._public_key).digest()
            reply_value = hashlib.sha256(SERVER_CLIENT_MAGIC + nonce + self._public_key).digest()
        else:
            expected = self._public_key
            reply_value = bytes([(self._public_key[0] + 1) & 0xFF]) + self._public_key[1:]
        if not hmac.compare_digest(client_value, expected):
            # Either a man in the middle or a client bound to another certificate.
            raise AuthFailure(STATUS_LOGON_FAILURE, "pubKeyAuth does not match the server key")

        reply = TSRequest(
            self.max_version,
            nego_tokens=[self._spnego_final] if self._spnego_final else [],
            pub_key_auth=self.ntlm.wrap(reply_value),
        )
        self._spnego_final = b""
        self._state = _CREDS
        return CredSSPStep(reply.encode(), False, self.result, None)

    def _creds(self, req: TSRequest) -> CredSSPStep:
        if req.auth_info is None or req.nego_tokens or req.pub_key_auth is not None:
            raise AuthFailure(STATUS_INVALID_PARAMETER, "expected authInfo only")
        domain, user, password = decode_ts_credentials(self.ntlm.unwrap(req.auth_info))
        result = self.result
        verified = self._verified_password
        if (
            result is None
            or verified is None
            or not _same_user(user, result.user)
            or not hmac.compare_digest(password.encode("utf-8"), verified.encode("utf-8"))
        ):
            raise AuthFailure(STATUS_LOGON_FAILURE, "TSCredentials do not match the NTLM logon")
        self.credentials = (domain, user, password)
        self._state = _DONE
        return CredSSPStep(b"", True, result, self.credentials)
