"""MS-LSAD / MS-LSAT (the LSA policy, ``\\PIPE\\lsarpc``): who this host is, SID <-> name.

Served: LsarClose (0), LsarOpenPolicy (6) / LsarOpenPolicy2 (44),
LsarQueryInformationPolicy (7) / LsarQueryInformationPolicy2 (46) classes 3 (primary
domain: the workgroup, no SID), 4 (primary-domain account: empty), 5 and 14 (account
domain: the computer name and the machine SID), 6 (server role: primary, as a
workstation or member server answers) and 12 (DNS domain: the workgroup, no DNS names,
no SID); LsarLookupNames (14) / 2 (58) / 3 (68) and LsarLookupSids (15) / 2 (57) for the
local accounts, the Builtin aliases and the well-known SIDs. Other opnums get the fault
nca_s_op_rng_error; other information classes STATUS_INVALID_PARAMETER (MS-LSAD
3.1.4.4.3 names that status for a class out of range; the in-range classes not listed
are not served here).

Who may do what: the policy object grants an administrator everything, any
authenticated account the GENERIC_EXECUTE rights (view local information, look up
names), a null session the same only when the edition (``anonymous_lookup``) lets
anonymous callers translate SIDs; otherwise LsarOpenPolicy(2) answers
STATUS_ACCESS_DENIED, as it does for rights beyond those allowed. A handle that this
pipe did not give out, or one of another kind, is STATUS_INVALID_HANDLE (MS-LSAD
3.1.4.4.3: "If PolicyHandle is not a valid context handle ... STATUS_INVALID_HANDLE").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from impacket.dcerpc.v5 import lsad, lsat
from impacket.dcerpc.v5.dtypes import NULL, PUSHORT, ULONG
from impacket.dcerpc.v5.ndr import NDRCALL

from protocols.dcerpc.accounts import (
    NULL_HANDLE,
    SID_TYPE_UNKNOWN,
    Handle,
    HandleTable,
    LocalDatabase,
    Resolved,
    grant,
    handle_bytes,
    unicode_text,
)
from protocols.dcerpc.pdu import RPC_X_BAD_STUB_DATA
from protocols.dcerpc.service import Caller, Fault, ServerView, Service

# NTSTATUS values (MS-ERREF 2.3.1)
STATUS_SUCCESS = 0x00000000
STATUS_SOME_NOT_MAPPED = 0x00000107
STATUS_INVALID_HANDLE = 0xC0000008
STATUS_INVALID_PARAMETER = 0xC000000D
STATUS_ACCESS_DENIED = 0xC0000022
STATUS_NONE_MAPPED = 0xC0000073
STATUS_INSUFFICIENT_RESOURCES = 0xC000009A

# Policy object rights (MS-LSAD 2.2.1.1.2) and its generic mapping (MS-LSAD 3.1.1.1.2).
POLICY_VIEW_LOCAL_INFORMATION = 0x00000001
POLICY_LOOKUP_NAMES = 0x00000800
POLICY_ALL_ACCESS = 0x000F0FFF
POLICY_MAPPING = (0x00020006, 0x000207F8, 0x00020801, POLICY_ALL_ACCESS)
POLICY_EXECUTE = 0x00020801  # what Everyone gets: view local information, look up names

# POLICY_INFORMATION_CLASS values served
PRIMARY_DOMAIN, PD_ACCOUNT, ACCOUNT_DOMAIN, SERVER_ROLE = 3, 4, 5, 6
DNS_DOMAIN, LOCAL_ACCOUNT_DOMAIN = 12, 14
POLICY_SERVER_ROLE_PRIMARY = 3

# LSAP_LOOKUP_LEVEL values (MS-LSAT 2.2.16)
LOOKUP_LEVELS = range(1, 8)
# ReferencedDomains' MaxEntries, as Windows and Samba fill it.
REFERENCED_DOMAINS_MAX = 32


class LsarOpenPolicy(NDRCALL):
    """As MS-LSAD 3.1.4.4.1 declares it: SystemName is ``[in, unique] wchar_t*``, one
    character (Samba sends "\\"); impacket 0.13's request class reads a string there."""

    opnum = 6
    structure = (
        ("SystemName", PUSHORT),
        ("ObjectAttributes", lsad.LSAPR_OBJECT_ATTRIBUTES),
        ("DesiredAccess", ULONG),
    )


class LsarpcService(Service):
    name = "lsarpc"
    interface = lsat.MSRPC_UUID_LSAT  # 12345778-1234-abcd-ef00-0123456789ab 0.0
    # impacket's lookupsid.py asks 1000 SIDs a call (36 KB of stub). The IDL allows 20480
    # SIDs (1000 names); parsing costs ~0.3 s per 1000 SIDs, so larger stubs are refused
    # (rpc_x_bad_stub_data) rather than stall the server.
    max_request_stub = 64 * 1024

    def __init__(self, view: ServerView, caller: Caller) -> None:
        super().__init__(view, caller)
        self.handles = HandleTable()

    def close(self) -> None:
        self.handles.clear()

    def _allowed(self) -> int:
        if self.caller.anonymous:
            lookup = self.view.local_domain()["anonymous_lookup"]
            return POLICY_VIEW_LOCAL_INFORMATION | POLICY_LOOKUP_NAMES if lookup else 0
        return POLICY_ALL_ACCESS if self.view.is_admin(self.caller.user) else POLICY_EXECUTE

    def _policy(self, request: Any, key: str = "PolicyHandle") -> Handle | None:
        return self.handles.get(handle_bytes(request[key]), "policy")

    # -- handles ----------------------------------------------------------------------------
    def _open(self, request: Any, response: Any) -> Any:
        granted = grant(request["DesiredAccess"], self._allowed(), POLICY_MAPPING)
        key = None
        if granted is not None:
            key = self.handles.add(Handle("policy", granted))
        response["PolicyHandle"] = key or NULL_HANDLE
        response["ErrorCode"] = (STATUS_ACCESS_DENIED if granted is None else
                                 STATUS_INSUFFICIENT_RESOURCES if key is None else STATUS_SUCCESS)
        return response

    def open_policy(self, request: Any) -> Any:
        return self._open(request, lsad.LsarOpenPolicyResponse())

    def open_policy2(self, request: Any) -> Any:
        return self._open(request, lsad.LsarOpenPolicy2Response())

    def close_handle(self, request: Any) -> Any:
        response = lsad.LsarCloseResponse()
        closed = self.handles.close(handle_bytes(request["ObjectHandle"]))
        response["ObjectHandle"] = NULL_HANDLE if closed else request["ObjectHandle"]
        response["ErrorCode"] = STATUS_SUCCESS if closed else STATUS_INVALID_HANDLE
        return response

    # -- information ------------------------------------------------------------------------
    def _query(self, request: Any, response: Any) -> Any:
        level = request["InformationClass"]
        handle = self._policy(request)
        status = STATUS_SUCCESS
        if handle is None:
            status = STATUS_INVALID_HANDLE
        elif level not in (PRIMARY_DOMAIN, PD_ACCOUNT, ACCOUNT_DOMAIN, SERVER_ROLE, DNS_DOMAIN,
                           LOCAL_ACCOUNT_DOMAIN):
            status = STATUS_INVALID_PARAMETER
        elif not handle.granted & POLICY_VIEW_LOCAL_INFORMATION:
            status = STATUS_ACCESS_DENIED
        if status != STATUS_SUCCESS:
            response["PolicyInformation"] = NULL
            response["ErrorCode"] = status
            return response
        info = response["PolicyInformation"]
        info["tag"] = level
        domain = self.view.local_domain()
        if level == PRIMARY_DOMAIN:
            arm = info["PolicyPrimaryDomainInfo"]
            arm["Name"] = domain["workgroup"]
            arm["Sid"] = NULL  # a workgroup member has no primary domain SID
        elif level == PD_ACCOUNT:
            info["PolicyPdAccountInfo"]["Name"] = ""
        elif level in (ACCOUNT_DOMAIN, LOCAL_ACCOUNT_DOMAIN):
            arm = info["PolicyAccountDomainInfo" if level == ACCOUNT_DOMAIN
                       else "PolicyLocalAccountDomainInfo"]
            arm["DomainName"] = domain["name"]
            arm["DomainSid"].fromCanonical(domain["sid"])
        elif level == SERVER_ROLE:
            info["PolicyServerRoleInfo"]["LsaServerRole"] = POLICY_SERVER_ROLE_PRIMARY
        else:
            arm = info["PolicyDnsDomainInfo"]
            arm["Name"] = domain["workgroup"]
            arm["DnsDomainName"] = ""
            arm["DnsForestName"] = ""
            arm["DomainGuid"] = b"\0" * 16
            arm["Sid"] = NULL
        response["ErrorCode"] = STATUS_SUCCESS
        return response

    def query_information(self, request: Any) -> Any:
        return self._query(request, lsad.LsarQueryInformationPolicyResponse())

    def query_information2(self, request: Any) -> Any:
        return self._query(request, lsad.LsarQueryInformationPolicy2Response())

    # -- translation ------------------------------------------------------------------------
    def _check_lookup(self, request: Any) -> int:
        handle = self._policy(request)
        if handle is None:
            return STATUS_INVALID_HANDLE
        if request["LookupLevel"] not in LOOKUP_LEVELS:
            return STATUS_INVALID_PARAMETER
        if not handle.granted & POLICY_LOOKUP_NAMES:
            return STATUS_ACCESS_DENIED
        return STATUS_SUCCESS

    def _translate(self, request: Any, response: Any, items: list[Any], announced: int, *,
                   noun: str, out: str, array: str, empty_status: int | None,
                   resolve: Callable[[LocalDatabase, Any], Resolved],
                   entry: Callable[[Resolved, _ReferencedDomains], Any]) -> Any:
        """One lookup (names to SIDs or SIDs to names): each of ``items`` resolved, then
        answered as ``entry(result, domains)`` in ``response[out][array]`` (``entry`` asks
        ``domains.index`` after making its structure, as before: impacket draws each NDR
        object's referent id as it is made, and the tests' vectors hold that order). An
        empty request answers ``empty_status`` (None: the handle check's status)."""
        if announced != len(items):  # size_is(...): the stub cannot be read
            raise Fault(RPC_X_BAD_STUB_DATA, f"lsarpc: {announced} {noun} announced, "
                                             f"{len(items)} sent")
        translated = response[out]
        status = self._check_lookup(request)
        if status != STATUS_SUCCESS or not items:
            translated["Entries"], translated[array] = 0, NULL
            response["ReferencedDomains"] = NULL
            response["MappedCount"] = 0
            response["ErrorCode"] = status if items or empty_status is None else empty_status
            return response
        db = LocalDatabase(self.view)
        results = [resolve(db, item) for item in items]
        domains = _ReferencedDomains(response)
        for result in results:
            translated[array].append(entry(result, domains))
        translated["Entries"] = len(results)
        return _mapped(response, results)

    def _lookup_sids(self, request: Any, response: Any, extended: bool) -> Any:
        def entry(result: Resolved, domains: _ReferencedDomains) -> Any:
            made = lsat.LSAPR_TRANSLATED_NAME_EX() if extended else lsat.LSAPR_TRANSLATED_NAME()
            made["Use"] = result.use
            made["Name"] = result.name
            made["DomainIndex"] = domains.index(result)
            if extended:
                made["Flags"] = 0
            return made

        buffer = request["SidEnumBuffer"]
        return self._translate(
            request, response, list(buffer["SidInfo"]),  # a NULL array reads as []
            buffer["Entries"], noun="SIDs", out="TranslatedNames", array="Names",
            empty_status=None, entry=entry,
            resolve=lambda db, info: db.lookup_sid(info["Sid"].formatCanonical()))

    def lookup_sids(self, request: Any) -> Any:
        return self._lookup_sids(request, lsat.LsarLookupSidsResponse(), False)

    def lookup_sids2(self, request: Any) -> Any:
        return self._lookup_sids(request, lsat.LsarLookupSids2Response(), True)

    def _lookup_names(self, request: Any, response: Any, version: int) -> Any:
        def entry(result: Resolved, domains: _ReferencedDomains) -> Any:
            if version == 3:
                made = lsat.LSAPR_TRANSLATED_SID_EX2()
                if result.use == SID_TYPE_UNKNOWN:
                    made["Sid"] = NULL
                else:
                    made["Sid"].fromCanonical(result.sid)
            else:
                made = (lsat.LSAPR_TRANSLATED_SID_EX() if version == 2
                        else lsat.LSA_TRANSLATED_SID())
                made["RelativeId"] = result.rid or 0
            made["Use"] = result.use
            made["DomainIndex"] = domains.index(result)
            if version > 1:
                made["Flags"] = 0
            return made

        return self._translate(
            request, response, list(request["Names"]), request["Count"], noun="names",
            out="TranslatedSids", array="Sids", empty_status=STATUS_SUCCESS, entry=entry,
            resolve=lambda db, name: db.lookup_name(unicode_text(name)))

    def lookup_names(self, request: Any) -> Any:
        return self._lookup_names(request, lsat.LsarLookupNamesResponse(), 1)

    def lookup_names2(self, request: Any) -> Any:
        return self._lookup_names(request, lsat.LsarLookupNames2Response(), 2)

    def lookup_names3(self, request: Any) -> Any:
        return self._lookup_names(request, lsat.LsarLookupNames3Response(), 3)

    operations = {
        0: (lsad.LsarClose, close_handle),
        6: (LsarOpenPolicy, open_policy),
        7: (lsad.LsarQueryInformationPolicy, query_information),
        14: (lsat.LsarLookupNames, lookup_names),
        15: (lsat.LsarLookupSids, lookup_sids),
        44: (lsad.LsarOpenPolicy2, open_policy2),
        46: (lsad.LsarQueryInformationPolicy2, query_information2),
        57: (lsat.LsarLookupSids2, lookup_sids2),
        58: (lsat.LsarLookupNames2, lookup_names2),
        68: (lsat.LsarLookupNames3, lookup_names3),
    }


class _ReferencedDomains:
    """The ReferencedDomains list of a lookup answer, filled as results name domains."""

    def __init__(self, response: Any) -> None:
        self.listing = response["ReferencedDomains"]
        self.listing["MaxEntries"] = REFERENCED_DOMAINS_MAX
        self.listing["Entries"] = 0
        self.seen: dict[str, int] = {}

    def index(self, result: Resolved) -> int:
        if result.domain is None:
            return -1
        name, sid = result.domain
        if sid not in self.seen:
            entry = lsad.LSAPR_TRUST_INFORMATION()
            entry["Name"] = name
            entry["Sid"].fromCanonical(sid)
            self.listing["Domains"].append(entry)
            self.seen[sid] = len(self.seen)
            self.listing["Entries"] = len(self.seen)
        return self.seen[sid]


def _mapped(response: Any, results: list[Resolved]) -> Any:
    mapped = sum(1 for r in results if r.use != SID_TYPE_UNKNOWN)
    response["MappedCount"] = mapped
    if not response["ReferencedDomains"]["Entries"]:
        response["ReferencedDomains"]["Domains"] = NULL
    response["ErrorCode"] = (STATUS_SUCCESS if mapped == len(results) else
                             STATUS_NONE_MAPPED if mapped == 0 else STATUS_SOME_NOT_MAPPED)
    return response

