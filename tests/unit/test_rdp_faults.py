"""Faults on demand in the RDP core, on a task.Clock with the real engine and the host's
fault table: drop, reset, stall, delay, errinfo and reactivate at each point of the
connection sequence, the admin ending with a named errinfo, and the checks that turn a bad
RDP fault request into a 400."""

from __future__ import annotations

import struct

import pytest

from emulator.core.faults import FaultError, FaultTable
from protocols.rdp import gcc, mcs, pdu
from protocols.rdp.errinfo import ERRINFO, errinfo_code, errinfo_name
from protocols.rdp.state import FAULT_POINTS, State
from protocols.rdp.x224 import PROTOCOL_SSL, connection_request, x224_data
from tests.unit.test_rdp_connection import Client, Host

# The client's steps, in order: each point and what sends it.
POINTS = ("CONNECTION_REQUEST", "CONNECT_INITIAL", "CLIENT_INFO", "CONFIRM_ACTIVE",
          "FONT_LIST")


def faulty_host(edition: str = "whs", **overrides):
    table = FaultTable({"rdp": FAULT_POINTS}, checks={"rdp": _check()})
    host = Host(edition, faults=table, **overrides)
    host.faults = table
    return host


def _check():
    from protocols.rdp.errinfo import check_fault

    return check_fault


class Stepper(Client):
    """The scripted client one step at a time: ``step(point)`` sends what that point of
    the sequence is and returns the server's frames."""

    def step(self, point: str) -> list[bytes]:
        if point == "CONNECTION_REQUEST":
            self.send(connection_request(PROTOCOL_SSL, b"Cookie: mstshash=x"))
            frames = self.pump()
            if self.core.tls_requested:
                self.core.tls_started()
            return frames
        if point == "CONNECT_INITIAL":
            blocks = gcc.client_data_blocks(channels=("rdpdr",), name="WS-ALICE")
            self.send(x224_data(mcs.connect_initial(gcc.conference_create_request(blocks))))
            frames = self.pump()
            if not self.core.close_requested:
                self.send(x224_data(mcs.erect_domain_request())
                          + x224_data(mcs.attach_user_request()))
                # The id the Attach User Confirm names (after the one static channel),
                # known ahead: a delayed step may hold the confirm back.
                self.user_id = mcs.IO_CHANNEL + 2
                self.join(1004)
                self.pump()
            return frames
        if point == "CLIENT_INFO":
            self.send_io(pdu.client_info("alice", "pw-a"))
            return self.pump()
        if point == "CONFIRM_ACTIVE":
            self.send_io(pdu.confirm_active(pdu.server_capabilities(1024, 768, 16),
                                            source=self.user_id))
            return self.pump()
        if point == "FONT_LIST":
            for message in (pdu.synchronize(), pdu.control(pdu.CTRLACTION_COOPERATE),
                            pdu.control(pdu.CTRLACTION_REQUEST_CONTROL)):
                self.send_io(message)
            self.pump()
            self.send_io(pdu.font_list())
            return self.pump()
        if point == "ACTIVE":  # any PDU once active: a Refresh Rect
            self.send_io(pdu.share_data(pdu.PDUTYPE2_REFRESH_RECT,
                                        struct.pack("<B3xHHHH", 1, 0, 0, 99, 99),
                                        source=self.user_id))
            return self.pump()
        raise AssertionError(point)

    def run(self, until: str = "FONT_LIST") -> None:
        for point in POINTS[:POINTS.index(until) + 1]:
            self.step(point)


def connect(host) -> Stepper:
    return Stepper(host, "192.0.2.10")


def test_the_points_are_the_sequence_and_every_one_is_asked():
    host = faulty_host()
    asked = []
    real = host.faults.match
    host.faults.match = lambda p, c, **ctx: asked.append((c, ctx.get("user"))) or real(p, c, **ctx)
    client = connect(host)
    client.run()
    client.step("ACTIVE")
    assert [c for c, _ in asked] == [*POINTS, "ACTIVE"]
    assert dict(asked)["ACTIVE"] == "alice" and dict(asked)["CONNECT_INITIAL"] is None
    assert set(POINTS) | {"ACTIVE"} <= set(FAULT_POINTS)


@pytest.mark.parametrize("point", POINTS)
def test_drop_closes_cleanly_instead_of_answering_and_holds_no_slot(point):
    host = faulty_host()
    fault = host.faults.add({"protocol": "rdp", "command": point, "action": "drop"})
    client = connect(host)
    for earlier in POINTS[:POINTS.index(point)]:
        assert client.step(earlier)  # answered
    assert client.step(point) == []  # not answered
    assert client.core.close_requested and not client.core.close_abruptly
    assert fault.hits == 1 and any(f"fault {fault.id} at {point}: drop" in line
                                   for line in client.logs)
    client.drop()
    assert host.engine.sessions() == [] and host.clock.getDelayedCalls() == []


def test_reset_aborts_the_transport():
    host = faulty_host()
    host.faults.add({"protocol": "rdp", "command": "CONFIRM_ACTIVE", "action": "reset"})
    client = connect(host)
    client.run("CLIENT_INFO")
    assert host.engine.sessions()  # the slot is held while the logon runs
    assert client.step("CONFIRM_ACTIVE") == []
    assert client.core.close_abruptly
    client.drop()
    assert host.engine.sessions() == [] and host.clock.getDelayedCalls() == []


def test_stall_answers_nothing_ever_and_frees_the_slot_and_timers_when_the_client_goes():
    host = faulty_host()
    host.faults.add({"protocol": "rdp", "command": "CONFIRM_ACTIVE", "action": "stall"})
    client = connect(host)
    client.run("CLIENT_INFO")
    assert client.step("CONFIRM_ACTIVE") == []
    assert not client.core.close_requested and client.core.get_timer() is None
    assert client.step("FONT_LIST") == []  # read and dropped
    host.clock.advance(25)  # past the core's pre-logon timeout (20 s): it no longer runs
    assert client.pump() == [] and client.core.events() == []
    (session,) = host.engine.sessions("rdp")
    assert session.state == "pending"  # held until the client goes (or the engine's timer)
    client.drop()
    assert host.engine.sessions() == [] and host.clock.getDelayedCalls() == []


def test_a_stalled_connection_whose_slot_the_engine_ends_stays_silent():
    host = faulty_host()
    host.faults.add({"protocol": "rdp", "command": "CONFIRM_ACTIVE", "action": "stall"})
    client = connect(host)
    client.run("CONFIRM_ACTIVE")
    host.clock.advance(host.engine.setup_timeout)  # the engine's setup timer ends the slot
    assert host.engine.sessions() == []
    assert client.pump() == [] and client.core.events() == []
    client.drop()
    assert host.clock.getDelayedCalls() == []


@pytest.mark.parametrize("point", POINTS)
def test_delay_answers_late_on_the_clock(point):
    host = faulty_host()
    host.faults.add({"protocol": "rdp", "command": point, "delay": 5})
    client = connect(host)
    for earlier in POINTS[:POINTS.index(point)]:
        client.step(earlier)
    assert client.step(point) == [] and not client.core.tls_requested
    host.clock.advance(4.9)
    assert client.pump() == []
    notified = client.notified
    host.clock.advance(0.1)
    assert client.notified > notified  # the adapter is told to flush
    assert client.pump()  # the answer, late
    if point == "CONNECTION_REQUEST":
        assert client.core.tls_requested
        client.core.tls_started()
    for later in POINTS[POINTS.index(point) + 1:]:
        assert client.step(later)
    assert client.report.activated and client.core.state == State.ACTIVE


def test_a_close_behind_a_delay_waits_for_it():
    host = faulty_host()
    host.faults.add({"protocol": "rdp", "command": "ACTIVE", "delay": 2})
    client = connect(host)
    client.run()
    client.step("ACTIVE")
    client.send(x224_data(mcs.disconnect_provider_ultimatum()))  # the client leaves
    assert client.core.close_requested and client.core.events() == []
    host.clock.advance(2)
    assert [type(e).__name__ for e in client.core.events()] == ["CloseConnection"]


@pytest.mark.parametrize("name", ["ERRINFO_LICENSE_NO_LICENSE_SERVER", "ERRINFO_LOGOFF_BY_USER",
                                  "ERRINFO_SERVER_INSUFFICIENT_PRIVILEGES"])
def test_errinfo_at_the_client_info_is_sent_before_any_licence(name):
    host = faulty_host()
    host.faults.add({"protocol": "rdp", "command": "CLIENT_INFO", "errinfo": name})
    client = connect(host)
    client.run("CONNECT_INITIAL")
    client.step("CLIENT_INFO")
    assert client.report.errinfo == [ERRINFO[name]] and not client.report.licensed
    assert not client.report.deactivated  # no Demand Active was sent
    assert client.report.dpum_reason == mcs.RN_USER_REQUESTED and client.core.close_requested
    client.drop()
    assert host.engine.sessions() == []


@pytest.mark.parametrize("name, stays", [("ERRINFO_RPC_INITIATED_DISCONNECT", True),
                                         ("ERRINFO_LOGOFF_BY_USER", False),
                                         ("0x10A", True)])
def test_errinfo_once_active_deactivates_and_ends_or_keeps_the_session(name, stays):
    host = faulty_host()
    host.faults.add({"protocol": "rdp", "command": "ACTIVE", "errinfo": name})
    client = connect(host)
    client.run()
    client.step("ACTIVE")
    assert client.report.errinfo == [errinfo_code(name)] and client.report.deactivated
    client.drop()
    kept = host.engine.sessions("rdp")
    assert bool(kept) == stays and (not kept or kept[0].state == "disconnected")


def test_errinfo_to_a_client_without_errinfo_support_is_just_the_ending():
    host = faulty_host()
    host.faults.add({"protocol": "rdp", "command": "CLIENT_INFO",
                     "errinfo": "ERRINFO_LOGOFF_BY_USER"})
    client = connect(host)
    client.step("CONNECTION_REQUEST")
    blocks = gcc.client_data_blocks(early_flags=0)
    client.send(x224_data(mcs.connect_initial(gcc.conference_create_request(blocks))))
    client.attach_user()
    client.step("CLIENT_INFO")
    assert client.report.errinfo == [] and client.report.dpum_reason is not None


@pytest.mark.parametrize("point", ["FONT_LIST", "ACTIVE"])
def test_reactivate_sends_deactivate_all_then_a_demand_active_and_finalizes_again(point):
    host = faulty_host()
    host.faults.add({"protocol": "rdp", "command": point, "action": "reactivate"})
    client = connect(host)
    client.run()
    if point == "ACTIVE":
        assert not client.report.deactivated
        client.step("ACTIVE")
    assert client.report.deactivated and client.core.state == State.CAPABILITIES
    (session,) = host.engine.sessions("rdp")
    assert client.report.session_id == session.id
    logons = host.outcomes().count("admitted")
    client.send(bytes([0x04, 0x06, 0x01, 0x00, 0x00, 0x00]))  # input sent before it saw them
    client.report.rects.clear()
    client.step("CONFIRM_ACTIVE")
    client.step("FONT_LIST")
    assert client.core.state == State.ACTIVE and not client.core.close_requested
    assert sum(r.visible_width * r.height for r in client.report.rects) == 1024 * 768
    assert host.outcomes().count("admitted") == logons  # no second logon
    assert session.state == "active"


# -- the checks (POST /api/faults answers 400 with these) ----------------------------------------

@pytest.mark.parametrize("spec, reason", [
    ({"command": "CLIENT_INFO", "errinfo": "ERRINFO_NO_SUCH_THING"}, "unknown name"),
    ({"command": "CONNECT_INITIAL", "errinfo": "ERRINFO_LOGOFF_BY_USER"}, "Set Error Info"),
    ({"command": "*", "errinfo": "ERRINFO_LOGOFF_BY_USER"}, "Set Error Info"),
    ({"command": "CLIENT_INFO", "action": "reactivate"}, "Deactivation-Reactivation"),
    ({"command": "CLIENT_INFO", "status": "STATUS_LOGON_FAILURE"}, "not an RDP fault"),
    ({"command": "CLIENT_INFO", "action": "drop", "errinfo": "ERRINFO_LOGOFF_BY_USER"},
     "only with action errinfo"),
    ({"command": "CLIENT_INFO", "errinfo": "0"}, "outside"),
])
def test_bad_rdp_faults_are_refused_with_the_reason(spec, reason):
    host = faulty_host()
    with pytest.raises(FaultError, match=reason):
        host.faults.add({"protocol": "rdp", **spec})
    assert host.faults.faults == []


def test_errinfo_names_both_ways_and_freerdp_spellings():
    assert errinfo_code("errinfo_logoff_by_user") == 0xC
    assert errinfo_code("ERRINFO_DISCONNECTED_BY_OTHER_CONNECTION") == 0x5
    assert errinfo_code("0x101") == 0x101 and errinfo_name(0x101) == \
        "ERRINFO_LICENSE_NO_LICENSE_SERVER"
    assert errinfo_name(0xDEAD) == "0x0000DEAD"
    assert all(errinfo_code(name) == code for name, code in ERRINFO.items())
    host = faulty_host()
    row = host.faults.add({"protocol": "rdp", "command": "ACTIVE", "errinfo": "0xc"}).to_dict()
    assert row["errinfo"] == "ERRINFO_LOGOFF_BY_USER"


# -- the admin ending with a named errinfo -----------------------------------------------------

@pytest.mark.parametrize("logoff", [False, True])
def test_an_admin_ending_tells_the_client_the_errinfo_it_names(logoff):
    host = faulty_host()
    client = connect(host)
    client.run()
    (session,) = host.engine.sessions("rdp")
    host.config.ending_errinfo[session.id] = 0x101  # as Host.rdp_end does around the end
    if logoff:
        host.engine.end(session.id, "admin-reset")
    else:
        host.engine.admin_disconnect(session.id)
    host.config.ending_errinfo.clear()
    client.pump()
    assert client.report.errinfo == [0x101] and client.report.deactivated
    client.drop()
    assert bool(host.engine.sessions("rdp")) == (not logoff)


def test_a_fault_at_credssp_strikes_before_the_tsrequest_is_read():
    from protocols.auth.credssp import CredSSPAcceptor
    from protocols.rdp.x224 import PROTOCOL_HYBRID, TYPE_RDP_NEG_RSP

    host = faulty_host("server-2022", credssp=lambda: CredSSPAcceptor({}.get, b"\x30\x00"))
    host.faults.add({"protocol": "rdp", "command": "CREDSSP", "action": "reset"})
    client = connect(host)
    assert client.negotiate(PROTOCOL_SSL | PROTOCOL_HYBRID) == (TYPE_RDP_NEG_RSP,
                                                                 PROTOCOL_HYBRID)
    client.core.tls_started()
    client.send(bytes.fromhex("3003020102"))  # a bad TSRequest: not even read
    assert client.core.close_abruptly and host.failed == []  # no failed logon judged
