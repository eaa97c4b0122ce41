"""What the admin API accepts from a client: JSON bodies, query integers, path ids.

Everything a client sends is checked here before a handler uses it; a value that does not
fit is an `ApiError` (a 4xx JSON answer), never an exception that becomes a 500.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The most one POST /api/clock/advance moves: past any timer, and far from where a
# timestamp overflows.
MAX_ADVANCE_SECONDS = 10 * 365 * 86400


class ApiError(Exception):
    """Answered as JSON `{"error": message}` with this status (and these headers)."""

    def __init__(self, status: int, message: str,
                 headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or []



# -- request body validation -----------------------------------------------------------------
@dataclass(frozen=True)
class Accepts:
    """What a JSON value may be: a test, and the words an error message uses for it."""

    test: Callable[[Any], bool]
    what: str


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    # Python ints are exact (and may be too large for a float): finite by nature.
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


def number(low: float, high: float, what: str, *, integer: bool = False,
           null: bool = False) -> Accepts:
    """A JSON number in [low, high] (an integer if `integer`), or null if `null`."""
    def test(value: Any) -> bool:
        if value is None:
            return null
        return (_is_int(value) if integer else _is_number(value)) and low <= value <= high
    return Accepts(test, what)


TEXT = Accepts(lambda v: isinstance(v, str), "a string")
OPTIONAL_TEXT = Accepts(lambda v: v is None or isinstance(v, str), "a string or null")
NAME = Accepts(lambda v: isinstance(v, str) and v != "", "a non-empty string")
SHARE_NAME = Accepts(lambda v: NAME.test(v) and v.lower() != "ipc$" and "\\" not in v
                     and "/" not in v, "a share name (not IPC$, no slashes)")
DIRECTORY = Accepts(lambda v: isinstance(v, str) and os.path.isdir(v),
                    "an existing directory on the emulator's machine")
FLAG = Accepts(lambda v: isinstance(v, bool), "true or false")
NAMES = Accepts(lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v),
                "a list of strings")
# Windows takes `net config server /autodisconnect:` from -1 to 65535 minutes.
AUTODISCONNECT = number(-1, 65535, "minutes from 0 to 65535 (0 = within seconds), or -1 (off)",
                        integer=True)
LIMIT = number(0, math.inf, "a number of sessions >= 0, or null for unlimited",
               integer=True, null=True)
ADVANCE = number(0, MAX_ADVANCE_SECONDS,
                 f"a number of seconds from 0 to {MAX_ADVANCE_SECONDS} (ten years)")

# Every field of engine.Rules, as PATCH /api/rules accepts it (a unit test checks that
# this names them all).
RULES: dict[str, Accepts] = {
    "autodisconnect_minutes": AUTODISCONNECT,
    "null_session_timeout": number(1, 3600, "a number of seconds from 1 to 3600"),
    "restrict_anonymous": FLAG,
    "null_session_pipes": NAMES,
    "null_session_shares": NAMES,
    "group_by_client": FLAG,
    "rdp_idle_limit": number(0, math.inf, "a number of seconds >= 0, or null (off)", null=True),
    "idle_after": number(0, math.inf, "a number of seconds >= 0"),
}
SERVER_SETTINGS: dict[str, Accepts] = {"autodisconnect": AUTODISCONNECT, "comment": TEXT}


def field_value(body: dict[str, Any], name: str, accepts: Accepts, required: bool = True) -> Any:
    """body[name], checked; a missing optional field is None."""
    if name not in body:
        if required:
            raise ApiError(400, f"{name!r} is missing: it must be {accepts.what}")
        return None
    if not accepts.test(body[name]):
        raise ApiError(400, f"{name!r} must be {accepts.what}")
    return body[name]


def changes(body: dict[str, Any], fields: dict[str, Accepts]) -> dict[str, Any]:
    """A PATCH body: every key must be one of `fields`, and every value what it accepts.
    All are checked before anything changes."""
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise ApiError(400, f"cannot change {', '.join(map(repr, unknown))} "
                       f"(changeable: {', '.join(fields)})")
    return {name: field_value(body, name, fields[name]) for name in body}


def _has_surrogates(value: Any) -> bool:
    """A string (or key) anywhere in a parsed JSON value with a lone surrogate (`"\\ud800"`):
    valid JSON, but no UTF-8 or UTF-16 name. Walked without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


_SURROGATE = re.compile("[\ud800-\udfff]")


def json_object(raw: bytes) -> dict[str, Any]:
    """A request body: a JSON object (an empty body is `{}`), text without lone surrogates."""
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise ApiError(400, f"request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    if _has_surrogates(body):
        raise ApiError(400, "request body has a string that is not valid Unicode "
                       "(a lone surrogate)")
    return body


def shorten(text: str, keep: int = 24) -> str:
    """The start of a client's text, for an error message."""
    return text if len(text) <= keep else text[:keep] + "..."


# At most 18 digits: every int64 value but the extremes, and nothing Python's int() would
# refuse (its 4300-digit limit) or read differently (`1_000`, spaces, non-ASCII digits).
_INTEGER = re.compile(r"-?[0-9]{1,18}\Z", re.ASCII)


def query_int(query: dict[str, str], name: str, low: int | None = None) -> int | None:
    text = query.get(name)
    if not text:
        return None
    if not _INTEGER.match(text):
        raise ApiError(400, f"{name} must be an integer, got {shorten(text)!r}")
    value = int(text)
    if low is not None and value < low:
        raise ApiError(400, f"{name} must be at least {low}, got {value}")
    return value


def path_id(text: str) -> int | None:
    """A numeric id from a URL path (the route matched ASCII digits): None when it is too
    long to be one the server handed out."""
    return int(text) if len(text) <= 18 else None
