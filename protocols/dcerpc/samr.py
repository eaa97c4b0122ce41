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
SamrOpenAlias (27), SamrGetMembersInAlias (33), SamrOpenUser (34),
SamrQueryInformationUser (36) / 2 (47) classes 1, 3, 5, 6, 7, 8, 12, 16, 21,
SamrGetGroupsForUser (39), SamrQueryDisplayInformation (40) / 2 (48) / 3 (51)
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
"password never expires". What the information classes hold is ``samr_info``'s.
"""

from __future__ import annotations

from typing import Any

from impacket.dcerpc.v5 import samr
from impacket.dcerpc.v5.dtypes import NULL

from protocols.dcerpc.accounts import (
    BUILTIN_ALIASES,
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
from protocols.dcerpc.samr_info import (
    DOMAIN_LEVELS,
    DOMAIN_PASSWORD_COMPLEX,
    GROUP_ATTRIBUTES,
    MAPPINGS,
    MAX_LOOKUP,
    REVISION,
    STATUS_ACCESS_DENIED,
    STATUS_INSUFFICIENT_RESOURCES,
    STATUS_INVALID_HANDLE,
    STATUS_INVALID_INFO_CLASS,
    STATUS_MORE_ENTRIES,
    STATUS_NO_SUCH_ALIAS,
    STATUS_NO_SUCH_DOMAIN,
    STATUS_NO_SUCH_USER,
    STATUS_SUCCESS,
    USER_LEVELS,
    SamrCloseHandle,
    SamrQueryInformationDomainResponse,
    account_control,
    account_of,
    enumeration,
    fill_domain_info,
    fill_user_info,
    mapped_status,
    ulong_arrays,
    ulongs,
)
from protocols.dcerpc.service import Caller, Fault, ServerView, Service


# SAM spells the Builtin domain so (LSA says BUILTIN).
SAM_BUILTIN_NAME = "Builtin"


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
            # SAMPR_REVISION_INFO has one arm (1): the stub cannot be read otherwise
            # (Windows' exact fault for it is not verified).
            raise Fault(RPC_X_BAD_STUB_DATA, f"samr: revision info {request['InVersion']}")
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
            return enumeration(response, request, [], handle)
        db = LocalDatabase(self.view)
        return enumeration(response, request, [(0, db.name), (0, SAM_BUILTIN_NAME)])

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
        elif level not in DOMAIN_LEVELS:
            status = STATUS_INVALID_INFO_CLASS
        elif handle.granted & DOMAIN_LEVELS[level] != DOMAIN_LEVELS[level]:
            status = STATUS_ACCESS_DENIED
        if status != STATUS_SUCCESS or isinstance(handle, int):
            response["Buffer"] = NULL
            response["ErrorCode"] = status
            return response
        db = LocalDatabase(self.view)
        members = self._members(handle, db)
        builtin = handle.domain_sid == BUILTIN_SID
        name = SAM_BUILTIN_NAME if builtin else db.name
        counts = (len(members["users"]), len(members["groups"]), len(members["aliases"]))
        fill_domain_info(response["Buffer"], level, name, counts, db.info)
        response["ErrorCode"] = STATUS_SUCCESS
        return response

    def query_domain(self, request: Any) -> Any:
        return self._query_domain(request, SamrQueryInformationDomainResponse())

    def query_domain2(self, request: Any) -> Any:
        return self._query_domain(request, SamrQueryInformationDomainResponse())

    def _enumerate(self, request: Any, response: Any, what: str) -> Any:
        handle = self._handle(request, "DomainHandle", "domain", samr.DOMAIN_LIST_ACCOUNTS)
        if isinstance(handle, int):
            return enumeration(response, request, [], handle)
        db = LocalDatabase(self.view)
        entries = self._members(handle, db)[what]
        if what == "users":
            wanted = request["UserAccountControl"]
            entries = [(rid, name) for rid, name in entries
                       if not wanted or account_control(account_of(db, rid)) & wanted]
        return enumeration(response, request, entries)

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
        rows: list[dict[str, Any]] = []  # level 2: no machine (trust) accounts here
        if level == 1:
            for rid, _name in members["users"]:
                account = account_of(db, rid)
                rows.append({"Rid": rid, "AccountControl": account_control(account),
                             "AccountName": account.name, "AdminComment": account.comment,
                             "FullName": account.full_name})
        elif level == 3:
            rows = [{"Rid": rid, "AccountControl": GROUP_ATTRIBUTES, "AccountName": name,
                     "AdminComment": ""} for rid, name in members["groups"]]
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
            for key, value in row.items():
                entry[key] = value
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
            return ulong_arrays(response, ("RelativeIds", "Use"), [], [], status)
        db = LocalDatabase(self.view)
        members = self._members(handle, db)
        by_name = {name.lower(): (rid, use) for use, key in (
            (SID_TYPE_USER, "users"), (SID_TYPE_GROUP, "groups"), (SID_TYPE_ALIAS, "aliases"))
            for rid, name in members[key]}
        found = [by_name.get(name.lower(), (0, SID_TYPE_UNKNOWN)) for name in names]
        return ulong_arrays(response, ("RelativeIds", "Use"), [rid for rid, _ in found],
                             [use for _, use in found], mapped_status(found, names))

    def lookup_ids(self, request: Any) -> Any:
        response = samr.SamrLookupIdsInDomainResponse()
        rids = ulongs(request["RelativeIds"])
        if request["Count"] != len(rids):
            raise Fault(RPC_X_BAD_STUB_DATA, f"samr: {request['Count']} RIDs announced, "
                                             f"{len(rids)} sent")
        handle = self._handle(request, "DomainHandle", "domain", samr.DOMAIN_LOOKUP)
        status = handle if isinstance(handle, int) else (
            STATUS_INSUFFICIENT_RESOURCES if len(rids) > MAX_LOOKUP else STATUS_SUCCESS)
        names = response["Names"]
        if status != STATUS_SUCCESS or isinstance(handle, int) or not rids:
            names["Count"], names["Element"] = 0, NULL
            return ulong_arrays(response, ("Use",), [], None, status)
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
        return ulong_arrays(response, ("Use",), [use for _, use in found], None,
                             mapped_status([(0, use) for _, use in found], rids))

    def get_alias_membership(self, request: Any) -> Any:
        response = samr.SamrGetAliasMembershipResponse()
        sids = [info["SidPointer"].formatCanonical() for info in request["SidArray"]["Sids"]]
        if request["SidArray"]["Count"] != len(sids):
            raise Fault(RPC_X_BAD_STUB_DATA, "samr: SID count does not match the array")
        handle = self._handle(request, "DomainHandle", "domain",
                              samr.DOMAIN_GET_ALIAS_MEMBERSHIP)
        if isinstance(handle, int):
            return ulong_arrays(response, ("Membership",), [], None, handle)
        db = LocalDatabase(self.view)
        aliases: set[int] = set()
        if handle.domain_sid == BUILTIN_SID:
            for sid in sids:
                parent, _, rid = sid.rpartition("-")
                account = db.account(int(rid)) if parent == db.sid and rid.isdigit() else None
                if account is not None:
                    aliases.update(account.aliases)
        return ulong_arrays(response, ("Membership",), sorted(aliases), None, STATUS_SUCCESS)

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
        if level not in USER_LEVELS:
            account, status = self._user(request, 0)
            if status == STATUS_SUCCESS:
                status = STATUS_INVALID_INFO_CLASS
        else:
            account, status = self._user(request, USER_LEVELS[level][1])
        if account is None or status != STATUS_SUCCESS:
            response["Buffer"] = NULL
            response["ErrorCode"] = status
            return response
        fill_user_info(response["Buffer"], level, account)
        response["ErrorCode"] = STATUS_SUCCESS
        return response

    def query_user(self, request: Any) -> Any:
        return self._query_user(request, samr.SamrQueryInformationUserResponse())

    def query_user2(self, request: Any) -> Any:
        return self._query_user(request, samr.SamrQueryInformationUser2Response())

    # -- an alias (Builtin's) ---------------------------------------------------------------------
    def open_alias(self, request: Any) -> Any:
        response = samr.SamrOpenAliasResponse()
        handle = self._handle(request, "DomainHandle", "domain", samr.DOMAIN_LOOKUP)
        rid = request["AliasId"]
        if isinstance(handle, int):
            key, status = NULL_HANDLE, handle
        elif handle.domain_sid != BUILTIN_SID or rid not in BUILTIN_ALIASES:
            key, status = NULL_HANDLE, STATUS_NO_SUCH_ALIAS
        else:
            key, status = self._open("alias", request["DesiredAccess"],
                                     domain_sid=handle.domain_sid, rid=rid)
        response["AliasHandle"] = key
        response["ErrorCode"] = status
        return response

    def get_members_in_alias(self, request: Any) -> Any:
        response = samr.SamrGetMembersInAliasResponse()
        handle = self._handle(request, "AliasHandle", "alias", samr.ALIAS_LIST_MEMBERS)
        members = response["Members"]
        if isinstance(handle, int):
            members["Count"], members["Sids"] = 0, NULL
            response["ErrorCode"] = handle
            return response
        db = LocalDatabase(self.view)
        accounts = db.alias_members(handle.rid)
        for account in accounts:
            info = samr.PSAMPR_SID_INFORMATION()
            info["SidPointer"].fromCanonical(f"{db.sid}-{account.rid}")
            members["Sids"].append(info)
        members["Count"] = len(accounts)
        if not accounts:
            members["Sids"] = NULL
        response["ErrorCode"] = STATUS_SUCCESS
        return response

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
        27: (samr.SamrOpenAlias, open_alias),
        33: (samr.SamrGetMembersInAlias, get_members_in_alias),
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
