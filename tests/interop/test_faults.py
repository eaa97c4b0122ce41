"""Faults on demand (issue 13) as unmodified clients meet them: smbclient prints the
injected NT status and sees drops, resets and a Server service restart; impacket rides out
STATUS_PENDING; smbprotocol raises for STATUS_NETWORK_SESSION_EXPIRED and re-authenticates.
Hosts come from the harness (`EmulatedHost`), faults through its methods and the CLI."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from impacket.smbconnection import SessionError, SMBConnection

from emulator.harness.hosts import EmulatedHost

from .conftest import require_binary, require_module, server_command

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

USERS = {"alice": "pw"}
STATUS_NETWORK_SESSION_EXPIRED = 0xC000035C
STATUS_NETWORK_NAME_DELETED = 0xC00000C9


@pytest.fixture(scope="module")
def share(tmp_path_factory):
    path = tmp_path_factory.mktemp("faults-share")
    (path / "f.txt").write_text("hello from the share\n")
    return path


@pytest.fixture(scope="module")
def virtual_host(share):
    with EmulatedHost("win10", users=USERS, shares={"docs": share}) as host:
        yield host


@pytest.fixture(scope="module")
def real_host(share):
    """Real time: a late reply comes while the client waits (no clock to advance)."""
    with EmulatedHost("win10", users=USERS, shares={"docs": share}, virtual_clock=False) as host:
        yield host


@pytest.fixture
def vhost(virtual_host):
    virtual_host.reset()
    yield virtual_host
    virtual_host.reset()


@pytest.fixture
def rhost(real_host):
    real_host.reset()
    yield real_host
    real_host.reset()


def smbclient(host, commands, *args, cwd=None, user="alice"):
    exe = require_binary("smbclient")
    conf = Path(cwd or ".") / "client-smb.conf"
    conf.write_text("[global]\n")
    result = subprocess.run(
        [exe, f"//{host.host}/docs", "-p", str(host.smb_port), "--configfile", str(conf),
         "-U", f"{user}%{USERS[user]}", *args, "-c", commands],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=cwd, timeout=60)
    return result.returncode, result.stdout


def impacket(host, timeout=20):
    conn = SMBConnection(host.host, host.host, sess_port=host.smb_port, timeout=timeout)
    conn.login("alice", USERS["alice"])
    return conn


# -- smbclient: statuses and connection faults ------------------------------------------------
@pytest.mark.parametrize("signing", ["desired", "required"])
def test_smbclient_prints_the_injected_status_on_get(vhost, tmp_path, signing):
    vhost.inject("smb", "READ", status="STATUS_INSUFFICIENT_RESOURCES", count=1)
    code, out = smbclient(vhost, "get f.txt copy.txt", f"--option=client signing={signing}",
                          cwd=tmp_path)
    # Signing required: smbclient checks the error's signature, and takes it.
    assert code != 0 and "NT_STATUS_INSUFFICIENT_RESOURCES" in out, out
    assert [f["hits"] for f in vhost.faults()] == [1]
    assert smbclient(vhost, "get f.txt copy.txt", cwd=tmp_path)[0] == 0  # count 1: spent
    assert (tmp_path / "copy.txt").read_text() == "hello from the share\n"
    (fired,) = vhost.events(110)
    assert "READ -> STATUS_INSUFFICIENT_RESOURCES" in fired["message"]


@pytest.mark.parametrize("status, sub", [
    ("STATUS_LOGON_FAILURE", "0xc000006a"), ("STATUS_ACCOUNT_LOCKED_OUT", "0x0"),
    ("STATUS_PASSWORD_EXPIRED", "0xc0000071"), ("STATUS_ACCOUNT_DISABLED", "0xc0000072")])
def test_smbclient_refused_logon_and_its_4625(vhost, tmp_path, status, sub):
    vhost.inject("smb", "SESSION_SETUP", status=status, user="alice")
    code, out = smbclient(vhost, "ls", cwd=tmp_path)
    assert code != 0 and f"NT_{status}" in out, out
    (failed,) = vhost.events(4625)
    assert failed["user"] == "alice" and failed["sub_status"] == sub
    assert vhost.sessions("smb") == []  # the refused logon holds no slot


@pytest.mark.parametrize("action, seen", [
    ("drop", "NT_STATUS_CONNECTION_DISCONNECTED"), ("reset", "NT_STATUS_CONNECTION_RESET"),
    ("truncate", "NT_STATUS_CONNECTION_DISCONNECTED")])
def test_smbclient_sees_the_connection_fault(vhost, tmp_path, action, seen):
    vhost.inject("smb", "READ", action=action)
    code, out = smbclient(vhost, "get f.txt copy.txt", cwd=tmp_path)
    assert code != 0 and seen in out, out
    assert vhost.sessions("smb") == []  # the session went with its connection


def test_smbclient_gets_a_delayed_reply_and_one_credit_at_a_time(rhost, tmp_path):
    rhost.inject("smb", "READ", delay=0.3)
    rhost.inject("smb", "*", credits=1, count=None)
    code, out = smbclient(rhost, "get f.txt copy.txt", cwd=tmp_path)
    assert code == 0, out
    assert (tmp_path / "copy.txt").read_text() == "hello from the share\n"
    hits = {f["action"]: f["hits"] for f in rhost.faults()}
    assert hits["delay"] == 1 and hits["credits"] > 3


# -- impacket: STATUS_PENDING, a stall, a removed share -----------------------------------------
def test_impacket_waits_through_status_pending_for_the_late_reply(rhost):
    conn = impacket(rhost)
    try:
        rhost.inject("smb", "READ", action="pending", delay=0.3)
        got = []
        conn.getFile("docs", "f.txt", got.append)  # SMB3.recvSMB loops on STATUS_PENDING
        assert b"".join(got) == b"hello from the share\n"
        assert [f["hits"] for f in rhost.faults()] == [1]
    finally:
        conn.close()


def test_a_stalled_request_times_impacket_out_and_the_connection_stays(rhost):
    conn = impacket(rhost, timeout=2)
    try:
        rhost.inject("smb", "QUERY_DIRECTORY", action="stall")
        with pytest.raises(Exception):  # noqa: B017 (impacket raises its socket timeout)
            conn.listPath("docs", "*")
        assert len(rhost.sessions("smb")) == 1  # never answered, never closed
    finally:
        conn.close()


def test_impacket_tree_on_a_removed_share_is_name_deleted(vhost, share):
    conn = impacket(vhost)
    try:
        tid = conn.connectTree("docs")
        conn.closeFile(tid, conn.openFile(tid, "f.txt"))
        vhost.remove_share("docs")
        with pytest.raises(SessionError) as info:
            conn.openFile(tid, "f.txt")  # a request on the tree it holds
        assert info.value.getErrorCode() == STATUS_NETWORK_NAME_DELETED
        other = impacket(vhost)
        try:
            with pytest.raises(SessionError) as info:
                other.connectTree("docs")  # a new tree connect: the share is gone
            assert info.value.getErrorCode() == 0xC00000CC  # STATUS_BAD_NETWORK_NAME
        finally:
            other.close()
    finally:
        conn.close()
        vhost.add_share("docs", share)


# -- smbprotocol: an expired session --------------------------------------------------------------
def _smbprotocol_session(host, require_signing):
    require_module("smbprotocol")
    from smbprotocol.connection import Connection
    from smbprotocol.session import Session
    from smbprotocol.tree import TreeConnect

    from smbprotocol.connection import Dialects

    conn = Connection(uuid.uuid4(), host.host, host.smb_port, require_signing=require_signing)
    # Unsigned: 3.0.2 (on 3.1.1 an unsigned TREE_CONNECT is a disconnect, MS-SMB2 3.3.5.7).
    conn.connect(dialect=None if require_signing else Dialects.SMB_3_0_2)
    session = Session(conn, "alice", USERS["alice"], require_encryption=False)
    session.connect()
    tree = TreeConnect(session, rf"\\{host.host}\docs")
    tree.connect()
    return conn, session, tree


def _read(tree):
    from smbprotocol.open import (
        CreateDisposition, CreateOptions, FileAttributes, FilePipePrinterAccessMask,
        ImpersonationLevel, Open, ShareAccess,
    )
    op = Open(tree, "f.txt")
    op.create(ImpersonationLevel.Impersonation, FilePipePrinterAccessMask.GENERIC_READ,
              FileAttributes.FILE_ATTRIBUTE_NORMAL, ShareAccess.FILE_SHARE_READ,
              CreateDisposition.FILE_OPEN, CreateOptions.FILE_NON_DIRECTORY_FILE)
    data = op.read(0, 5)
    op.close()
    return data


def test_smbprotocol_raises_for_an_expired_session_then_reauthenticates(vhost):
    from smbprotocol.exceptions import SMBResponseException

    conn, session, tree = _smbprotocol_session(vhost, require_signing=False)
    try:
        assert _read(tree) == b"hello"
        assert len(vhost.expire_sessions("alice")) == 1
        with pytest.raises(SMBResponseException) as info:
            _read(tree)
        assert info.value.status == STATUS_NETWORK_SESSION_EXPIRED
        sid = session.session_id
        session.connect()  # SESSION_SETUP on the same SessionId: re-authentication
        assert session.session_id == sid
        assert _read(tree) == b"hello"  # the tree survived
        assert len(vhost.sessions("smb")) == 1  # the same session, not a second one
    finally:
        conn.disconnect()


def test_smbprotocol_signing_reauthentication_derives_new_keys(vhost):
    """What smbprotocol does when it signs: Session.connect() on the expired session derives
    fresh keys from the new exchange and checks the final response with them, while the
    session keeps its keys on re-authentication (MS-SMB2 3.2.5.3.2 has the client derive
    none; the server signs with the session's key): smbprotocol fails its own check. A new
    Session on the connection works."""
    from smbprotocol.exceptions import SMBException, SMBResponseException
    from smbprotocol.session import Session
    from smbprotocol.tree import TreeConnect

    conn, session, tree = _smbprotocol_session(vhost, require_signing=True)
    try:
        vhost.expire_sessions()
        with pytest.raises(SMBResponseException) as info:
            _read(tree)
        assert info.value.status == STATUS_NETWORK_SESSION_EXPIRED
        with pytest.raises(SMBException, match="signature could not be verified"):
            session.connect()
        fresh = Session(conn, "alice", USERS["alice"], require_encryption=False)
        fresh.connect()
        tree2 = TreeConnect(fresh, rf"\\{vhost.host}\docs")
        tree2.connect()
        assert _read(tree2) == b"hello"
    finally:
        conn.disconnect(False)  # the broken session's LOGOFF would be signed with its new keys


def test_smbprotocol_encrypted_error_and_pending_reply(rhost):
    """Encryption (smbprotocol's default on 3.1.1): the injected error and the interim and
    final responses of a pending request come encrypted, as the request was."""
    from smbprotocol.connection import Connection
    from smbprotocol.exceptions import SMBResponseException
    from smbprotocol.session import Session
    from smbprotocol.tree import TreeConnect

    require_module("smbprotocol")
    conn = Connection(uuid.uuid4(), rhost.host, rhost.smb_port)
    conn.connect()
    try:
        session = Session(conn, "alice", USERS["alice"])  # require_encryption=True
        session.connect()
        assert session.encrypt_data
        tree = TreeConnect(session, rf"\\{rhost.host}\docs")
        tree.connect()
        rhost.inject("smb", "READ", status="STATUS_INSUFFICIENT_RESOURCES")
        with pytest.raises(SMBResponseException) as info:
            _read(tree)
        assert info.value.status == 0xC000009A
        rhost.inject("smb", "READ", action="pending", delay=0.3)
        assert _read(tree) == b"hello"
        assert [f["hits"] for f in rhost.faults()] == [1, 1]
    finally:
        conn.disconnect()


# -- the Server service restarts, the machine reboots ---------------------------------------------
def _read_until(proc, word, deadline=30.0):
    """smbclient's interactive output up to ``word`` (bounded; no sleeps)."""
    out, end = b"", time.monotonic() + deadline
    while word.encode() not in out and time.monotonic() < end:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            out += chunk
    return out.decode(errors="replace")


def test_restart_resets_smbclient_then_a_new_connection_works_after_the_downtime(
        share, tmp_path):
    exe = require_binary("smbclient")
    conf = tmp_path / "client-smb.conf"
    conf.write_text("[global]\n")
    with EmulatedHost("win10", users=USERS, shares={"docs": share}) as host:
        # stdbuf: smbclient's prompt output unbuffered on a pipe.
        proc = subprocess.Popen(
            ["stdbuf", "-o0", exe, f"//{host.host}/docs", "-p", str(host.smb_port),
             "--configfile", str(conf), "-U", "alice%pw"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            proc.stdin.write(b"ls f.txt\n")
            proc.stdin.flush()
            assert "blocks available" in _read_until(proc, "blocks available")
            port = host.smb_port
            assert host.restart(downtime=5)["ports"]["smb"] == port
            proc.stdin.write(b"ls f.txt\n")
            proc.stdin.flush()
            assert "NT_STATUS_CONNECTION_RESET" in _read_until(proc, "NT_STATUS")
        finally:
            proc.kill()
            proc.wait(10)
        code, out = smbclient(host, "ls f.txt", cwd=tmp_path)
        assert code != 0 and "NT_STATUS_CONNECTION_REFUSED" in out, out
        host.advance(5)
        code, out = smbclient(host, "ls f.txt", cwd=tmp_path)
        assert code == 0 and "f.txt" in out, out
        states = [e["message"] for e in host.events(7036)]
        assert states == ["The Server service entered the stopped state.",
                          "The Server service entered the running state."]


def test_reboot_ends_every_session_and_comes_back(share, tmp_path):
    with EmulatedHost("win10", users=USERS, shares={"docs": share}) as host:
        conn = impacket(host)
        host.reboot(downtime=30)
        assert host.sessions() == []
        with pytest.raises(Exception):  # noqa: B017 (the connection was reset)
            conn.listPath("docs", "*")
        host.advance(30)
        code, out = smbclient(host, "ls f.txt", cwd=tmp_path)
        assert code == 0, out
        ids = [e["id"] for e in host.events()]
        assert ids.index(6006) < ids.index(6005)


# -- the CLI ---------------------------------------------------------------------------------------
def test_fault_verbs_add_list_and_clear(vhost, tmp_path):
    def verb(*args):
        result = subprocess.run([*server_command(), "fault", *args, "--admin", vhost.admin_url,
                                 "--token", vhost.token], capture_output=True, text=True,
                                timeout=60)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    added = verb("add", "smb", "READ", "--status", "STATUS_INSUFFICIENT_RESOURCES",
                 "--share", "docs", "--json")
    assert added.returncode == 0, added.stderr
    (row,) = json.loads(added.stdout)
    assert row["status"] == "STATUS_INSUFFICIENT_RESOURCES" and row["share"] == "docs"
    listed = verb("list")
    assert "STATUS_INSUFFICIENT_RESOURCES" in listed.stdout and "share=docs" in listed.stdout
    bad = verb("add", "smb", "FROB", "--status", "1")
    assert bad.returncode != 0 and "unknown smb command" in bad.stderr
    assert smbclient(vhost, "get f.txt copy.txt", cwd=tmp_path)[0] != 0
    assert verb("clear").returncode == 0
    assert "No fault is armed." in verb("list").stdout


# -- re-authentication as Samba's own tests check it -------------------------------------------
@pytest.mark.parametrize("test", ["reauth1", "reauth2", "reauth3", "reauth4", "reauth6"])
def test_smbtorture_session_reauth(rhost, tmp_path, test):
    """smbtorture's smb2.session.reauthN (written against Windows): SESSION_SETUP on a live
    session re-authenticates it, as alice or anonymously, opens surviving, the response
    signed with the session's key. (reauth5 fails on an unlink it expects, not on the
    re-authentication; left out.)"""
    exe = require_binary("smbtorture")
    conf = tmp_path / "client-smb.conf"
    conf.write_text("[global]\n")
    cmd = [exe, f"//{rhost.host}/docs", "-p", str(rhost.smb_port), "--configfile", str(conf),
           "-U", f"alice%{USERS['alice']}", f"smb2.session.{test}"]
    run = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=60)
    assert run.returncode == 0 and f"success: {test}" in run.stdout, run.stdout[-3000:]


# -- the pytest plugin's lab hosts -----------------------------------------------------------------
def test_plugin_host_restarts_alone_in_its_lab(emulated_host_factory, tmp_path):
    """Two hosts of the plugin's lab process: one restarts, the other keeps serving."""
    (tmp_path / "f.txt").write_text("x")
    one = emulated_host_factory(users=USERS, shares={"docs": tmp_path})
    two = emulated_host_factory(users=USERS, shares={"docs": tmp_path})
    one.restart(downtime=10)
    assert smbclient(two, "ls f.txt", cwd=tmp_path)[0] == 0
    code, out = smbclient(one, "ls f.txt", cwd=tmp_path)
    assert code != 0 and "NT_STATUS_CONNECTION_REFUSED" in out, out
    one.advance(10)
    assert smbclient(one, "ls f.txt", cwd=tmp_path)[0] == 0
    assert [e["id"] for e in two.events(7036)] == []
