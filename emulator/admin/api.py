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

import hmac
import math
import os
import re
import secrets
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from twisted.logger import Logger

from emulator.admin.guard import AuthThrottle, HostCheck
from emulator.admin.host_api import HostAPI
from emulator.admin.inputs import ApiError, json_object, shorten
from emulator.admin.replies import (  # noqa: F401  (Call, Reply, error_reply: web.py's)
    JSON_TYPE, SECURITY_HEADERS, Call, Reply, Router, error_reply, json_reply,
)
from emulator.config import ConfigError
from emulator.core import metrics

if TYPE_CHECKING:
    from emulator.lab import Lab
    from emulator.server import Host

log = Logger()

COOKIE = "smbrdp_admin"
CSRF_HEADER = "x-csrf-token"
MAX_LOGINS = 64  # console logins kept; the oldest is forgotten beyond that
STATIC = {"/": ("console.html", "text/html; charset=utf-8"),
          "/console.js": ("console.js", "text/javascript; charset=utf-8"),
          "/console.css": ("console.css", "text/css; charset=utf-8")}
UNAUTHORIZED_HEADERS = [("WWW-Authenticate", 'Bearer realm="smbrdp-emu"')]
MAX_LOGIN_BODY = 4096  # POST /login's form (`token=...`): the one body read unauthenticated
HOST_PATH = re.compile(r"/api/hosts/([^/]+)(/.*)?\Z")

route = Router()  # the lab's own routes; a host's are in host_api.py


def _cookie(value: str, extra: str = "") -> list[tuple[str, str]]:
    return [("Set-Cookie", f"{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/{extra}")]


class _LoneHost:
    """A host made without a lab (unit tests, a host of its own): a lab of one."""

    def __init__(self, host: Host) -> None:
        self.hosts = {host.name.upper(): host}
        self.settings, self.admin_token, self.reactor = host.config, host.admin_token, \
            host.reactor

    def get(self, name: str) -> Host | None:
        return self.hosts.get(name.upper())

    def only(self) -> Host | None:
        return next(iter(self.hosts.values()))

    def add_table(self, table: dict[str, Any], **kw: Any) -> Host:
        raise ApiError(409, "this host is in no lab: it cannot add hosts")

    def remove(self, name: str) -> Any:
        raise ApiError(409, "this host is in no lab: it cannot remove hosts")


class AdminAPI:
    routes = route

    def __init__(self, lab: Lab | Host, clock: Any = None) -> None:
        target: Any = lab
        self.lab: Any = target if hasattr(target, "add_table") else _LoneHost(target)
        self.token = self.lab.admin_token
        self.logins: dict[str, str] = {}  # console login id (the cookie) -> its CSRF token
        config = self.lab.settings
        self.max_body = config.admin_max_body
        self.hosts = HostCheck(config.host, config.admin_hosts)
        # Real time even under --virtual-clock: a back-off that only an authenticated
        # POST /api/clock/advance could end would never end.
        only = self.lab.only()
        clock = clock or self.lab.reactor or (only.clock if only else None)
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
        path = call.path
        handlers: AdminAPI | HostAPI = self
        if not (path.startswith("/api/hosts") or path in ("/api/csrf", "/api/logout",
                                                        "/api/lab", "/metrics")):
            host = self.lab.only()
            if host is None:
                raise ApiError(404, f"this lab holds {len(self.lab.hosts)} hosts: name one, "
                               f"/api/hosts/NAME{path[4:]}")
            handlers = HostAPI(host)
        elif (named := HOST_PATH.match(path)) and named.group(2):
            host = self.lab.get(named.group(1))
            if host is None:
                raise ApiError(404, f"no host {shorten(named.group(1))}")
            handlers, path = HostAPI(host), "/api" + named.group(2)
        allowed: set[str] = set()
        for found, handler, groups in handlers.routes.find(method, path):
            if not found:
                allowed.add(str(handler))
                continue
            result = handler(handlers, call, *groups)  # type: ignore[operator]
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


    # -- the lab: its hosts, and the metrics of them all --------------------------------------
    @staticmethod
    def _host_row(host: Host) -> dict[str, Any]:
        return {"name": host.name, "address": host.config.host, "edition": host.edition.name,
                "listeners": host.addresses(), "connections": host.connections,
                "sessions": len(host.engine.sessions())}

    @route("GET", r"/api/lab")
    def lab_state(self, call: Call) -> Any:
        """What the process holds (a leak shows here): hosts, hosts still closing, the
        reactor's pending timers, open descriptors."""
        reactor = self.lab.reactor
        delayed = len(reactor.getDelayedCalls()) if hasattr(reactor, "getDelayedCalls") else 0
        try:
            fds = len(os.listdir("/proc/self/fd"))
        except OSError:
            fds = -1
        return {"hosts": len(self.lab.hosts), "closing": len(getattr(self.lab, "closing", ())),
                "delayed_calls": delayed, "fds": fds}

    @route("GET", r"/api/hosts")
    def list_hosts(self, call: Call) -> Any:
        return [self._host_row(h) for h in self.lab.hosts.values()]

    @route("POST", r"/api/hosts")
    def add_host(self, call: Call) -> Any:
        """A host from the keys of a lab file's ``[[host]]`` table (address: 127.0.0.1)."""
        from emulator.server import ListenError

        try:
            host = self.lab.add_table(json_object(call.body), need_address=False)
        except (ConfigError, ListenError) as exc:
            raise ApiError(409 if "already" in str(exc) else 400, str(exc)) from None
        return json_reply(201, self._host_row(host))

    @route("GET", r"/api/hosts/([^/]+)")
    def get_host(self, call: Call, name: str) -> Any:
        host = self.lab.get(name)
        if host is None:
            raise ApiError(404, f"no host {shorten(name)}")
        return self._host_row(host)

    @route("DELETE", r"/api/hosts/([^/]+)")
    def delete_host(self, call: Call, name: str) -> Any:
        """Out of the lab at once: its listeners closed, its connections dropped (their
        sessions end), its timers cancelled."""
        host = self.lab.get(name)
        if host is None:
            raise ApiError(404, f"no host {shorten(name)}")
        self.lab.remove(host.name)
        return {"removed": host.name}

    @route("GET", r"/metrics")
    def prometheus(self, call: Call) -> Reply:
        text = metrics.render_hosts([(h.name, h.engine) for h in self.lab.hosts.values()])
        return Reply(200, text.encode(), [("Content-Type", metrics.CONTENT_TYPE)])
