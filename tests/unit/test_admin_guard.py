"""The admin listener against hostile clients (issue 14, findings 6 and 8): bodies checked
from the request head before a byte is stored, wrong tokens backed off per address, Host
checked against the listen address, bad input answered 4xx; no default credentials on a
non-loopback address."""

import json
import tempfile

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from emulator.admin.api import MAX_LOGIN_BODY, AdminAPI, Call
from emulator.admin.guard import AuthThrottle, HostCheck
from emulator.admin.web import AdminSite
from emulator.config import Config, ConfigError, build_config, is_loopback
from emulator.server import EmulatorServer

TOKEN = "s3cret-token"
HOST = "127.0.0.1:8080"
BEARER = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def clock():
    return Clock()


def make_server(tmp_path, **config):
    settings = dict(edition="xp-pro", virtual_clock=True, admin_token=TOKEN,
                    shares={"docs": str(tmp_path)})
    settings.update(config)
    return EmulatorServer(Config(**settings), reactor=None)


@pytest.fixture
def server(tmp_path):
    srv = make_server(tmp_path, admin_max_body=1024)
    yield srv
    srv.close()


@pytest.fixture
def api(server, clock):
    return AdminAPI(server, clock=clock)


def call(api, method, path, body=b"", headers=BEARER, query=None, client="10.0.0.7"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = api.handle(Call(method, path, query or {}, {"host": HOST, **headers}, raw, client))
    return reply.status, json.loads(reply.body) if reply.body else None, dict(reply.headers)


# -- the HTTP channel: nothing of a body is stored before the head is judged ------------------
class Wire:
    """One admin connection on a StringTransport, through the real twisted.web channel."""

    def __init__(self, api, clock):
        site = AdminSite(api)
        self.channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 8080))
        self.channel.callLater = clock.callLater  # the idle timeout, on the test clock
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.7", 40000))
        self.channel.makeConnection(self.transport)
        self.http = getattr(self.channel, "_channel", self.channel)  # the HTTP/1.1 channel

    def send(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    def head(self, method, path, headers) -> None:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", *headers, "", ""]
        self.send("\r\n".join(lines).encode())

    @property
    def answer(self) -> bytes:
        return self.transport.value()

    @property
    def status(self) -> int:
        return int(self.answer.split(b" ", 2)[1]) if self.answer else 0

    def close(self) -> None:
        self.channel.connectionLost(None)


@pytest.fixture
def wire(api, clock):
    connection = Wire(api, clock)
    yield connection
    connection.close()


@pytest.fixture
def no_spooling(monkeypatch):
    """twisted.web spools chunked bodies (and any of 100 kB or more) to a temporary file."""
    def refuse(*args, **kwargs):
        raise AssertionError("a request body went to a temporary file")
    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)


def test_an_unauthenticated_chunked_upload_is_refused_before_its_body(wire, no_spooling):
    wire.head("POST", "/api/users", ["Transfer-Encoding: chunked"])
    assert wire.status == 401 and b"Bearer" in wire.answer
    assert wire.transport.disconnecting
    wire.send(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")  # what still arrives is dropped
    request = wire.http.requests[-1]
    assert request.content.getvalue() == b""


def test_a_wrong_token_with_a_body_is_refused_before_the_body(wire, no_spooling):
    wire.head("POST", "/api/users", ["Authorization: Bearer nope", "Content-Length: 104857600"])
    assert wire.status == 401 and wire.transport.disconnecting


def test_an_oversized_body_is_413_from_its_content_length(wire, no_spooling):
    wire.head("POST", "/api/users", [f"Authorization: Bearer {TOKEN}",
                                     "Content-Length: 104857600", "Expect: 100-continue"])
    assert wire.status == 413 and wire.transport.disconnecting
    assert b"100 Continue" not in wire.answer  # the client is not invited to send it


def test_a_chunked_body_past_the_cap_is_413_and_only_the_cap_is_held(wire, no_spooling):
    wire.head("POST", "/api/users", [f"Authorization: Bearer {TOKEN}",
                                     "Transfer-Encoding: chunked"])
    assert wire.answer == b""
    chunk = b"258\r\n" + b"y" * 0x258 + b"\r\n"  # 600 bytes, twice: past the 1024 cap
    wire.send(chunk)
    wire.send(chunk)
    assert wire.status == 413 and wire.transport.disconnecting
    assert len(wire.http.requests[-1].content.getvalue()) <= 1024


def test_an_authenticated_chunked_body_under_the_cap_is_served_from_memory(wire, server,
                                                                           no_spooling):
    body = json.dumps({"name": "dave", "password": "pw"}).encode()
    wire.head("POST", "/api/users", [f"Authorization: Bearer {TOKEN}",
                                     "Content-Type: application/json",
                                     "Transfer-Encoding: chunked"])
    wire.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    assert wire.status == 200 and server.lookup_password("dave") == "pw"
    assert not wire.transport.disconnecting  # keep-alive as before


def test_the_console_login_form_is_the_one_body_read_without_a_token(wire):
    form = f"token={TOKEN}".encode()
    wire.head("POST", "/login", ["Content-Type: application/x-www-form-urlencoded",
                                 f"Content-Length: {len(form)}"])
    wire.send(form)
    assert wire.status == 303 and b"Set-Cookie: smbrdp_admin=" in wire.answer


def test_a_login_form_larger_than_any_token_is_413(wire, no_spooling):
    wire.head("POST", "/login", [f"Content-Length: {MAX_LOGIN_BODY + 1}"])
    assert wire.status == 413 and wire.transport.disconnecting


def test_a_body_to_a_foreign_host_is_421_before_it_is_read(api, clock, no_spooling):
    connection = Wire(api, clock)
    connection.send(b"POST /api/users HTTP/1.1\r\nHost: rebound.example:8080\r\n"
                    b"Authorization: Bearer " + TOKEN.encode() +
                    b"\r\nContent-Length: 50000000\r\n\r\n")
    assert connection.status == 421 and connection.transport.disconnecting
    connection.close()


def test_an_idle_admin_connection_is_closed_on_the_clock(wire, clock):
    clock.advance(59)
    assert not wire.transport.disconnecting
    clock.advance(2)
    assert wire.transport.disconnecting


# -- Host: DNS rebinding -----------------------------------------------------------------------
@pytest.mark.parametrize("listen, host, allowed", [
    ("127.0.0.1", "127.0.0.1:8080", True),
    ("127.0.0.1", "localhost:9000", True),  # an ssh -L tunnel changes the port
    ("127.0.0.1", "[::1]:8080", True),
    ("127.0.0.1", "127.0.0.2", True),
    ("127.0.0.1", "LOCALHOST.", True),
    ("127.0.0.1", "rebound.example:8080", False),
    ("127.0.0.1", "127.0.0.1.rebound.example", False),
    ("127.0.0.1", "10.0.0.1:8080", False),
    ("127.0.0.1", "", False),
    ("127.0.0.1", None, False),
    ("127.0.0.1", "user@127.0.0.1", False),
    ("127.0.0.1", "[::1", False),
    ("192.168.7.5", "192.168.7.5:8080", True),
    ("192.168.7.5", "localhost:8080", False),
    ("192.168.7.5", "labhost:8080", False),
    ("0.0.0.0", "192.168.7.5:8080", True),
    ("0.0.0.0", "localhost", True),
    ("0.0.0.0", "rebound.example", False),
    ("::", "[fe80::1]:8080", True),
])
def test_host_check(listen, host, allowed):
    assert HostCheck(listen).allows(host) is allowed


def test_host_names_can_be_added():
    assert HostCheck("192.168.7.5", ["LabHost"]).allows("labhost:8080")


def test_the_api_refuses_a_foreign_host_with_421_even_for_static_pages(api):
    for path, headers in (("/api/sessions", BEARER), ("/", {})):
        status, data, _ = call(api, "GET", path, headers={**headers, "host": "evil.example"})
        assert status == 421 and "evil.example" in data["error"]


def test_two_host_headers_or_a_foreign_absolute_target_name_no_host(api, clock):
    connection = Wire(api, clock)
    connection.send(b"GET http://evil.example/api/sessions HTTP/1.1\r\nHost: " +
                    HOST.encode() + b"\r\nAuthorization: Bearer " + TOKEN.encode() +
                    b"\r\n\r\n")
    assert connection.status == 421
    connection.close()
    connection = Wire(api, clock)
    connection.send(b"GET /api/sessions HTTP/1.1\r\nHost: " + HOST.encode() +
                    b"\r\nHost: evil.example\r\nAuthorization: Bearer " + TOKEN.encode() +
                    b"\r\n\r\n")
    assert connection.status == 421
    connection.close()


def test_a_request_target_that_is_no_url_is_400(api, clock):
    connection = Wire(api, clock)
    connection.send(b"GET http://[::1/api HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n\r\n")
    assert connection.status == 400 and b"Traceback" not in connection.answer
    connection.close()


# -- wrong tokens back off --------------------------------------------------------------------
def test_wrong_tokens_back_off_exponentially_per_address(api, clock):
    wrong = {"authorization": "Bearer guess"}
    for _ in range(5):  # admin_auth_free_failures
        assert call(api, "GET", "/api/sessions", headers=wrong)[0] == 401
    assert call(api, "GET", "/api/sessions", headers=wrong)[0] == 401  # the 6th: 1 s
    status, data, headers = call(api, "GET", "/api/sessions")  # even the right token
    assert status == 429 and headers["Retry-After"] == "1" and "try again" in data["error"]
    assert call(api, "GET", "/api/sessions", client="10.0.0.8")[0] == 200  # another address
    clock.advance(1)
    assert call(api, "GET", "/api/sessions", headers=wrong)[0] == 401  # the 7th: 2 s
    assert call(api, "GET", "/api/sessions")[2]["Retry-After"] == "2"
    clock.advance(2)
    assert call(api, "GET", "/api/sessions")[0] == 200  # a success forgets the failures
    for _ in range(5):
        assert call(api, "GET", "/api/sessions", headers=wrong)[0] == 401


def test_the_console_login_is_throttled_too(api, clock):
    def login(token):
        return api.handle(Call("POST", "/login", {}, {"host": HOST}, f"token={token}".encode(),
                               "10.0.0.7"))
    for _ in range(6):
        assert login("guess").status == 303
    assert login(TOKEN).status == 429
    clock.advance(1)
    assert login(TOKEN).status == 303 and "Set-Cookie" in dict(login(TOKEN).headers)


def test_a_throttled_address_is_429_before_its_body_is_read(api, clock, no_spooling):
    for _ in range(6):
        call(api, "GET", "/api/sessions", headers={"authorization": "Bearer guess"})
    connection = Wire(api, clock)
    connection.head("POST", "/api/users", [f"Authorization: Bearer {TOKEN}",
                                           "Transfer-Encoding: chunked"])
    assert connection.status == 429 and b"Retry-After: 1" in connection.answer
    connection.close()


def test_the_back_off_is_capped_forgiven_after_quiet_and_its_table_bounded(clock):
    throttle = AuthThrottle(clock.seconds, free=0, backoff=1.0, backoff_max=60.0, max_clients=3)
    for _ in range(200):  # 2 ** 200 seconds would overflow a float
        throttle.failed("a")
    assert throttle.retry_after("a") == 60.0
    clock.advance(60 + 60)
    assert throttle.retry_after("a") == 0 and len(throttle) == 0
    for address in ("b", "c", "d", "e"):
        throttle.failed(address)
    assert len(throttle) == 3 and throttle.retry_after("b") == 0


# -- bad input is 4xx JSON, never a 500 -------------------------------------------------------
@pytest.mark.parametrize("method, path", [
    ("GET", "/api/sessions/" + "9" * 5000),  # past Python's 4300-digit int() limit
    ("DELETE", "/api/sessions/" + "1" * 19),
    ("POST", "/api/sessions/" + "9" * 5000 + "/reset"),
    ("POST", "/api/files/" + "9" * 5000 + "/close"),
])
def test_absurd_ids_are_404_not_500(api, method, path):
    status, data, _ = call(api, method, path)
    assert status == 404 and len(data["error"]) < 100


@pytest.mark.parametrize("query", [{"id": "9" * 5000}, {"id": "1_0"}, {"last": "\u0663"},
                                   {"last": " 3"}, {"since": "nan"}, {"since": "1e400"},
                                   {"since": "-inf"}])
def test_bad_query_values_are_400(api, query):
    status, data, _ = call(api, "GET", "/api/events", query=query)
    assert status == 400 and len(data["error"]) < 120


@pytest.mark.parametrize("body", [b'{"name": "\\ud800", "password": "x"}',
                                  b'{"name": "bob", "password": "\\udfff"}',
                                  b'{"\\ud83d": 1}'])
def test_strings_that_are_not_unicode_are_400(api, server, body):
    status, data, _ = call(api, "POST", "/api/users", body)
    assert status == 400 and "Unicode" in data["error"]
    assert server.lookup_password("bob") is None


def test_an_integer_too_long_for_python_in_a_body_is_400(api):
    status, _, _ = call(api, "POST", "/api/clock/advance", b'{"seconds": ' + b"9" * 5000 + b"}")
    assert status == 400


# -- exposure (finding 8) ---------------------------------------------------------------------
@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("", False), ("::", False),
    ("192.168.1.5", False), ("myhost", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("settings, message", [
    ({"host": "0.0.0.0"}, "refusing to serve the built-in account user:password"),
    ({"host": "192.168.1.5", "users": {"a": "b"}, "admin_port": 0},
     "refusing a generated admin token"),
])
def test_defaults_are_refused_on_a_non_loopback_address(settings, message):
    with pytest.raises(ConfigError) as info:
        build_config({}, settings)
    assert message in str(info.value) and "--allow-insecure-exposure" in str(info.value)
    assert "\n" not in str(info.value)
    build_config({}, {**settings, "allow_insecure_exposure": True})  # asked for explicitly


def test_explicit_credentials_are_served_on_a_non_loopback_address_with_a_warning(tmp_path):
    config = build_config({}, {"host": "0.0.0.0", "users": {"a": "b"}, "admin_port": 0,
                               "admin_token": "t", "shares": {"d": str(tmp_path)}})
    srv = EmulatorServer(config, reactor=None, clock=Clock())
    try:
        warning = [n for n in srv.notes if n.startswith("warning:")]
        assert warning == ["warning: 0.0.0.0 is not a loopback address: other machines can "
                           "reach SMB, NetBIOS, RDP, the admin API (plain HTTP, no TLS)"]
    finally:
        srv.close()


def test_no_warning_on_loopback(tmp_path):
    srv = make_server(tmp_path)
    try:
        assert not [n for n in srv.notes if n.startswith("warning:")]
    finally:
        srv.close()


@pytest.mark.parametrize("settings", [{"admin_max_body": 0}, {"admin_auth_free_failures": -1},
                                      {"admin_auth_backoff": 0},
                                      {"admin_auth_backoff": 9, "admin_auth_backoff_max": 5}])
def test_bad_limits_are_config_errors(settings):
    with pytest.raises(ConfigError):
        build_config({}, settings)
