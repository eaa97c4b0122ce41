"""Server side of SPNEGO (RFC 4178, MS-SPNG) around NTLMSSP, sans-IO.

impacket's SPNEGO_NegTokenInit/NegTokenResp parsers skip reqFlags and
mechListMIC and cannot emit a server mechListMIC, so the few DER shapes needed
here are read and written by a small strict TLV codec; impacket still supplies
the length encoding and the mechanism OIDs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from impacket.ntlm import NTLMSSP_NEGOTIATE_SIGN
from impacket.spnego import GSS_API_SPNEGO_UUID, TypesMech, asn1encode

from protocols.auth.ntlm import (
    AUTHENTICATE,
    NEGOTIATE,
    STATUS_INVALID_PARAMETER,
    AuthFailure,
    AuthResult,
    NTLMAcceptor,
    message_type,
)

# 1.3.6.1.4.1.311.2.2.10
NTLMSSP_OID = TypesMech["NTLMSSP - Microsoft NTLM Security Support Provider"]
HINT_NAME = b"not_defined_in_RFC4178@please_ignore"

# The mechanisms a Windows server lists in its NEGOTIATE hint, by the names the editions
# table uses (smbprotocol's real-Windows test vector lists these five, in this order).
MECH_OIDS = {
    "NEGOEX": TypesMech["NEGOEX - SPNEGO Extended Negotiation Security Mechanism"],
    "MS-KRB5": TypesMech["MS KRB5 - Microsoft Kerberos 5"],
    "KRB5": TypesMech["KRB5 - Kerberos 5"],
    "KRB5-U2U": TypesMech["KRB5 - Kerberos 5 - User to User"],
    "NTLMSSP": NTLMSSP_OID,
}
WINDOWS_MECHS = ("NEGOEX", "MS-KRB5", "KRB5", "KRB5-U2U", "NTLMSSP")

# negState values
ACCEPT_COMPLETED, ACCEPT_INCOMPLETE, REJECT, REQUEST_MIC = 0, 1, 2, 3

# A bad client mechListMIC is answered like any other bad token.
STATUS_BAD_MECHLISTMIC = STATUS_INVALID_PARAMETER


class _Malformed(ValueError):
    pass


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + asn1encode(content)


def _read_tlv(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """One DER TLV at ``pos``: (tag, content, end offset). Strict about lengths."""
    if pos + 2 > len(data):
        raise _Malformed("truncated TLV")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if not 1 <= n <= 4 or pos + n > len(data):
            raise _Malformed("bad length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise _Malformed("truncated value")
    return tag, data[pos : pos + length], pos + length


def _only(data: bytes, tag: int) -> bytes:
    """Content of ``data``, which must be exactly one TLV with ``tag``."""
    got, content, end = _read_tlv(data)
    if got != tag or end != len(data):
        raise _Malformed(f"expected tag 0x{tag:02x}")
    return content


def _fields(seq_content: bytes) -> dict[int, bytes]:
    """Context-tagged fields [n] of a SEQUENCE content, as {n: inner TLV bytes}."""
    out, pos = {}, 0
    while pos < len(seq_content):
        tag, content, pos = _read_tlv(seq_content, pos)
        if tag & 0xE0 != 0xA0:
            raise _Malformed("expected a context tag")
        out[tag & 0x1F] = content
    return out


def _parse_neg_token_init(token: bytes) -> tuple[list[bytes], bytes, bytes | None]:
    """InitialContextToken or bare negTokenInit -> (mech OIDs, raw MechTypeList, mechToken)."""
    if token[:1] == b"\x60":
        inner = _only(token, 0x60)
        tag, oid, end = _read_tlv(inner)
        if tag != 0x06 or oid != GSS_API_SPNEGO_UUID:
            raise _Malformed("not SPNEGO")
        token = inner[end:]
    fields = _fields(_only(_only(token, 0xA0), 0x30))
    if 0 not in fields:
        raise _Malformed("negTokenInit without mechTypes")
    mech_list = fields[0]  # MechTypeList DER exactly as sent: what the mechListMIC covers
    oids, pos, seq = [], 0, _only(mech_list, 0x30)
    while pos < len(seq):
        tag, oid, pos = _read_tlv(seq, pos)
        if tag != 0x06:
            raise _Malformed("mechTypes entry is not an OID")
        oids.append(oid)
    mech_token = _only(fields[2], 0x04) if 2 in fields else None
    return oids, mech_list, mech_token


def _parse_neg_token_resp(token: bytes) -> tuple[bytes | None, bytes | None]:
    """[1] negTokenResp -> (responseToken, mechListMIC)."""
    fields = _fields(_only(_only(token, 0xA1), 0x30))
    response = _only(fields[2], 0x04) if 2 in fields else None
    mic = _only(fields[3], 0x04) if 3 in fields else None
    return response, mic


def neg_token_resp(
    state: int | None,
    *,
    supported_mech: bytes | None = None,
    response_token: bytes | None = None,
    mech_list_mic: bytes | None = None,
) -> bytes:
    """Encode a negTokenResp; fields left None are omitted."""
    body = b""
    if state is not None:
        body += _tlv(0xA0, _tlv(0x0A, bytes([state])))
    if supported_mech is not None:
        body += _tlv(0xA1, _tlv(0x06, supported_mech))
    if response_token is not None:
        body += _tlv(0xA2, _tlv(0x04, response_token))
    if mech_list_mic is not None:
        body += _tlv(0xA3, _tlv(0x04, mech_list_mic))
    return _tlv(0xA1, _tlv(0x30, body))


@lru_cache(maxsize=16)  # a pure function of the edition's mechanisms: built once each
def initial_token(mechs: tuple[str, ...] = WINDOWS_MECHS) -> bytes:
    """SecurityBuffer of the SMB2 NEGOTIATE response: negTokenInit2 listing ``mechs``
    (names of MECH_OIDS). Only NTLMSSP is accepted: a client that opens with Kerberos
    or NEGOEX is steered to NTLMSSP by the first negTokenResp (RFC 4178 4.2.2)."""
    oids = b"".join(_tlv(0x06, MECH_OIDS[m]) for m in mechs)
    mech_types = _tlv(0xA0, _tlv(0x30, oids))
    neg_hints = _tlv(0xA3, _tlv(0x30, _tlv(0xA0, _tlv(0x1B, HINT_NAME))))  # GeneralString
    init = _tlv(0xA0, _tlv(0x30, mech_types + neg_hints))
    return _tlv(0x60, _tlv(0x06, GSS_API_SPNEGO_UUID) + init)


@dataclass
class SpnegoStep:
    token: bytes  # bytes to put in the response SecurityBuffer
    complete: bool  # True when authentication finished successfully
    result: AuthResult | None  # set when complete


class SpnegoAcceptor:
    """Drives an NTLMAcceptor from SPNEGO (or raw NTLMSSP) tokens; one per session setup."""

    def __init__(self, ntlm: NTLMAcceptor) -> None:
        self.ntlm = ntlm
        self._mech_list: bytes | None = None  # the client's MechTypeList DER
        self._mic_required = False  # NTLMSSP was not the client's first choice
        self._done = False

    def step(self, token: bytes) -> SpnegoStep:
        if self._done:
            raise AuthFailure(STATUS_INVALID_PARAMETER, "authentication already finished")
        try:
            return self._step(bytes(token))
        except AuthFailure:
            self._done = True
            raise
        except Exception as exc:  # any parse error of a hostile token
            self._done = True
            raise AuthFailure(STATUS_INVALID_PARAMETER, f"malformed token: {exc}") from exc

    def _step(self, token: bytes) -> SpnegoStep:
        kind = message_type(token)
        if kind is not None:  # raw NTLMSSP, answered raw
            if kind == NEGOTIATE:
                return SpnegoStep(self.ntlm.process_negotiate(token), False, None)
            if kind == AUTHENTICATE:
                result = self.ntlm.process_authenticate(token)
                self._done = True
                return SpnegoStep(b"", True, result)
            raise _Malformed(f"unexpected NTLM message type {kind}")

        if token[:1] in (b"\x60", b"\xa0") and self._mech_list is None:
            oids, self._mech_list, mech_token = _parse_neg_token_init(token)
            if NTLMSSP_OID not in oids:
                raise _Malformed("client offers no NTLMSSP")
            if oids[0] != NTLMSSP_OID:
                # Any optimistic token is for the client's first mech: drop it, name
                # NTLMSSP and ask for mechListMICs (RFC 4178 4.2.2); the NTLM
                # NEGOTIATE comes in the next negTokenResp.
                self._mic_required = True
                return self._reply(neg_token_resp(REQUEST_MIC, supported_mech=NTLMSSP_OID))
            if mech_token is None:
                return self._reply(neg_token_resp(ACCEPT_INCOMPLETE, supported_mech=NTLMSSP_OID))
            challenge = self.ntlm.process_negotiate(mech_token)
            return self._reply(
                neg_token_resp(
                    ACCEPT_INCOMPLETE, supported_mech=NTLMSSP_OID, response_token=challenge
                )
            )

        if token[:1] == b"\xa1" and self._mech_list is not None:
            response, client_mic = _parse_neg_token_resp(token)
            response = response or b""
            kind = message_type(response)
            if kind == NEGOTIATE:
                challenge = self.ntlm.process_negotiate(response)
                return self._reply(neg_token_resp(ACCEPT_INCOMPLETE, response_token=challenge))
            if kind == AUTHENTICATE:
                return self._finish(self.ntlm.process_authenticate(response), client_mic)
            raise _Malformed("negTokenResp without an NTLM NEGOTIATE or AUTHENTICATE")

        raise _Malformed("not a SPNEGO token expected at this point")

    @staticmethod
    def _reply(token: bytes) -> SpnegoStep:
        return SpnegoStep(token, False, None)

    def _finish(self, result: AuthResult, client_mic: bytes | None) -> SpnegoStep:
        self._done = True
        mech_list = self._mech_list or b""  # set: a negTokenResp is only taken after an init
        # MS-SPNG 3.3.5.1: when NTLM ran with integrity (it put a MIC in its
        # AUTHENTICATE), both sides exchange mechListMICs; smbclient insists on
        # ours then. Each MIC is followed by a reset of that direction's RC4.
        if client_mic is not None and not result.anonymous:
            if not self.ntlm.verify(mech_list, client_mic):
                raise AuthFailure(STATUS_BAD_MECHLISTMIC, "bad mechListMIC")
            self.ntlm.reset_seal_state(outgoing=False)
        send_mic = not result.anonymous and (
            client_mic is not None
            or self._mic_required
            or (self.ntlm.mic_present and result.negotiate_flags & NTLMSSP_NEGOTIATE_SIGN)
        )
        our_mic = None
        if send_mic:
            our_mic = self.ntlm.sign(mech_list)
            self.ntlm.reset_seal_state(outgoing=True)
        return SpnegoStep(neg_token_resp(ACCEPT_COMPLETED, mech_list_mic=our_mic), True, result)
