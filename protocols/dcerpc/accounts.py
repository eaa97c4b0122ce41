"""The local account database as lsarpc and samr see it: the account domain (the computer),
the Builtin domain, the well-known SIDs, and lookups by SID and by name.

Built afresh from the ``ServerView`` for each call, so both services agree with the
configured users and the engine's logons at every moment. Names compare case-insensitively,
as Windows' SAM does.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocols.dcerpc.service import ServerView

# SID_NAME_USE (MS-LSAT 2.2.13, MS-SAMR 2.2.2.3)
SID_TYPE_USER, SID_TYPE_GROUP, SID_TYPE_DOMAIN, SID_TYPE_ALIAS = 1, 2, 3, 4
SID_TYPE_WELL_KNOWN_GROUP, SID_TYPE_UNKNOWN = 5, 8

BUILTIN_SID = "S-1-5-32"
BUILTIN_NAME = "BUILTIN"
NT_AUTHORITY_SID = "S-1-5"
NT_AUTHORITY_NAME = "NT AUTHORITY"

RID_ADMINISTRATORS, RID_USERS, RID_GUESTS = 544, 545, 546
RID_NONE_GROUP = 513  # "None": the one global group of a workstation's account domain

# Aliases of the Builtin domain (MS-SAMR 3.1.4.1 lists these among those a SAM creates).
BUILTIN_ALIASES = {RID_ADMINISTRATORS: "Administrators", RID_USERS: "Users",
                   RID_GUESTS: "Guests", 555: "Remote Desktop Users"}

# Well-known SIDs outside both domains: SID -> (referenced domain name, domain SID, name).
WELL_KNOWN = {
    "S-1-1-0": ("", "S-1-1", "Everyone"),
    "S-1-5-2": (NT_AUTHORITY_NAME, NT_AUTHORITY_SID, "NETWORK"),
    "S-1-5-4": (NT_AUTHORITY_NAME, NT_AUTHORITY_SID, "INTERACTIVE"),
    "S-1-5-7": (NT_AUTHORITY_NAME, NT_AUTHORITY_SID, "ANONYMOUS LOGON"),
    "S-1-5-11": (NT_AUTHORITY_NAME, NT_AUTHORITY_SID, "Authenticated Users"),
    "S-1-5-18": (NT_AUTHORITY_NAME, NT_AUTHORITY_SID, "SYSTEM"),
    "S-1-5-19": (NT_AUTHORITY_NAME, NT_AUTHORITY_SID, "LOCAL SERVICE"),
    "S-1-5-20": (NT_AUTHORITY_NAME, NT_AUTHORITY_SID, "NETWORK SERVICE"),
}

_MACHINE_SID = re.compile(r"^S-1-5-21-(\d{1,10})-(\d{1,10})-(\d{1,10})$")


def valid_machine_sid(sid: str) -> bool:
    """S-1-5-21-a-b-c with three 32-bit sub-authorities."""
    match = _MACHINE_SID.match(sid)
    return match is not None and all(int(part) <= 0xFFFFFFFF for part in match.groups())


@dataclass(frozen=True)
class Account:
    rid: int
    name: str
    enabled: bool
    admin: bool
    full_name: str = ""
    comment: str = ""
    logon_count: int = 0
    last_logon: float | None = None  # POSIX seconds

    @property
    def aliases(self) -> list[int]:
        """The Builtin aliases it is a member of."""
        if self.rid == 501:
            return [RID_GUESTS]
        if self.rid in (503, 504):  # DefaultAccount, WDAGUtilityAccount: neither alias
            return []
        return [RID_ADMINISTRATORS] if self.admin else [RID_USERS]


@dataclass(frozen=True)
class Resolved:
    """One translated SID or name: its type, the (name, SID) of its domain, its own name
    and its RID (0 for a domain itself; the full SID is ``domain_sid``-``rid``)."""

    use: int
    domain: tuple[str, str] | None  # (referenced domain name, domain SID)
    name: str
    rid: int | None  # None: the SID is the domain's (or a well-known SID, whole)
    sid: str = ""


UNKNOWN = Resolved(SID_TYPE_UNKNOWN, None, "", None)


class LocalDatabase:
    """The SAM of this host, read from ``view``."""

    def __init__(self, view: ServerView) -> None:
        self.view = view
        info = view.local_domain()
        self.name: str = info["name"]
        self.sid: str = info["sid"]
        self.info = info
        self.accounts = [Account(**a) for a in view.accounts()]

    # -- the account domain ------------------------------------------------------------------
    def account(self, rid: int) -> Account | None:
        return next((a for a in self.accounts if a.rid == rid), None)

    def account_named(self, name: str) -> Account | None:
        wanted = name.lower()
        return next((a for a in self.accounts if a.name.lower() == wanted), None)

    def alias_members(self, alias_rid: int) -> list[Account]:
        return [a for a in self.accounts if alias_rid in a.aliases]

    def domain_sid(self, name: str) -> str | None:
        """SamrLookupDomainInSamServer: the computer's domain or Builtin."""
        if name.lower() == self.name.lower():
            return self.sid
        if name.lower() == BUILTIN_NAME.lower():
            return BUILTIN_SID
        return None

    # -- translation ------------------------------------------------------------------------
    def lookup_sid(self, sid: str) -> Resolved:
        account_domain = (self.name, self.sid)
        builtin = (BUILTIN_NAME, BUILTIN_SID)
        if sid == self.sid:
            return Resolved(SID_TYPE_DOMAIN, account_domain, self.name, None, sid)
        if sid == BUILTIN_SID:
            return Resolved(SID_TYPE_DOMAIN, builtin, BUILTIN_NAME, None, sid)
        if sid in WELL_KNOWN:
            domain_name, domain_sid, name = WELL_KNOWN[sid]
            return Resolved(SID_TYPE_WELL_KNOWN_GROUP, (domain_name, domain_sid), name, None, sid)
        parent, _, last = sid.rpartition("-")
        if not last.isdigit():
            return UNKNOWN
        rid = int(last)
        if parent == self.sid:
            account = self.account(rid)
            if account is not None:
                return Resolved(SID_TYPE_USER, account_domain, account.name, rid, sid)
            if rid == RID_NONE_GROUP:
                return Resolved(SID_TYPE_GROUP, account_domain, "None", rid, sid)
            return Resolved(SID_TYPE_UNKNOWN, account_domain, "", rid, sid)
        if parent == BUILTIN_SID:
            if rid in BUILTIN_ALIASES:
                return Resolved(SID_TYPE_ALIAS, builtin, BUILTIN_ALIASES[rid], rid, sid)
            return Resolved(SID_TYPE_UNKNOWN, builtin, "", rid, sid)
        return UNKNOWN

    def lookup_name(self, qualified: str) -> Resolved:
        """``name``, ``DOMAIN\\name``, ``DOMAIN`` (a domain) or a well-known name."""
        domain, sep, name = qualified.rpartition("\\")
        domain_l, name_l = domain.lower(), name.lower()
        candidates: list[Resolved] = []
        if not sep or domain_l == self.name.lower():
            account = self.account_named(name)
            if account is not None:
                candidates.append(self.lookup_sid(f"{self.sid}-{account.rid}"))
            elif name_l == "none":
                candidates.append(self.lookup_sid(f"{self.sid}-{RID_NONE_GROUP}"))
            elif not sep and name_l == self.name.lower():
                candidates.append(self.lookup_sid(self.sid))
        if not sep or domain_l == BUILTIN_NAME.lower():
            for rid, alias in BUILTIN_ALIASES.items():
                if alias.lower() == name_l:
                    candidates.append(self.lookup_sid(f"{BUILTIN_SID}-{rid}"))
            if not sep and name_l == BUILTIN_NAME.lower():
                candidates.append(self.lookup_sid(BUILTIN_SID))
        for sid, (wk_domain, _wk_sid, wk_name) in WELL_KNOWN.items():
            if wk_name.lower() == name_l and (not sep or wk_domain.lower() == domain_l):
                candidates.append(self.lookup_sid(sid))
        return candidates[0] if candidates else UNKNOWN


def account_dicts(users: list[str], admins: set[str], edition_builtins: tuple[tuple[int, str,
                  bool], ...], first_rid: int,
                  logons: Mapping[str, tuple[int, float]]) -> list[dict[str, Any]]:
    """The accounts of a host (what ``ServerView.accounts`` returns): the edition's
    built-in accounts (a configured user of the same name is that account, enabled), then
    the other configured users from ``first_rid`` upward in their configured order."""
    by_name = {u.lower(): u for u in users}
    out: list[dict[str, Any]] = []
    for rid, name, enabled in edition_builtins:
        configured = name.lower() in by_name
        out.append({"rid": rid, "name": by_name.get(name.lower(), name),
                    "enabled": enabled or configured,
                    "admin": rid == 500 or name.lower() in admins})
    taken = {name.lower() for _rid, name, _enabled in edition_builtins}
    rid = first_rid
    for user in users:
        if user.lower() in taken:
            continue
        out.append({"rid": rid, "name": user, "enabled": True, "admin": user.lower() in admins})
        rid += 1
    for entry in out:
        count, last = logons.get(entry["name"].lower(), (0, None))
        entry["logon_count"], entry["last_logon"] = count, last
    return out


# -- access masks and context handles shared by lsarpc and samr ------------------------------------

MAXIMUM_ALLOWED = 0x02000000
ACCESS_SYSTEM_SECURITY = 0x01000000
GENERIC_READ, GENERIC_WRITE = 0x80000000, 0x40000000
GENERIC_EXECUTE, GENERIC_ALL = 0x20000000, 0x10000000
READ_CONTROL = 0x00020000


def grant(desired: int, allowed: int, mapping: tuple[int, int, int, int]) -> int | None:
    """The access granted for ``desired`` when the object's security allows ``allowed``;
    None when it must be refused (STATUS_ACCESS_DENIED). ``mapping`` is the object's
    generic mapping (read, write, execute, all). MAXIMUM_ALLOWED grants all that is
    allowed, refused only when nothing is."""
    wanted = desired & ~(MAXIMUM_ALLOWED | GENERIC_READ | GENERIC_WRITE | GENERIC_EXECUTE
                         | GENERIC_ALL)
    for bit, mapped in zip((GENERIC_READ, GENERIC_WRITE, GENERIC_EXECUTE, GENERIC_ALL),
                           mapping, strict=True):
        if desired & bit:
            wanted |= mapped
    if wanted & ~allowed:
        return None
    if desired & MAXIMUM_ALLOWED:
        return allowed if allowed else None
    return wanted


@dataclass
class Handle:
    kind: str  # "policy", "server", "domain", "user", "alias"
    granted: int
    domain_sid: str = ""
    rid: int = 0


# Context handles one pipe may hold at once; past that, STATUS_INSUFFICIENT_RESOURCES.
MAX_HANDLES = 256


class HandleTable:
    """The context handles one pipe open has given out: 4 attribute bytes (0) and a GUID.
    They live as long as the pipe open (the ``Service``), so they go with it."""

    def __init__(self) -> None:
        self._handles: dict[bytes, Handle] = {}

    def __len__(self) -> int:
        return len(self._handles)

    def add(self, handle: Handle) -> bytes | None:
        if len(self._handles) >= MAX_HANDLES:
            return None
        key = b"\0\0\0\0" + uuid.uuid4().bytes
        self._handles[key] = handle
        return key

    def get(self, key: bytes, *kinds: str) -> Handle | None:
        """The handle if it is one of ``kinds``; None for an unknown one or another kind."""
        handle = self._handles.get(bytes(key))
        return handle if handle is not None and handle.kind in kinds else None

    def close(self, key: bytes) -> bool:
        return self._handles.pop(bytes(key), None) is not None

    def clear(self) -> None:
        self._handles.clear()


NULL_HANDLE = b"\0" * 20


def unicode_text(string: Any) -> str:
    """An RPC_UNICODE_STRING's text (a NULL buffer: ""); lone surrogates become U+FFFD.
    impacket hands a structure member over as its text already."""
    if isinstance(string, (str, bytes)):
        return string.decode("utf-16-le", "replace") if isinstance(string, bytes) else string
    data = string.fields["Data"]
    if "ReferentID" in data.fields and data.fields["ReferentID"] == 0:
        return ""
    value = string["Data"]
    if isinstance(value, bytes):
        return value.decode("utf-16-le", "replace")
    return str(value)


def handle_bytes(handle: Any) -> bytes:
    """A context handle field's 20 bytes (impacket gives the bytes, or the struct)."""
    if isinstance(handle, bytes):
        return handle
    return bytes(handle.getData())
