"""MS-SAMR (the Security Account Manager, ``\\PIPE\\samr``): the local accounts.

Two domains, as on every Windows host: the account domain (the computer name and the
machine SID: the built-in accounts and the configured users) and Builtin (S-1-5-32: the
aliases Administrators, Users, Guests, Remote Desktop Users). The account domain's one
group is "None" (513), every account's primary group.

Served: SamrConnect (0) / 2 (57) / 4 (62) / 5 (64), SamrCloseHandle (1),
SamrLookupDomainInSamServer (5), SamrEnumerateDomainsInSamServer (6), SamrOpenDomain (7),
SamrQueryInformationDomain (8) / 2 (46) (every class), SamrEnumerateGroupsInDomain (11),
SamrEnumerateUsersInDomain (13), SamrEnumerateAliasesInDomain (15),
SamrGetAliasMembership (16), SamrLookupNamesInDomain (17), SamrLookupIdsInDomain (18),
SamrOpenUser (34), SamrQueryInformationUser (36) / 2 (47) classes 1, 3, 5, 6, 7, 8, 12,
16, 21, SamrGetGroupsForUser (39), SamrQueryDisplayInformation (40) / 2 (48) / 3 (51)
classes 1-3, SamrGetUserDomainPasswordInformation (44),
SamrGetDomainPasswordInformation (56). Other opnums: nca_s_op_rng_error. Other
information classes: STATUS_INVALID_INFO_CLASS.

Access (MS-SAMR 3.1.2.1 ff., each object's rights and generic mapping): an administrator
is granted everything; an authenticated account the GENERIC_READ and GENERIC_EXECUTE
rights of each object; a null session the same, except that while RestrictAnonymousSAM
is on (``restrict_anonymous_sam``) a domain does not grant it DOMAIN_LIST_ACCOUNTS, so
enumerating accounts answers STATUS_ACCESS_DENIED. Asking for a right not granted is
STATUS_ACCESS_DENIED at the open; calling with a handle that lacks the right the call
needs is STATUS_ACCESS_DENIED too. A handle this pipe did not give out, or of the wrong
kind, is STATUS_INVALID_HANDLE.

Times: logon counts and last logons are the engine's (this run's logons); a password's
last change is unknown to the emulator and answered as 0 ("never"); every account has
"password never expires".
"""

from __future__ import annotations

from typing import Any

from impacket.dcerpc.v5 import samr
from impacket.dcerpc.v5.dtypes import LARGE_INTEGER, NULL, ULONG, USHORT
from impacket.dcerpc.v5.ndr import NDRCALL, NDRPOINTER, NDRSTRUCT, NDRUNION

from protocols.dcerpc.accounts import (
    BUILTIN_ALIASES,
    BUILTIN_NAME,
    BUILTIN_SID,
    NULL_HANDLE,
    RID_NONE_GROUP,
    SID_TYPE_ALIAS,
    SID_TYPE_GROUP,
    SID_TYPE_UNKNOWN,
    SID_TYPE_USER,
    Account,
    Handle,
    HandleTable,
    LocalDatabase,
    grant,
    handle_bytes,
    unicode_text,
)
from protocols.dcerpc.pdu import RPC_X_BAD_STUB_DATA
from protocols.dcerpc.service import Caller, Fault, ServerView, Service

# NTSTATUS values (MS-ERREF 2.3.1)
STATUS_SUCCESS = 0x00000000
STATUS_MORE_ENTRIES = 0x00000105
STATUS_SOME_NOT_MAPPED = 0x00000107
STATUS_INVALID_HANDLE = 0xC0000008
STATUS_INVALID_PARAMETER = 0xC000000D
STATUS_ACCESS_DENIED = 0xC0000022
STATUS_NO_SUCH_USER = 0xC0000064
STATUS_NONE_MAPPED = 0xC0000073
STATUS_INSUFFICIENT_RESOURCES = 0xC000009A
STATUS_INVALID_INFO_CLASS = 0xC0000003
STATUS_NO_SUCH_DOMAIN = 0xC00000DF

# Generic mappings (read, write, execute, all) and what each caller is allowed.
SERVER_MAPPING = (samr.SAM_SERVER_READ, samr.SAM_SERVER_WRITE, samr.SAM_SERVER_EXECUTE,
                  samr.SAM_SERVER_ALL_ACCESS)
DOMAIN_MAPPING = (samr.DOMAIN_READ, samr.DOMAIN_WRITE, samr.DOMAIN_EXECUTE,
                  samr.DOMAIN_ALL_ACCESS)
USER_MAPPING = (samr.USER_READ, samr.USER_WRITE, samr.USER_EXECUTE, samr.USER_ALL_ACCESS)
MAPPINGS = {"server": SERVER_MAPPING, "domain": DOMAIN_MAPPING, "user": USER_MAPPING}

# USER_ACCOUNT codes (MS-SAMR 2.2.1.12)
USER_ACCOUNT_DISABLED = 0x00000001
USER_PASSWORD_NOT_REQUIRED = 0x00000004
USER_NORMAL_ACCOUNT = 0x00000010
USER_DONT_EXPIRE_PASSWORD = 0x00000200
# Group attributes: mandatory, enabled by default, enabled.
GROUP_ATTRIBUTES = 0x00000007
DOMAIN_PASSWORD_COMPLEX = 0x00000001

NEVER = 0x7FFFFFFFFFFFFFFF  # an OLD_LARGE_INTEGER time that never comes
FORCE_LOGOFF_NEVER = -0x8000000000000000
MAX_PASSWORD_AGE_DAYS = 42  # Windows' default
EPOCH_DIFFERENCE = 11_644_473_600  # seconds from 1601-01-01 to 1970-01-01
# MS-SAMR 3.1.5.11.2: more than 1000 names or RIDs in one lookup.
MAX_LOOKUP = 1000
REVISION = 3  # SAMPR_REVISION_INFO_V1.Revision

_USER_LEVELS = {  # class -> (arm, rights needed)
    1: ("General", samr.USER_READ_GENERAL),
    3: ("Logon", samr.USER_READ_GENERAL | samr.USER_READ_PREFERENCES | samr.USER_READ_LOGON
        | samr.USER_READ_ACCOUNT),
    5: ("Account", samr.USER_READ_GENERAL | samr.USER_READ_PREFERENCES | samr.USER_READ_LOGON
        | samr.USER_READ_ACCOUNT),
    6: ("Name", samr.USER_READ_GENERAL),
    7: ("AccountName", samr.USER_READ_GENERAL),
    8: ("FullName", samr.USER_READ_GENERAL),
    12: ("Profile", samr.USER_READ_LOGON),
    16: ("Control", samr.USER_READ_ACCOUNT),
    21: ("All", samr.USER_READ_GENERAL),
}
_DOMAIN_LEVELS = {  # class -> rights needed
    1: samr.DOMAIN_READ_PASSWORD_PARAMETERS, 2: samr.DOMAIN_READ_OTHER_PARAMETERS,
    3: samr.DOMAIN_READ_OTHER_PARAMETERS, 4: samr.DOMAIN_READ_OTHER_PARAMETERS,
    5: samr.DOMAIN_READ_OTHER_PARAMETERS, 6: samr.DOMAIN_READ_OTHER_PARAMETERS,
    7: samr.DOMAIN_READ_OTHER_PARAMETERS, 8: samr.DOMAIN_READ_OTHER_PARAMETERS,
    9: samr.DOMAIN_READ_OTHER_PARAMETERS,
    11: samr.DOMAIN_READ_OTHER_PARAMETERS | samr.DOMAIN_READ_PASSWORD_PARAMETERS,
    12: samr.DOMAIN_READ_PASSWORD_PARAMETERS, 13: samr.DOMAIN_READ_OTHER_PARAMETERS,
}


def large(value: int) -> dict[str, int]:
    """An OLD_LARGE_INTEGER's halves."""
    value &= 0xFFFFFFFFFFFFFFFF
    high = value >> 32
    return {"LowPart": value & 0xFFFFFFFF, "HighPart": high - (1 << 32) if high >> 31 else high}


def set_large(target: Any, value: int) -> None:
    for key, part in large(value).items():
        target[key] = part


def filetime(posix: float | None) -> int:
    return 0 if posix is None else int((posix + EPOCH_DIFFERENCE) * 10_000_000)


def account_control(account: Account) -> int:
    flags = USER_NORMAL_ACCOUNT | USER_DONT_EXPIRE_PASSWORD
    if not account.enabled:
        flags |= USER_ACCOUNT_DISABLED
    if account.rid == 501:  # Guest
        flags |= USER_PASSWORD_NOT_REQUIRED
    return flags


class SamrCloseHandle(NDRCALL):
    """As MS-SAMR 3.1.5.13.1 declares it: the handle alone (impacket 0.13's request class
    adds a DesiredAccess that Samba does not send; impacket's own four extra bytes are read
    as surplus)."""

    opnum = 1
    structure = (("SamHandle", samr.SAMPR_HANDLE),)


class _DomainGeneral(NDRSTRUCT):
    """SAMPR_DOMAIN_GENERAL_INFORMATION with UasCompatibilityRequired (an unsigned char)
    and its three padding bytes as one ULONG: the same bytes, padded with zeros as Windows
    pads them (impacket pads with 0xBF, which Samba prints as "Unknown 3: 0xbfbfbf01")."""

    structure = tuple((name, ULONG) if name == "UasCompatibilityRequired" else (name, kind)
                      for name, kind in samr.SAMPR_DOMAIN_GENERAL_INFORMATION.structure)


class _DomainGeneral2(NDRSTRUCT):
    structure = (
        ("I1", _DomainGeneral),
        ("LockoutDuration", LARGE_INTEGER),
        ("LockoutObservationWindow", LARGE_INTEGER),
        ("LockoutThreshold", USHORT),
    )


class _DomainInfoBuffer(NDRUNION):
    union = {**samr.SAMPR_DOMAIN_INFO_BUFFER.union, 2: ("General", _DomainGeneral),
             11: ("General2", _DomainGeneral2)}


class _PDomainInfoBuffer(NDRPOINTER):
    referent = (("Data", _DomainInfoBuffer),)


class SamrQueryInformationDomainResponse(NDRCALL):
    """impacket's response (opnums 8 and 46) over the zero-padded general information."""

    structure = (("Buffer", _PDomainInfoBuffer), ("ErrorCode", ULONG))


class SamrService(Service):
    name = "samr"
    interface = samr.MSRPC_UUID_SAMR  # 12345778-1234-abcd-ef00-0123456789ac 1.0

    def __init__(self, view: ServerView, caller: Caller) -> None:
        super().__init__(view, caller)
        self.handles = HandleTable()

    def close(self) -> None:
        self.handles.clear()

    # -- access ------------------------------------------------------------------------------
    def _allowed(self, kind: str) -> int:
        read, _write, execute, everything = MAPPINGS[kind]
        if not self.caller.anonymous and self.view.is_admin(self.caller.user):
            return everything
        allowed = read | execute
        if (kind == "domain" and self.caller.anonymous
                and self.view.local_domain()["restrict_anonymous_sam"]):
            allowed &= ~samr.DOMAIN_LIST_ACCOUNTS
        return allowed

    def _open(self, kind: str, desired: int, **where: Any) -> tuple[bytes, int]:
        """A new handle (or the NULL handle) and the status of the open."""
        granted = grant(desired, self._allowed(kind), MAPPINGS[kind])
        if granted is None:
            return NULL_HANDLE, STATUS_ACCESS_DENIED
        key = self.handles.add(Handle(kind, granted, **where))
        if key is None:
            return NULL_HANDLE, STATUS_INSUFFICIENT_RESOURCES
        return key, STATUS_SUCCESS

    def _handle(self, request: Any, key: str, kind: str, right: int) -> Handle | int:
        """The handle ``key`` of ``kind`` holding ``right``, or the status to answer."""
        handle = self.handles.get(handle_bytes(request[key]), kind)
        if handle is None:
            return STATUS_INVALID_HANDLE
        if handle.granted & right != right:
            return STATUS_ACCESS_DENIED
        return handle

    # -- the server ---------------------------------------------------------------------------
    def _connect(self, request: Any, response: Any) -> Any:
        handle, status = self._open("server", request["DesiredAccess"])
        response["ServerHandle"] = handle
        response["ErrorCode"] = status
        return response

    def connect(self, request: Any) -> Any:
        return self._connect(request, samr.SamrConnectResponse())

    def connect2(self, request: Any) -> Any:
        return self._connect(request, samr.SamrConnect2Response())

    def connect4(self, request: Any) -> Any:
        return self._connect(request, samr.SamrConnect4Response())

    def connect5(self, request: Any) -> Any:
        if request["InVersion"] != 1 or request["InRevisionInfo"]["tag"] != 1:
            response = samr.SamrConnect5Response()
            response["OutVersion"] = 1
            response["OutRevisionInfo"]["tag"] = 1
            response["OutRevisionInfo"]["V1"]["Revision"] = REVISION
            response["OutRevisionInfo"]["V1"]["SupportedFeatures"] = 0
            response["ServerHandle"] = NULL_HANDLE
            response["ErrorCode"] = STATUS_INVALID_PARAMETER  # MS-SAMR 3.1.5.1.1
            return response
        response = self._connect(request, samr.SamrConnect5Response())
        response["OutVersion"] = 1
        response["OutRevisionInfo"]["tag"] = 1
        response["OutRevisionInfo"]["V1"]["Revision"] = REVISION
        response["OutRevisionInfo"]["V1"]["SupportedFeatures"] = 0
        return response

    def close_handle(self, request: Any) -> Any:
        response = samr.SamrCloseHandleResponse()
        key = handle_bytes(request["SamHandle"])
        closed = self.handles.close(key)
        response["SamHandle"] = NULL_HANDLE if closed else key
        response["ErrorCode"] = STATUS_SUCCESS if closed else STATUS_INVALID_HANDLE
        return response

    def lookup_domain(self, request: Any) -> Any:
        response = samr.SamrLookupDomainInSamServerResponse()
        handle = self._handle(request, "ServerHandle", "server", samr.SAM_SERVER_LOOKUP_DOMAIN)
        sid = None if isinstance(handle, int) else LocalDatabase(self.view).domain_sid(
            unicode_text(request["Name"]))
        if isinstance(handle, int) or sid is None:
            response["DomainId"] = NULL
            response["ErrorCode"] = handle if isinstance(handle, int) else STATUS_NO_SUCH_DOMAIN
            return response
        response["DomainId"].fromCanonical(sid)
        response["ErrorCode"] = STATUS_SUCCESS
        return response

    def enumerate_domains(self, request: Any) -> Any:
        response = samr.SamrEnumerateDomainsInSamServerResponse()
        handle = self._handle(request, "ServerHandle", "server",
                              samr.SAM_SERVER_ENUMERATE_DOMAINS)
        if isinstance(handle, int):
            return _enumeration(response, request, [], handle)
        db = LocalDatabase(self.view)
        return _enumeration(response, request, [(0, db.name), (0, BUILTIN_NAME)])

    def open_domain(self, request: Any) -> Any:
        response = samr.SamrOpenDomainResponse()
        handle = self._handle(request, "ServerHandle", "server", samr.SAM_SERVER_LOOKUP_DOMAIN)
        sid = request["DomainId"].formatCanonical()
        db = LocalDatabase(self.view)
        if isinstance(handle, int):
            key, status = NULL_HANDLE, handle
        elif sid not in (db.sid, BUILTIN_SID):
            key, status = NULL_HANDLE, STATUS_NO_SUCH_DOMAIN
        else:
            key, status = self._open("domain", request["DesiredAccess"], domain_sid=sid)
        response["DomainHandle"] = key
        response["ErrorCode"] = status
        return response

    def get_domain_password_information(self, request: Any) -> Any:
        """SamrGetDomainPasswordInformation: anyone (it takes no handle)."""
        response = samr.SamrGetDomainPasswordInformationResponse()
        info = self.view.local_domain()
        response["PasswordInformation"]["MinPasswordLength"] = 0
        response["PasswordInformation"]["PasswordProperties"] = (
            DOMAIN_PASSWORD_COMPLEX if info["password_complex"] else 0)
        response["ErrorCode"] = STATUS_SUCCESS
        return response

    # -- a domain ------------------------------------------------------------------------------
    def _members(self, domain: Handle, db: LocalDatabase) -> dict[str, list[tuple[int, str]]]:
        """The (RID, name) of the users, groups and aliases of the domain."""
        if domain.domain_sid == BUILTIN_SID:
            return {"users": [], "groups": [], "aliases": sorted(BUILTIN_ALIASES.items())}
        return {"users": [(a.rid, a.name) for a in db.accounts],
                "groups": [(RID_NONE_GROUP, "None")], "aliases": []}

    def _query_domain(self, request: Any, response: Any) -> Any:
        level = request["DomainInformationClass"]
        handle = self._handle(request, "DomainHandle", "domain", 0)
        status = STATUS_SUCCESS
        if isinstance(handle, int):
            status = handle
        elif level not in _DOMAIN_LEVELS:
            status = STATUS_INVALID_INFO_CLASS
        elif handle.granted & _DOMAIN_LEVELS[level] != _DOMAIN_LEVELS[level]:
            status = STATUS_ACCESS_DENIED
        if status != STATUS_SUCCESS or isinstance(handle, int):
            response["Buffer"] = NULL
            response["ErrorCode"] = status
            return response
        db = LocalDatabase(self.view)
        info = db.info
        members = self._members(handle, db)
        builtin = handle.domain_sid == BUILTIN_SID
        name = BUILTIN_NAME if builtin else db.name
        buffer = response["Buffer"]
        buffer["tag"] = level
        threshold, minutes = info["lockout_threshold"], info["lockout_minutes"]
        window = -minutes * 60 * 10_000_000

        def general(target: Any) -> None:
            set_large(target["ForceLogoff"], FORCE_LOGOFF_NEVER)
            target["OemInformation"] = ""
            target["DomainName"] = name
            target["ReplicaSourceNodeName"] = ""
            set_large(target["DomainModifiedCount"], 1)
            target["DomainServerState"] = 1  # DomainServerEnabled
            target["DomainServerRole"] = 3  # DomainServerRolePrimary
            target["UasCompatibilityRequired"] = 1
            target["UserCount"] = len(members["users"])
            target["GroupCount"] = len(members["groups"])
            target["AliasCount"] = len(members["aliases"])

        if level == 1:
            arm = buffer["Password"]
            arm["MinPasswordLength"] = 0
            arm["PasswordHistoryLength"] = 0
            arm["PasswordProperties"] = DOMAIN_PASSWORD_COMPLEX if info["password_complex"] else 0
            set_large(arm["MaxPasswordAge"], -MAX_PASSWORD_AGE_DAYS * 86400 * 10_000_000)
            set_large(arm["MinPasswordAge"], 0)
        elif level == 2:
            general(buffer["General"])
        elif level == 3:
            set_large(buffer["Logoff"]["ForceLogoff"], FORCE_LOGOFF_NEVER)
        elif level == 4:
            buffer["Oem"]["OemInformation"] = ""
        elif level == 5:
            buffer["Name"]["DomainName"] = name
        elif level == 6:
            buffer["Replication"]["ReplicaSourceNodeName"] = ""
        elif level == 7:
            buffer["Role"]["DomainServerRole"] = 3
        elif level in (8, 13):
            arm = buffer["Modified" if level == 8 else "Modified2"]
            set_large(arm["DomainModifiedCount"], 1)
            set_large(arm["CreationTime"], 0)
            if level == 13:
                set_large(arm["ModifiedCountAtLastPromotion"], 0)
        elif level == 9:
            buffer["State"]["DomainServerState"] = 1
        elif level == 11:
            arm = buffer["General2"]
            general(arm["I1"])
            arm["LockoutDuration"] = window
            arm["LockoutObservationWindow"] = window
            arm["LockoutThreshold"] = threshold
        else:
            arm = buffer["Lockout"]
            arm["LockoutDuration"] = window
            arm["LockoutObservationWindow"] = window
            arm["LockoutThreshold"] = threshold
        response["ErrorCode"] = STATUS_SUCCESS
        return response

    def query_domain(self, request: Any) -> Any:
        return self._query_domain(request, SamrQueryInformationDomainResponse())

    def query_domain2(self, request: Any) -> Any:
        return self._query_domain(request, SamrQueryInformationDomainResponse())

    def _enumerate(self, request: Any, response: Any, what: str) -> Any:
        handle = self._handle(request, "DomainHandle", "domain", samr.DOMAIN_LIST_ACCOUNTS)
        if isinstance(handle, int):
            return _enumeration(response, request, [], handle)
        db = LocalDatabase(self.view)
        entries = self._members(handle, db)[what]
        if what == "users":
            wanted = request["UserAccountControl"]
            entries = [(rid, name) for rid, name in entries
                       if not wanted or account_control(_account(db, rid)) & wanted]
        return _enumeration(response, request, entries)

    def enumerate_users(self, request: Any) -> Any:
        return self._enumerate(request, samr.SamrEnumerateUsersInDomainResponse(), "users")

    def enumerate_groups(self, request: Any) -> Any:
        return self._enumerate(request, samr.SamrEnumerateGroupsInDomainResponse(), "groups")

    def enumerate_aliases(self, request: Any) -> Any:
        return self._enumerate(request, samr.SamrEnumerateAliasesInDomainResponse(), "aliases")

    def _display(self, request: Any, response: Any) -> Any:
        level = request["DisplayInformationClass"]
        handle = self._handle(request, "DomainHandle", "domain", samr.DOMAIN_LIST_ACCOUNTS)
        response["TotalAvailable"] = response["TotalReturned"] = 0
        if isinstance(handle, int) or level not in (1, 2, 3):
            status = handle if isinstance(handle, int) else STATUS_INVALID_INFO_CLASS
            # The union is not a pointer: an empty arm of the class asked (or users').
            response["Buffer"]["tag"] = level if 1 <= level <= 5 else 1
            arm = samr.SAMPR_DISPLAY_INFO_BUFFER.union[response["Buffer"]["tag"]][0]
            response["Buffer"][arm]["EntriesRead"] = 0
            response["Buffer"][arm]["Buffer"] = NULL
            response["ErrorCode"] = status
            return response
        db = LocalDatabase(self.view)
        members = self._members(handle, db)
        if level == 1:
            rows = [_account(db, rid) for rid, _name in members["users"]]
        elif level == 2:
            rows = []  # no machine (trust) accounts on a workgroup host
        else:
            rows = members["groups"]
        start, count = request["Index"], request["EntryCount"]
        page = rows[start:start + count] if count else []
        buffer = response["Buffer"]
        buffer["tag"] = level
        arm, entry_class = {1: ("UserInformation", samr.SAMPR_DOMAIN_DISPLAY_USER),
                            2: ("MachineInformation", samr.SAMPR_DOMAIN_DISPLAY_MACHINE),
                            3: ("GroupInformation", samr.SAMPR_DOMAIN_DISPLAY_GROUP)}[level]
        for offset, row in enumerate(page):
            entry = entry_class()
            entry["Index"] = start + offset + 1
            if level == 1:
                assert isinstance(row, Account)
                entry["Rid"], entry["AccountControl"] = row.rid, account_control(row)
                entry["AccountName"], entry["FullName"] = row.name, row.full_name
                entry["AdminComment"] = row.comment
            else:
                rid, name = row  # type: ignore[misc]
                entry["Rid"], entry["AccountControl"] = rid, GROUP_ATTRIBUTES
                entry["AccountName"], entry["AdminComment"] = name, ""
            buffer[arm]["Buffer"].append(entry)
        buffer[arm]["EntriesRead"] = len(page)
        if not page:
            buffer[arm]["Buffer"] = NULL
        response["TotalAvailable"] = len(rows)
        response["TotalReturned"] = len(page)
        more = start + len(page) < len(rows)
        response["ErrorCode"] = STATUS_MORE_ENTRIES if more else STATUS_SUCCESS
        return response

    def query_display(self, request: Any) -> Any:
        return self._display(request, samr.SamrQueryDisplayInformationResponse())

    def query_display2(self, request: Any) -> Any:
        return self._display(request, samr.SamrQueryDisplayInformation2Response())

    def query_display3(self, request: Any) -> Any:
        return self._display(request, samr.SamrQueryDisplayInformation3Response())

    def lookup_names(self, request: Any) -> Any:
        response = samr.SamrLookupNamesInDomainResponse()
        names = [unicode_text(n) for n in request["Names"]]
        if request["Count"] != len(names):
            raise Fault(RPC_X_BAD_STUB_DATA, f"samr: {request['Count']} names announced, "
                                             f"{len(names)} sent")
        handle = self._handle(request, "DomainHandle", "domain", samr.DOMAIN_LOOKUP)
        status = handle if isinstance(handle, int) else (
            STATUS_INSUFFICIENT_RESOURCES if len(names) > MAX_LOOKUP else STATUS_SUCCESS)
        if status != STATUS_SUCCESS or isinstance(handle, int):
            return _ulong_arrays(response, ("RelativeIds", "Use"), [], [], status)
        db = LocalDatabase(self.view)
        members = self._members(handle, db)
        by_name = {name.lower(): (rid, use) for use, key in (
            (SID_TYPE_USER, "users"), (SID_TYPE_GROUP, "groups"), (SID_TYPE_ALIAS, "aliases"))
            for rid, name in members[key]}
        found = [by_name.get(name.lower(), (0, SID_TYPE_UNKNOWN)) for name in names]
        return _ulong_arrays(response, ("RelativeIds", "Use"), [rid for rid, _ in found],
                             [use for _, use in found], _mapped_status(found, names))

    def lookup_ids(self, request: Any) -> Any:
        response = samr.SamrLookupIdsInDomainResponse()
        rids = list(request["RelativeIds"])
        if request["Count"] != len(rids):
            raise Fault(RPC_X_BAD_STUB_DATA, f"samr: {request['Count']} RIDs announced, "
                                             f"{len(rids)} sent")
        handle = self._handle(request, "DomainHandle", "domain", samr.DOMAIN_LOOKUP)
        status = handle if isinstance(handle, int) else (
            STATUS_INSUFFICIENT_RESOURCES if len(rids) > MAX_LOOKUP else STATUS_SUCCESS)
        names = response["Names"]
        if status != STATUS_SUCCESS or isinstance(handle, int) or not rids:
            names["Count"], names["Element"] = 0, NULL
            return _ulong_arrays(response, ("Use",), [], None, status)
        db = LocalDatabase(self.view)
        members = self._members(handle, db)
        by_rid = {rid: (name, use) for use, key in (
            (SID_TYPE_USER, "users"), (SID_TYPE_GROUP, "groups"), (SID_TYPE_ALIAS, "aliases"))
            for rid, name in members[key]}
        found = [by_rid.get(rid, ("", SID_TYPE_UNKNOWN)) for rid in rids]
        for name, _use in found:
            string = samr.RPC_UNICODE_STRING()
            string["Data"] = name
            names["Element"].append(string)
        names["Count"] = len(found)
        return _ulong_arrays(response, ("Use",), [use for _, use in found], None,
                             _mapped_status([(0, use) for _, use in found], rids))

    def get_alias_membership(self, request: Any) -> Any:
        response = samr.SamrGetAliasMembershipResponse()
        sids = [info["SidPointer"].formatCanonical() for info in request["SidArray"]["Sids"]]
        if request["SidArray"]["Count"] != len(sids):
            raise Fault(RPC_X_BAD_STUB_DATA, "samr: SID count does not match the array")
        handle = self._handle(request, "DomainHandle", "domain",
                              samr.DOMAIN_GET_ALIAS_MEMBERSHIP)
        if isinstance(handle, int):
            return _ulong_arrays(response, ("Membership",), [], None, handle)
        db = LocalDatabase(self.view)
        aliases: set[int] = set()
        if handle.domain_sid == BUILTIN_SID:
            for sid in sids:
                parent, _, rid = sid.rpartition("-")
                account = db.account(int(rid)) if parent == db.sid and rid.isdigit() else None
                if account is not None:
                    aliases.update(account.aliases)
        return _ulong_arrays(response, ("Membership",), sorted(aliases), None, STATUS_SUCCESS)

    # -- a user --------------------------------------------------------------------------------
    def open_user(self, request: Any) -> Any:
        response = samr.SamrOpenUserResponse()
        handle = self._handle(request, "DomainHandle", "domain", samr.DOMAIN_LOOKUP)
        rid = request["UserId"]
        if isinstance(handle, int):
            key, status = NULL_HANDLE, handle
        elif handle.domain_sid == BUILTIN_SID or LocalDatabase(self.view).account(rid) is None:
            key, status = NULL_HANDLE, STATUS_NO_SUCH_USER
        else:
            key, status = self._open("user", request["DesiredAccess"],
                                     domain_sid=handle.domain_sid, rid=rid)
        response["UserHandle"] = key
        response["ErrorCode"] = status
        return response

    def _user(self, request: Any, right: int) -> tuple[Account | None, int]:
        handle = self._handle(request, "UserHandle", "user", right)
        if isinstance(handle, int):
            return None, handle
        account = LocalDatabase(self.view).account(handle.rid)
        return (account, STATUS_SUCCESS) if account else (None, STATUS_NO_SUCH_USER)

    def _query_user(self, request: Any, response: Any) -> Any:
        level = request["UserInformationClass"]
        if level not in _USER_LEVELS:
            account, status = self._user(request, 0)
            if status == STATUS_SUCCESS:
                status = STATUS_INVALID_INFO_CLASS
        else:
            account, status = self._user(request, _USER_LEVELS[level][1])
        if account is None or status != STATUS_SUCCESS:
            response["Buffer"] = NULL
            response["ErrorCode"] = status
            return response
        arm_name = _USER_LEVELS[level][0]
        buffer = response["Buffer"]
        buffer["tag"] = level
        arm = buffer[arm_name]
        values = _user_values(account)
        for field, _type in arm.structure:
            if field in values:
                value = values[field]
                if isinstance(value, tuple):  # an OLD_LARGE_INTEGER
                    set_large(arm[field], value[0])
                else:
                    arm[field] = value
            elif field in ("LogonHours",):
                arm[field]["UnitsPerWeek"] = 0
                arm[field]["LogonHours"] = NULL
            elif field in ("LmOwfPassword", "NtOwfPassword"):
                arm[field]["Length"] = arm[field]["MaximumLength"] = 0
                arm[field]["Buffer"] = NULL
            elif field == "SecurityDescriptor":
                arm[field]["Length"] = 0
                arm[field]["SecurityDescriptor"] = NULL
            elif _type is samr.RPC_UNICODE_STRING:
                arm[field] = ""
            else:
                arm[field] = 0
        response["ErrorCode"] = STATUS_SUCCESS
        return response

    def query_user(self, request: Any) -> Any:
        return self._query_user(request, samr.SamrQueryInformationUserResponse())

    def query_user2(self, request: Any) -> Any:
        return self._query_user(request, samr.SamrQueryInformationUser2Response())

    def get_groups_for_user(self, request: Any) -> Any:
        response = samr.SamrGetGroupsForUserResponse()
        account, status = self._user(request, samr.USER_LIST_GROUPS)
        if account is None:
            response["Groups"] = NULL
            response["ErrorCode"] = status
            return response
        membership = samr.GROUP_MEMBERSHIP()
        membership["RelativeId"] = RID_NONE_GROUP
        membership["Attributes"] = GROUP_ATTRIBUTES
        response["Groups"]["MembershipCount"] = 1
        response["Groups"]["Groups"].append(membership)
        response["ErrorCode"] = STATUS_SUCCESS
        return response

    def get_user_password_information(self, request: Any) -> Any:
        response = samr.SamrGetUserDomainPasswordInformationResponse()
        account, status = self._user(request, samr.USER_READ_ACCOUNT)
        response["PasswordInformation"]["MinPasswordLength"] = 0
        response["PasswordInformation"]["PasswordProperties"] = (
            DOMAIN_PASSWORD_COMPLEX if self.view.local_domain()["password_complex"] else 0)
        response["ErrorCode"] = status
        return response

    operations = {
        0: (samr.SamrConnect, connect),
        1: (SamrCloseHandle, close_handle),
        5: (samr.SamrLookupDomainInSamServer, lookup_domain),
        6: (samr.SamrEnumerateDomainsInSamServer, enumerate_domains),
        7: (samr.SamrOpenDomain, open_domain),
        8: (samr.SamrQueryInformationDomain, query_domain),
        11: (samr.SamrEnumerateGroupsInDomain, enumerate_groups),
        13: (samr.SamrEnumerateUsersInDomain, enumerate_users),
        15: (samr.SamrEnumerateAliasesInDomain, enumerate_aliases),
        16: (samr.SamrGetAliasMembership, get_alias_membership),
        17: (samr.SamrLookupNamesInDomain, lookup_names),
        18: (samr.SamrLookupIdsInDomain, lookup_ids),
        34: (samr.SamrOpenUser, open_user),
        36: (samr.SamrQueryInformationUser, query_user),
        39: (samr.SamrGetGroupsForUser, get_groups_for_user),
        40: (samr.SamrQueryDisplayInformation, query_display),
        44: (samr.SamrGetUserDomainPasswordInformation, get_user_password_information),
        46: (samr.SamrQueryInformationDomain2, query_domain2),
        47: (samr.SamrQueryInformationUser2, query_user2),
        48: (samr.SamrQueryDisplayInformation2, query_display2),
        51: (samr.SamrQueryDisplayInformation3, query_display3),
        56: (samr.SamrGetDomainPasswordInformation, get_domain_password_information),
        57: (samr.SamrConnect2, connect2),
        62: (samr.SamrConnect4, connect4),
        64: (samr.SamrConnect5, connect5),
    }


# -- helpers ----------------------------------------------------------------------------------

def _account(db: LocalDatabase, rid: int) -> Account:
    account = db.account(rid)
    assert account is not None
    return account


def _user_values(account: Account) -> dict[str, Any]:
    """The fields of the USER_INFORMATION arms this server fills (times as 1-tuples)."""
    last = filetime(account.last_logon)
    return {
        "UserName": account.name, "FullName": account.full_name, "UserId": account.rid,
        "PrimaryGroupId": RID_NONE_GROUP, "AdminComment": account.comment,
        "UserComment": "", "UserAccountControl": account_control(account),
        "LastLogon": (last,), "LastLogoff": (0,), "PasswordLastSet": (0,),
        "AccountExpires": (NEVER,), "PasswordCanChange": (0,), "PasswordMustChange": (NEVER,),
        "LogonCount": min(account.logon_count, 0xFFFF), "BadPasswordCount": 0,
        "WhichFields": 0x00FFFFFF & ~0x00F00000,  # every field but the password ones
        "CountryCode": 0, "CodePage": 0, "LmPasswordPresent": 0, "NtPasswordPresent": 1,
        "PasswordExpired": 0, "PrivateDataSensitive": 0,
    }


def _enumeration(response: Any, request: Any, entries: list[tuple[int, str]],
                 status: int = STATUS_SUCCESS) -> Any:
    """Samr*Enumerate*: everything from the EnumerationContext on, at once."""
    start = request["EnumerationContext"] if status == STATUS_SUCCESS else 0
    page = entries[start:]
    if status != STATUS_SUCCESS:
        response["Buffer"] = NULL
        response["EnumerationContext"] = request["EnumerationContext"]
        response["CountReturned"] = 0
        response["ErrorCode"] = status
        return response
    buffer = response["Buffer"]
    for rid, name in page:
        entry = samr.SAMPR_RID_ENUMERATION()
        entry["RelativeId"] = rid
        entry["Name"] = name
        buffer["Buffer"].append(entry)
    buffer["EntriesRead"] = len(page)
    if not page:
        buffer["Buffer"] = NULL
    response["EnumerationContext"] = len(entries)
    response["CountReturned"] = len(page)
    response["ErrorCode"] = STATUS_SUCCESS
    return response


def _ulong_arrays(response: Any, keys: tuple[str, ...], first: list[int],
                  second: list[int] | None, status: int) -> Any:
    for key, values in zip(keys, (first, second), strict=False):
        array = response[key]
        array["Count"] = len(values or [])
        if values:
            for value in values:
                array["Element"].append(value)
        else:
            array["Element"] = NULL
    response["ErrorCode"] = status
    return response


def _mapped_status(found: list[tuple[int, int]], asked: list[Any]) -> int:
    mapped = sum(1 for _rid, use in found if use != SID_TYPE_UNKNOWN)
    if mapped == len(asked):
        return STATUS_SUCCESS
    return STATUS_NONE_MAPPED if mapped == 0 else STATUS_SOME_NOT_MAPPED
