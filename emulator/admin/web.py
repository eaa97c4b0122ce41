"""The twisted.web side of the admin API: raw request -> `Call` -> `AdminAPI` -> response.

`AdminRequest` checks a request's head before its body (see `AdminAPI.check_head`);
`AdminSite` is the listener's factory.
"""

from __future__ import annotations

import io
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from emulator.admin.api import AdminAPI, Call, Reply, error_reply
from emulator.admin.inputs import ApiError, shorten

if TYPE_CHECKING:
    from emulator.lab import Lab
    from emulator.server import Host

IDLE_TIMEOUT = 60.0  # seconds an idle admin connection stays open (twisted.web: 12 hours)


def _client(request: Any) -> str:
    return str(getattr(request.getClientAddress(), "host", ""))


def request_call(method: bytes, uri: bytes, headers: Any, client: str,
                 body: bytes = b"") -> Call:
    """A Call from twisted.web's raw request line and headers. The absolute form of a
    request target (`GET http://host/path`) names the host itself (RFC 9112 3.2.2)."""
    text = uri.decode("utf-8", "replace")
    names = {name.decode("latin-1").lower(): values[-1].decode("latin-1")
             for name, values in headers.getAllRawHeaders()}
    if len(headers.getRawHeaders(b"host") or []) > 1:
        names["host"] = ""  # two Hosts name nothing (RFC 9112 3.2: answer 400)
    if not text.startswith("/"):
        try:
            url = urlsplit(text)
        except ValueError:
            url = None
        if url is None or url.scheme.lower() != "http" or not url.netloc:
            raise ApiError(400, f"bad request target {shorten(text, 64)!r}")
        names["host"], path, query = url.netloc, url.path or "/", url.query
    else:
        path, _, query = text.partition("#")[0].partition("?")
    return Call(method=method.decode("ascii", "replace"), path=path,
                query=dict(parse_qsl(query)), headers=names, body=body, client=client)


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return phrase.encode("latin-1")


class AdminResource(Resource):
    """twisted.web adapter: request -> Call -> AdminAPI.handle -> response."""

    isLeaf = True

    def __init__(self, api: AdminAPI) -> None:
        super().__init__()
        self.api = api

    def render(self, request: Any) -> bytes:
        try:
            call = request_call(request.method, request.uri, request.requestHeaders,
                                _client(request),
                                request.content.read() if request.content is not None else b"")
        except ApiError as err:
            reply = error_reply(err)
        else:
            reply = self.api.handle(call)
        request.setResponseCode(reply.status, _status_line(reply.status))
        for name, value in reply.headers:
            request.responseHeaders.addRawHeader(name, value)
        return reply.body


class AdminRequest(Request):
    """twisted.web's Request, but a body is read only when the head allows it.

    twisted.web calls `gotLength` once the headers are in and before any body byte; here
    `AdminAPI.check_head` decides then. A refusal (421 Host, 401 token, 429 back-off, 413
    size) is written at once and the connection closed: the body is never received into
    anything. An allowed body goes to memory up to the cap (twisted.web itself would spool
    one of 100 kB or more, or any chunked one, to a temporary file without limit); a
    chunked body that passes the cap is refused with 413 there.
    """

    _cap = 0
    _refused = False
    _held: io.BytesIO  # set by gotLength; `content` is this buffer

    def _hold(self) -> None:
        self._held = io.BytesIO()
        self.content = self._held  # type: ignore[assignment]  # twisted types it None

    def gotLength(self, length: int | None) -> None:
        self._hold()
        if length == 0:
            return  # no body: the request is checked whole, in AdminAPI.handle
        channel: Any = self.channel  # an HTTPChannel of AdminSite (.site, ._command)
        # twisted.web parses the request line first but hands it to the Request only with
        # the body (requestReceived); until then it is on the channel.
        method, uri = getattr(channel, "_command", b""), getattr(channel, "_path", b"")
        try:
            verdict = channel.site.api.check_head(
                request_call(method, uri, self.requestHeaders, _client(self)), length)
        except ApiError as err:
            verdict = error_reply(err)
        if isinstance(verdict, Reply):
            self._refuse(verdict)
        else:
            self._cap = verdict

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        if self._held.tell() + len(data) > self._cap:
            reply = error_reply(ApiError(413, f"request body too large: more than "
                                             f"{self._cap} bytes"))
            self._refuse(reply)
            return
        self._held.write(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self._refused:
            super().requestReceived(command, path, version)

    def _refuse(self, reply: Reply) -> None:
        self._refused = True
        self._hold()
        channel: Any = self.channel
        self.requestHeaders.removeHeader(b"expect")  # no "100 Continue" after the answer
        head = [b"HTTP/1.1 %d %s" % (reply.status, _status_line(reply.status))]
        head += [f"{name}: {value}".encode("latin-1") for name, value in reply.headers]
        head += [b"Content-Length: %d" % len(reply.body), b"Connection: close", b"", b""]
        channel.transport.write(b"\r\n".join(head) + reply.body)
        channel.loseConnection()


class AdminSite(Site):
    """No access log: the console polls every two seconds, and a line per request would
    bury the server's own log. Requests are `AdminRequest`s; form bodies are not parsed
    into `request.args` (the API reads the body itself)."""

    noisy = False
    requestFactory = AdminRequest

    def __init__(self, api: AdminAPI) -> None:
        super().__init__(AdminResource(api), timeout=IDLE_TIMEOUT,
                         parsePOSTFormSubmission=False)
        self.api = api

    def log(self, request: Any) -> None:
        pass


def build_admin_site(lab: Lab | Host) -> Site:
    return AdminSite(AdminAPI(lab))
