"""Faults and auto-reconnect under Standard RDP Security (2003's Negotiate layer, a client
asking for PROTOCOL_RDP): a fault at the Security Exchange, an errinfo that goes
encrypted, and the auto-reconnect verifier over the Security Exchange's client random."""

from __future__ import annotations

import pytest

from emulator.core.faults import FaultTable
from protocols.rdp import autoreconnect as arc
from protocols.rdp import pdu
from protocols.rdp.errinfo import check_fault
from protocols.rdp.state import FAULT_POINTS
from protocols.rdp.x224 import PROTOCOL_RDP
from tests.unit.test_rdp_security import rdp_host, secure_client


def host_with(**overrides):
    table = FaultTable({"rdp": FAULT_POINTS}, checks={"rdp": check_fault})
    users = {"alice": "pw-a"}
    host = rdp_host("whs", faults=table, auto_reconnect=arc.CookieJar(),
                    lookup_password=users.get, **overrides)
    host.faults, host.users = table, users
    return host


def test_drop_at_the_security_exchange_closes_before_the_keys_exist():
    host = host_with()
    host.faults.add({"protocol": "rdp", "command": "SECURITY_EXCHANGE", "action": "drop"})
    client = secure_client(host)
    with pytest.raises(AssertionError):  # connect_rdp expects the domain state after it
        client.connect_rdp(PROTOCOL_RDP)
    assert client.core.close_requested and client.core._security.context is None
    assert host.faults.faults[0].hits == 1


def test_an_injected_errinfo_goes_encrypted_and_reads_back():
    host = host_with()
    host.faults.add({"protocol": "rdp", "command": "CLIENT_INFO",
                     "errinfo": "ERRINFO_LICENSE_NO_LICENSE"})
    client = secure_client(host)
    client.connect_rdp(PROTOCOL_RDP)
    client.send_io(pdu.client_info("alice", "pw-a")[4:], pdu.SEC_INFO_PKT)
    frames = client.pump()
    assert frames and client.report.errinfo == [0x102] and client.core.close_requested


def test_auto_reconnect_hashes_the_client_random_under_rdp_security():
    host = host_with()
    first = secure_client(host)
    first.logon_rdp("alice", "pw-a", requested=PROTOCOL_RDP)
    cookie = first.report.arc_cookie
    (session,) = host.engine.sessions("rdp")
    assert cookie is not None and cookie.logon_id == session.id
    first.drop()
    host.users["alice"] = "changed"
    for over_random, admitted in ((False, False), (True, True)):
        again = secure_client(host, "192.0.2.20")
        again.connect_rdp(PROTOCOL_RDP)
        random = again.security.client_random if over_random else None
        extra = arc.extended_info(arc.ClientCookie.answering(cookie, random))
        again.send_io(pdu.client_info("alice", "stale", extra=extra)[4:], pdu.SEC_INFO_PKT)
        again.pump()
        assert again.core.logon_failed != admitted
        assert (again.report.session_id == session.id) if admitted else True
        if admitted:
            assert host.engine.get(session.id).address == "192.0.2.20"
        again.drop()
