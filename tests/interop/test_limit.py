"""The edition's inbound session limit, seen through unmodified clients.

At the limit SESSION_SETUP fails with STATUS_REQUEST_NOT_ACCEPTED
(0xC00000D0); LOGOFF or a closed connection frees the slot at once, and
null (anonymous) sessions count like any other.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
import uuid

import pytest
from impacket.smbconnection import SessionError, SMBConnection

from .conftest import (
    EDITIONS,
    PASSWORD,
    STATUS_REQUEST_NOT_ACCEPTED,
    in_ci,
    require_module,
    run_smbclient,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

DENIED = "NT_STATUS_REQUEST_NOT_ACCEPTED"


# -- client helpers ------------------------------------------------------


def negotiate(emu) -> SMBConnection:
    return SMBConnection(emu.host, emu.host, sess_port=emu.smb_port, timeout=20)


def hold(emu, user: str = "alice", password: str | None = None) -> SMBConnection:
    """An impacket connection with a logged-in session (anonymous if user == "")."""
    conn = negotiate(emu)
    if user == "":
        conn.login("", "")
    else:
        conn.login(user, emu.users[user] if password is None else password)
    return conn


def hold_many(emu, n: int) -> list[SMBConnection]:
    users = ["alice", "bob"]
    return [hold(emu, users[i % 2]) for i in range(n)]


def drop(conn: SMBConnection) -> None:
    """Close the TCP connection without LOGOFF."""
    with contextlib.suppress(Exception):
        conn.getSMBServer().close_session()


def release(conns: list[SMBConnection]) -> None:
    for c in conns:
        with contextlib.suppress(Exception):
            c.close()


def assert_impacket_denied(emu, user: str = "alice") -> None:
    conn = negotiate(emu)
    try:
        with pytest.raises(SessionError) as info:
            conn.login(user, emu.users.get(user, ""))
        assert info.value.getErrorCode() == STATUS_REQUEST_NOT_ACCEPTED, str(info.value)
    finally:
        drop(conn)


def assert_smbprotocol_denied(emu) -> None:
    require_module("smbprotocol")
    from smbprotocol.connection import Connection
    from smbprotocol.exceptions import RequestNotAccepted, SMBResponseException
    from smbprotocol.session import Session

    conn = Connection(uuid.uuid4(), emu.host, emu.smb_port)
    conn.connect(timeout=20)
    try:
        secure = EDITIONS[emu.edition].max_dialect >= 0x0300
        with pytest.raises(SMBResponseException) as info:
            Session(conn, "alice", PASSWORD, require_encryption=secure).connect()
        assert isinstance(info.value, RequestNotAccepted) or (
            info.value.status == STATUS_REQUEST_NOT_ACCEPTED
        ), repr(info.value)
    finally:
        conn.disconnect()


def assert_smbclient_denied(emu, conf) -> None:
    proc = run_smbclient(emu, conf, commands="ls")
    assert proc.returncode != 0, proc.stdout
    assert DENIED in proc.stdout, proc.stdout


def eventually_admitted(emu, timeout: float = 3.0) -> SMBConnection:
    """A freed slot shows up at once; allow the server a moment to see the FIN."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return hold(emu)
        except SessionError as e:
            if e.getErrorCode() != STATUS_REQUEST_NOT_ACCEPTED or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def denials(emu, count: int) -> list[dict]:
    return emu.wait_events(count, protocol="smb", outcome="denied")


# -- tests ---------------------------------------------------------------


def test_sixth_session_refused_by_every_client(emulator, smbclient_conf):
    # SMB2 clients (smbprotocol, smbclient's default) need SMB2: XP's SMB1 is turned off
    # here; tests/interop/test_smb1.py refuses the sixth session over SMB1.
    emu = emulator("xp-home", args=EDITIONS["xp-home"].smb2_args)
    held = hold_many(emu, 5)
    try:
        for c in held:  # all five are real, usable sessions
            c.listPath("docs", "*")

        tries = 2
        if shutil.which("smbclient") or in_ci():  # else only this part is left out
            assert_smbclient_denied(emu, smbclient_conf)
            tries += 1
        assert_impacket_denied(emu)
        assert_smbprotocol_denied(emu)

        denied = denials(emu, tries)
        assert len(denied) == tries, emu.events()
        for ev in denied:
            assert ev["status"] == STATUS_REQUEST_NOT_ACCEPTED == 3221225680, ev
            assert ev["address"].startswith("127.0.0.1"), ev
        assert len(emu.events(protocol="smb", outcome="admitted")) == 5, emu.events()

        # LOGOFF frees the slot at once (the LOGOFF response comes after it).
        held[0].logoff()
        held[0] = hold(emu, "bob")
        assert_impacket_denied(emu)
        assert emu.wait_events(1, protocol="smb", outcome="logoff"), emu.events()

        # So does closing the connection without LOGOFF.
        drop(held[1])
        held[1] = eventually_admitted(emu)
        assert_impacket_denied(emu)
    finally:
        release(held)


def test_null_session_counts(emulator):
    emu = emulator("xp-home")
    held = hold_many(emu, 4)
    try:
        anon = hold(emu, "")
        held.append(anon)
        assert_impacket_denied(emu)  # 4 users + 1 null session = 5
        # A further null session is refused as well.
        extra = negotiate(emu)
        with pytest.raises(SessionError) as info:
            extra.login("", "")
        assert info.value.getErrorCode() == STATUS_REQUEST_NOT_ACCEPTED
        drop(extra)

        anon.logoff()
        held[-1] = hold(emu)
        assert_impacket_denied(emu)
    finally:
        release(held)


@pytest.mark.parametrize("edition", ["xp-pro", "win7", "win10", "server-2022"])
def test_limit_per_edition(emulator, edition):
    emu = emulator(edition)
    limit = EDITIONS[edition].smb_limit
    held: list[SMBConnection] = []
    try:
        held = hold_many(emu, limit if limit is not None else 30)
        if limit is None:
            held.append(hold(emu))  # unlimited editions never refuse
            assert not emu.events(protocol="smb", outcome="denied")
        else:
            assert_impacket_denied(emu)
            held.pop().logoff()
            held.append(hold(emu))
    finally:
        release(held)


def test_denied_connection_stays_usable_impacket(emulator):
    emu = emulator("xp-home")
    held = hold_many(emu, 5)
    conn = negotiate(emu)
    try:
        with pytest.raises(SessionError) as info:
            conn.login("alice", PASSWORD)
        assert info.value.getErrorCode() == STATUS_REQUEST_NOT_ACCEPTED
        held.pop().logoff()
        conn.login("alice", PASSWORD)  # same TCP connection, new SESSION_SETUP
        conn.listPath("docs", "*")
    finally:
        release([*held, conn])


def test_denied_connection_stays_usable_smbprotocol(emulator):
    require_module("smbprotocol")
    from smbprotocol.connection import Connection
    from smbprotocol.exceptions import SMBResponseException
    from smbprotocol.session import Session
    from smbprotocol.tree import TreeConnect

    emu = emulator("win10")  # 20 sessions, 3.1.1: signing and encryption
    held = hold_many(emu, 20)
    conn = Connection(uuid.uuid4(), emu.host, emu.smb_port)
    conn.connect(timeout=20)
    try:
        with pytest.raises(SMBResponseException) as info:
            Session(conn, "alice", PASSWORD).connect()
        assert info.value.status == STATUS_REQUEST_NOT_ACCEPTED
        held.pop().logoff()
        session = Session(conn, "alice", PASSWORD)
        session.connect()
        tree = TreeConnect(session, rf"\\{emu.host}\docs")
        tree.connect()
        tree.disconnect()
        session.disconnect()
    finally:
        conn.disconnect()
        release(held)


def test_concurrent_logins_race(emulator):
    """16 clients log in at once against a limit of 5: exactly 5 get in."""
    emu = emulator("xp-home")
    n = 16
    limit = EDITIONS["xp-home"].smb_limit
    assert limit == 5
    start = threading.Barrier(n, timeout=30)
    done = threading.Event()
    lock = threading.Lock()
    results: list[object] = []

    def worker(i: int) -> None:
        conn = None
        try:
            conn = negotiate(emu)
            start.wait()
            try:
                conn.login(["alice", "bob"][i % 2], PASSWORD if i % 2 == 0 else emu.users["bob"])
                outcome: object = "ok"
            except SessionError as e:
                outcome = e.getErrorCode()
        except Exception as e:  # noqa: BLE001 - reported below
            outcome = repr(e)
        with lock:
            results.append(outcome)
        done.wait(60)  # hold the session until every client has tried
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(results) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    snapshot = list(results)
    done.set()
    for t in threads:
        t.join(30)

    assert len(snapshot) == n, f"only {len(snapshot)} of {n} clients finished: {snapshot}"
    assert snapshot.count("ok") == limit, snapshot
    assert snapshot.count(STATUS_REQUEST_NOT_ACCEPTED) == n - limit, snapshot
    assert len(emu.events(protocol="smb", outcome="admitted")) == limit, emu.events()
    denied = denials(emu, n - limit)
    assert len(denied) == n - limit, emu.events()
    assert all(ev["status"] == STATUS_REQUEST_NOT_ACCEPTED for ev in denied), denied
