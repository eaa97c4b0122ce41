"""Service and machine faults of a host on a MemoryReactorClock: the Server service restart
and the reboot (listeners down for the downtime, back on the same ports, events, the boot
time), expired sessions, removed shares, their admin routes, and removal mid-downtime."""

from __future__ import annotations

import json

import pytest
from twisted.internet.testing import MemoryReactorClock

from emulator.admin.api import AdminAPI, Call
from emulator.config import Config
from emulator.server import Host

TOKEN = "s3cret-token"
HEADERS = {"host": "127.0.0.1:8080", "authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def host(tmp_path):
    reactor = MemoryReactorClock()
    reactor.advance(1_767_225_600)
    h = Host(Config(edition="win10", admin_token=TOKEN, nbns_port=-1, smb_port=4450,
                    netbios_port=1390, rdp_port=33890, shares={"docs": str(tmp_path)}),
             reactor)
    h.start()
    yield h
    h.close()


def call(api, method, path, body=None):
    raw = b"" if body is None else json.dumps(body).encode()
    reply = api.handle(Call(method, path, {}, HEADERS, raw))
    return reply.status, json.loads(reply.body)


def names(host):
    return sorted(lst.name for lst in host.listeners)


def test_restart_takes_the_smb_ports_down_for_the_downtime(host):
    guid = host.smb.server_guid
    host.restart(5)
    assert names(host) == ["rdp"]
    assert [e["message"] for e in host.events.records if e["id"] == 7036] == [
        "The Server service entered the stopped state."]
    host.reactor.advance(4.9)
    assert names(host) == ["rdp"]
    host.reactor.advance(0.1)
    assert names(host) == ["netbios", "rdp", "smb"]
    ports = [port for port, *_ in host.reactor.tcpServers]
    assert ports.count(4450) == 2 and ports.count(1390) == 2  # the same ports again
    assert host.smb.server_guid == guid
    assert [e["message"] for e in host.events.records if e["id"] == 7036][-1] == (
        "The Server service entered the running state.")
    assert host.restarting is None


def test_a_second_restart_while_down_is_refused(host):
    host.restart(5)
    with pytest.raises(ValueError, match="already"):
        host.reboot(5)


def test_reboot_ends_every_session_and_moves_the_boot_time(host):
    booted = host.started
    admission = host.engine.request_session("rdp", "127.0.0.9")
    host.engine.logon(admission.session, user="alice", client="PC", anonymous=False)
    host.reboot(30)
    assert host.listeners == [] and host.engine.sessions() == []
    assert [e["id"] for e in host.events.records][-1] == 6006
    host.reactor.advance(30)
    assert names(host) == ["netbios", "rdp", "smb"]
    assert host.started == booted + 30
    ids = [e["id"] for e in host.events.records]
    assert ids.index(6005) > ids.index(6006) and ids[-1] == 7036


def test_removing_a_host_during_the_downtime_leaves_no_timer(host):
    host.restart(60)
    assert host.clock.pending >= 1
    host.close()
    assert host.clock.pending == 0
    host.reactor.advance(60)
    assert names(host) == []


def test_remove_share_route_and_404(host):
    api = AdminAPI(host)
    assert call(api, "DELETE", "/api/shares/DOCS") == (200, {"removed": "DOCS"})
    assert "docs" not in host.smb.shares
    assert call(api, "DELETE", "/api/shares/docs")[0] == 404


def test_expire_route_marks_the_users_smb2_sessions(host):
    class Slot:
        id, user = 7, "Alice"

    class Session:
        valid, slot, expired = True, Slot(), False

    other = type("S", (), {"valid": True, "slot": type("T", (), {"id": 8, "user": "bob"})(),
                           "expired": False})()
    host.smb.session_ids.live.update({1: (Session, None), 2: (other, None)})
    api = AdminAPI(host)
    assert call(api, "POST", "/api/sessions/expire", {"user": "alice"}) == (200, {"expired": [7]})
    assert Session.expired is True and other.expired is False


@pytest.mark.parametrize("body, status", [
    ({"downtime": -1}, 400), ({"downtime": "soon"}, 400), ({"later": 1}, 400)])
def test_restart_route_checks_the_downtime(host, body, status):
    reply = call(AdminAPI(host), "POST", "/api/restart", body)
    assert reply[0] == status and host.restarting is None


def test_restart_and_reboot_routes(host):
    api = AdminAPI(host)
    status, reply = call(api, "POST", "/api/restart", {"downtime": 1})
    assert status == 200 and reply["ports"] == {"smb": 4450, "netbios": 1390}
    assert call(api, "POST", "/api/reboot", {"downtime": 1})[0] == 409
    host.reactor.advance(1)
    assert call(api, "POST", "/api/reboot", {"downtime": 2})[0] == 200
