"""The editions table: what each emulated Windows product allows. Data, not branches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# SMB2 dialect revisions (MS-SMB2 2.2.3).
SMB_2_0_2 = 0x0202
SMB_2_1 = 0x0210
SMB_3_0 = 0x0300
SMB_3_0_2 = 0x0302
SMB_3_1_1 = 0x0311

DIALECT_NAMES = {
    SMB_2_0_2: "2.0.2",
    SMB_2_1: "2.1",
    SMB_3_0: "3.0",
    SMB_3_0_2: "3.0.2",
    SMB_3_1_1: "3.1.1",
}

TS_REFUSAL_2003 = "The terminal server has exceeded the maximum number of allowed connections."
TS_REFUSAL_2008 = (
    "The number of connections to this computer is limited and all connections are in use "
    "right now. Try connecting later or contact your system administrator."
)

STATUS_CTX_LICENSE_NOT_AVAILABLE = 0xC00A0013  # ERROR_CTX_LICENSE_NOT_AVAILABLE 7054

# RDP_NEG_RSP flags (MS-RDPBCGR 2.2.1.2.1).
EXTENDED_CLIENT_DATA_SUPPORTED = 0x01
DYNVC_GFX_PROTOCOL_SUPPORTED = 0x02  # RDP 8.0 and later
NEGRSP_FLAG_RESERVED = 0x04
RESTRICTED_ADMIN_MODE_SUPPORTED = 0x08  # 8.1 and later
REDIRECTED_AUTHENTICATION_MODE_SUPPORTED = 0x10  # 10 1607 and later (Remote Credential Guard)
# Windows 10: 0x1f (nmap-service-probes, TerminalServerCookie "Windows 10" match).
NEG_FLAGS_WIN10 = (EXTENDED_CLIENT_DATA_SUPPORTED | DYNVC_GFX_PROTOCOL_SUPPORTED
                   | NEGRSP_FLAG_RESERVED | RESTRICTED_ADMIN_MODE_SUPPORTED
                   | REDIRECTED_AUTHENTICATION_MODE_SUPPORTED)

# TS_UD_SC_CORE version (MS-RDPBCGR 2.2.1.4.2; nmap's rdp.lua names them).
RDP_VERSION_5_PLUS = 0x00080004  # RDP 5.0 to 8.1: XP, 2003, 7
RDP_VERSION_10_8 = 0x0008000D  # Windows 10 2004 (IronRDP PR #30)

# SChannel's TLS cipher suites in its preference order, as OpenSSL names them (only the
# ones this OpenSSL still has: no RC4, no 3DES; see README "TLS on the RDP port").
# Windows 7 (ssl-enum-ciphers in rdesktop issue #97, after which come 3DES, RC4-SHA, RC4-MD5).
TLS_CIPHERS_WIN7 = ("ECDHE-RSA-AES256-SHA", "ECDHE-RSA-AES128-SHA", "DHE-RSA-AES256-SHA",
                    "DHE-RSA-AES128-SHA", "AES256-SHA", "AES128-SHA")
# Windows 10 / Server 2019 (Get-TlsCipherSuite in sslyze issue #463; Edge 13 in ssllabs-scan
# issue #150). ECDSA suites stay listed; with the RSA certificate they are never chosen.
TLS_CIPHERS_WIN10 = (
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-RSA-AES256-SHA384", "ECDHE-RSA-AES128-SHA256",
    "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES256-SHA", "ECDHE-RSA-AES128-SHA",
    "AES256-GCM-SHA384", "AES128-GCM-SHA256", "AES256-SHA256", "AES128-SHA256",
    "AES256-SHA", "AES128-SHA")


@dataclass(frozen=True)
class Edition:
    name: str
    product: str
    smb_limit: int | None  # inbound SMB sessions; None = unlimited
    rdp_limit: int | None  # Remote Desktop sessions that count; 0 = no RDP host
    rdp_exempt: str  # which RDP session does not count: "console", "admin" or "none"
    max_dialect: int
    rdp_refusal_text: str = TS_REFUSAL_2008
    # 2008-era and later: NLA (CredSSP) when the client offers it, and the refusal's
    # Save Session Info logon error (STATUS_CTX_LICENSE_NOT_AVAILABLE); None = not sent.
    rdp_nla: bool = False
    rdp_logon_error: int | None = None
    # MS-SRVS platform/version for later srvsvc/wkssvc answers.
    version: tuple[int, int] = (10, 0)
    netbios_domain: str = "WORKGROUP"
    # RDP persona (issue 11). NLA as the edition ships: "required" (8/2012 and later),
    # "offered" (CredSSP when the client asks: Vista/7/2008), "off"; --rdp-nla overrides.
    rdp_nla_default: str = "off"
    rdp_early_user_auth: bool = False  # HYBRID_EX: Early User Authorization Result (8.1+)
    rdp_neg_flags: int = 0  # RDP_NEG_RSP flags
    rdp_server_version: int = RDP_VERSION_5_PLUS
    rdp_tls_versions: tuple[str, str] = ("1.0", "1.0")  # lowest, highest
    rdp_tls_ciphers: tuple[str, ...] = TLS_CIPHERS_WIN7
    # ECDHE curves (7-era SChannel: NIST P-256, P-384, P-521; rdesktop #97 shows secp256r1);
    # None: OpenSSL's list, X25519 first.
    rdp_tls_curves: tuple[str, ...] | None = ("P-256", "P-384", "P-521")
    rdp_cert_hash: str = "sha1"  # the self-signed certificate's signature hash

    @property
    def max_dialect_name(self) -> str:
        return DIALECT_NAMES[self.max_dialect]

    def limit(self, protocol: str) -> int | None:
        return self.smb_limit if protocol == "smb" else self.rdp_limit


# The RDP persona of Windows 10 2004 and later (Windows 11 and Server 2022 are assumed to
# send the same; README "RDP persona per edition" marks what is unverified).
_RDP_WIN10: dict[str, Any] = dict(
    rdp_nla_default="required", rdp_early_user_auth=True, rdp_neg_flags=NEG_FLAGS_WIN10,
    rdp_server_version=RDP_VERSION_10_8, rdp_tls_versions=("1.0", "1.2"),
    rdp_tls_ciphers=TLS_CIPHERS_WIN10, rdp_tls_curves=None, rdp_cert_hash="sha256")

NLA_MODES = ("required", "offered", "off")

EDITIONS: dict[str, Edition] = {
    e.name: e
    for e in [
        # XP spoke SMB1; capping it at 2.0.2 is a deliberate simplification (see README).
        Edition("xp-home", "Windows XP Home Edition", 5, 0, "none", SMB_2_0_2, version=(5, 1)),
        Edition("xp-pro", "Windows XP Professional", 10, 1, "none", SMB_2_0_2, version=(5, 1)),
        Edition("win7", "Windows 7 Professional", 20, 1, "none", SMB_2_1, version=(6, 1),
                rdp_nla=True, rdp_logon_error=STATUS_CTX_LICENSE_NOT_AVAILABLE,
                rdp_nla_default="offered", rdp_neg_flags=EXTENDED_CLIENT_DATA_SUPPORTED),
        Edition("win10", "Windows 10 Pro", 20, 1, "none", SMB_3_1_1, rdp_nla=True,
                rdp_logon_error=STATUS_CTX_LICENSE_NOT_AVAILABLE, **_RDP_WIN10),
        Edition("win11", "Windows 11 Pro", 20, 1, "none", SMB_3_1_1, rdp_nla=True,
                rdp_logon_error=STATUS_CTX_LICENSE_NOT_AVAILABLE, **_RDP_WIN10),
        Edition(
            "whs", "Windows Home Server", None, 2, "console", SMB_2_0_2,
            rdp_refusal_text=TS_REFUSAL_2003, version=(5, 2),
        ),
        Edition(
            "server-2003", "Windows Server 2003", None, 2, "console", SMB_2_0_2,
            rdp_refusal_text=TS_REFUSAL_2003, version=(5, 2),
        ),
        Edition("server-2022", "Windows Server 2022 Standard", None, 2, "admin", SMB_3_1_1,
                rdp_nla=True, rdp_logon_error=STATUS_CTX_LICENSE_NOT_AVAILABLE, **_RDP_WIN10),
    ]
}

DEFAULT_EDITION = "win10"


def get_edition(name: str) -> Edition:
    try:
        return EDITIONS[name]
    except KeyError:
        known = ", ".join(EDITIONS)
        raise ValueError(f"unknown edition {name!r} (known: {known})") from None


def format_limit(limit: int | None) -> str:
    return "unlimited" if limit is None else str(limit)
