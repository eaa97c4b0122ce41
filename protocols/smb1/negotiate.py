"""SMB_COM_NEGOTIATE for "NT LM 0.12" (MS-CIFS 2.2.4.52, MS-SMB 2.2.4.5), with the
persona's values: extended security (ServerGUID and, when the persona has one, a SPNEGO
hint) or, to a client without FLAGS2_EXTENDED_SECURITY, the 8-byte challenge with the
domain and server names."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from protocols.smb1.messages import FLAGS2_EXTENDED_SECURITY, Header, encode_string, pack_block
from protocols.wintime import filetime_from_seconds

NT_LM_012 = b"NT LM 0.12"
CAP_EXTENDED_SECURITY = 0x80000000
CAP_UNICODE = 0x0004
CAP_NT_STATUS = 0x0040
CAP_LARGE_READX = 0x4000
CAP_LARGE_WRITEX = 0x8000
NO_DIALECT = 0xFFFF
MAX_RAW_SIZE = 65536
# SecurityMode: user-level security, challenge/response passwords (XP, 2003: 0x03),
# plus signing enabled / required when the host signs.
SECURITY_USER = 0x01
SECURITY_ENCRYPT_PASSWORDS = 0x02
SECURITY_SIGNATURES_ENABLED = 0x04
SECURITY_SIGNATURES_REQUIRED = 0x08
# NT LM 0.12 parameter words (impacket SMBNTLMDialect_Parameters / the extended form).
NEGOTIATE_WORDS = struct.Struct("<HBHHIIIIQhB")


@dataclass(frozen=True)
class SMB1Persona:
    """What SMB1 says about the host (emulator/editions.py holds the values)."""

    max_mpx: int = 50
    max_buffer: int = 16644
    capabilities: int = 0x8001F3FD
    native_os: str = "Windows Server 2003 3790 Service Pack 2"
    native_lanman: str = "Windows Server 2003 5.2"
    negotiate_blob: bool = False  # a SPNEGO hint after the ServerGUID (Vista and later)
    timezone: int = 0  # ServerTimeZone: minutes, UTC minus local
    workgroup: str = "WORKGROUP"  # NEGOTIATE DomainName, SESSION_SETUP PrimaryDomain
    # EnableSecuritySignature ("Digitally sign communications (if client agrees)"): off
    # on every SMB1 persona as shipped (SecurityMode 0x03); RequireSecuritySignature is
    # the host's ``signing_required`` and implies it.
    signing_enabled: bool = False


def offered_dialects(data: bytes) -> list[bytes]:
    """The dialect strings of a NEGOTIATE's data block (each 0x02 + name + NUL)."""
    return [n.rstrip(b"\0") for n in data.split(b"\x02")[1:]]


def negotiate_response(request: Header, data: bytes, persona: SMB1Persona, *,
                       now: float, server_guid: bytes, challenge: bytes, domain: str,
                       server_name: str, spnego_hint: bytes, signing_required: bool
                       ) -> tuple[int | None, int, bytes, bytes]:
    """(dialect index or None, response Flags2, words, data) for a NEGOTIATE's data."""
    dialects = offered_dialects(data)
    if NT_LM_012 not in dialects:
        # None of the client's dialects: DialectIndex 0xFFFF, WordCount 1 (3.3.5.42).
        return None, request.flags2, struct.pack("<H", NO_DIALECT), b""
    index = dialects.index(NT_LM_012)
    extended = bool(request.flags2 & FLAGS2_EXTENDED_SECURITY)
    security_mode = SECURITY_USER | SECURITY_ENCRYPT_PASSWORDS
    if signing_required:
        security_mode |= SECURITY_SIGNATURES_ENABLED | SECURITY_SIGNATURES_REQUIRED
    elif persona.signing_enabled:
        security_mode |= SECURITY_SIGNATURES_ENABLED
    capabilities = persona.capabilities
    flags2 = request.flags2
    if extended:
        body = server_guid + spnego_hint
        challenge_length = 0
    else:
        capabilities &= ~CAP_EXTENDED_SECURITY
        flags2 &= ~FLAGS2_EXTENDED_SECURITY
        # Unicode whatever the client asked: the response's Flags2 says Unicode (as
        # Windows'), and nmap reads these two names as UTF-16 (MS-SMB 2.2.4.5.2.2).
        body = challenge + encode_string(domain, True) + encode_string(server_name, True)
        challenge_length = len(challenge)
    words = NEGOTIATE_WORDS.pack(
        index, security_mode, persona.max_mpx, 1, persona.max_buffer, MAX_RAW_SIZE, 0,
        capabilities, filetime_from_seconds(now), persona.timezone, challenge_length)
    return index, flags2, words, body


def new_challenge() -> bytes:
    return os.urandom(8)


def pack_negotiate(header: Header, words: bytes, data: bytes) -> bytes:
    return header.pack() + pack_block(words, data)
