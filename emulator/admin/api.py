"""The admin HTTP surface: JSON under /api/, Prometheus text at /metrics, the web console at /.

`AdminAPI.handle` turns a `Call` (method, path, query, headers, body) into a `Reply`
without touching twisted.web, so unit tests drive it directly; `AdminResource` is the
thin adapter that serves it.

Security model (docs/admin.md): the listener is on loopback unless `--host` says
otherwise, and answers only a Host that names it (no DNS rebinding); every /api/ and
/metrics request needs `Authorization: Bearer TOKEN` or the console's login cookie, and
wrong tokens back off per client address (`guard.py`). `AdminRequest` decides from the
request head, before any body is read, whether a body may follow and how much of it
(`AdminAPI.check_head`): only an authenticated request or a login has one, and never
more than the cap, always in memory. A cookie is sent by the browser on its own, so a request that
relies on it and is not a GET must also carry the CSRF token bound to that login
(X-CSRF-Token) and come from this origin. A bearer token is never sent on its own,
so bearer requests need neither. Any request with a foreign Origin is refused.

The API counts nothing and ends nothing itself: every change goes through an engine
(or server) method.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import math
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from twisted.logger import Logger

from emulator.core import metrics
from emulator.admin.client import NO_SUCH_CLIENT
from emulator.admin.guard import AuthThrottle, HostCheck
from emulator.admin.inputs import (
    ADVANCE, DIRECTORY, LIMIT, NAME, OPTIONAL_TEXT, RULES, SERVER_SETTINGS, SHARE_NAME, TEXT,
    ApiError, changes, field_value, json_object, path_id, query_int, shorten,
)
from emulator.core.engine import CONSOLE_SESSION_ID, DISCONNECTED, Session, file_id
from emulator.core.events import iso_time, parse_time

if TYPE_CHECKING:
    from emulator.server import EmulatorServer

log = Logger()

JSON_TYPE = "application/json; charset=utf-8"
COOKIE = "smbrdp_admin"
CSRF_HEADER = "x-csrf-token"
MAX_LOGINS = 64  # console logins kept; the oldest is forgotten beyond that
STATIC = {"/": ("console.html", "text/html; charset=utf-8"),
          "/console.js": ("console.js", "text/javascript; charset=utf-8"),
          "/console.css": ("console.css", "text/css; charset=utf-8")}
SECURITY_HEADERS = [
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "
     "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    # "no-referrer" would make Chromium send `Origin: null` on our own POSTs (Fetch spec:
    # the Origin of a non-CORS request follows the referrer policy).
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
]
UNAUTHORIZED_HEADERS = [("WWW-Authenticate", 'Bearer realm="smbrdp-emu"')]
MAX_LOGIN_BODY = 4096  # POST /login's form (`token=...`): the one body read unauthenticated


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


Handler = Callable[..., Any]
_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []
SESSION_ID = r"(\d+)"  # handlers get the text; `AdminAPI._session` reads it (path_id)


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Register a handler; its pattern's groups are passed to it as strings."""
    def register(fn: Handler) -> Handler:
        _ROUTES.append((method, re.compile(pattern + r"\Z", re.ASCII), fn))
        return fn
    return register


def _cookie(value: str, extra: str = "") -> list[tuple[str, str]]:
    return [("Set-Cookie", f"{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/{extra}")]


def error_reply(err: ApiError) -> Reply:
    """The JSON answer of a refusal, with the security headers every answer carries."""
    reply = json_reply(err.status, {"error": str(err)}, err.headers)
    reply.headers += SECURITY_HEADERS
    return reply


class AdminAPI:
    def __init__(self, server: EmulatorServer, clock: Any = None) -> None:
        self.server = server
        self.engine = server.engine
        self.token = server.admin_token
        self.logins: dict[str, str] = {}  # console login id (the cookie) -> its CSRF token
        config = server.config
        self.max_body = config.admin_max_body
        self.hosts = HostCheck(config.host, config.admin_hosts)
        # Real time even under --virtual-clock: a back-off that only an authenticated
        # POST /api/clock/advance could end would never end.
        clock = clock or server.reactor or server.clock
        self.throttle = AuthThrottle(clock.seconds, config.admin_auth_free_failures,
                                     config.admin_auth_backoff, config.admin_auth_backoff_max)

    # -- the entry points -----------------------------------------------------------------
    def handle(self, call: Call) -> Reply:
        try:
            reply = self._dispatch(call)
        except ApiError as err:
            return error_reply(err)
        except Exception:  # a bug: log it, answer JSON, keep serving
            log.failure("admin API {method} {path} failed", method=call.method, path=call.path)
            reply = json_reply(500, {"error": "internal error (see the server log)"})
        reply.headers += SECURITY_HEADERS
        return reply

    def check_head(self, call: Call, length: int | None) -> Reply | int:
        """Before a body is read (`length`: its Content-Length, None when chunked): the
        Reply that refuses the request, or how many body bytes may follow. A body is read
        only from a request whose headers authenticate it, or from a login's form."""
        try:
            self._check_host(call)
            if call.method == "POST" and call.path == "/login":
                self._check_throttle(call.client)
                cap = MAX_LOGIN_BODY
            else:
                self._authenticate(call)
                cap = self.max_body
            if length is not None and length > cap:
                raise ApiError(413, f"request body too large: {length} bytes, at most {cap}")
            return cap
        except ApiError as err:
            return error_reply(err)

    def _dispatch(self, call: Call) -> Reply:
        method = "GET" if call.method == "HEAD" else call.method  # twisted.web drops the body
        self._check_host(call)
        origin = call.headers.get("origin")
        if origin is not None and origin != self._own_origin(call):
            raise ApiError(403, f"cross-origin request from {origin} refused")
        if method == "GET" and call.path in STATIC:
            name, content_type = STATIC[call.path]
            data = resources.files("emulator.admin").joinpath("static", name).read_bytes()
            return Reply(200, data, [("Content-Type", content_type)])
        if method == "POST" and call.path == "/login":
            return self._login(call)
        if not (call.path.startswith("/api/") or call.path == "/metrics"):
            raise ApiError(404, f"no such page: {call.path}")
        self._authorize(call, method)
        allowed: set[str] = set()
        for route_method, pattern, handler in _ROUTES:
            match = pattern.match(call.path)
            if match is None:
                continue
            if route_method != method:
                allowed.add(route_method)
                continue
            result = handler(self, call, *match.groups())
            return result if isinstance(result, Reply) else json_reply(200, result)
        if allowed:
            methods = ", ".join(sorted(allowed))
            raise ApiError(405, f"{call.path} takes {methods}", [("Allow", methods)])
        raise ApiError(404, f"no such endpoint: {call.path}")

    # -- authentication -------------------------------------------------------------------
    @staticmethod
    def _own_origin(call: Call) -> str:
        return f"http://{call.headers.get('host', '')}"

    def _login_id(self, call: Call) -> str | None:
        """The console login the request's cookie names, if it is one we know."""
        try:
            cookie = SimpleCookie(call.headers.get("cookie", ""))
        except CookieError:
            return None
        morsel = cookie.get(COOKIE)
        return morsel.value if morsel is not None and morsel.value in self.logins else None

    def _check_host(self, call: Call) -> None:
        if not self.hosts.allows(call.headers.get("host")):
            host = shorten(call.headers.get("host", ""), 64)
            raise ApiError(421, f"this server does not answer to Host {host!r}: use its "
                           "listen address (or add the name with --admin-host)")

    def _check_throttle(self, client: str) -> None:
        wait = self.throttle.retry_after(client)
        if wait > 0:
            seconds = math.ceil(wait)
            raise ApiError(429, f"too many wrong tokens from {client or 'this client'}: "
                           f"try again in {seconds} s", [("Retry-After", str(seconds))])

    def _right_token(self, client: str, token: str) -> bool:
        """Compare a token a client offered, under the throttle."""
        self._check_throttle(client)
        if hmac.compare_digest(token.encode("utf-8", "surrogateescape"), self.token.encode()):
            self.throttle.succeeded(client)
            return True
        self.throttle.failed(client)
        return False

    def _authenticate(self, call: Call) -> str | None:
        """None for the bearer token, else the console login id of the cookie."""
        scheme, _, value = call.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            if self._right_token(call.client, value.strip()):
                return None
            raise ApiError(401, "unauthorized: wrong token in Authorization: Bearer",
                           UNAUTHORIZED_HEADERS)
        login = self._login_id(call)  # 256 random bits: nothing to guess, nothing to throttle
        if login is None:
            raise ApiError(401, "unauthorized: send Authorization: Bearer TOKEN",
                           UNAUTHORIZED_HEADERS)
        return login

    def _authorize(self, call: Call, method: str) -> None:
        login = self._authenticate(call)
        if login is not None and method != "GET":
            # The browser attaches the cookie by itself: prove the page is ours. (A present
            # Origin has been checked against Host already.)
            if call.headers.get("origin") is None:
                raise ApiError(403, "a cookie-authenticated change needs an Origin header")
            if not hmac.compare_digest(call.headers.get(CSRF_HEADER, "").encode(),
                                       self.logins[login].encode()):
                raise ApiError(403, "missing or wrong X-CSRF-Token")

    def _login(self, call: Call) -> Reply:
        # The console's form posts the token in the body: never in a URL, never logged.
        token = dict(parse_qsl(call.body.decode("utf-8", "replace"))).get("token", "")
        if not self._right_token(call.client, token):
            return Reply(303, b"", [("Location", "/?login=failed")])
        login = secrets.token_urlsafe(32)
        self.logins[login] = secrets.token_urlsafe(32)
        while len(self.logins) > MAX_LOGINS:
            del self.logins[next(iter(self.logins))]
        return Reply(303, b"", [("Location", "/"), *_cookie(login)])

    @route("GET", r"/api/csrf")
    def csrf(self, call: Call) -> Any:
        login = self._login_id(call)
        return {"csrf": self.logins[login] if login else None}

    @route("POST", r"/api/logout")
    def logout(self, call: Call) -> Reply:
        login = self._login_id(call)
        if login:
            del self.logins[login]
        return json_reply(200, {"logged_out": bool(login)}, _cookie("", "; Max-Age=0"))

    # -- sessions ---------------------------------------------------------------------------
    def _session(self, session_id: str) -> Session:
        wanted = path_id(session_id)
        if wanted is None:
            raise ApiError(404, f"no session {shorten(session_id)}")
        if wanted == CONSOLE_SESSION_ID:
            # qwinsta shows the console as session 0, whatever id the engine gave it.
            session = next((s for s in self.engine.sessions("rdp") if s.console), None)
        else:
            session = self.engine.get(wanted)
        if session is None:
            raise ApiError(404, f"no session {wanted}")
        return session

    def _session_row(self, session: Session) -> dict[str, Any]:
        return session.to_dict(self.engine.now(), self.engine.rules.idle_after)

    @route("GET", r"/api/sessions")
    def list_sessions(self, call: Call) -> Any:
        protocol = call.query.get("protocol") or None
        return [self._session_row(s) for s in self.engine.sessions(protocol)]

    @route("GET", rf"/api/sessions/{SESSION_ID}")
    def get_session(self, call: Call, session_id: str) -> Any:
        return self._session_row(self._session(session_id))

    def _end_session(self, session_id: str, reason: str) -> Any:
        session = self._session(session_id)
        self.engine.end(session.id, reason)  # the protocol closes it through its hook
        return {"id": session.id, "ended": reason}

    @route("DELETE", rf"/api/sessions/{SESSION_ID}")
    def delete_session(self, call: Call, session_id: str) -> Any:
        return self._end_session(session_id, "admin-delete")

    @route("POST", rf"/api/sessions/{SESSION_ID}/reset")
    def reset_session(self, call: Call, session_id: str) -> Any:
        return self._end_session(session_id, "admin-reset")

    @route("POST", rf"/api/sessions/{SESSION_ID}/disconnect")
    def disconnect_session(self, call: Call, session_id: str) -> Any:
        session = self._session(session_id)
        if session.protocol != "rdp":
            raise ApiError(409, f"session {session.id} is {session.protocol}: only Remote "
                           "Desktop sessions can be disconnected (delete or reset it instead)")
        # engine.admin_disconnect refuses only a pending session and takes an already
        # disconnected one as done: tell the caller which.
        if session.state == DISCONNECTED:
            raise ApiError(409, f"session {session.id} is already disconnected")
        if not self.engine.admin_disconnect(session.id):
            raise ApiError(409, f"session {session.id} has not finished logging on")
        return {"id": session.id, "state": DISCONNECTED}

    @route("POST", r"/api/sessions/delete")
    def delete_by_client(self, call: Call) -> Any:
        body = json_object(call.body)
        # No client: every SMB session, as `net session /delete` alone does.
        client = field_value(body, "client", OPTIONAL_TEXT, required=False)
        user = field_value(body, "user", OPTIONAL_TEXT, required=False)
        deleted = self.engine.delete_matching(client=client or None, user=user or None)
        if not deleted:
            raise ApiError(404, NO_SUCH_CLIENT)
        return {"deleted": deleted}

    @route("GET", r"/api/files")
    def list_files(self, call: Call) -> Any:
        # The ids are NetrFileEnum's: `net files ID /close` and NetrFileClose agree.
        return [{"id": file_id(s.id, i), "path": path, "user": s.user, "session": s.id,
                 "locks": 0}
                for s in self.engine.sessions() for i, path in enumerate(s.open_files)]

    @route("POST", r"/api/files/(\d+)/close")
    def close_file(self, call: Call, open_id: str) -> Any:
        wanted = path_id(open_id)
        if wanted is None or not self.engine.close_file(wanted):
            raise ApiError(404, f"no open file {shorten(open_id)}")
        return {"closed": wanted}

    # -- events, time, metrics --------------------------------------------------------------
    @route("GET", r"/api/events")
    def list_events(self, call: Call) -> Any:
        since = call.query.get("since") or None
        try:
            since_seconds = parse_time(since) if since else None
        except (ValueError, OverflowError):
            since_seconds = math.nan
        if since_seconds is not None and not math.isfinite(since_seconds):
            raise ApiError(400, "since must be ISO 8601 or POSIX seconds, got "
                           f"{shorten(since or '')!r}")
        last = query_int(call.query, "last", low=1)  # as Get-WinEvent -MaxEvents: 1 or more
        events = self.server.events
        found = events.query(event_id=query_int(call.query, "id"), since=since_seconds,
                             provider=call.query.get("provider") or None)
        # How many records the full log overwrote (the oldest go first): a header, so the
        # body stays the list Get-WinEvent would print.
        return json_reply(200, found[-last:] if last else found,
                          [("X-Events-Dropped", str(events.dropped))])

    @route("GET", r"/api/clock")
    def read_clock(self, call: Call) -> Any:
        virtual = self.server.virtual_clock is not None
        return {"now": iso_time(self.engine.now()), "virtual": virtual}

    @route("POST", r"/api/clock/advance")
    def advance_clock(self, call: Call) -> Any:
        clock = self.server.virtual_clock
        if clock is None:
            raise ApiError(409, "the clock is real: start the server with serve --virtual-clock "
                           "to move it")
        seconds = field_value(json_object(call.body), "seconds", ADVANCE)
        clock.advance(seconds)  # runs every timer that falls due (autodisconnect, expiry...)
        return {"now": iso_time(self.engine.now()), "advanced": seconds}

    @route("GET", r"/metrics")
    def prometheus(self, call: Call) -> Reply:
        return Reply(200, metrics.render(self.engine).encode(),
                     [("Content-Type", metrics.CONTENT_TYPE)])

    # -- limits, server, shares, rules --------------------------------------------------------
    def _limit_row(self, protocol: str) -> dict[str, Any]:
        return {"protocol": protocol, "limit": self.engine.limit(protocol),
                "used": self.engine.counted(protocol)}

    @route("GET", r"/api/limits")
    def list_limits(self, call: Call) -> Any:
        return [self._limit_row(p) for p in self.engine.limits()]

    @route("PUT", r"/api/limits/([^/]+)")
    def set_limit(self, call: Call, protocol: str) -> Any:
        known = self.engine.limits()
        if protocol not in known:
            raise ApiError(404, f"no protocol {protocol!r} (known: {', '.join(known)})")
        self.engine.set_limit(protocol, field_value(json_object(call.body), "limit", LIMIT))
        return self._limit_row(protocol)  # a lower limit refuses new sessions, ends none

    @route("GET", r"/api/server")
    def server_info(self, call: Call) -> Any:
        config, edition = self.server.config, self.server.edition
        return {"server_name": f"\\\\{config.netbios_name}", "comment": self.server.comment,
                "software_version": edition.product, "edition": edition.name,
                "workgroup": config.workgroup,
                "maximum_logged_on_users": self.engine.limit("smb"),
                "autodisconnect": self.engine.rules.autodisconnect_minutes}

    @route("PATCH", r"/api/server")
    def patch_server(self, call: Call) -> Any:
        update = changes(json_object(call.body), SERVER_SETTINGS)
        if "comment" in update:
            self.server.comment = update["comment"]
        if "autodisconnect" in update:
            self.engine.set_autodisconnect(update["autodisconnect"])  # re-plans the timers
        return self.server_info(call)

    @route("GET", r"/api/shares")
    def list_shares(self, call: Call) -> Any:
        return [{"name": "IPC$", "type": "ipc", "path": "", "remark": "Remote IPC"},
                *({"name": name, "type": "disk", "path": os.path.abspath(path), "remark": ""}
                  for name, path in self.server.share_dirs.items())]

    @route("GET", r"/api/rules")
    def get_rules(self, call: Call) -> Any:
        return dataclasses.asdict(self.engine.rules)

    @route("PATCH", r"/api/rules")
    def patch_rules(self, call: Call) -> Any:
        for name, value in changes(json_object(call.body), RULES).items():
            setattr(self.engine.rules, name, value)
        self.engine.rules_changed()  # the timing rules feed one expiry timer: re-plan it
        return self.get_rules(call)

    # -- test harness: accounts, shares, reset (the pytest plugin's host methods) ----------------
    @route("POST", r"/api/users")
    def add_user(self, call: Call) -> Any:
        body = json_object(call.body)
        name = field_value(body, "name", NAME)
        self.server.add_user(name, field_value(body, "password", TEXT))
        return {"name": name}

    @route("POST", r"/api/shares")
    def add_share(self, call: Call) -> Any:
        body = json_object(call.body)
        name, path = field_value(body, "name", SHARE_NAME), field_value(body, "path", DIRECTORY)
        self.server.add_share(name, path)
        return {"name": name, "path": os.path.abspath(path)}

    @route("POST", r"/api/reset")
    def reset_host(self, call: Call) -> Any:
        """A fresh host for the next test: no sessions, no events, the configured limits,
        rules and (empty) server comment. Console logins stay."""
        self.server.reset()
        return {"reset": True}
