"""What samr answers with: statuses, rights, the account flags, impacket classes fixed to
match MS-SAMR, the contents of the domain and user information classes, and the shapes
of enumeration and lookup answers. ``samr`` holds the service and its handles."""

from __future__ import annotations

from typing import Any

from impacket.dcerpc.v5 import samr
from impacket.dcerpc.v5.dtypes import LARGE_INTEGER, NULL, ULONG, USHORT
from impacket.dcerpc.v5.ndr import NDRCALL, NDRPOINTER, NDRSTRUCT, NDRUNION

from protocols.dcerpc.accounts import RID_NONE_GROUP, SID_TYPE_UNKNOWN, Account, LocalDatabase

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
STATUS_NO_SUCH_ALIAS = 0xC0000151

# Generic mappings (read, write, execute, all) and what each caller is allowed.
SERVER_MAPPING = (samr.SAM_SERVER_READ, samr.SAM_SERVER_WRITE, samr.SAM_SERVER_EXECUTE,
                  samr.SAM_SERVER_ALL_ACCESS)
DOMAIN_MAPPING = (samr.DOMAIN_READ, samr.DOMAIN_WRITE, samr.DOMAIN_EXECUTE,
                  samr.DOMAIN_ALL_ACCESS)
USER_MAPPING = (samr.USER_READ, samr.USER_WRITE, samr.USER_EXECUTE, samr.USER_ALL_ACCESS)
ALIAS_MAPPING = (samr.ALIAS_READ, samr.ALIAS_WRITE, samr.ALIAS_EXECUTE, samr.ALIAS_ALL_ACCESS)
MAPPINGS = {"server": SERVER_MAPPING, "domain": DOMAIN_MAPPING, "user": USER_MAPPING,
            "alias": ALIAS_MAPPING}

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

USER_LEVELS = {  # class -> (arm, rights needed)
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
DOMAIN_LEVELS = {  # class -> rights needed
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


def fill_domain_info(buffer: Any, level: int, name: str, counts: tuple[int, int, int],
                     info: dict[str, Any]) -> None:
    """Fill the SAMPR_DOMAIN_INFO_BUFFER arm of ``level`` for the domain ``name``
    with ``counts`` (users, groups, aliases); ``info`` is ``ServerView.local_domain``."""
    users, groups, aliases = counts
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
        target["UserCount"] = users
        target["GroupCount"] = groups
        target["AliasCount"] = aliases

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


def fill_user_info(buffer: Any, level: int, account: Account) -> None:
    """Fill the SAMPR_USER_INFO_BUFFER arm of a served ``level`` (``USER_LEVELS``)."""
    arm_name = USER_LEVELS[level][0]
    buffer["tag"] = level
    arm = buffer[arm_name]
    values = user_values(account)
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


def account_of(db: LocalDatabase, rid: int) -> Account:
    account = db.account(rid)
    assert account is not None
    return account


def user_values(account: Account) -> dict[str, Any]:
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


def enumeration(response: Any, request: Any, entries: list[tuple[int, str]],
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


def ulong_arrays(response: Any, keys: tuple[str, ...], first: list[int],
                  second: list[int] | None, status: int) -> Any:
    """Fill the SAMPR_ULONG_ARRAY members ``keys`` of ``response`` (NULL when empty)."""
    for key, values in zip(keys, (first, second), strict=False):
        array = response[key]
        array["Count"] = len(values or [])
        if values:
            for value in values:
                item = ULONG()
                item["Data"] = value
                array["Element"].append(item)
        else:
            array["Element"] = NULL
    response["ErrorCode"] = status
    return response


def ulongs(array: Any) -> list[int]:
    """The values of an impacket ULONG array (items come as ints or NDRULONGs)."""
    return [item if isinstance(item, int) else item["Data"] for item in array]


def mapped_status(found: list[tuple[int, int]], asked: list[Any]) -> int:
    mapped = sum(1 for _rid, use in found if use != SID_TYPE_UNKNOWN)
    if mapped == len(asked):
        return STATUS_SUCCESS
    return STATUS_NONE_MAPPED if mapped == 0 else STATUS_SOME_NOT_MAPPED
