"""The pytest plugin as a user of it meets it: fixtures, marker, host methods, teardown."""

import os

import pytest
import pytest_twisted
from impacket.smbconnection import SessionError, SMBConnection

pytest_plugins = ["pytester"]


def login(host, user="user", password="password"):
    conn = SMBConnection(host.host, host.host, sess_port=host.smb_port)
    conn.login(user, password)
    return conn


@pytest.mark.edition("xp-home")
def test_marker_picks_the_edition_and_the_limit_holds(emulated_host):
    assert emulated_host.limits()["smb"] == 5
    held = [login(emulated_host) for _ in range(5)]
    with pytest.raises(SessionError) as refused:
        login(emulated_host)
    assert refused.value.getErrorCode() == 0xC00000D0
    assert len(emulated_host.sessions("smb")) == 5
    assert any(e["id"] == 2003 for e in emulated_host.events())
    held[0].logoff()
    login(emulated_host)


def test_default_edition_and_ports(emulated_host):
    assert emulated_host.limits()["smb"] == 20
    assert emulated_host.smb_port > 0 and emulated_host.netbios_port > 0


def test_factory_users_shares_set_limit_advance_reset(emulated_host_factory, tmp_path):
    (tmp_path / "hello.txt").write_text("hi")
    host = emulated_host_factory(edition="xp-pro", users={"alice": "pw"},
                                 shares={"docs": tmp_path})
    conn = login(host, "alice", "pw")
    assert [f.get_longname() for f in conn.listPath("docs", "*")][2:] == ["hello.txt"]
    host.add_user("bob", "pw2")
    other = tmp_path / "other"
    other.mkdir()
    host.add_share("other", other)
    bob = login(host, "bob", "pw2")
    bob.listPath("other", "*")
    host.set_limit("smb", 2)
    with pytest.raises(SessionError):
        login(host, "alice", "pw")
    host.advance(15 * 60)  # autodisconnect drops both idle sessions
    assert host.sessions() == []
    login(host, "alice", "pw")
    host.reset()
    assert host.sessions() == [] and host.limits()["smb"] == 10


def test_two_hosts_are_independent(emulated_host_factory):
    a = emulated_host_factory(edition="xp-home")
    b = emulated_host_factory(edition="win11")
    assert a.smb_port != b.smb_port
    assert (a.limits()["smb"], b.limits()["smb"]) == (5, 20)


def test_teardown_leaves_no_process_and_no_directory(pytester):
    pytester.makepyfile("""
        import os
        def test_start(emulated_host):
            open("state.txt", "w").write(f"{emulated_host.process.pid} {emulated_host._dir}")
    """)
    # The plugin comes from the installed entry point, as in a user's project.
    pytester.runpytest_subprocess().assert_outcomes(passed=1)
    pid, directory = (pytester.path / "state.txt").read_text().split()
    assert not os.path.exists(directory)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)



@pytest_twisted.inlineCallbacks
def test_deferred_access_for_pytest_twisted(emulated_host):
    limits = yield emulated_host.deferred.limits()
    assert limits["smb"] == 20
    sessions = yield emulated_host.deferred.sessions()
    assert sessions == []


def test_under_xdist_each_worker_has_one_lab_of_its_own(pytester):
    """pytest-xdist: every worker starts one lab process on first use and keeps it."""
    pytest.importorskip("xdist")
    pytester.makepyfile("""
        import os
        import pytest

        @pytest.mark.parametrize("n", range(6))
        def test_host(emulated_host, n):
            worker = os.environ["PYTEST_XDIST_WORKER"]
            with open(f"lab-{worker}-{n}.txt", "w") as fh:
                fh.write(f"{emulated_host.process.pid} {emulated_host.smb_port}")
    """)
    pytester.runpytest_subprocess("-n", "2", "-p", "xdist").assert_outcomes(passed=6)
    seen: dict[str, set[str]] = {}
    ports = set()
    for path in pytester.path.glob("lab-*.txt"):
        pid, port = path.read_text().split()
        seen.setdefault(path.name.split("-")[1], set()).add(pid)
        ports.add(port)
    assert len(seen) == 2, seen  # both workers ran hosts
    assert all(len(pids) == 1 for pids in seen.values()), seen  # one lab per worker
    assert len(set().union(*seen.values())) == 2  # and not the same lab
    assert len(ports) == 6  # every host listened on its own port


def test_hosts_share_the_workers_lab_and_each_starts_empty(emulated_host_factory):
    first = emulated_host_factory(edition="xp-pro")
    first.add_user("carol", "pw")
    first.set_limit("smb", 1)
    login(first, "carol", "pw")
    assert first.close() == []
    second = emulated_host_factory(edition="xp-pro")
    assert second.process.pid == first.process.pid  # one lab process for the worker
    assert second.sessions() == [] and second.events() == [] and second.limits()["smb"] == 10
    with pytest.raises(SessionError):
        login(second, "carol", "pw")  # nothing carried over from the host before
    login(second)


@pytest.mark.own_process
def test_the_marker_gives_a_process_of_its_own(emulated_host):
    assert "admin" in emulated_host.listeners  # a serve process with its own admin listener
    assert emulated_host.limits()["smb"] == 20


def test_own_process_for_one_host_beside_a_lab_host(emulated_host_factory):
    alone = emulated_host_factory(edition="xp-home", own_process=True)
    shared = emulated_host_factory(edition="xp-home")
    assert alone.process.pid != shared.process.pid and "admin" not in shared.listeners
    assert alone.limits()["smb"] == shared.limits()["smb"] == 5


def test_a_traceback_fails_the_test_whose_host_was_alive_and_no_other(pytester):
    # The lab's stderr is the emulator's log; a traceback written to it while a host
    # lives (here written by the test itself, standing in for a bug in the host's code)
    # fails that host's test at teardown, and the next test's host starts clean.
    pytester.makepyfile("""
        def test_a_owns_the_bug(emulated_host):
            with open(emulated_host.lab._dir / "stderr.log", "a") as log:
                log.write("Traceback (most recent call last):\\n  boom\\n")

        def test_b_is_not_blamed(emulated_host):
            assert emulated_host.limits()["smb"] == 20
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_a_owns_the_bug*"])
    assert "test_b_is_not_blamed" not in "\n".join(
        line for line in result.stdout.lines if line.startswith("ERROR"))
