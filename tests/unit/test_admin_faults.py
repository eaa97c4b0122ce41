"""The admin API's fault routes (GET/POST/DELETE /api/faults) on an in-process host; the
fired fault's event and metric."""


import pytest

from emulator.admin.api import AdminAPI, Call
from emulator.config import Config
from emulator.core.events import FAULT_EVENT_ID
from emulator.server import EmulatorServer

from tests.unit.admin_helpers import HEADERS, TOKEN, call


def make(edition="win10"):
    return EmulatorServer(Config(edition=edition, virtual_clock=True, admin_token=TOKEN),
                          reactor=None)


@pytest.fixture
def server():
    srv = make()
    yield srv
    srv.close()



def test_add_list_fire_and_clear(server):
    api = AdminAPI(server)
    status, row = call(api, "POST", "/api/faults", {
        "protocol": "smb", "command": "READ", "status": "STATUS_INSUFFICIENT_RESOURCES",
        "count": 2, "share": "docs"})
    assert status == 200
    assert row["action"] == "status" and row["status_code"] == "0xC000009A" and row["hits"] == 0
    host = server
    assert host.faults.match("smb", "READ", share="other") is None
    assert host.faults.match("smb", "READ", share="docs", user="alice").id == row["id"]
    status, rows = call(api, "GET", "/api/faults")
    assert status == 200 and rows[0]["hits"] == 1 and rows[0]["spent"] is False
    events = [e for e in host.events.records if e["id"] == FAULT_EVENT_ID]
    assert len(events) == 1 and "STATUS_INSUFFICIENT_RESOURCES" in events[0]["message"]
    assert "share=docs" in events[0]["message"]
    status, text = 200, api.handle(Call("GET", "/metrics", {}, HEADERS, b"")).body.decode()
    assert 'smbrdp_faults_fired_total{host="' in text and 'kind="status"} 1' in text
    assert call(api, "DELETE", "/api/faults") == (200, {"cleared": 1})
    assert call(api, "GET", "/api/faults") == (200, [])


@pytest.mark.parametrize("body, reason", [
    ({"protocol": "smb", "command": "FROB", "status": 1}, "unknown smb command"),
    ({"protocol": "smb", "command": "READ", "status": "STATUS_NO_SUCH_NAME_EVER"}, "status"),
    ({"protocol": "smb", "command": "READ", "status": 1, "count": -3}, "count"),
    ({"protocol": "nfs", "command": "READ", "status": 1}, "not served"),
    ([1, 2], "object"),
])
def test_bad_fault_requests_get_400_with_the_reason(server, body, reason):
    status, reply = call(AdminAPI(server), "POST", "/api/faults", body)
    assert status == 400 and reason in reply["error"]
    assert server.faults.faults == []


def test_rdp_faults_only_where_rdp_is_served():
    srv = make("xp-home")  # no Remote Desktop host
    try:
        status, reply = call(AdminAPI(srv), "POST", "/api/faults",
                             {"protocol": "rdp", "command": "CLIENT_INFO", "action": "drop"})
        assert status == 400 and "not served" in reply["error"]
    finally:
        srv.close()
    srv = make("win10")
    try:
        status, _ = call(AdminAPI(srv), "POST", "/api/faults",
                         {"protocol": "rdp", "command": "CLIENT_INFO", "action": "drop"})
        assert status == 200
    finally:
        srv.close()


def test_remove_one_and_reset_clears(server):
    api = AdminAPI(server)
    _, a = call(api, "POST", "/api/faults", {"protocol": "smb", "command": "*", "credits": 1})
    call(api, "POST", "/api/faults", {"protocol": "smb", "command": "CREATE", "action": "drop"})
    assert call(api, "DELETE", f"/api/faults/{a['id']}")[0] == 200
    assert call(api, "DELETE", f"/api/faults/{a['id']}")[0] == 404
    assert len(call(api, "GET", "/api/faults")[1]) == 1
    call(api, "POST", "/api/reset", {})
    assert call(api, "GET", "/api/faults")[1] == []
