"""What every admin route takes and gives: a `Call` in, a `Reply` out, and the route table
a class of handlers registers itself in (`Router`)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from emulator.admin.inputs import ApiError

JSON_TYPE = "application/json; charset=utf-8"
SECURITY_HEADERS = [
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "
     "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    # "no-referrer" would make Chromium send `Origin: null` on our own POSTs (Fetch spec:
    # the Origin of a non-CORS request follows the referrer policy).
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
]


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    client: str = ""  # the peer's address: what failed tokens are counted by


@dataclass
class Reply:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_reply(status: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
    return Reply(status, (json.dumps(obj) + "\n").encode(),
                 [("Content-Type", JSON_TYPE), *(headers or [])])


def error_reply(err: ApiError) -> Reply:
    """The JSON answer of a refusal, with the security headers every answer carries."""
    reply = json_reply(err.status, {"error": str(err)}, err.headers)
    reply.headers += SECURITY_HEADERS
    return reply


Handler = Callable[..., Any]


class Router:
    """A route table: ``@router("GET", r"/api/x/(\\d+)")`` registers a handler, whose
    pattern's groups are passed to it as strings."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def __call__(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.routes.append((method, re.compile(pattern + r"\Z", re.ASCII), fn))
            return fn
        return register

    def find(self, method: str, path: str) -> Iterator[tuple[bool, Handler | str, tuple[str, ...]]]:
        """(True, handler, groups) for a match, (False, its method, ()) for a route on the
        path that takes another method."""
        for route_method, pattern, handler in self.routes:
            match = pattern.match(path)
            if match is None:
                continue
            if route_method != method:
                yield False, route_method, ()
            else:
                yield True, handler, match.groups()
