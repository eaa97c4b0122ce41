"""Which security protocol a server picks from a client's RDP_NEG_REQ, by the host's NLA
setting (MS-RDPBCGR 3.3.5.3.1), and the Early User Authorization Result PDU that follows
CredSSP when HYBRID_EX was selected (MS-RDPBCGR 2.2.10.2).

Windows' security layers: "required" is NLA required (System Properties, "Allow
connections only from computers running Remote Desktop with Network Level
Authentication"): a client that does not offer CredSSP gets HYBRID_REQUIRED_BY_SERVER,
whatever else it offers (nmap PR #1614: Server 2016 -> Native RDP and SSL both FAILED
HYBRID_REQUIRED_BY_SERVER). "offered": CredSSP when the client asks, TLS otherwise.
"off": TLS only. The security layer is Windows' SecurityLayer, "Negotiate" by default
from Vista on (learn.microsoft.com ff715923): a client that offers neither TLS nor CredSSP
gets Standard RDP Security where the host speaks it and NLA is not required, and
SSL_REQUIRED_BY_SERVER where it does not.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from protocols.rdp.x224 import (
    HYBRID_REQUIRED_BY_SERVER,
    PROTOCOL_HYBRID,
    PROTOCOL_HYBRID_EX,
    PROTOCOL_RDP,
    PROTOCOL_SSL,
    SSL_REQUIRED_BY_SERVER,
    DecodeError,
)

REQUIRED, OFFERED, OFF = "required", "offered", "off"

# Early User Authorization Result (MS-RDPBCGR 2.2.10.2).
AUTHZ_SUCCESS = 0x00000000
AUTHZ_ACCESS_DENIED = 0x00000005


@dataclass(frozen=True)
class Choice:
    selected: int | None  # the protocol, or None: answer RDP_NEG_FAILURE ``failure``
    failure: int = 0


def select_protocol(requested: int, nla: str, *, early_user_auth: bool = False,
                    credssp: bool = True, tls: bool = True,
                    standard_security: bool = False) -> Choice:
    """``requested``: the client's requestedProtocols (0 without an RDP_NEG_REQ);
    ``nla``: required / offered / off; ``early_user_auth``: HYBRID_EX served (8.1+);
    ``credssp``: an acceptor exists (without one, NLA cannot be served at all);
    ``tls``: the host speaks TLS; ``standard_security``: and Standard RDP Security."""
    use_nla = tls and nla in (REQUIRED, OFFERED) and credssp
    if use_nla and early_user_auth and requested & PROTOCOL_HYBRID_EX:
        return Choice(PROTOCOL_HYBRID_EX)
    if use_nla and requested & PROTOCOL_HYBRID:
        return Choice(PROTOCOL_HYBRID)
    if tls and nla == REQUIRED:
        return Choice(None, HYBRID_REQUIRED_BY_SERVER)
    if tls and requested & PROTOCOL_SSL:
        return Choice(PROTOCOL_SSL)
    if standard_security:
        return Choice(PROTOCOL_RDP)
    return Choice(None, SSL_REQUIRED_BY_SERVER)


def early_user_authorization_result(result: int = AUTHZ_SUCCESS) -> bytes:
    """The 4-byte PDU sent, bare on the TLS channel, right after CredSSP completes."""
    return struct.pack("<I", result)


def parse_early_user_authorization_result(data: bytes) -> int:
    """Client side."""
    if len(data) != 4:
        raise DecodeError(f"Early User Authorization Result of {len(data)} bytes")
    (result,) = struct.unpack("<I", data)
    return result
