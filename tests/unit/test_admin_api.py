"""The admin API's handlers, driven in-process (AdminAPI.handle) on a virtual clock."""

import dataclasses
import io
import json
import socket
import threading

import pytest
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from emulator.admin import api as admin_api
from emulator.admin.client import NO_SUCH_CLIENT
from emulator.admin.inputs import RULES
from emulator.admin.api import AdminAPI, Call
from emulator.admin.web import AdminResource
from emulator.admin.client import AdminClient, AdminError
from emulator.config import Config
from emulator.core.engine import Rules
from emulator.server import EmulatorServer

TOKEN = "s3cret-token"
HOST = "127.0.0.1:8080"
BEARER = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def server(tmp_path):
    config = Config(edition="xp-pro", virtual_clock=True, admin_token=TOKEN,
                    shares={"docs": str(tmp_path)})
    srv = EmulatorServer(config, reactor=None)  # no listener: the API is called directly
    yield srv
    srv.close()


@pytest.fixture
def api(server):
    return AdminAPI(server)


def call(api, method, path, body=None, headers=BEARER, query=None):
    raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    reply = api.handle(Call(method, path, query or {}, {"host": HOST, **headers}, raw))
    content_type = dict(reply.headers).get("Content-Type", "")
    data = json.loads(reply.body) if content_type.startswith("application/json") else reply.body
    return reply.status, data, reply


def admit(server, user="alice", client="PC1", protocol="smb", address="10.0.0.1"):
    hooks = []
    session = server.engine.request_session(protocol, address, hooks.append).session
    server.engine.logon(session, user=user, client=client, anonymous=False)
    return session, hooks


# -- authentication --------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong"},
                                     {"authorization": TOKEN}, {"cookie": "smbrdp_admin=x"}])
@pytest.mark.parametrize("path", ["/api/sessions", "/api/nonexistent", "/metrics"])
def test_requests_without_the_token_get_401_json(api, headers, path):
    status, data, reply = call(api, "GET", path, headers=headers)
    assert status == 401 and "Bearer" in data["error"]
    assert ("WWW-Authenticate", 'Bearer realm="smbrdp-emu"') in reply.headers


def test_the_console_page_is_served_without_a_token_and_with_a_strict_csp(api):
    status, body, reply = call(api, "GET", "/", headers={})
    assert status == 200 and b'action="/login"' in body
    csp = dict(reply.headers)["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert call(api, "GET", "/console.js", headers={})[0] == 200


def login(api, token=TOKEN, origin=f"http://{HOST}"):
    headers = {"content-type": "application/x-www-form-urlencoded", "origin": origin}
    return api.handle(Call("POST", "/login", {}, {"host": HOST, **headers},
                           f"token={token}".encode()))


def test_login_sets_an_httponly_samesite_strict_cookie_only_for_the_right_token(api):
    wrong = login(api, "nope")
    assert wrong.status == 303 and ("Location", "/?login=failed") in wrong.headers
    assert not any(name == "Set-Cookie" for name, _ in wrong.headers)
    reply = login(api)
    cookie = dict(reply.headers)["Set-Cookie"]
    assert reply.status == 303 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert login(api, origin="http://evil.example").status == 403


def test_cookie_changes_need_the_csrf_token_of_that_login_and_our_origin(server, api):
    session, _ = admit(server)
    cookie = dict(login(api).headers)["Set-Cookie"].split(";")[0]
    other_cookie = dict(login(api).headers)["Set-Cookie"].split(";")[0]
    base = {"cookie": cookie}
    status, data, _ = call(api, "GET", "/api/csrf", headers=base)
    csrf = data["csrf"]
    assert status == 200 and csrf
    other_csrf = call(api, "GET", "/api/csrf", headers={"cookie": other_cookie})[1]["csrf"]
    origin = {"origin": f"http://{HOST}"}
    path = f"/api/sessions/{session.id}"
    refused = [
        {**base, **origin},  # no CSRF token
        {**base, **origin, "x-csrf-token": other_csrf},  # another login's token
        {**base, "x-csrf-token": csrf},  # no Origin
        {**base, "x-csrf-token": csrf, "origin": "http://evil.example"},
    ]
    for headers in refused:
        assert call(api, "DELETE", path, headers=headers)[0] == 403, headers
    assert server.engine.get(session.id) is not None
    assert call(api, "DELETE", path, headers={**base, **origin, "x-csrf-token": csrf})[0] == 200
    assert server.engine.get(session.id) is None


def test_bearer_requests_need_no_csrf_token_but_a_foreign_origin_is_refused(server, api):
    session, _ = admit(server)
    path = f"/api/sessions/{session.id}"
    assert call(api, "DELETE", path, headers={**BEARER, "origin": "http://evil.example"})[0] == 403
    assert call(api, "DELETE", path)[0] == 200


def test_logout_forgets_the_login(api):
    cookie = dict(login(api).headers)["Set-Cookie"].split(";")[0]
    csrf = call(api, "GET", "/api/csrf", headers={"cookie": cookie})[1]["csrf"]
    headers = {"cookie": cookie, "x-csrf-token": csrf, "origin": f"http://{HOST}"}
    assert call(api, "POST", "/api/logout", headers=headers)[0] == 200
    assert call(api, "GET", "/api/sessions", headers={"cookie": cookie})[0] == 401


def test_with_the_cookie_every_method_but_get_needs_the_csrf_token(api):
    cookie = dict(login(api).headers)["Set-Cookie"].split(";")[0]
    headers = {"cookie": cookie, "origin": f"http://{HOST}"}
    for method in ("OPTIONS", "PROPFIND", "POST"):
        assert call(api, method, "/api/sessions", headers=headers)[0] == 403, method
    assert call(api, "HEAD", "/api/sessions", headers={"cookie": cookie})[0] == 200


def test_the_token_never_travels_in_a_url(api):
    assert ("Location", "/?login=failed") in login(api, "wrong-token").headers
    assert ("Location", "/") in login(api).headers
    status, data, _ = call(api, "GET", "/login", headers={}, query={"token": TOKEN})
    assert status == 404 and TOKEN not in json.dumps(data)  # only the form's POST logs in


def test_the_twisted_web_adapter_passes_method_path_headers_and_body(api):
    request = DummyRequest([])
    request.method, request.uri = b"POST", b"/api/sessions/delete?unused=1"
    request.requestHeaders.setRawHeaders(b"Authorization", [f"Bearer {TOKEN}".encode()])
    request.requestHeaders.setRawHeaders(b"Host", [HOST.encode()])
    request.content = io.BytesIO(json.dumps({"client": "\\\\NOPE"}).encode())
    body = AdminResource(api).render(request)
    assert request.responseCode == 404 and json.loads(body)["error"] == NO_SUCH_CLIENT
    assert request.responseHeaders.getRawHeaders("Content-Type") == [admin_api.JSON_TYPE]


@pytest.mark.parametrize("path", ["/metrics", "/api/sessions"])
def test_metrics_and_the_api_refuse_a_foreign_origin_even_with_the_token(api, path):
    assert call(api, "GET", path, headers={**BEARER, "origin": "null"})[0] == 403


# -- sessions --------------------------------------------------------------------------------
def test_sessions_list_and_filter_by_protocol(server, api):
    alice, _ = admit(server)
    admit(server, "carol", protocol="rdp")
    status, data, _ = call(api, "GET", "/api/sessions", query={"protocol": "smb"})
    assert status == 200 and [s["id"] for s in data] == [alice.id]
    assert {"id", "protocol", "user", "client", "address", "state", "console", "opens",
            "idle_seconds", "logon_time"} <= set(data[0])
    assert len(call(api, "GET", "/api/sessions")[1]) == 2


def test_delete_and_reset_end_the_session_through_the_protocol_and_log_it(server, api):
    alice, alice_hooks = admit(server)
    bob, bob_hooks = admit(server, "bob")
    assert call(api, "DELETE", f"/api/sessions/{alice.id}")[1] == {"id": alice.id,
                                                                   "ended": "admin-delete"}
    assert call(api, "POST", f"/api/sessions/{bob.id}/reset")[0] == 200
    assert (alice_hooks, bob_hooks) == (["admin-delete"], ["admin-reset"])
    assert server.engine.sessions() == []
    assert [e["outcome"] for e in server.events.query(provider="smbrdp-emulator")] == [
        "admin-delete", "admin-reset"]


def test_unknown_sessions_are_404_json(api):
    for method, path in (("DELETE", "/api/sessions/42"), ("POST", "/api/sessions/42/reset"),
                         ("GET", "/api/sessions/42"), ("POST", "/api/sessions/0/reset")):
        status, data, _ = call(api, method, path)
        assert status == 404 and "no session" in data["error"]


def test_disconnect_is_for_remote_desktop_sessions(server, api):
    smb, _ = admit(server)
    rdp, hooks = admit(server, "carol", protocol="rdp")
    assert call(api, "POST", f"/api/sessions/{smb.id}/disconnect")[0] == 409
    assert call(api, "POST", f"/api/sessions/{rdp.id}/disconnect")[1]["state"] == "disconnected"
    # Kept; XP (a client SKU) counts only the connected session, so none counts now.
    assert hooks == ["admin-disconnect"] and server.engine.get(rdp.id) is not None
    assert server.engine.counted("rdp") == 0
    assert call(api, "POST", f"/api/sessions/{rdp.id}/disconnect")[0] == 409


def test_session_zero_is_the_console(server, api):
    console, _ = admit(server, "admin", protocol="rdp")
    console.console = True
    assert call(api, "POST", "/api/sessions/0/reset")[1] == {"id": console.id,
                                                             "ended": "admin-reset"}


@pytest.mark.parametrize("client", ["\\\\PC1", "pc1", "10.0.0.1"])
def test_net_session_delete_matches_the_computer_name_or_address(server, api, client):
    alice, _ = admit(server)
    other, _ = admit(server, "bob", client="PC2", address="10.0.0.2")
    status, data, _ = call(api, "POST", "/api/sessions/delete", {"client": client})
    assert status == 200 and data == {"deleted": [alice.id]}
    assert [s.id for s in server.engine.sessions()] == [other.id]


def test_net_session_delete_of_an_unknown_computer_is_404_with_windows_words(server, api):
    admit(server)
    status, data, _ = call(api, "POST", "/api/sessions/delete", {"client": "\\\\NOPE"})
    assert status == 404 and data["error"] == NO_SUCH_CLIENT


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", {"client": 7}, {"user": ["x"]},
                                  b"\xff\xfe", b"[" * 100_000])
def test_bad_bodies_are_400_json(api, body):
    status, data, _ = call(api, "POST", "/api/sessions/delete", body)
    assert status == 400 and data["error"]


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/api/clock/advance", {"seconds": 1e308}),  # past the end of time
    ("POST", "/api/clock/advance", {"seconds": 10 ** 400}),  # no float holds it
    ("PATCH", "/api/rules", {"autodisconnect_minutes": 10 ** 400}),
    ("PATCH", "/api/server", {"autodisconnect": 65536}),
    ("PATCH", "/api/rules", {"idle_after": float("nan")}),
])
def test_numbers_out_of_range_are_400_not_500(api, method, path, body):
    status, data, _ = call(api, method, path, body)
    assert status == 400 and data["error"]


def test_unknown_endpoints_and_methods(api):
    assert call(api, "GET", "/api/nope")[0] == 404
    status, _, reply = call(api, "PATCH", "/api/sessions")
    assert status == 405 and ("Allow", "GET") in reply.headers
    assert call(api, "POST", "/metrics")[0] == 405
    assert call(api, "GET", "/nope", headers={})[0] == 404
    assert call(api, "GET", "/api/sessions/\u0663")[0] == 404  # ids are ASCII digits


def test_a_protocol_named_by_digits_is_just_unknown(api):
    status, data, _ = call(api, "PUT", "/api/limits/123", {"limit": 1})
    assert status == 404 and "'123'" in data["error"]


def test_a_handler_bug_is_a_500_json_not_a_traceback(server, api, monkeypatch):
    def broken(protocol=None):
        raise RuntimeError("boom")
    monkeypatch.setattr(server.engine, "sessions", broken)
    status, data, _ = call(api, "GET", "/api/sessions")
    assert status == 500 and "boom" not in data["error"]


# -- files, shares, server, limits, rules ----------------------------------------------------
def test_files_list_what_sessions_hold_open(server, api):
    alice, _ = admit(server)
    server.engine.set_open_files(alice, ["a.txt", "dir\\b.txt"])
    data = call(api, "GET", "/api/files")[1]
    assert [(f["path"], f["user"], f["session"]) for f in data] == [
        ("a.txt", "alice", alice.id), ("dir\\b.txt", "alice", alice.id)]


def test_shares_include_ipc(server, api):
    data = call(api, "GET", "/api/shares")[1]
    assert [(s["name"], s["type"]) for s in data] == [("IPC$", "ipc"), ("docs", "disk")]
    assert data[1]["path"] == server.share_dirs["docs"]


def test_server_config_shows_the_limit_and_sets_autodisconnect(server, api):
    data = call(api, "GET", "/api/server")[1]
    assert data["maximum_logged_on_users"] == 10 and data["autodisconnect"] == 15
    assert data["software_version"] == "Windows XP Professional"
    assert data["server_name"] == "\\\\EMULATOR"
    assert call(api, "PATCH", "/api/server", {"autodisconnect": 3})[1]["autodisconnect"] == 3
    assert server.engine.rules.autodisconnect_minutes == 3
    for body in ({"autodisconnect": -2}, {"autodisconnect": "5"}, {"hidden": True}):
        assert call(api, "PATCH", "/api/server", body)[0] == 400


def test_server_patch_checks_every_value_before_changing_any(server, api):
    assert call(api, "PATCH", "/api/server", {"comment": "lab", "autodisconnect": "x"})[0] == 400
    assert call(api, "GET", "/api/server")[1]["comment"] == ""
    assert call(api, "PATCH", "/api/server", {"comment": "lab"})[1]["comment"] == "lab"


def test_limits_change_while_running_and_a_lower_limit_kills_nothing(server, api):
    admit(server)
    admit(server, "bob")
    assert call(api, "GET", "/api/limits")[1][0] == {"protocol": "smb", "limit": 10, "used": 2}
    assert call(api, "PUT", "/api/limits/smb", {"limit": 1})[1]["limit"] == 1
    assert server.engine.counted("smb") == 2
    assert not server.engine.request_session("smb", "10.0.0.9").admitted
    assert call(api, "PUT", "/api/limits/smb", {"limit": None})[1]["limit"] is None
    assert server.engine.request_session("smb", "10.0.0.9").admitted
    assert call(api, "PUT", "/api/limits/ftp", {"limit": 1})[0] == 404
    for bad in ({"limit": -1}, {"limit": 1.5}, {"limit": True}, {}):
        assert call(api, "PUT", "/api/limits/smb", bad)[0] == 400


def test_rules_patch_validates_types_and_replans_the_timers(server, api):
    assert call(api, "GET", "/api/rules")[1]["null_session_timeout"] == 60.0
    for bad in ({"null_session_timeout": 0}, {"restrict_anonymous": "yes"},
                {"null_session_pipes": "x"}, {"nope": 1}, {"rdp_idle_limit": "1"}):
        assert call(api, "PATCH", "/api/rules", bad)[0] == 400, bad
    session = server.engine.request_session("smb", "10.0.0.5").session
    server.engine.logon(session, user="", client="", anonymous=True)
    data = call(api, "PATCH", "/api/rules", {"null_session_timeout": 30,
                                             "null_session_pipes": ["srvsvc"]})[1]
    assert data["null_session_timeout"] == 30 and data["null_session_pipes"] == ["srvsvc"]
    call(api, "POST", "/api/clock/advance", {"seconds": 31})
    assert server.engine.get(session.id) is None  # expired at the new 30 s, not the old 60


def test_rules_patch_knows_every_rule():
    assert set(RULES) == {f.name for f in dataclasses.fields(Rules)}


def test_rules_patch_calls_the_engine_to_replan(server, api, monkeypatch):
    replans = []
    monkeypatch.setattr(server.engine, "rules_changed", lambda: replans.append(1))
    assert call(api, "PATCH", "/api/rules", {"rdp_idle_limit": 600})[0] == 200
    assert replans == [1] and server.engine.rules.rdp_idle_limit == 600
    assert call(api, "PATCH", "/api/rules", {"rdp_idle_limit": -1})[0] == 400
    assert replans == [1] and server.engine.rules.rdp_idle_limit == 600


# -- the test harness: users, shares, reset ---------------------------------------------------
def test_users_and_shares_can_be_added_while_running(server, api, tmp_path):
    assert call(api, "POST", "/api/users", {"name": "dave", "password": "pw"})[1] == {
        "name": "dave"}
    assert server.lookup_password("DAVE") == "pw"
    other = tmp_path / "other"
    other.mkdir()
    data = call(api, "POST", "/api/shares", {"name": "other", "path": str(other)})[1]
    assert data == {"name": "other", "path": str(other)}
    assert "other" in [s["name"] for s in call(api, "GET", "/api/shares")[1]]
    for path, body in (("/api/users", {"name": "", "password": "x"}),
                       ("/api/users", {"name": "eve"}),
                       ("/api/shares", {"name": "IPC$", "path": str(other)}),
                       ("/api/shares", {"name": "a/b", "path": str(other)}),
                       ("/api/shares", {"name": "gone", "path": str(tmp_path / "nope")})):
        assert call(api, "POST", path, body)[0] == 400, body


def test_reset_ends_sessions_and_restores_limits_rules_and_comment(server, api):
    alice, hooks = admit(server)
    call(api, "PUT", "/api/limits/smb", {"limit": 1})
    call(api, "PATCH", "/api/server", {"comment": "lab", "autodisconnect": 1})
    assert call(api, "POST", "/api/reset", {})[1] == {"reset": True}
    assert hooks == ["admin-reset"] and server.engine.sessions() == []
    assert call(api, "GET", "/api/limits")[1][0] == {"protocol": "smb", "limit": 10, "used": 0}
    info = call(api, "GET", "/api/server")[1]
    assert (info["comment"], info["autodisconnect"]) == ("", 15)
    assert call(api, "GET", "/api/events")[1] == []


# -- time and events -------------------------------------------------------------------------
def test_clock_advance_drops_an_idle_session_by_autodisconnect(server, api):
    alice, hooks = admit(server)
    assert call(api, "POST", "/api/clock/advance", {"seconds": 899})[0] == 200
    assert server.engine.get(alice.id) is not None
    data = call(api, "POST", "/api/clock/advance", {"seconds": 1})[1]
    assert data["advanced"] == 1 and data["now"].endswith("Z")
    assert server.engine.get(alice.id) is None and hooks == ["autodisconnect"]


def test_clock_advance_needs_a_virtual_clock_and_a_sane_number(tmp_path, api):
    for bad in ({"seconds": -1}, {"seconds": "10"}, {}, {"seconds": float("inf")}):
        assert call(api, "POST", "/api/clock/advance", bad)[0] == 400
    real = EmulatorServer(Config(admin_token=TOKEN, shares={"d": str(tmp_path)}), reactor=None,
                          clock=Clock())
    try:
        status, data, _ = call(AdminAPI(real), "POST", "/api/clock/advance", {"seconds": 1})
    finally:
        real.close()
    assert status == 409 and "--virtual-clock" in data["error"]


def test_events_filter_like_get_winevent(server, api):
    for i in range(10):
        admit(server, f"u{i}", address=f"10.0.0.{i}")
    call(api, "POST", "/api/clock/advance", {"seconds": 10})
    assert not server.engine.request_session("smb", "10.0.0.9").admitted
    denials = call(api, "GET", "/api/events", query={"id": "2003"})[1]
    assert [(e["provider"], e["address"]) for e in denials] == [("Srv", "10.0.0.9")]
    since = call(api, "GET", "/api/clock")[1]["now"]
    assert len(call(api, "GET", "/api/events", query={"since": since})[1]) == 1
    assert len(call(api, "GET", "/api/events", query={"provider": "Srv"})[1]) == 1
    assert len(call(api, "GET", "/api/events", query={"last": "2"})[1]) == 2
    assert len(call(api, "GET", "/api/events")[1]) == 11
    for bad in ({"id": "x"}, {"since": "yesterday"}, {"last": "-"}, {"last": "0"},
                {"last": "-2"}):
        assert call(api, "GET", "/api/events", query=bad)[0] == 400


# -- the CLI's client -------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["ftp://x", "http://", "http://[::1", "http://host:port"])
def test_the_client_says_a_bad_url_in_one_line_exit_2(url):
    with pytest.raises(AdminError) as info:
        AdminClient(url, "t").call("GET", "/api/sessions")
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


def test_the_client_says_a_server_that_is_not_http_in_one_line_exit_1():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def answer_garbage():
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"garbage\r\n\r\n")

        thread = threading.Thread(target=answer_garbage, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(AdminError) as info:
            AdminClient(url, "t", timeout=10).call("GET", "/api/sessions")
        thread.join(10)
    assert info.value.exit_code == 1 and "\n" not in str(info.value)
