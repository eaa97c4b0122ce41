"""Server side of NTLMSSP (MS-NLMP), sans-IO.

``NTLMAcceptor`` turns a NEGOTIATE into a CHALLENGE, checks the AUTHENTICATE
(NTLMv2; NTLMv1 and LM where the host's LAN Manager authentication level accepts them)
against a plaintext-password lookup, and afterwards signs,
verifies, seals and unseals with the negotiated keys (for SPNEGO's
mechListMIC and CredSSP). impacket supplies the message structures and
crypto primitives; this module only adds the acceptor's decisions.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from Cryptodome.Cipher import ARC4  # pycryptodomex, already required by impacket
from impacket import ntlm
from impacket.ntlm import (
    NTLMSSP_NEGOTIATE_56,
    NTLMSSP_NEGOTIATE_128,
    NTLMSSP_NEGOTIATE_ALWAYS_SIGN,
    NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY,
    NTLMSSP_NEGOTIATE_KEY_EXCH,
    NTLMSSP_NEGOTIATE_NTLM,
    NTLMSSP_NEGOTIATE_SEAL,
    NTLMSSP_NEGOTIATE_SIGN,
    NTLMSSP_NEGOTIATE_TARGET_INFO,
    NTLMSSP_NEGOTIATE_UNICODE,
    NTLMSSP_NEGOTIATE_VERSION,
    NTLMSSP_REQUEST_TARGET,
    NTLMSSP_TARGET_TYPE_DOMAIN,
    NTLMSSP_TARGET_TYPE_SERVER,
)

from protocols.errors import StatusError
from protocols.wintime import filetime_from_seconds

STATUS_LOGON_FAILURE = 0xC000006D
STATUS_INVALID_PARAMETER = 0xC000000D

SIGNATURE = b"NTLMSSP\x00"
NEGOTIATE, CHALLENGE, AUTHENTICATE = 1, 2, 3

# What the CHALLENGE echoes when the client asked for it.
_ECHOED_FLAGS = (
    NTLMSSP_NEGOTIATE_SIGN
    | NTLMSSP_NEGOTIATE_SEAL
    | NTLMSSP_NEGOTIATE_KEY_EXCH
    | NTLMSSP_NEGOTIATE_128
    | NTLMSSP_NEGOTIATE_56
    | NTLMSSP_NEGOTIATE_ALWAYS_SIGN
)
# What the CHALLENGE always sets: NTLMv2 needs TARGET_INFO, and Samba and
# smbprotocol refuse a CHALLENGE without EXTENDED_SESSIONSECURITY. Windows sends its
# Version whether or not the client asked (a Windows 10 workgroup host answers flags
# 0xe28a8215, VERSION set, to a NEGOTIATE without it: runZero rumble-smb2-sessions README;
# impacket reads the OS from it: smb3.py "Not provided elsewhere anymore").
_FORCED_FLAGS = (
    NTLMSSP_NEGOTIATE_VERSION
    | NTLMSSP_NEGOTIATE_UNICODE
    | NTLMSSP_NEGOTIATE_NTLM
    | NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
    | NTLMSSP_NEGOTIATE_TARGET_INFO
    | NTLMSSP_REQUEST_TARGET
)



def version_field(major: int, minor: int, build: int, revision: int = 15) -> bytes:
    """The 8-byte NTLM VERSION structure (MS-NLMP 2.2.2.10)."""
    return struct.pack("<BBH3xB", major, minor, build, revision)


# Windows 10 22H2: 10.0 build 19045, NTLM revision 15 (the default persona).
WINDOWS_VERSION = version_field(10, 0, 19045)

_AV_FLAGS_MIC = 0x2  # MsvAvFlags bit: the AUTHENTICATE carries a MIC
_MIC_OFFSET = 72  # fixed header (64) + Version (8)


class AuthFailure(StatusError):
    """Authentication refused; ``status`` is the NTSTATUS to answer with."""


def message_type(token: bytes) -> int | None:
    """NTLMSSP message type of ``token``, or None if it is not NTLMSSP."""
    if len(token) < 12 or not token.startswith(SIGNATURE):
        return None
    return struct.unpack_from("<I", token, 8)[0]


@dataclass
class AuthResult:
    user: str  # '' for anonymous
    domain: str
    workstation: str  # from the AUTHENTICATE message
    anonymous: bool  # null session: empty user and empty NT response
    session_key: bytes  # exported session key; 16 zero bytes for anonymous
    negotiate_flags: int


@dataclass
class _Authenticate:
    flags: int
    user: str
    domain: str
    workstation: str
    lm: bytes
    nt: bytes
    encrypted_key: bytes


def _parse_authenticate(token: bytes) -> _Authenticate:
    # The fixed header is parsed here rather than with impacket's
    # NTLMAuthChallengeResponse, which guesses whether Version/MIC are present
    # from the VERSION flag and slices silently past the end of the message.
    if len(token) < 64:
        raise ValueError("AUTHENTICATE shorter than its header")
    *bufs, flags = struct.unpack_from("<12x" + "HxxI" * 6 + "I", token)
    fields = []
    for length, offset in zip(bufs[::2], bufs[1::2], strict=True):
        if length and offset + length > len(token):
            raise ValueError("field outside the message")
        fields.append(token[offset : offset + length])
    lm, nt, domain, user, workstation, encrypted_key = fields
    enc = "utf-16le" if flags & NTLMSSP_NEGOTIATE_UNICODE else "cp437"
    return _Authenticate(
        flags=flags,
        user=user.decode(enc),
        domain=domain.decode(enc),
        workstation=workstation.decode(enc),
        lm=lm,
        nt=nt,
        encrypted_key=encrypted_key,
    )


class NTLMAcceptor:
    """One NTLM authentication, server side. Use a new instance per attempt."""

    def __init__(
        self,
        lookup_password: Callable[[str], str | None],
        *,
        netbios_name: str = "EMULATOR",
        netbios_domain: str = "",
        dns_name: str = "",
        dns_domain: str = "",
        now: Callable[[], float] = time.time,
        allow_anonymous: bool = True,
        challenge: bytes | None = None,
        version: bytes = WINDOWS_VERSION,
        accept_ntlmv1: bool = False,
        accept_lm: bool = False,
    ) -> None:
        self._lookup = lookup_password
        # A workgroup (standalone) Windows host gives its computer name as the NetBIOS
        # domain, the DNS computer name and the DNS domain (rumble-smb2-sessions README,
        # metasploit PR #15230); a domain member gives its domain.
        self._nb_name = netbios_name
        self._nb_domain = netbios_domain or netbios_name
        self._dns_name = dns_name or netbios_name
        self._dns_domain = dns_domain or self._dns_name
        self._version = version
        self._accept_ntlmv1 = accept_ntlmv1
        self._accept_lm = accept_lm
        self._now = now
        self._allow_anonymous = allow_anonymous
        self.server_challenge = challenge if challenge is not None else os.urandom(8)
        self._negotiate_msg: bytes | None = None
        self._challenge_msg: bytes | None = None
        self._finished = False
        self.result: AuthResult | None = None
        self.mic_present = False  # AUTHENTICATE carried a verified MIC (SPNEGO needs to know)
        self._flags = 0

    # -- handshake -----------------------------------------------------------

    def process_negotiate(self, token: bytes) -> bytes:
        """NTLM NEGOTIATE -> CHALLENGE bytes."""
        if self._negotiate_msg is not None or message_type(token) != NEGOTIATE:
            raise AuthFailure(STATUS_INVALID_PARAMETER, "expected an NTLM NEGOTIATE")
        if len(token) < 16:
            raise AuthFailure(STATUS_INVALID_PARAMETER, "NEGOTIATE too short")
        # Only the flags matter; the optional domain/workstation fields are ignored.
        (client_flags,) = struct.unpack_from("<I", token, 12)

        flags = (client_flags & _ECHOED_FLAGS) | _FORCED_FLAGS
        is_server = self._nb_domain.upper() == self._nb_name.upper()
        flags |= NTLMSSP_TARGET_TYPE_SERVER if is_server else NTLMSSP_TARGET_TYPE_DOMAIN

        av = ntlm.AV_PAIRS()  # keeps insertion order: Windows' order
        av[ntlm.NTLMSSP_AV_DOMAINNAME] = self._nb_domain.encode("utf-16le")
        av[ntlm.NTLMSSP_AV_HOSTNAME] = self._nb_name.encode("utf-16le")
        av[ntlm.NTLMSSP_AV_DNS_DOMAINNAME] = self._dns_domain.encode("utf-16le")
        av[ntlm.NTLMSSP_AV_DNS_HOSTNAME] = self._dns_name.encode("utf-16le")
        filetime = filetime_from_seconds(self._now())
        # The timestamp is what makes modern clients add a MIC to the AUTHENTICATE.
        av[ntlm.NTLMSSP_AV_TIME] = struct.pack("<Q", filetime)
        target_info = av.getData()

        version = self._version
        target_name = self._nb_domain.encode("utf-16le")
        msg = ntlm.NTLMAuthChallenge()
        msg["flags"] = flags
        msg["challenge"] = self.server_challenge
        msg["Version"] = version
        msg["domain_name"] = target_name
        msg["domain_offset"] = 48 + len(version)
        msg["TargetInfoFields"] = target_info
        msg["TargetInfoFields_offset"] = 48 + len(version) + len(target_name)
        self._negotiate_msg = token
        self._challenge_msg = msg.getData()
        return self._challenge_msg

    def process_authenticate(self, token: bytes) -> AuthResult:
        """Check an AUTHENTICATE; return the result or raise AuthFailure."""
        if self._negotiate_msg is None or self._challenge_msg is None or self._finished:
            raise AuthFailure(STATUS_INVALID_PARAMETER, "AUTHENTICATE out of sequence")
        if message_type(token) != AUTHENTICATE:
            raise AuthFailure(STATUS_INVALID_PARAMETER, "expected an NTLM AUTHENTICATE")
        self._finished = True
        try:
            auth = _parse_authenticate(token)
        except Exception as exc:
            raise AuthFailure(STATUS_INVALID_PARAMETER, f"bad AUTHENTICATE: {exc}") from exc
        return self._verify(auth, token)

    def check_responses(self, *, user: str, domain: str, workstation: str, lm: bytes,
                        nt: bytes) -> AuthResult:
        """SMB1 without extended security: the LM/NTLM (or LMv2/NTLMv2) responses of a
        SESSION_SETUP_ANDX to the NEGOTIATE's challenge (``server_challenge``), checked
        by the same rules as an AUTHENTICATE's (MS-CIFS 3.3.5.3)."""
        if self._finished:
            raise AuthFailure(STATUS_INVALID_PARAMETER, "responses already checked")
        self._finished = True
        # Plain NTLM (no NTLM2 session security): the session key is the base key.
        auth = _Authenticate(flags=NTLMSSP_NEGOTIATE_NTLM, user=user, domain=domain,
                             workstation=workstation, lm=lm, nt=nt, encrypted_key=b"")
        return self._verify(auth, None)

    def _verify(self, auth: _Authenticate, token: bytes | None) -> AuthResult:
        if not auth.user and not auth.nt and auth.lm in (b"", b"\x00"):
            if not self._allow_anonymous:
                raise AuthFailure(STATUS_LOGON_FAILURE, "anonymous logon refused")
            return self._finish(auth, b"\x00" * 16, anonymous=True)

        # NTLMv2: NTProofStr (16) + a blob of at least 28 bytes. NTLMv1 (24 bytes) and
        # LM-only (no NT response, 24-byte LM) logons only where the host's LAN Manager
        # authentication level accepts them; else refused like a wrong password.
        # An NT response neither NTLMv1 nor NTLMv2 beside a 24-byte LM one leaves the LM
        # field alone (nmap's smb.lua sends a truncated NT field and the NTLMv1 response
        # in the LM field, which Windows and Samba check as either hash's response).
        lm_only = len(auth.lm) == 24 and len(auth.nt) != 24 and len(auth.nt) < 16 + 28
        if lm_only:
            auth.nt = b""
        v1 = len(auth.nt) == 24 or lm_only
        if lm_only and not (self._accept_lm or self._accept_ntlmv1):
            raise AuthFailure(STATUS_LOGON_FAILURE, "LM refused by this host's level")
        if v1 and not lm_only and not self._accept_ntlmv1:
            raise AuthFailure(STATUS_LOGON_FAILURE, "NTLMv1/LM refused by this host's level")
        if not v1 and len(auth.nt) < 16 + 28:
            raise AuthFailure(STATUS_LOGON_FAILURE, "not an NTLMv2 response")
        password = self._lookup(auth.user)
        if password is None and "@" in auth.user and not auth.domain:
            password = self._lookup(auth.user.partition("@")[0])  # UPN form: user@domain
        if password is None:
            raise AuthFailure(STATUS_LOGON_FAILURE, "unknown user")
        if v1:
            return self._finish(auth, self._check_v1(auth, password), anonymous=False)

        nt_proof, blob = auth.nt[:16], auth.nt[16:]
        base_key = None
        # The client keys the hash with the domain it typed; a standalone Windows
        # host accepts any domain for a local account, hence also ''.
        for domain in dict.fromkeys((auth.domain, "")):
            key = ntlm.NTOWFv2(auth.user, password, domain)
            if hmac.compare_digest(ntlm.hmac_md5(key, self.server_challenge + blob), nt_proof):
                base_key = ntlm.hmac_md5(key, nt_proof)
                break
        if base_key is None:
            raise AuthFailure(STATUS_LOGON_FAILURE, "wrong password")

        # NTLMv2: KeyExchangeKey == SessionBaseKey. With KEY_EXCH the client sends
        # its random session key RC4-encrypted; a spec client sends none when
        # neither SIGN nor SEAL was negotiated, so the length decides.
        session_key = base_key
        if auth.flags & NTLMSSP_NEGOTIATE_KEY_EXCH and len(auth.encrypted_key) == 16:
            # RC4 is its own inverse: impacket's "encrypt" helper decrypts here.
            session_key = ntlm.generateEncryptedSessionKey(base_key, auth.encrypted_key)

        try:
            av = ntlm.AV_PAIRS(blob[28:])
            flags_pair = av[ntlm.NTLMSSP_AV_FLAGS]
            av_flags = struct.unpack("<I", flags_pair[1])[0] if flags_pair else 0
        except Exception as exc:
            raise AuthFailure(STATUS_INVALID_PARAMETER, f"bad AV pairs: {exc}") from exc
        if av_flags & _AV_FLAGS_MIC and token is not None:
            # (a token comes only through process_authenticate, which checked both are held)
            assert self._negotiate_msg is not None and self._challenge_msg is not None
            mic = token[_MIC_OFFSET : _MIC_OFFSET + 16]
            zeroed = token[:_MIC_OFFSET] + b"\x00" * 16 + token[_MIC_OFFSET + 16 :]
            expected = ntlm.hmac_md5(
                session_key, self._negotiate_msg + self._challenge_msg + zeroed
            )
            if len(mic) != 16 or not hmac.compare_digest(mic, expected):
                raise AuthFailure(STATUS_LOGON_FAILURE, "bad MIC")
            self.mic_present = True
        return self._finish(auth, session_key, anonymous=False)

    def _check_v1(self, auth: _Authenticate, password: str) -> bytes:
        """Verify an NTLMv1 (plain or with NTLM2 session security) or LM response with
        impacket's primitives (MS-NLMP 3.3.1); return the exported session key."""
        nt_hash, lm_hash = ntlm.compute_nthash(password), ntlm.compute_lmhash(password)
        challenge = self.server_challenge
        ess = bool(auth.flags & NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY)
        if auth.nt:
            candidates = [ntlm.get_ntlmv1_response(nt_hash, challenge)]
            if ess and len(auth.lm) == 24:
                # NTLM2 session response; a client may set the flag yet send a plain NTLMv1
                # response (nmap's smb.lua does), which Windows accepts too.
                client_challenge = auth.lm[:8]
                digest = hashlib.md5(challenge + client_challenge).digest()[:8]
                candidates.insert(0, ntlm.ntlmssp_DES_encrypt(nt_hash, digest))
            ok = any(hmac.compare_digest(expected, auth.nt) for expected in candidates)
        else:  # the LM field only: an LM response, or an NTLMv1 one (per the level)
            hashes = ([lm_hash] if self._accept_lm else []) + (
                [nt_hash] if self._accept_ntlmv1 else [])
            ok = any(hmac.compare_digest(ntlm.get_ntlmv1_response(h, challenge), auth.lm)
                     for h in hashes)
        if not ok:
            raise AuthFailure(STATUS_LOGON_FAILURE, "wrong password")
        base_key = ntlm.generateSessionKeyV1(password, lm_hash, nt_hash)
        kx_key = ntlm.KXKEY(auth.flags, base_key, auth.lm, challenge, password, lm_hash,
                            nt_hash, use_ntlmv2=False)
        if auth.flags & NTLMSSP_NEGOTIATE_KEY_EXCH and len(auth.encrypted_key) == 16:
            return ntlm.generateEncryptedSessionKey(kx_key, auth.encrypted_key)
        return kx_key

    def _finish(self, auth: _Authenticate, session_key: bytes, *, anonymous: bool) -> AuthResult:
        self._flags = flags = auth.flags
        self._sign_out = ntlm.SIGNKEY(flags, session_key, "Server")
        self._sign_in = ntlm.SIGNKEY(flags, session_key, "Client")
        self._seal_out_key = ntlm.SEALKEY(flags, session_key, "Server")
        self._seal_in_key = ntlm.SEALKEY(flags, session_key, "Client")
        self._seq_out = self._seq_in = 0
        self.reset_seal_state(outgoing=True)
        self.reset_seal_state(outgoing=False)
        self.result = AuthResult(
            user="" if anonymous else auth.user,
            domain=auth.domain,
            workstation=auth.workstation,
            anonymous=anonymous,
            session_key=session_key,
            negotiate_flags=flags,
        )
        return self.result

    # -- message security (MS-NLMP 3.4) --------------------------------------

    def reset_seal_state(self, *, outgoing: bool) -> None:
        """Restart one direction's RC4 stream (sequence numbers are kept).

        SPNEGO does this after each mechListMIC, as Windows, Samba and pyspnego do.
        """
        if not self._flags & NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY:
            # Without extended session security one RC4 stream serves both directions.
            self._rc4_out = self._rc4_in = ARC4.new(self._seal_out_key)
        elif outgoing:
            self._rc4_out = ARC4.new(self._seal_out_key)
        else:
            self._rc4_in = ARC4.new(self._seal_in_key)

    def _mac(self, data: bytes, outgoing: bool) -> bytes:
        if outgoing:
            key, seq, rc4 = self._sign_out, self._seq_out, self._rc4_out
            self._seq_out += 1
        else:
            key, seq, rc4 = self._sign_in, self._seq_in, self._rc4_in
            self._seq_in += 1
        return ntlm.MAC(self._flags, rc4.encrypt, key, seq, data).getData()

    def sign(self, data: bytes) -> bytes:
        """16-byte NTLMSSP signature of ``data`` with the server key and sequence number."""
        if self.result is None:
            raise AuthFailure(STATUS_INVALID_PARAMETER, "not authenticated")
        return self._mac(data, outgoing=True)

    def verify(self, data: bytes, mac: bytes) -> bool:
        """Check a client signature (consumes the client sequence number)."""
        if self.result is None:
            return False
        return hmac.compare_digest(self._mac(data, outgoing=False), bytes(mac))

    def wrap(self, data: bytes) -> bytes:
        """Seal ``data``: signature (16 bytes) + ciphertext, as SSPI/pyspnego lay it out."""
        if self.result is None:
            raise AuthFailure(STATUS_INVALID_PARAMETER, "not authenticated")
        sealed = self._rc4_out.encrypt(data)  # encrypt first, then the checksum (MS-NLMP 3.4.3)
        return self._mac(data, outgoing=True) + sealed

    def unwrap(self, data: bytes) -> bytes:
        """Unseal a client message made by ``wrap``; AuthFailure if it does not verify."""
        if self.result is None or len(data) < 16:
            raise AuthFailure(STATUS_INVALID_PARAMETER, "cannot unwrap")
        plain = self._rc4_in.decrypt(data[16:])
        if not self.verify(plain, data[:16]):
            raise AuthFailure(STATUS_LOGON_FAILURE, "bad sealed message signature")
        return plain
