"""Windows names on a disk share: CREATE/rename path validation, reserved device names,
wildcard matching (MS-FSA 2.1.4.4) and 8.3 aliases. Pure functions over strings."""

from __future__ import annotations

import re

from impacket import nt_errors as nt

from protocols.errors import StatusError

ILLEGAL = re.compile(r'[\x00-\x1f"*/:<>?|\\]')  # not allowed in a Windows name component
ILLEGAL_IN_PATH = re.compile(r'[\x00-\x1f"*/<>?|]')  # ':' is handled as a stream separator
MAX_COMPONENT = 255

# DOS device names Win32 reserves in every directory, with any extension ("nul.txt") and
# trailing spaces ("CON ."), case-insensitively (Microsoft, "Naming Files, Paths, and
# Namespaces"; superscript digits count as digits). What a Windows SMB server answers for
# them was not found; STATUS_OBJECT_NAME_INVALID is chosen: they are never files here.
_DIGITS = "123456789\u00b9\u00b2\u00b3"
_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL"}
                      | {f"{dev}{d}" for dev in ("COM", "LPT") for d in _DIGITS})


def is_reserved_device_name(component: str) -> bool:
    base = component.split(".", 1)[0].rstrip(" ")
    return base.upper() in _RESERVED


def split_path(name: str) -> tuple[list[str], bool]:
    """CREATE name -> normalised components, plus whether a named stream was asked for."""
    if name.startswith("\\"):
        raise StatusError(nt.STATUS_OBJECT_NAME_INVALID, "absolute path")
    if ILLEGAL_IN_PATH.search(name):
        raise StatusError(nt.STATUS_OBJECT_NAME_INVALID, "illegal character")
    comps = name.rstrip("\\").split("\\") if name.rstrip("\\") else []
    parts: list[str] = []
    stream = False
    for k, comp in enumerate(comps):
        if ":" in comp:
            base, _, suffix = comp.partition(":")
            # 'C:' (drive letters), ':x' and streams on directories along the way are invalid
            if k + 1 < len(comps) or not base or not suffix:
                raise StatusError(nt.STATUS_OBJECT_NAME_INVALID, "misplaced ':'")
            stream = suffix.lower() != ":$data"  # 'file::$DATA' is the file itself
            comp = base
        if not comp or ":" in comp or len(comp) > MAX_COMPONENT:
            raise StatusError(nt.STATUS_OBJECT_NAME_INVALID, "bad component")
        if is_reserved_device_name(comp):
            raise StatusError(nt.STATUS_OBJECT_NAME_INVALID, f"reserved device name {comp!r}")
        if comp == ".":
            continue
        if comp == "..":
            if not parts:
                raise StatusError(nt.STATUS_OBJECT_NAME_INVALID, "'..' leaves the share")
            parts.pop()
            continue
        parts.append(comp)
    return parts, stream


def wildcard_regex(pattern: str) -> re.Pattern[str]:
    """Windows name matching (MS-FSA 2.1.4.4): * ? and the DOS forms < > " ; case-insensitive."""
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == ">":  # DOS_QM: one character, or nothing before a '.' / the end
            out.append(r"(?:[^.]|(?=\.|$))")
        elif ch == '"':  # DOS_DOT: a '.', or nothing at the end
            out.append(r"(?:\.|$)")
        elif ch == "<":  # DOS_STAR: up to (not across) the final '.'
            out.append(r"(?:[^.]*|.*(?=\.[^.]*$))")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


_SHORT_CHARS = "!#$%&'()-@^_`{}~"
_SHORT_OK = re.compile(r"[A-Z0-9!#$%&'()\-@^_`{}~]{1,8}(?:\.[A-Z0-9!#$%&'()\-@^_`{}~]{1,3})?")


def short_name(name: str) -> str:
    """An 8.3 alias: the name itself when it already fits, else 'STEM~1.EXT'."""
    up = name.upper()
    if _SHORT_OK.fullmatch(up):
        return up
    stem, _, ext = up.rpartition(".") if "." in up.lstrip(".") else (up, "", "")

    def clean(s: str) -> str:
        return "".join(c for c in s if c.isascii() and (c.isalnum() or c in _SHORT_CHARS))

    ext = clean(ext)[:3]
    return (clean(stem)[:6] or "_") + "~1" + ("." + ext if ext else "")
