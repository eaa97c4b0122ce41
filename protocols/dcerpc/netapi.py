"""What the NET API handlers (srvsvc, wkssvc) share: NET_API_STATUS values, argument
readers and the answers of Net*GetInfo / Net*Enum calls."""

from __future__ import annotations

from typing import Any

from impacket.dcerpc.v5.dtypes import NULL

from protocols.dcerpc.pdu import RPC_X_BAD_STUB_DATA
from protocols.dcerpc.service import Fault

# NET_API_STATUS values (MS-ERREF 2.2, lmerr.h) both services answer.
NERR_SUCCESS = 0
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_LEVEL = 124


def string_arg(ndr: Any, key: str) -> str | None:
    """A ``[string] wchar_t*`` argument up to its first NUL; None for a NULL ``[unique]``
    pointer. Code units that are not UTF-16 (a lone surrogate) become U+FFFD, so such a
    name matches nothing instead of failing the call."""
    member = ndr.fields[key]
    if "ReferentID" in member.fields:  # a pointer (LPWSTR); a bare WSTR has none
        if member.fields["ReferentID"] == 0:
            return None
        member = member.fields["Data"]
    raw: bytes = member.fields["Data"]
    return raw.decode("utf-16-le", "replace").split("\0", 1)[0]


def is_null(ndr: Any, key: str) -> bool:
    """Is the ``[unique]`` pointer ``key`` of ``ndr`` NULL?"""
    return ndr.fields[key].fields["ReferentID"] == 0


def dword(value: float) -> int:
    """Clamp to an unsigned 32-bit NDR DWORD."""
    return max(0, min(int(value), 0xFFFFFFFF))


def fill(target: Any, values: dict[str, Any]) -> Any:
    """Set every field of an impacket info structure from ``values``, keyed by the field's
    name after its level prefix (``sesi10_cname`` <- ``values["cname"]``), so one dict of
    values serves every level; returns ``target``."""
    for name, _type in target.structure:
        target[name] = values[name.split("_", 1)[1]]
    return target


def union_arm(union: Any, level: int, what: str) -> str:
    """Tag a ``[switch_is(Level)]`` union of a response with ``level``; the arm's name. A
    level the union has no arm for cannot be answered: bad stub data, as Windows' stub."""
    arm = type(union).union.get(level)
    if arm is None:
        raise Fault(RPC_X_BAD_STUB_DATA, f"{what} level {level}")
    union["tag"] = level
    return str(arm[0])


class InfoAnswer:
    """The answer to a Net*GetInfo call: the level's arm of the info union, or (with an
    error) a NULL arm."""

    def __init__(self, response: Any, union_key: str, level: int, what: str) -> None:
        self.response = response
        self.union = response[union_key]
        self.arm = union_arm(self.union, level, what)

    def fields(self, values: dict[str, Any]) -> Any:
        fill(self.union[self.arm], values)
        self.response["ErrorCode"] = NERR_SUCCESS
        return self.response

    def error(self, status: int) -> Any:
        self.union[self.arm] = NULL
        self.response["ErrorCode"] = status
        return self.response


class EnumAnswer:
    """The answer to a Net*Enum call: the level's container (``EntriesRead``, ``Buffer``),
    ``TotalEntries``, ``ResumeHandle`` and ``ErrorCode``. Everything is answered at once,
    whatever the preferred maximum length: the resume handle comes back 0 (NULL when the
    client sent NULL)."""

    def __init__(self, request: Any, response: Any, info_key: str, union_key: str,
                 level: int, what: str) -> None:
        self.response = response
        info = response[info_key]
        info["Level"] = level
        self.union = info[union_key]
        self.arm = union_arm(self.union, level, what)
        response["TotalEntries"] = 0
        response["ResumeHandle"] = NULL if is_null(request, "ResumeHandle") else 0

    def entries(self, entries: list[Any]) -> Any:
        container = self.union[self.arm]
        container["EntriesRead"] = len(entries)
        if entries:
            for entry in entries:
                container["Buffer"].append(entry)
        else:
            container["Buffer"] = NULL
        self.response["TotalEntries"] = len(entries)
        self.response["ErrorCode"] = NERR_SUCCESS
        return self.response

    def error(self, status: int) -> Any:
        """No entries (an empty container) and ``status``."""
        self.entries([])
        self.response["ErrorCode"] = status
        return self.response

    def unserved_level(self) -> Any:
        """A level the union has but this server does not serve: a NULL container."""
        self.union[self.arm] = NULL
        self.response["ErrorCode"] = ERROR_INVALID_LEVEL
        return self.response

