"""The admin API and the `smbrdp-emu` admin verbs against a live server, with real SMB
sessions held by impacket: what an administrator does, and what the client then sees."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import urllib.error
import urllib.request

import pytest
from impacket.smbconnection import SessionError, SMBConnection

from .conftest import EDITIONS, STATUS_REQUEST_NOT_ACCEPTED, server_command

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

TOKEN = "interop-admin-token"
STATUS_USER_SESSION_DELETED = 0xC0000203


@pytest.fixture
def admin(emulator):
    """Factory: a server with the admin API on a free port and a virtual clock."""
    def start(edition="xp-pro", args=()):
        # ForceGuest off: these tests follow named accounts (XP Pro, Simple File Sharing off).
        # They check SMB2's answers to an ended session: XP's SMB1 is turned off.
        return emulator(edition, args=("--admin-port", "0", "--admin-token", TOKEN,
                                       "--virtual-clock", "--no-force-guest",
                                       *EDITIONS[edition].smb2_args, *args))
    return start


def verb(emu, *args, token=TOKEN, url=None, env=None):
    """Run `smbrdp-emu VERB ... --admin URL --token TOKEN` as a user would."""
    cmd = [*server_command(), *args]
    if url is not False:
        cmd += ["--admin", url or emu.admin_url]
    if token:
        cmd += ["--token", token]
    # By default the environment names no server or token: only the flags count.
    env = env or {**os.environ, "SMBRDP_EMU_ADMIN": "", "SMBRDP_EMU_TOKEN": ""}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def verb_ok(emu, *args, **kw):
    result = verb(emu, *args, **kw)
    assert result.returncode == 0, result.stderr
    return result.stdout


def verb_json(emu, *args):
    data = json.loads(verb_ok(emu, *args, "--json"))
    assert isinstance(data, list) and all(isinstance(row, dict) for row in data)
    return data


def http(emu, method, path, body=None, token=TOKEN):
    """The API by hand (urllib), independent of the CLI's client: (status, body text)."""
    request = urllib.request.Request(emu.admin_url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def login(emu, user="alice"):
    conn = SMBConnection(emu.host, emu.host, sess_port=emu.smb_port, timeout=20)
    conn.login(user, emu.users[user])
    return conn


def assert_denied(emu, user="bob"):
    with pytest.raises(SessionError) as info:
        login(emu, user)
    assert info.value.getErrorCode() == STATUS_REQUEST_NOT_ACCEPTED


def assert_session_deleted(conn):
    with pytest.raises(SessionError) as info:
        conn.listPath("docs", "*")
    assert info.value.getErrorCode() == STATUS_USER_SESSION_DELETED


def close(*conns):
    for conn in conns:
        with contextlib.suppress(Exception):
            conn.close()


def smb_sessions(emu):
    return json.loads(http(emu, "GET", "/api/sessions?protocol=smb")[1])


# -- net session ----------------------------------------------------------------------------
def test_net_session_lists_the_impacket_sessions_like_windows(admin):
    emu = admin()
    alice, bob = login(emu), login(emu, "bob")
    try:
        rows = verb_json(emu, "net", "session")
        assert sorted(r["user"] for r in rows) == ["alice", "bob"]
        for row in rows:
            assert {"id", "protocol", "user", "client", "address", "state", "console",
                    "opens", "idle_seconds", "logon_time"} <= set(row)
            assert (row["protocol"], row["address"], row["state"]) == ("smb", "127.0.0.1",
                                                                        "active")
        # impacket sends an empty workstation name, so the computer is its address.
        computer = "\\\\" + (rows[0]["client"] or rows[0]["address"])
        lines = verb_ok(emu, "net", "session").splitlines()
        assert lines[1].split() == ["Computer", "User", "name", "Client", "Type", "Opens",
                                    "Idle", "time"]
        assert lines[3] == "-" * 79 and lines[-1] == "The command completed successfully."
        assert sorted(line.split()[:2] for line in lines[4:-1]) == [
            [computer, "alice"], [computer, "bob"]]
        assert all(line.split()[-2:] == ["0", "00:00:00"] for line in lines[4:-1])
    finally:
        close(alice, bob)


@pytest.mark.parametrize("flag", ["/delete", "/del"])
def test_net_session_delete_ends_the_session_and_frees_its_slot(admin, flag):
    emu = admin(args=("--smb-limit", "1"))
    alice = login(emu)
    try:
        assert_denied(emu)
        computer = "\\\\" + (smb_sessions(emu)[0]["client"] or "127.0.0.1")
        assert verb_ok(emu, "net", "session", computer, flag).strip() == (
            "The command completed successfully.")
        assert_session_deleted(alice)  # the client's next request: STATUS_USER_SESSION_DELETED
        assert verb_ok(emu, "net", "session").strip() == "There are no entries in the list."
        close(login(emu, "bob"))  # the slot is free
        assert [e["outcome"] for e in emu.events(id=102)] == ["admin-delete"]
    finally:
        close(alice)


def test_net_session_delete_of_an_unknown_computer_fails_with_windows_words(admin):
    emu = admin()
    result = verb(emu, "net", "session", "\\\\NOBODY", "/delete")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "smbrdp-emu: A session does not exist with that computer name. (404)")


# -- net files, net share, net config server ------------------------------------------------
def test_net_files_shows_what_a_session_holds_open(admin):
    emu = admin()
    (emu.share_dir / "report.txt").write_text("x")
    alice = login(emu)
    try:
        tid = alice.connectTree("docs")
        fid = alice.openFile(tid, "report.txt")
        files = verb_json(emu, "net", "files")
        assert [(f["path"], f["user"]) for f in files] == [("docs\\report.txt", "alice")]
        assert files[0]["session"] == smb_sessions(emu)[0]["id"]
        assert "report.txt" in verb_ok(emu, "net", "files")
        assert verb_json(emu, "net", "session")[0]["opens"] == 1
        alice.closeFile(tid, fid)
        assert verb_json(emu, "net", "files") == []
    finally:
        close(alice)


def test_net_files_id_close_closes_the_open_the_client_holds(admin):
    emu = admin()
    (emu.share_dir / "report.txt").write_text("quarterly")
    alice = login(emu)
    try:
        tid = alice.connectTree("docs")
        fid = alice.openFile(tid, "report.txt")
        (open_file,) = verb_json(emu, "net", "files")
        verb_ok(emu, "net", "files", str(open_file["id"]), "/close")
        assert verb_json(emu, "net", "files") == []
        with pytest.raises(SessionError) as err:
            alice.readFile(tid, fid, 0, 4)
        assert err.value.getErrorCode() == 0xC0000128  # STATUS_FILE_CLOSED
    finally:
        close(alice)


def test_net_share_lists_ipc_and_the_disk_shares(admin):
    emu = admin()
    shares = {s["name"]: s for s in verb_json(emu, "net", "share")}
    assert shares["IPC$"]["remark"] == "Remote IPC"
    assert shares["docs"]["path"] == str(emu.share_dir)
    lines = verb_ok(emu, "net", "share").splitlines()
    assert lines[1].split() == ["Share", "name", "Resource", "Remark"]
    assert any(line.split() == ["docs", str(emu.share_dir)] for line in lines)


def test_net_config_server_shows_the_limit_and_sets_autodisconnect(admin):
    emu = admin()
    text = verb_ok(emu, "net", "config", "server")
    assert "Maximum Logged On Users  10" in text and "Idle session time (min)  15" in text
    assert "Software version         Windows XP Professional" in text
    assert verb_ok(emu, "net", "config", "server", "/autodisconnect:5").strip() == (
        "The command completed successfully.")
    assert "Idle session time (min)  5" in verb_ok(emu, "net", "config", "server")
    assert verb_json(emu, "net", "config", "server")[0]["autodisconnect"] == 5
    bad = verb(emu, "net", "config", "server", "/autodisconnect:soon")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


# -- limits, qwinsta/rwinsta/tsdiscon, events, clock ----------------------------------------
def test_limit_verb_changes_the_limit_while_running(admin):
    emu = admin()
    alice, bob = login(emu), login(emu, "bob")
    try:
        assert verb_json(emu, "limit", "smb", "1") == [{"protocol": "smb", "limit": 1,
                                                        "used": 2}]
        assert len(smb_sessions(emu)) == 2  # a lower limit kills nothing
        alice.listPath("docs", "*")
        assert_denied(emu)
        verb_ok(emu, "limit", "smb", "unlimited")
        close(login(emu, "bob"))
        table = verb_ok(emu, "limit").splitlines()
        assert table[0].split() == ["PROTOCOL", "LIMIT", "IN", "USE"]
        assert table[1].split() == ["smb", "unlimited", "2"]
    finally:
        close(alice, bob)


def test_qwinsta_shows_the_console_as_session_0(admin):
    emu = admin()
    lines = verb_ok(emu, "qwinsta").splitlines()
    assert lines[0].split() == ["SESSIONNAME", "USERNAME", "ID", "STATE"]
    assert lines[1].split() == ["console", "0", "Conn"]
    assert verb_json(emu, "qwinsta")[0]["id"] == 0


def test_rwinsta_resets_a_session_and_tsdiscon_refuses_an_smb_one(admin):
    emu = admin()
    alice = login(emu)
    try:
        session_id = str(smb_sessions(emu)[0]["id"])
        refused = verb(emu, "tsdiscon", session_id)
        assert refused.returncode == 2 and "only Remote Desktop" in refused.stderr
        assert verb_ok(emu, "rwinsta", session_id) == ""
        assert_session_deleted(alice)
        assert [e["outcome"] for e in emu.events(id=103)] == ["admin-reset"]
        missing = verb(emu, "rwinsta", "999")
        assert missing.returncode == 2 and missing.stderr == "smbrdp-emu: no session 999 (404)\n"
    finally:
        close(alice)


def test_events_filter_by_id_and_time(admin):
    emu = admin(args=("--smb-limit", "1"))
    alice = login(emu)
    try:
        verb_ok(emu, "clock", "advance", "5")
        since = verb_json(emu, "clock")[0]["now"]
        assert_denied(emu)
        denials = verb_json(emu, "events", "--id", "2003")
        assert [(e["provider"], e["outcome"]) for e in denials] == [("Srv", "denied")]
        assert [e["id"] for e in verb_json(emu, "events", "--since", since)] == [2003]
        assert {e["id"] for e in verb_json(emu, "events")} == {4624, 2003}
        text = verb_ok(emu, "events", "--id", "2003").splitlines()
        assert text[0].split() == ["TimeCreated", "ProviderName", "Id", "LevelDisplayName",
                                   "Message"]
        assert text[1].split()[1:4] == ["Srv", "2003", "Warning"]
    finally:
        close(alice)


def test_clock_advance_900_drops_an_idle_session_by_autodisconnect(admin):
    emu = admin(args=("--smb-limit", "1"))
    alice = login(emu)
    try:
        assert_denied(emu)
        verb_ok(emu, "clock", "advance", "899")
        assert len(smb_sessions(emu)) == 1
        assert "the clock now reads" in verb_ok(emu, "clock", "advance", "1")
        assert smb_sessions(emu) == []
        assert_session_deleted(alice)
        close(login(emu, "bob"))  # its slot is free
        assert [e["outcome"] for e in emu.events(id=100)] == ["autodisconnect"]
    finally:
        close(alice)


def test_clock_advance_needs_a_virtual_clock(emulator):
    emu = emulator("xp-pro", args=("--admin-port", "0", "--admin-token", TOKEN,
                                   "--no-force-guest"))
    result = verb(emu, "clock", "advance", "10")
    assert result.returncode == 2 and "--virtual-clock" in result.stderr
    status, body = http(emu, "POST", "/api/clock/advance", {"seconds": 10})
    assert status == 409 and "--virtual-clock" in json.loads(body)["error"]


# -- authentication, errors, metrics ---------------------------------------------------------
def test_requests_without_the_token_get_401(admin):
    emu = admin()
    for path in ("/api/sessions", "/api/events", "/metrics"):
        for token in (None, "wrong"):
            status, body = http(emu, "GET", path, token=token)
            assert status == 401 and "error" in json.loads(body)
    for token in (None, "wrong"):
        result = verb(emu, "net", "session", token=token)
        assert result.returncode == 2 and "401" in result.stderr
        assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_bad_requests_are_json_errors(admin):
    emu = admin()
    status, body = http(emu, "PUT", "/api/limits/smb", {"limit": "x"})
    assert status == 400 and "limit" in json.loads(body)["error"]
    request = urllib.request.Request(emu.admin_url + "/api/sessions/delete", data=b"{not json",
                                     method="POST", headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=20)
    assert info.value.code == 400 and "not JSON" in json.loads(info.value.read())["error"]
    assert http(emu, "DELETE", "/api/sessions/12345")[0] == 404


def test_the_environment_names_the_server_and_token(admin):
    emu = admin()
    env = {**os.environ, "SMBRDP_EMU_ADMIN": emu.admin_url, "SMBRDP_EMU_TOKEN": TOKEN}
    result = verb(emu, "net", "share", url=False, token=None, env=env)
    assert result.returncode == 0 and "IPC$" in result.stdout


def test_a_server_that_is_down_is_one_line_and_exit_1(admin):
    emu = admin()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free_port = sock.getsockname()[1]
    result = verb(emu, "net", "session", url=f"http://127.0.0.1:{free_port}")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("smbrdp-emu: cannot reach the admin API at")
    assert result.stderr.count("\n") == 1


def metric(emu, name):
    """One sample's value; every sample carries the host's label (a lab of one here),
    left out of `name`."""
    status, text = http(emu, "GET", "/metrics")
    assert status == 200
    samples = [line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#")]
    assert all('host="EMULATOR"' in key for key, _ in samples)
    values = {re.sub(r'\{\}', "", key.replace('host="EMULATOR",', "").replace(
        'host="EMULATOR"', "")): float(value) for key, value in samples}
    return values[name]


def test_metrics_move_when_a_client_is_denied_at_the_limit(admin):
    emu = admin(args=("--smb-limit", "1"))
    denied = 'smbrdp_denied_total{protocol="smb"}'
    active = 'smbrdp_sessions{protocol="smb",state="active"}'
    assert (metric(emu, denied), metric(emu, active)) == (0, 0)
    assert metric(emu, 'smbrdp_session_limit{protocol="smb"}') == 1
    alice = login(emu)
    try:
        assert metric(emu, active) == 1
        assert_denied(emu)
        assert metric(emu, denied) == 1
        assert metric(emu, 'smbrdp_connections_total{protocol="smb"}') == 2
        alice.logoff()
        assert metric(emu, "smbrdp_sessions_logged_off_total") == 1
    finally:
        close(alice)


# -- hostile clients (issue 14, finding 6) ----------------------------------------------------
def raw_request(emu, head: bytes, body_chunks=(), timeout=20.0) -> bytes:
    """Send a request head (and maybe body chunks) on a raw socket; the answer until the
    server closes or 20 s pass."""
    host, port = emu.listeners["admin"]
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(head)
        for chunk in body_chunks:
            with contextlib.suppress(OSError):  # the server may already have closed
                sock.sendall(chunk)
        answer = b""
        with contextlib.suppress(OSError):
            while data := sock.recv(65536):
                answer += data
    return answer


def deleted_files(emu) -> list[str]:
    """Temporary files the server holds open (twisted.web's spooled bodies are such)."""
    fd_dir = f"/proc/{emu.pid}/fd"
    links = []
    for name in os.listdir(fd_dir):
        with contextlib.suppress(OSError):
            links.append(os.readlink(os.path.join(fd_dir, name)))
    return [link for link in links if link.endswith("(deleted)")]


def test_unauthenticated_uploads_are_refused_from_their_head_and_nothing_is_spooled(admin):
    emu = admin()
    host = emu.admin_url.split("://", 1)[1].encode()
    heads = [b"POST /api/users HTTP/1.1\r\nHost: " + host +
             b"\r\nTransfer-Encoding: chunked\r\n\r\n",
             b"POST /api/users HTTP/1.1\r\nHost: " + host +
             b"\r\nContent-Length: 104857600\r\n\r\n"]
    for head in heads * 2:  # four uploads, the attack as measured
        answer = raw_request(emu, head)  # no body sent: the answer must not wait for one
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:80]
    assert deleted_files(emu) == []


def test_an_authenticated_upload_past_the_cap_is_413_and_held_in_memory_only(admin):
    emu = admin(args=("--admin-max-body", "65536"))
    host = emu.admin_url.split("://", 1)[1].encode()
    head = (b"POST /api/users HTTP/1.1\r\nHost: " + host + b"\r\nAuthorization: Bearer " +
            TOKEN.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"8000\r\n" + b"x" * 0x8000 + b"\r\n"  # 32 KiB each; the third passes the cap
    answer = raw_request(emu, head, [chunk] * 4)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:80]
    assert deleted_files(emu) == []
    assert http(emu, "POST", "/api/users", {"name": "dave", "password": "pw"})[0] == 200


def test_a_rebound_host_name_is_421(admin):
    emu = admin()
    answer = raw_request(emu, b"GET /api/sessions HTTP/1.1\r\nHost: rebound.example\r\n"
                         b"Authorization: Bearer " + TOKEN.encode() +
                         b"\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 421 ")


def test_oversized_ids_are_404_json(admin):
    emu = admin()
    status, text = http(emu, "GET", "/api/sessions/" + "9" * 5000)
    assert status == 404 and "no session" in json.loads(text)["error"]


def test_wrong_tokens_are_throttled_with_429_and_retry_after(admin):
    # A 30 s first back-off: the right token is still refused when it arrives.
    emu = admin(args=("--admin-auth-free-failures", "3", "--admin-auth-backoff", "30"))
    statuses = [http(emu, "GET", "/api/sessions", token="guess")[0] for _ in range(4)]
    assert statuses == [401, 401, 401, 401]
    request = urllib.request.Request(emu.admin_url + "/api/sessions",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=20)
    assert info.value.code == 429 and 0 < int(info.value.headers["Retry-After"]) <= 30
    result = verb(emu, "net", "session")  # the CLI says it in one line, exit 2
    assert result.returncode == 2 and "(429)" in result.stderr
