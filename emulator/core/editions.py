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

# What a second user of a one-session client SKU is asked, and what the signed-in user is
# asked then (README "Taking a client SKU's session over" gives each text's source).
TAKEOVER_ASK_10 = ("Another user is signed in. If you continue, they'll be disconnected. "
                   "Do you want to sign in anyway?")  # windowsa.ru, the English 10/11 string
# UNVERIFIED wording and timeout (what forum posts remember of 10's prompt; no source found).
TAKEOVER_CONSENT_10 = ("{user} wants to connect to this machine. Click OK to disconnect your "
                       "session immediately or click Cancel to stay connected. Your session "
                       "will be disconnected automatically in 30 seconds.")
# KB 280828 (XP Professional, another administrator connecting while one is logged on).
TAKEOVER_ASK_XP = ("The user {user} is currently logged on to this computer. If you "
                   "continue, this user's Windows session will end and any unsaved data will "
                   "be lost. Do you want to continue?")

ERRINFO_LOGOFF_BY_USER = 0xC  # MS-RDPBCGR 2.2.5.1.1: "the user logging off their session"

STATUS_CTX_LICENSE_NOT_AVAILABLE = 0xC00A0013  # ERROR_CTX_LICENSE_NOT_AVAILABLE 7054

# RDP_NEG_RSP flags (MS-RDPBCGR 2.2.1.2.1).
EXTENDED_CLIENT_DATA_SUPPORTED = 0x01
DYNVC_GFX_PROTOCOL_SUPPORTED = 0x02  # RDP 8.0 and later
NEGRSP_FLAG_RESERVED = 0x04
RESTRICTED_ADMIN_MODE_SUPPORTED = 0x08  # 8.1 and later
REDIRECTED_AUTHENTICATION_MODE_SUPPORTED = 0x10  # 10 1607 and later (Remote Credential Guard)
# nmap-service-probes' TerminalServerCookie matches 0x07, 0x0f and 0x1f ("0x10 Remote
# Credential Guard (Windows 10 1607 or later), 0x08 Restricted Admin (8.1 or later)").
NEG_FLAGS_81 = (EXTENDED_CLIENT_DATA_SUPPORTED | DYNVC_GFX_PROTOCOL_SUPPORTED
                | NEGRSP_FLAG_RESERVED | RESTRICTED_ADMIN_MODE_SUPPORTED)
NEG_FLAGS_10 = NEG_FLAGS_81 | REDIRECTED_AUTHENTICATION_MODE_SUPPORTED

# TS_UD_SC_CORE version (MS-RDPBCGR 2.2.1.4.2; nmap's rdp.lua names them).
RDP_VERSION_5_PLUS = 0x00080004  # RDP 5.0 to 8.1 ("RDP 5.x, 6.x, 7.x, or 8.x server")
RDP_VERSION_10_2 = 0x00080007  # Server 2016 (nmap PR #1614: "RDP 10.2 server")
RDP_VERSION_10_6 = 0x0008000B  # 1809 (Server 2019): unverified, by RDP 10.6 = 1809
RDP_VERSION_10_8 = 0x0008000D  # Windows 10 2004 (IronRDP PR #30)
# TS_UD_SC_CORE earlyCapabilityFlags: RNS_UD_SC_DYNAMIC_DST_SUPPORTED (0x02) |
# RNS_UD_SC_EDGE_ACTIONS_SUPPORTED_V2 (0x04), Server 2016's (prot-od-netcaps traces).
SC_EARLY_FLAGS_2016 = 0x06

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
NIST_CURVES = ("P-256", "P-384", "P-521")  # 7-era SChannel (rdesktop #97 shows secp256r1)

NLA_MODES = ("required", "offered", "off")

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


# SMB2 global capabilities (MS-SMB2 2.2.4).
CAP_DFS = 0x01
CAP_LEASING = 0x02
CAP_LARGE_MTU = 0x04
CAP_MULTI_CHANNEL = 0x08
CAP_PERSISTENT_HANDLES = 0x10
CAP_DIRECTORY_LEASING = 0x20
CAP_ENCRYPTION = 0x40

MIB = 1024 * 1024

# SPNEGO mechanisms of the NEGOTIATE hint (negTokenInit2 mechTypes), by name; the
# OIDs are in protocols/auth/spnego.py. NTLMSSP is the one this server accepts.
MECHS_WINDOWS = ("NEGOEX", "MS-KRB5", "KRB5", "KRB5-U2U", "NTLMSSP")
MECHS_PRE_NEGOEX = ("MS-KRB5", "KRB5", "KRB5-U2U", "NTLMSSP")

# Standard RDP Security (MS-RDPBCGR 2.2.1.4.3, 5.3.2): encryption levels and methods.
RDP_LEVEL_CLIENT_COMPATIBLE = 2
RDP_RC4_40, RDP_RC4_128, RDP_RC4_56 = 0x01, 0x02, 0x08


@dataclass(frozen=True)
class TakeoverPersona:
    """A one-session client SKU's answer to a second user: a question (Yes/No) instead of a
    refusal; on Yes the signed-in user is asked (``consent_text`` None: not asked) and their
    session is disconnected, kept, when they accept or after ``consent_timeout`` seconds.
    ``{user}`` in a text is the other user as COMPUTER\\name."""

    ask_text: str
    ask_title: str = "Windows"  # UNVERIFIED: the sign-in screen's prompt has no title bar
    ask_buttons: tuple[str, str] = ("Yes", "No")
    consent_text: str | None = None
    consent_title: str = "Remote Desktop Connection"  # UNVERIFIED
    consent_buttons: tuple[str, str] = ("OK", "Cancel")
    consent_timeout: float = 30.0
    # Set Error Info for the second user when the answer is No (theirs, or the signed-in
    # user's Cancel): the logon they gave up is logged off (UNVERIFIED).
    declined_errinfo: int = ERRINFO_LOGOFF_BY_USER


TAKEOVER_10 = TakeoverPersona(TAKEOVER_ASK_10, consent_text=TAKEOVER_CONSENT_10)
# XP: whether the logged-on user is asked is not known (KB 280828 says only that they "may be
# disconnected"): not asked; with Fast User Switching (XP Pro's workgroup default) the
# session is disconnected, kept.
TAKEOVER_XP = TakeoverPersona(TAKEOVER_ASK_XP, ask_title="Logon Message")


@dataclass(frozen=True)
class Edition:
    """One Windows product as a whole persona: limits, and what it sends where tools look.

    Every value is data read by the protocol code; README's persona table says where
    each comes from (a source, or "unverified").
    """

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
    # Security, RC4 with a proprietary certificate); both is "Negotiate", SecurityLayer's
    # default since 2003 SP1 (learn.microsoft.com ff715923, Vista to 2012 R2, and the
    # current unattend reference): TLS or CredSSP when the client offers it, RDP Security
    # otherwise unless NLA is required. rdp_negotiation False: every Connection Request
    # gets a Connection Confirm without RDP_NEG_RSP (XP's RDP 5.1 server).
    rdp_security_layers: tuple[str, ...] = ("rdp", "tls")
    rdp_negotiation: bool = True
    # Under "rdp": the encryption level and the RC4 methods offered (FIPS is not).
    rdp_encryption_level: int = RDP_LEVEL_CLIENT_COMPATIBLE
    rdp_encryption_methods: int = RDP_RC4_40 | RDP_RC4_56 | RDP_RC4_128
    # Product version and build: the NTLM CHALLENGE Version field, srvsvc's sv101 version.
    version: tuple[int, int] = (10, 0)
    build: int = 19045
    ntlm_revision: int = 15  # NTLMSSP_REVISION_W2K3
    # NEGOTIATE: the optional capabilities this product has (DFS and, on 2.1+, LEASING and
    # LARGE_MTU are always set); MULTI_CHANNEL, DIRECTORY_LEASING and ENCRYPTION only go to
    # a client that set the same bit (MS-SMB2 3.3.5.4).
    smb_capabilities: int = CAP_MULTI_CHANNEL | CAP_DIRECTORY_LEASING | CAP_ENCRYPTION
    max_io_size: int = 8 * MIB  # Max{Transact,Read,Write}Size on direct TCP (<254>)
    smb_signing_required: bool = False  # RequireSecuritySignature default (inbound)
    smb_signing_capabilities: bool = False  # 3.1.1 SMB2_SIGNING_CAPABILITIES context
    aes_256: bool = False  # AES-256-GCM/CCM among the 3.1.1 ciphers
    server_start_time: bool = False  # NEGOTIATE ServerStartTime = boot time (else 0)
    spnego_mechs: tuple[str, ...] = MECHS_WINDOWS
    # LAN Manager authentication level as a server: < 4 accepts LM, < 5 accepts NTLMv1;
    # ``ntlmv1_removed``: the product has no NTLMv1 at all (11 24H2, Server 2025).
    lm_compatibility_level: int = 3
    ntlmv1_removed: bool = False
    force_guest: bool = False  # Simple File Sharing: network logons become Guest
    # RestrictNullSessAccess / empty NullSessionPipes: a null session cannot enumerate
    # shares (srvsvc refused to it).
    restrict_null_sessions: bool = True
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
    # RDP persona. NLA as the edition ships: "required" (8/2012 and later), "offered"
    # (CredSSP when the client asks: Vista/7/2008), "off"; --rdp-nla overrides it.
    rdp_nla_default: str = "off"
    rdp_early_user_auth: bool = False  # HYBRID_EX: Early User Authorization Result (8.1+)
    rdp_neg_flags: int = 0  # RDP_NEG_RSP flags
    # A TLS ClientHello as the first bytes starts TLS (the "direct approach" that came with
    # CredSSP: 7 and later accept it, metasploit PR #12183; Vista assumed, 2003 not: both
    # unverified).
    rdp_direct_tls: bool = False
    rdp_server_version: int = RDP_VERSION_5_PLUS
    # Server core data's earlyCapabilityFlags, and whether a client's CS_MULTITRANSPORT
    # gets SC_MULTITRANSPORT back: Server 2016 sends 0x06 (DYNAMIC_DST | EDGE_ACTIONS_V2)
    # and the multitransport block (microsoft/prot-od-netcaps MS-RDSOD traces; an RDP 10.6
    # server's the same, aquesnel/rdps2rdp); before 10: 0 and none (unverified).
    rdp_early_capability_flags: int = 0
    rdp_multitransport: bool = False
    # The Demand Active's capability sets (protocols/rdp/capsets.py): "rdp10" is Server
    # 2016's seventeen from the same traces (10, 11, 2019-2025 assumed alike); "minimal"
    # the emulator's ten (Windows' before 10: unverified).
    rdp_capability_sets: str = "minimal"
    rdp_tls_versions: tuple[str, str] = ("1.0", "1.0")  # lowest, highest
    rdp_tls_ciphers: tuple[str, ...] = TLS_CIPHERS_WIN7
    rdp_tls_curves: tuple[str, ...] | None = NIST_CURVES  # None: OpenSSL's, X25519 first
    rdp_cert_hash: str = "sha1"  # the self-signed certificate's signature hash
    # Sessions at the limit: client SKUs count only the connected one (others stay,
    # disconnected: Fast User Switching) and ask a second user to take it over
    # (``rdp_takeover``); servers count disconnected sessions too and refuse.
    rdp_counts_disconnected: bool = True
    rdp_takeover: TakeoverPersona | None = None
    # The refusal box's OK: the Set Error Info sent when it is pressed (the session is
    # logged off at once); None: OK ends it as the display timer would.
    rdp_refusal_ok_errinfo: int | None = None
    # The Input Capability Set's fast-path flag (MS-RDPBCGR 2.2.7.1.6): RDP 5.0/5.1 servers
    # advertise INPUT_FLAG_FASTPATH_INPUT 0x0008, 5.2 and later FASTPATH_INPUT2 0x0020.
    rdp_fastpath_input_flag: int = 0x0020
    # SMB1 ("NT LM 0.12"): spoken at all (``smb1``), and whether SMB2 is too (``smb2``:
    # off on XP / 2003 / WHS, which drop a raw SMB2 NEGOTIATE). The NEGOTIATE values and
    # the SESSION_SETUP_ANDX strings are the product's (README's persona table).
    smb1: bool = False
    smb2: bool = True
    smb1_max_mpx: int = 50
    smb1_max_buffer: int = 16644  # MS-SMB <28>: server SKUs 16644, client SKUs 4356
    smb1_capabilities: int = 0x8001F3FD  # with CAP_EXTENDED_SECURITY
    smb1_negotiate_blob: bool = False  # a SPNEGO hint after the ServerGUID (Vista and later)
    # EnableSecuritySignature for SMB1: off as shipped on XP, 2003 (standalone), Vista and
    # 7 (SecurityMode 0x03 in XP captures; nmap smb-security-mode prints "message_signing:
    # disabled (dangerous, but default)" for them); ``signing_required`` turns it on.
    smb1_signing_enabled: bool = False
    native_os: str = ""
    native_lanman: str = ""

    @property
    def max_dialect_name(self) -> str:
        return DIALECT_NAMES[self.max_dialect]

    @property
    def accepts_lm(self) -> bool:
        return self.lm_compatibility_level < 4 and not self.ntlmv1_removed

    @property
    def accepts_ntlmv1(self) -> bool:
        return self.lm_compatibility_level < 5 and not self.ntlmv1_removed

    def limit(self, protocol: str) -> int | None:
        return self.smb_limit if protocol == "smb" else self.rdp_limit


_NLA = dict(rdp_nla=True, rdp_logon_error=STATUS_CTX_LICENSE_NOT_AVAILABLE)
# XP / 2003 / WHS spoke SMB1; capping them at 2.0.2 is a deliberate simplification (README).
_XP = dict(version=(5, 1), build=2600, smb_capabilities=0, max_io_size=64 * 1024,
           server_start_time=True, spnego_mechs=MECHS_PRE_NEGOEX, lm_compatibility_level=0,
           force_guest=True, restrict_null_sessions=False,
           sam_builtin_accounts=SAM_ACCOUNTS_XP, sam_first_user_rid=1003,
           lsa_anonymous_lookup=True, smb1=True, smb2=False, smb1_max_mpx=10,
           smb1_max_buffer=4356, smb1_capabilities=0x8000E3FD, native_os="Windows 5.1",
           native_lanman="Windows 2000 LAN Manager", rdp_fastpath_input_flag=0x0008)
# Servers keep the built-in Administrator enabled and enforce password complexity.
_SERVER_SAM = dict(sam_builtin_accounts=SAM_ACCOUNTS_2003, sam_password_complex=True)
_SERVER_SAM_10 = dict(sam_builtin_accounts=SAM_ACCOUNTS_2022, sam_password_complex=True)
_2003 = dict(_XP, version=(5, 2), build=3790, lm_compatibility_level=2, force_guest=False,
             rdp_refusal_text=TS_REFUSAL_2003,
             sam_builtin_accounts=SAM_ACCOUNTS_2003,
             sam_first_user_rid=1000, lsa_anonymous_lookup=False, smb1_max_mpx=50,
             smb1_max_buffer=16644, smb1_capabilities=0x8001F3FD,
             native_os="Windows Server 2003 3790 Service Pack 2",
             native_lanman="Windows Server 2003 5.2", rdp_fastpath_input_flag=0x0020,
             rdp_refusal_ok_errinfo=ERRINFO_LOGOFF_BY_USER)
# RDP: Vista/7/2008 offer NLA (System Properties asks; Group Policy's default is "any
# version"); 8.1/2012 R2 require it with HYBRID_EX; 10 1607 and later add 0x10, X25519.
_RDP_7: dict[str, Any] = dict(rdp_nla_default="offered", rdp_direct_tls=True,
                              rdp_neg_flags=EXTENDED_CLIENT_DATA_SUPPORTED)
_RDP_81: dict[str, Any] = dict(rdp_nla_default="required", rdp_early_user_auth=True,
                               rdp_direct_tls=True,
                               rdp_neg_flags=NEG_FLAGS_81, rdp_tls_versions=("1.0", "1.2"),
                               rdp_tls_ciphers=TLS_CIPHERS_WIN10)
_RDP_10: dict[str, Any] = dict(_RDP_81, rdp_neg_flags=NEG_FLAGS_10,
                               rdp_server_version=RDP_VERSION_10_8, rdp_tls_curves=None,
                               rdp_cert_hash="sha256",
                               rdp_early_capability_flags=SC_EARLY_FLAGS_2016,
                               rdp_multitransport=True, rdp_capability_sets="rdp10")
_VISTA = dict(version=(6, 0), build=6002, smb_capabilities=0, max_io_size=64 * 1024,
              server_start_time=True, spnego_mechs=MECHS_PRE_NEGOEX,
              sam_builtin_accounts=SAM_ACCOUNTS_7, smb1=True, smb1_max_buffer=4356,
              smb1_negotiate_blob=True,
              native_os="Windows Vista (TM) Business 6002 Service Pack 2",
              native_lanman="Windows Vista (TM) Business 6.0", **_NLA, **_RDP_7)
_WIN7 = dict(_VISTA, version=(6, 1), build=7601, max_io_size=MIB, spnego_mechs=MECHS_WINDOWS,
             native_os="Windows 7 Professional 7601 Service Pack 1",
             native_lanman="Windows 7 Professional 6.1")
_WIN8 = dict(version=(6, 3), build=9600, max_io_size=8 * MIB,
             sam_builtin_accounts=SAM_ACCOUNTS_7, **_NLA, **_RDP_81)
_WIN10 = dict(version=(10, 0), build=19045, **_NLA, **_RDP_10)
_WIN11 = dict(version=(10, 0), build=26100, smb_signing_required=True,
              smb_signing_capabilities=True, aes_256=True, ntlmv1_removed=True,
              sam_lockout=(10, 10), **_NLA, **_RDP_10)
_2022 = dict(version=(10, 0), build=20348, smb_signing_capabilities=True, aes_256=True,
             **_SERVER_SAM_10, **_NLA, **_RDP_10)

# One interactive session, taken over (Vista/7 assumed to ask as 10 does: README).
_TAKEOVER: dict[str, Any] = dict(rdp_counts_disconnected=False, rdp_takeover=TAKEOVER_10)

EDITIONS: dict[str, Edition] = {
    e.name: e
    for e in [
        Edition("xp-home", "Windows XP Home Edition", 5, 0, "none", SMB_2_0_2, **_XP),
        Edition("xp-pro", "Windows XP Professional", 10, 1, "none", SMB_2_0_2,
                **dict(_XP, rdp_security_layers=("rdp",), rdp_negotiation=False,
                       rdp_counts_disconnected=False, rdp_takeover=TAKEOVER_XP)),
        Edition("vista", "Windows Vista Business", 10, 1, "none", SMB_2_0_2,
                **_VISTA, **_TAKEOVER),
        Edition("win7", "Windows 7 Professional", 20, 1, "none", SMB_2_1, **_WIN7, **_TAKEOVER),
        Edition("win81", "Windows 8.1 Pro", 20, 1, "none", SMB_3_0_2, **_WIN8, **_TAKEOVER),
        Edition("win10-home", "Windows 10 Home", 20, 0, "none", SMB_3_1_1, **_WIN10),
        Edition("win10", "Windows 10 Pro", 20, 1, "none", SMB_3_1_1, **_WIN10, **_TAKEOVER),
        Edition("win11-home", "Windows 11 Home", 20, 0, "none", SMB_3_1_1, **_WIN11),
        Edition("win11", "Windows 11 Pro", 20, 1, "none", SMB_3_1_1, **_WIN11, **_TAKEOVER),
        Edition("whs", "Windows Home Server", None, 2, "console", SMB_2_0_2, **_2003),
        Edition("server-2003", "Windows Server 2003", None, 2, "console", SMB_2_0_2, **_2003),
        Edition("server-2008r2", "Windows Server 2008 R2 Standard", None, 2, "admin", SMB_2_1,
                **dict(_WIN7, smb1_max_buffer=16644,
                       native_os="Windows Server 2008 R2 Standard 7601 Service Pack 1",
                       native_lanman="Windows Server 2008 R2 Standard 6.1", **_SERVER_SAM)),
        Edition("server-2012r2", "Windows Server 2012 R2 Standard", None, 2, "admin",
                SMB_3_0_2, **dict(_WIN8, **_SERVER_SAM)),
        Edition("server-2016", "Windows Server 2016 Standard", None, 2, "admin", SMB_3_1_1,
                **dict(_WIN10, build=14393, rdp_server_version=RDP_VERSION_10_2,
                       **_SERVER_SAM_10)),
        Edition("server-2019", "Windows Server 2019 Standard", None, 2, "admin", SMB_3_1_1,
                **dict(_WIN10, build=17763, rdp_server_version=RDP_VERSION_10_6,
                       **_SERVER_SAM_10)),
        Edition("server-2022", "Windows Server 2022 Standard", None, 2, "admin", SMB_3_1_1,
                **_2022),
        Edition("server-2025", "Windows Server 2025 Standard", None, 2, "admin", SMB_3_1_1,
                **dict(_2022, build=26100, ntlmv1_removed=True)),
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
