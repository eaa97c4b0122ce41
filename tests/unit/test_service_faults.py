"""Service and machine faults of a host on a MemoryReactorClock: the Server service restart
and the reboot (listeners down for the downtime, back on the same ports, events, the boot
time), expired sessions, removed shares, their admin routes, and removal mid-downtime."""

from __future__ import annotations


import pytest
from twisted.internet.testing import MemoryReactorClock

from emulator.admin.api import AdminAPI
from emulator.config import Config
from emulator.server import Host

from tests.unit.admin_helpers import TOKEN, call


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


def test_in_a_lab_each_host_restarts_alone_and_removal_mid_downtime_leaves_nothing():
    from emulator.lab import Lab, host_values

    reactor = MemoryReactorClock()
    lab = Lab(reactor, defaults={"smb_port": 0, "netbios_port": 0, "rdp_port": 0,
                                 "nbns_port": -1})
    one, two = (lab.add(lab.config_for(host_values({"name": n, "edition": "xp-home"},
                                                   f"host {n}: ", need_address=False)))
                for n in ("one", "two"))
    one.restart(10)
    assert names(one) == [] and names(two) == ["netbios", "smb"]
    assert [e["id"] for e in two.events.records] == []  # nothing logged on the other host
    lab.remove("ONE")  # still down: its timer goes with it
    assert one.clock.pending == 0
    reactor.advance(10)
    assert names(one) == [] and names(two) == ["netbios", "smb"]


@pytest.mark.parametrize("spec", [
    {"action": "stall"}, {"action": "delay", "delay": 600}, {"action": "pending", "delay": 600}])
def test_removing_a_host_with_armed_faults_leaves_no_timer_and_no_slot(tmp_path, spec):
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    from protocols.smb2 import bodies
    from protocols.smb2.framing import frame
    from protocols.smb2.messages import Header
    from tests.unit.test_smb2_leases import Client

    reactor = MemoryReactorClock()
    (tmp_path / "share").mkdir()
    host = Host(Config(edition="win10", nbns_port=-1, smb_port=4450, netbios_port=1390,
                       users={"alice": "pw"}, shares={"share": str(tmp_path / "share")}),
                reactor)
    host.start()
    factory = next(f for f in host.factories if f.name == "smb")
    proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
    transport = StringTransport()
    proto.makeConnection(transport)
    client = Client(host.smb, 0x0300, b"A" * 16)
    client.conn.connection_lost()  # the helper's own connection: replaced by the adapter's
    client.conn = proto.core
    client.login()
    assert host.engine.counted("smb") == 1
    host.faults.add({"protocol": "smb", "command": "ECHO", **spec})
    header = Header(0x0D, credits=1, message_id=client.message_id, session_id=client.session_id)
    proto.dataReceived(frame(header.pack() + bodies.EMPTY_RESPONSE))
    assert host.clock.pending >= (0 if spec["action"] == "stall" else 1)
    done = host.shutdown()
    assert transport.disconnecting  # aborted
    proto.connectionLost(None)  # what the reactor reports for the aborted transport
    assert done.called
    assert host.clock.pending == 0 and host.engine.counted("smb") == 0
    assert not proto.core._fault_timers and not proto.core._fault_pending  # its own, too
    assert [c for c in reactor.getDelayedCalls() if c.active()] == []


def test_reset_brings_a_restarting_host_back_at_once(host):
    host.restart(60)
    host.reset()
    assert names(host) == ["netbios", "rdp", "smb"] and host.restarting is None
    host.reactor.advance(60)
    assert names(host) == ["netbios", "rdp", "smb"]  # not twice


def test_reboot_moves_server_start_time_where_the_edition_sends_it(tmp_path):
    reactor = MemoryReactorClock()
    reactor.advance(1_767_225_600)
    h = Host(Config(edition="win7", nbns_port=-1, smb_port=4450, netbios_port=1390,
                    rdp_port=33890, shares={"docs": str(tmp_path)}), reactor)
    h.start()
    try:
        assert h.smb.start_time == 1_767_225_600
        h.restart(5)
        reactor.advance(5)
        assert h.smb.start_time == 1_767_225_600  # the service, not the machine
        h.reboot(60)
        reactor.advance(60)
        assert h.smb.start_time == 1_767_225_665 == h.started
    finally:
        h.close()


def test_a_port_taken_during_the_downtime_is_an_event_not_a_traceback(host, monkeypatch):
    from twisted.internet.error import CannotListenError

    host.restart(5)

    def taken(port, factory, interface=""):
        raise CannotListenError(interface, port, OSError(98, "Address already in use"))

    monkeypatch.setattr(host.reactor, "listenTCP", taken)
    host.reactor.advance(5)
    assert names(host) == ["rdp"] and host.restarting is None
    (failed,) = host.events.query(event_id=111)
    assert "cannot bind smb port 4450" in failed["message"]
