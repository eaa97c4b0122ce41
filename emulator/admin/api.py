"""The admin HTTP surface: JSON under /api/, Prometheus text at /metrics, the web console at /.

`AdminAPI.handle` turns a `Call` (method, path, query, headers, body) into a `Reply`
without touching twisted.web, so unit tests drive it directly; `AdminResource` is the
thin adapter that serves it.

Security model (docs/admin.md): the listener is on loopback unless `--host` says
otherwise; every /api/ and /metrics request needs `Authorization: Bearer TOKEN` or the
console's login cookie. A cookie is sent by the browser on its own, so a mutating
request that relies on it must also carry the CSRF token bound to that login
(X-CSRF-Token) and come from this origin. A bearer token is never sent on its own,
so bearer requests need neither. Any request with a foreign Origin is refused.
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
from urllib.parse import parse_qsl, urlsplit

from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site

from emulator import metrics
from emulator.engine import DISCONNECTED, Session
from emulator.events import iso_time, parse_time

if TYPE_CHECKING:
    from emulator.server import EmulatorServer

log = Logger()

JSON_TYPE = "application/json; charset=utf-8"
COOKIE = "smbrdp_admin"
CSRF_HEADER = "x-csrf-token"
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
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
# NERR_ClientNameNotFound (2312), what `net session \\X /delete` says for an unknown client.
NO_SUCH_CLIENT = "A session does not exist with that computer name."


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""


@dataclass
class Reply:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def json_reply(status: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> Reply:
    return Reply(status, (json.dumps(obj) + "\n").encode(),
                 [("Content-Type", JSON_TYPE), *(headers or [])])


Handler = Callable[..., Any]
_ROUTES: list[tuple[str, re.Pattern[str], Handler]] = []


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _ROUTES.append((method, re.compile(pattern + r"\Z"), fn))
        return fn
    return register


# -- request body validation: one helper per JSON type ---------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# What each Rules field accepts (its annotation, as a string under `from __future__`).
_RULE_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "int": (_is_int, "an integer"),
    "float": (_is_number, "a number"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "list[str]": (_is_str_list, "a list of strings"),
    "float | None": (lambda v: v is None or _is_number(v), "a number or null"),
}
_RULE_RANGES: dict[str, tuple[float, float, str]] = {
    "autodisconnect_minutes": (-1, math.inf, "minutes, 0, or -1 (off)"),
    "null_session_timeout": (1, 3600, "1 to 3600 seconds"),
    "rdp_idle_limit": (0, math.inf, "seconds (null = off)"),
    "idle_after": (0, math.inf, "seconds"),
}


def _checked(body: dict[str, Any], name: str, ok: Callable[[Any], bool], what: str,
             required: bool = True) -> Any:
    if required and name not in body:
        raise ApiError(400, f"{name!r} is missing: it must be {what}")
    value = body.get(name)
    if not ok(value):
        raise ApiError(400, f"{name!r} must be {what}")
    return value


class AdminAPI:
    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.engine = server.engine
        self.token = server.admin_token
        self.comment = ""  # net config server /srvcomment
        self.logins: dict[str, str] = {}  # console cookie -> its CSRF token

    # -- the one entry point --------------------------------------------------------------
    def handle(self, call: Call) -> Reply:
        try:
            reply = self._dispatch(call)
        except ApiError as err:
            reply = json_reply(err.status, {"error": str(err)})
            if err.status == 401:
                reply.headers.append(("WWW-Authenticate", 'Bearer realm="smbrdp-emu"'))
        except Exception:  # a bug: log it, answer JSON, keep serving
            log.failure("admin API {method} {path} failed", method=call.method, path=call.path)
            reply = json_reply(500, {"error": "internal error (see the server log)"})
        reply.headers += SECURITY_HEADERS
        return reply

    def _dispatch(self, call: Call) -> Reply:
        method = "GET" if call.method == "HEAD" else call.method
        origin = call.headers.get("origin")
        if origin is not None and not self._same_origin(call):
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
        if call.path == "/metrics":
            if method != "GET":
                raise ApiError(405, "/metrics is GET only")
            return Reply(200, metrics.render(self.engine).encode(),
                         [("Content-Type", metrics.CONTENT_TYPE)])
        allowed = []
        for route_method, pattern, handler in _ROUTES:
            match = pattern.match(call.path)
            if match is None:
                continue
            if route_method != method:
                allowed.append(route_method)
                continue
            args = [int(g) if g.isdigit() else g for g in match.groups()]
            result = handler(self, call, *args)
            return result if isinstance(result, Reply) else json_reply(200, result)
        if allowed:
            raise ApiError(405, f"{call.path} takes {', '.join(sorted(set(allowed)))}")
        raise ApiError(404, f"no such endpoint: {call.path}")

    # -- authentication -------------------------------------------------------------------
    def _same_origin(self, call: Call) -> bool:
        return call.headers.get("origin") == f"http://{call.headers.get('host', '')}"

    def _login_id(self, call: Call) -> str | None:
        try:
            cookie = SimpleCookie(call.headers.get("cookie", ""))
        except CookieError:
            return None
        morsel = cookie.get(COOKIE)
        return morsel.value if morsel is not None and morsel.value in self.logins else None

    def _authorize(self, call: Call, method: str) -> None:
        scheme, _, value = call.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(),
                                                               self.token.encode()):
            return
        login = self._login_id(call)
        if login is None:
            raise ApiError(401, "unauthorized: send Authorization: Bearer TOKEN")
        if method in MUTATING:
            # The browser attaches the cookie by itself: prove the page is ours.
            if call.headers.get("origin") is None:
                raise ApiError(403, "a cookie-authenticated change needs an Origin header")
            if not hmac.compare_digest(call.headers.get(CSRF_HEADER, "").encode(),
                                       self.logins[login].encode()):
                raise ApiError(403, "missing or wrong X-CSRF-Token")

    def _login(self, call: Call) -> Reply:
        token = dict(parse_qsl(call.body.decode("utf-8", "replace"))).get("token", "")
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return Reply(303, b"", [("Location", "/?login=failed")])
        login = secrets.token_urlsafe(32)
        self.logins[login] = secrets.token_urlsafe(32)
        while len(self.logins) > MAX_LOGINS:
            del self.logins[next(iter(self.logins))]
        return Reply(303, b"", [("Location", "/"), ("Set-Cookie", (
            f"{COOKIE}={login}; HttpOnly; SameSite=Strict; Path=/"))])

    @route("GET", r"/api/csrf")
    def csrf(self, call: Call) -> Any:
        login = self._login_id(call)
        return {"csrf": self.logins[login] if login else None}

    @route("POST", r"/api/logout")
    def logout(self, call: Call) -> Reply:
        login = self._login_id(call)
        if login:
            del self.logins[login]
        return json_reply(200, {"logged_out": bool(login)}, [("Set-Cookie", (
            f"{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"))])

    # -- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _body(call: Call) -> dict[str, Any]:
        try:
            body = json.loads(call.body or b"{}")
        except ValueError as exc:
            raise ApiError(400, f"request body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        return body

    @staticmethod
    def _query_int(call: Call, name: str) -> int | None:
        text = call.query.get(name)
        if text is None or text == "":
            return None
        try:
            return int(text)
        except ValueError:
            raise ApiError(400, f"{name} must be an integer, got {text!r}") from None

    def _session(self, session_id: int) -> Session:
        # qwinsta shows the console as session 0, so 0 names the console's RDP session.
        session = self.engine.get(session_id) if session_id else next(
            (s for s in self.engine.sessions("rdp") if s.console), None)
        if session is None:
            raise ApiError(404, f"no session {session_id}")
        return session

    def _session_dict(self, session: Session) -> dict[str, Any]:
        return session.to_dict(self.engine.now(), self.engine.rules.idle_after)

    def _limit_row(self, protocol: str) -> dict[str, Any]:
        return {"protocol": protocol, "limit": self.engine.limit(protocol),
                "used": self.engine.counted(protocol)}

    # -- sessions ---------------------------------------------------------------------------
    @route("GET", r"/api/sessions")
    def list_sessions(self, call: Call) -> Any:
        return [self._session_dict(s) for s in self.engine.sessions(call.query.get("protocol")
                                                                     or None)]

    @route("GET", r"/api/sessions/(\d+)")
    def get_session(self, call: Call, session_id: int) -> Any:
        return self._session_dict(self._session(session_id))

    def _end(self, session_id: int, reason: str) -> Any:
        session = self._session(session_id)
        self.engine.end(session.id, reason)
        return {"id": session.id, "ended": reason}

    @route("DELETE", r"/api/sessions/(\d+)")
    def delete_session(self, call: Call, session_id: int) -> Any:
        return self._end(session_id, "admin-delete")

    @route("POST", r"/api/sessions/(\d+)/reset")
    def reset_session(self, call: Call, session_id: int) -> Any:
        return self._end(session_id, "admin-reset")

    @route("POST", r"/api/sessions/(\d+)/disconnect")
    def disconnect_session(self, call: Call, session_id: int) -> Any:
        session = self._session(session_id)
        if session.protocol != "rdp":
            raise ApiError(409, f"session {session.id} is {session.protocol}: only Remote "
                           "Desktop sessions can be disconnected (delete or reset it instead)")
        if session.state == DISCONNECTED:
            raise ApiError(409, f"session {session.id} is already disconnected")
        if not self.engine.admin_disconnect(session.id):
            raise ApiError(409, f"session {session.id} has not finished logging on")
        return {"id": session.id, "state": DISCONNECTED}

    @route("POST", r"/api/sessions/delete")
    def delete_by_client(self, call: Call) -> Any:
        body = self._body(call)
        optional_str = lambda v: v is None or isinstance(v, str)
        # No client: every SMB session, as `net session /delete` alone does.
        client = _checked(body, "client", optional_str, "a computer name, address or null",
                          required=False)
        user = _checked(body, "user", optional_str, "a user name or null", required=False)
        deleted = self.engine.delete_matching(client=client or None, user=user or None)
        if not deleted:
            raise ApiError(404, NO_SUCH_CLIENT)
        return {"deleted": deleted}

    @route("GET", r"/api/files")
    def files(self, call: Call) -> Any:
        # The engine keeps no file ids: ID is the row's number in this listing.
        opens = [(s, path) for s in self.engine.sessions() for path in s.open_files]
        return [{"id": n, "path": path, "user": s.user, "session": s.id, "locks": 0}
                for n, (s, path) in enumerate(opens, 1)]

    # -- events and time --------------------------------------------------------------------
    @route("GET", r"/api/events")
    def events(self, call: Call) -> Any:
        since = call.query.get("since") or None
        try:
            since_seconds = parse_time(since) if since else None
        except ValueError:
            raise ApiError(400, f"since must be ISO 8601 or POSIX seconds, got {since!r}") from None
        found = self.server.events.query(event_id=self._query_int(call, "id"),
                                         since=since_seconds,
                                         provider=call.query.get("provider") or None)
        last = self._query_int(call, "last")
        return found[-last:] if last else found

    @route("GET", r"/api/clock")
    def clock(self, call: Call) -> Any:
        virtual = self.server.virtual_clock is not None
        return {"now": iso_time(self.engine.now()), "virtual": virtual}

    @route("POST", r"/api/clock/advance")
    def advance_clock(self, call: Call) -> Any:
        clock = self.server.virtual_clock
        if clock is None:
            raise ApiError(409, "the clock is real: start the server with serve --virtual-clock "
                           "to move it")
        seconds = _checked(self._body(call), "seconds", lambda v: _is_number(v) and v >= 0,
                           "a number of seconds >= 0")
        clock.advance(seconds)  # runs every timer that falls due (autodisconnect, expiry...)
        return {"now": iso_time(self.engine.now()), "advanced": seconds}

    # -- limits, server, shares, rules --------------------------------------------------------
    @route("GET", r"/api/limits")
    def limits(self, call: Call) -> Any:
        return [self._limit_row(p) for p in self.engine.limits()]

    @route("PUT", r"/api/limits/([^/]+)")
    def set_limit(self, call: Call, protocol: str) -> Any:
        if protocol not in self.engine.limits():
            raise ApiError(404, f"no protocol {protocol!r} (known: "
                           f"{', '.join(self.engine.limits())})")
        limit = _checked(self._body(call), "limit", lambda v: v is None or (_is_int(v) and v >= 0),
                         "a number of sessions >= 0, or null for unlimited")
        self.engine.set_limit(protocol, limit)  # a lower limit refuses new sessions only
        return self._limit_row(protocol)

    @route("GET", r"/api/server")
    def server_info(self, call: Call) -> Any:
        config, edition = self.server.config, self.server.edition
        return {"server_name": f"\\\\{config.netbios_name}", "comment": self.comment,
                "software_version": edition.product, "edition": edition.name,
                "workgroup": config.workgroup,
                "maximum_logged_on_users": self.engine.limit("smb"),
                "autodisconnect": self.engine.rules.autodisconnect_minutes}

    @route("PATCH", r"/api/server")
    def patch_server(self, call: Call) -> Any:
        body = self._body(call)
        unknown = set(body) - {"autodisconnect", "comment"}
        if unknown:
            raise ApiError(400, f"cannot change {', '.join(sorted(unknown))} "
                           "(changeable: autodisconnect, comment)")
        if "comment" in body:
            self.comment = _checked(body, "comment", lambda v: isinstance(v, str), "a string")
        if "autodisconnect" in body:
            self.engine.set_autodisconnect(_checked(
                body, "autodisconnect", lambda v: _is_int(v) and v >= -1,
                "minutes, 0 (within seconds) or -1 (off)"))
        return self.server_info(call)

    @route("GET", r"/api/shares")
    def shares(self, call: Call) -> Any:
        return [{"name": "IPC$", "type": "ipc", "path": "", "remark": "Remote IPC"},
                *({"name": name, "type": "disk", "path": os.path.abspath(path), "remark": ""}
                  for name, path in self.server.share_dirs.items())]

    @route("GET", r"/api/rules")
    def rules(self, call: Call) -> Any:
        return dataclasses.asdict(self.engine.rules)

    @route("PATCH", r"/api/rules")
    def patch_rules(self, call: Call) -> Any:
        body = self._body(call)
        types = {f.name: str(f.type) for f in dataclasses.fields(self.engine.rules)}
        for name in body:
            if name not in types:
                raise ApiError(400, f"no rule {name!r} (rules: {', '.join(types)})")
            if types[name] not in _RULE_TYPES:
                raise ApiError(400, f"rule {name!r} cannot be changed over the API")
            ok, what = _RULE_TYPES[types[name]]
            low, high, meaning = _RULE_RANGES.get(name, (-math.inf, math.inf, ""))
            value = body[name]
            if not ok(value) or (_is_number(value) and not low <= value <= high):
                raise ApiError(400, f"{name!r} must be {what}" + (f": {meaning}" if meaning
                                                                   else ""))
        for name, value in body.items():
            setattr(self.engine.rules, name, value)
        self.engine.rules_changed()  # the timing rules feed one expiry timer
        return self.rules(call)

    # -- test harness: accounts, shares, reset (the pytest plugin's add_user/add_share) ----------
    @route("POST", r"/api/users")
    def add_user(self, call: Call) -> Any:
        body = self._body(call)
        name = _checked(body, "name", lambda v: isinstance(v, str) and v != "", "a user name")
        password = _checked(body, "password", lambda v: isinstance(v, str), "a string")
        self.server.add_user(name, password)
        return {"name": name}

    @route("POST", r"/api/shares")
    def add_share(self, call: Call) -> Any:
        body = self._body(call)
        name = _checked(body, "name", lambda v: isinstance(v, str) and v != "" and
                        v.lower() != "ipc$" and "\\" not in v and "/" not in v, "a share name")
        path = _checked(body, "path", lambda v: isinstance(v, str) and os.path.isdir(v),
                        "an existing directory on the emulator's machine")
        self.server.add_share(name, path)
        return {"name": name, "path": os.path.abspath(path)}

    @route("POST", r"/api/reset")
    def reset(self, call: Call) -> Any:
        self.server.reset()
        return {"reset": True}


class AdminResource(Resource):
    """twisted.web adapter: request -> Call -> AdminAPI.handle -> response."""

    isLeaf = True

    def __init__(self, api: AdminAPI) -> None:
        super().__init__()
        self.api = api

    def render(self, request: Any) -> bytes:
        url = urlsplit(request.uri.decode("utf-8", "replace"))
        call = Call(
            method=request.method.decode("ascii", "replace"), path=url.path,
            query=dict(parse_qsl(url.query)),
            headers={name.decode("latin-1").lower(): values[-1].decode("latin-1")
                     for name, values in request.requestHeaders.getAllRawHeaders()},
            body=request.content.read() if request.content is not None else b"")
        reply = self.api.handle(call)
        request.setResponseCode(reply.status)
        for name, value in reply.headers:
            request.responseHeaders.addRawHeader(name, value)
        return reply.body


class AdminSite(Site):
    # The console polls every few seconds; an access line per request would bury the log.
    noisy = False

    def log(self, request: Any) -> None:
        pass


def build_admin_site(server: EmulatorServer) -> Site:
    return AdminSite(AdminResource(AdminAPI(server)))
