"""The editions table: what each emulated Windows product allows. Data, not branches."""

from __future__ import annotations

from dataclasses import dataclass

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

# Standard RDP Security (MS-RDPBCGR 2.2.1.4.3, 5.3.2): encryption levels and methods.
RDP_LEVEL_CLIENT_COMPATIBLE = 2
RDP_RC4_40, RDP_RC4_128, RDP_RC4_56 = 0x01, 0x02, 0x08


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
    # The RDP security layers: "tls" (TLS, and CredSSP with rdp_nla) and "rdp" (Standard RDP
    # Security, RC4 with a proprietary certificate); both is 2003 SP1's "Negotiate": TLS
    # when the client offers it, RDP Security otherwise. rdp_negotiation False: every
    # Connection Request gets a Connection Confirm without RDP_NEG_RSP (XP's RDP 5.1 server).
    rdp_security_layers: tuple[str, ...] = ("tls",)
    rdp_negotiation: bool = True
    # Under "rdp": the encryption level and the RC4 methods offered (FIPS is not).
    rdp_encryption_level: int = RDP_LEVEL_CLIENT_COMPATIBLE
    rdp_encryption_methods: int = RDP_RC4_40 | RDP_RC4_56 | RDP_RC4_128
    # MS-SRVS platform/version for later srvsvc/wkssvc answers.
    version: tuple[int, int] = (10, 0)
    netbios_domain: str = "WORKGROUP"

    @property
    def max_dialect_name(self) -> str:
        return DIALECT_NAMES[self.max_dialect]

    def limit(self, protocol: str) -> int | None:
        return self.smb_limit if protocol == "smb" else self.rdp_limit


EDITIONS: dict[str, Edition] = {
    e.name: e
    for e in [
        # XP spoke SMB1; capping it at 2.0.2 is a deliberate simplification (see README).
        Edition("xp-home", "Windows XP Home Edition", 5, 0, "none", SMB_2_0_2, version=(5, 1)),
        Edition("xp-pro", "Windows XP Professional", 10, 1, "none", SMB_2_0_2, version=(5, 1),
                rdp_security_layers=("rdp",), rdp_negotiation=False),
        Edition("win7", "Windows 7 Professional", 20, 1, "none", SMB_2_1, version=(6, 1),
                rdp_nla=True, rdp_logon_error=STATUS_CTX_LICENSE_NOT_AVAILABLE),
        Edition("win10", "Windows 10 Pro", 20, 1, "none", SMB_3_1_1, rdp_nla=True,
                rdp_logon_error=STATUS_CTX_LICENSE_NOT_AVAILABLE),
        Edition("win11", "Windows 11 Pro", 20, 1, "none", SMB_3_1_1, rdp_nla=True,
                rdp_logon_error=STATUS_CTX_LICENSE_NOT_AVAILABLE),
        Edition(
            "whs", "Windows Home Server", None, 2, "console", SMB_2_0_2,
            rdp_refusal_text=TS_REFUSAL_2003, version=(5, 2), rdp_security_layers=("rdp", "tls"),
        ),
        Edition(
            "server-2003", "Windows Server 2003", None, 2, "console", SMB_2_0_2,
            rdp_refusal_text=TS_REFUSAL_2003, version=(5, 2), rdp_security_layers=("rdp", "tls"),
        ),
        Edition("server-2022", "Windows Server 2022 Standard", None, 2, "admin", SMB_3_1_1,
                rdp_nla=True, rdp_logon_error=STATUS_CTX_LICENSE_NOT_AVAILABLE),
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
