"""RDP faults as a test suite meets them through the plugin's host: ``inject`` with an
errinfo name, ``rdp_end``, the 400 for a bad name, and the auto-reconnect cookie at logon
(the blocking test client on the wire)."""

import pytest

from emulator.admin.client import AdminError
from emulator.harness.rdp_client import RDPTestClient


def logged_on(host, user="alice", password="pw"):
    client = RDPTestClient(host.host, host.rdp_port)
    assert client.negotiate()
    client.logon(user, password)
    client.read_until_drawn()
    return client


def test_inject_an_errinfo_by_name_and_see_it_fire(emulated_host_factory):
    host = emulated_host_factory(edition="whs", users={"alice": "pw"})
    fault = host.inject("rdp", "CLIENT_INFO", errinfo="ERRINFO_LICENSE_NO_LICENSE_SERVER")
    assert fault["action"] == "errinfo" and fault["errinfo"] == "ERRINFO_LICENSE_NO_LICENSE_SERVER"
    client = RDPTestClient(host.host, host.rdp_port)
    assert client.negotiate()
    with pytest.raises(EOFError, match="disconnect provider ultimatum"):
        client.logon("alice", "pw")  # ended before the Demand Active it waits for
    report = client.report
    assert report.errinfo == [0x101] and not report.licensed
    assert host.faults()[0]["hits"] == 1 and host.sessions("rdp") == []
    with pytest.raises(AdminError, match="errinfo: unknown name"):
        host.inject("rdp", "CLIENT_INFO", errinfo="ERRINFO_NO_SUCH_CODE")


@pytest.mark.parametrize("logoff", [False, True])
def test_rdp_end_tells_the_client_the_errinfo_it_names(emulated_host_factory, logoff):
    host = emulated_host_factory(edition="whs", users={"alice": "pw"})
    client = logged_on(host)
    (session,) = host.sessions("rdp")
    host.rdp_end(session["id"], errinfo="ERRINFO_LOGOFF_BY_USER", logoff=logoff)
    report = client.read_until_closed()
    assert report.errinfo == [0xC] and report.deactivated
    # The auto-reconnect cookie came after the desktop, before the ending.
    assert report.arc_cookie is not None and report.arc_cookie.logon_id == session["id"]
    left = host.sessions("rdp")
    assert (left[0]["state"] == "disconnected") if not logoff else left == []
