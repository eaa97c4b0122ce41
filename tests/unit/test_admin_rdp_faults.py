"""RDP faults through a host: POST /api/faults checks errinfo names and points (400),
POST /api/sessions/ID/disconnect and /reset end a live RDP connection with a named errinfo,
and removing a host whose connections a stall or a delay holds leaves no timer and no slot."""

from types import SimpleNamespace

import pytest
from twisted.internet.testing import MemoryReactorClock, StringTransportWithDisconnection

from emulator.admin.api import AdminAPI
from emulator.config import Config
from emulator.lab import Lab, host_values
from emulator.server import EmulatorServer
from protocols.rdp.x224 import PROTOCOL_SSL, connection_request
from tests.unit.test_rdp_faults import Stepper

from tests.unit.admin_helpers import TOKEN, call


@pytest.fixture
def server():
    srv = EmulatorServer(Config(edition="whs", virtual_clock=True, admin_token=TOKEN,
                                users=(("alice", "pw-a"),)), reactor=None)
    yield srv
    srv.close()



@pytest.mark.parametrize("body, reason", [
    ({"command": "CLIENT_INFO", "errinfo": "ERRINFO_NOT_A_CODE"}, "errinfo: unknown name"),
    ({"command": "CONNECTION_REQUEST", "errinfo": "ERRINFO_LOGOFF_BY_USER"}, "Set Error Info"),
    ({"command": "CONFIRM_ACTIVE", "action": "reactivate"}, "Deactivation-Reactivation"),
    ({"command": "ACTIVE", "action": "truncate"}, "not an RDP fault"),
    ({"command": "NEGOTIATE", "action": "drop"}, "unknown rdp command"),
])
def test_bad_rdp_fault_requests_get_400_with_the_reason(server, body, reason):
    status, answer = call(AdminAPI(server), "POST", "/api/faults", {"protocol": "rdp", **body})
    assert status == 400 and reason in answer["error"], answer
    assert server.faults.faults == []


def test_an_errinfo_fault_is_listed_by_the_specifications_name(server):
    status, row = call(AdminAPI(server), "POST", "/api/faults", {
        "protocol": "rdp", "command": "CLIENT_INFO",
        "errinfo": "errinfo_license_no_license_server"})
    assert status == 200 and row["errinfo"] == "ERRINFO_LICENSE_NO_LICENSE_SERVER"
    assert row["action"] == "errinfo"


def _logged_on(server):
    host = SimpleNamespace(config=server.rdp_config())
    client = Stepper(host, "127.0.0.1")
    client.run()
    (session,) = server.engine.sessions("rdp")
    return client, session


@pytest.mark.parametrize("verb, stays", [("disconnect", True), ("reset", False)])
def test_an_admin_ending_with_an_errinfo_by_name(server, verb, stays):
    api = AdminAPI(server)
    client, session = _logged_on(server)
    status, answer = call(api, "POST", f"/api/sessions/{session.id}/{verb}",
                          {"errinfo": "ERRINFO_LOGOFF_BY_USER"})
    assert status == 200 and answer["errinfo"] == 0xC
    client.pump()
    assert client.report.errinfo == [0xC] and client.report.deactivated
    assert client.core.close_requested and server.rdp_endings == {}
    client.drop()
    assert bool(server.engine.sessions("rdp")) == stays


def test_an_admin_ending_refuses_an_unknown_errinfo_and_an_smb_session(server):
    api = AdminAPI(server)
    client, session = _logged_on(server)
    status, answer = call(api, "POST", f"/api/sessions/{session.id}/disconnect",
                          {"errinfo": "ERRINFO_NOPE"})
    assert status == 400 and "unknown name" in answer["error"]
    assert not client.core.close_requested  # nothing was ended
    smb = server.engine.request_session("smb", "127.0.0.1").session
    server.engine.logon(smb, user="alice", client="127.0.0.1", anonymous=False)
    status, answer = call(api, "POST", f"/api/sessions/{smb.id}/reset",
                          {"errinfo": "ERRINFO_LOGOFF_BY_USER"})
    assert status == 400 and "not Remote Desktop" in answer["error"]


@pytest.mark.parametrize("fault", [{"action": "stall"}, {"delay": 600}])
def test_removing_a_host_with_a_held_rdp_connection_leaves_no_timer_and_no_slot(fault):
    reactor = MemoryReactorClock()
    lab = Lab(reactor, defaults={"smb_port": 0, "netbios_port": 0, "rdp_port": 0,
                                 "nbns_port": -1})
    host = lab.add(lab.config_for(host_values({"name": "pc1", "edition": "whs"}, "",
                                              need_address=False)))
    host.faults.add({"protocol": "rdp", "command": "CONNECTION_REQUEST", **fault})
    rdp = host.factories[-1]  # SMB, NetBIOS, then RDP
    protocol = rdp.buildProtocol(None)
    transport = StringTransportWithDisconnection()
    transport.protocol = protocol
    protocol.makeConnection(transport)
    protocol.dataReceived(connection_request(PROTOCOL_SSL, b"Cookie: mstshash=x"))
    assert transport.value() == b"" and transport.connected  # held: nothing answered
    assert host.faults.faults[0].hits == 1
    if "delay" in fault:
        assert host.clock.pending == 1  # the delayed answer's deadline
    lab.remove("pc1")
    assert not transport.connected and host.clock.pending == 0
    assert reactor.getDelayedCalls() == [] and host.engine.sessions() == []
