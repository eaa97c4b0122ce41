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

# Built-in local accounts: (RID, name, enabled by default). XP's Remote Assistance and Help
# and Support accounts take RIDs 1000 and 1002 (1001 is the HelpServicesGroup alias), so its
# first user is 1003; Vista and later ship the Administrator disabled; Windows 10 1607 adds
# DefaultAccount (503), 1709 WDAGUtilityAccount (504).
SAM_ACCOUNTS_XP = ((500, "Administrator", True), (501, "Guest", False),
                   (1000, "HelpAssistant", False), (1002, "SUPPORT_388945a0", False))
SAM_ACCOUNTS_2003 = ((500, "Administrator", True), (501, "Guest", False))
SAM_ACCOUNTS_7 = ((500, "Administrator", False), (501, "Guest", False))
SAM_ACCOUNTS_10 = (*SAM_ACCOUNTS_7, (503, "DefaultAccount", False),
                   (504, "WDAGUtilityAccount", False))
SAM_ACCOUNTS_2022 = ((500, "Administrator", True), (501, "Guest", False),
                     (503, "DefaultAccount", False))


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
    # The local SAM (lsarpc, samr): the built-in accounts as (RID, name, enabled), the RID
    # of the first account created after them, RestrictAnonymousSAM (a null session may
    # not enumerate accounts), whether a null session may translate SIDs and names (RID
    # cycling), and the account lockout policy (threshold 0 = never; minutes) and password
    # complexity as the edition ships them.
    sam_builtin_accounts: tuple[tuple[int, str, bool], ...] = SAM_ACCOUNTS_10
    sam_first_user_rid: int = 1000
    restrict_anonymous_sam: bool = True
    lsa_anonymous_lookup: bool = False
    sam_lockout: tuple[int, int] = (0, 30)
    sam_password_complex: bool = False

    @property
    def max_dialect_name(self) -> str:
        return DIALECT_NAMES[self.max_dialect]

    def limit(self, protocol: str) -> int | None:
        return self.smb_limit if protocol == "smb" else self.rdp_limit


EDITIONS: dict[str, Edition] = {
    e.name: e
    for e in [
        # XP spoke SMB1; capping it at 2.0.2 is a deliberate simplification (see README).
        Edition("xp-home", "Windows XP Home Edition", 5, 0, "none", SMB_2_0_2, version=(5, 1),
                sam_builtin_accounts=SAM_ACCOUNTS_XP, sam_first_user_rid=1003,
                lsa_anonymous_lookup=True),
        Edition("xp-pro", "Windows XP Professional", 10, 1, "none", SMB_2_0_2, version=(5, 1),
                sam_builtin_accounts=SAM_ACCOUNTS_XP, sam_first_user_rid=1003,
                lsa_anonymous_lookup=True),
        Edition("win7", "Windows 7 Professional", 20, 1, "none", SMB_2_1, version=(6, 1),
                rdp_nla=True, rdp_logon_error=STATUS_CTX_LICENSE_NOT_AVAILABLE,
                sam_builtin_accounts=SAM_ACCOUNTS_7),
        Edition("win10", "Windows 10 Pro", 20, 1, "none", SMB_3_1_1, rdp_nla=True,
                rdp_logon_error=STATUS_CTX_LICENSE_NOT_AVAILABLE),
        Edition("win11", "Windows 11 Pro", 20, 1, "none", SMB_3_1_1, rdp_nla=True,
                rdp_logon_error=STATUS_CTX_LICENSE_NOT_AVAILABLE, sam_lockout=(10, 10)),
        Edition(
            "whs", "Windows Home Server", None, 2, "console", SMB_2_0_2,
            rdp_refusal_text=TS_REFUSAL_2003, version=(5, 2),
            sam_builtin_accounts=SAM_ACCOUNTS_2003,
        ),
        Edition(
            "server-2003", "Windows Server 2003", None, 2, "console", SMB_2_0_2,
            rdp_refusal_text=TS_REFUSAL_2003, version=(5, 2),
            sam_builtin_accounts=SAM_ACCOUNTS_2003,
        ),
        Edition("server-2022", "Windows Server 2022 Standard", None, 2, "admin", SMB_3_1_1,
                rdp_nla=True, rdp_logon_error=STATUS_CTX_LICENSE_NOT_AVAILABLE,
                sam_builtin_accounts=SAM_ACCOUNTS_2022, sam_password_complex=True),
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
