"""Automatic Reconnection (MS-RDPBCGR 5.5): the cookies' bytes both ways, the verifier, and
on a task.Clock the whole round trip: the cookie sent at logon, a dropped connection, the
client back into its disconnected session by the cookie alone (same id, the reconnect
event), a stale or forged cookie ignored."""

from __future__ import annotations

import struct

import pytest

from protocols.rdp import autoreconnect as arc
from protocols.rdp import pdu
from protocols.rdp.x224 import DecodeError
from tests.unit.test_rdp_faults import Stepper
from tests.unit.test_rdp_connection import Host


# -- bytes both ways ------------------------------------------------------------------------

def test_server_cookie_bytes_both_ways():
    cookie = arc.ServerCookie(7, bytes(range(16)))
    wire = bytes.fromhex("1c000000" "01000000" "07000000") + bytes(range(16))
    assert cookie.encode() == wire and arc.ServerCookie.parse(wire) == cookie
    with pytest.raises(DecodeError):
        arc.ServerCookie.parse(bytes.fromhex("1d000000") + wire[4:])
    with pytest.raises(DecodeError):
        arc.ServerCookie.parse(wire[:27])


def test_save_session_info_carries_the_cookie_in_logon_info_extended():
    cookie = arc.ServerCookie(3, b"\xaa" * 16)
    share = pdu.split_share_control(arc.save_session_info(cookie))[0]
    data = pdu.parse_share_data(share.body)
    assert data.pdu_type2 == pdu.PDUTYPE2_SAVE_SESSION_INFO
    info_type, length, fields, cb_field = struct.unpack_from("<IHII", data.payload)
    # INFOTYPE_LOGON_EXTENDED_INFO; Length: Length + FieldsPresent + cbFieldData + 28, no pad
    assert (info_type, length, fields, cb_field) == (3, 38, 1, 28)
    assert data.payload[14:42] == cookie.encode() and data.payload[42:] == bytes(570)
    assert arc.parse_save_session_info(data.payload) == cookie


def test_the_verifier_is_hmac_md5_keyed_by_the_random():
    # RFC 2202 test case 1: HMAC-MD5, key 0x0b * 16, "Hi There".
    assert arc.security_verifier(b"\x0b" * 16, b"Hi There").hex() == \
        "9294727a3638bb1c13f48ef8158bfc9d"
    # No client random (TLS, CredSSP): 32 zero bytes, as FreeRDP computes it.
    assert arc.security_verifier(b"\x01" * 16, None) == \
        arc.security_verifier(b"\x01" * 16, bytes(32))


def test_client_cookie_in_the_extended_info_both_ways():
    cookie = arc.ClientCookie(5, b"\x11" * 16)
    assert cookie.encode() == bytes.fromhex("1c000000" "01000000" "05000000") + b"\x11" * 16
    extra = arc.extended_info(cookie, "192.0.2.1")
    assert arc.client_cookie(extra) == cookie
    assert arc.client_cookie(arc.extended_info(None)) is None
    # A client that stops after clientDir (all later fields are optional): no cookie.
    short = arc.extended_info(None)[:-(arc.TIME_ZONE_LEN + 10)]
    assert arc.client_cookie(short) is None
    with pytest.raises(DecodeError):  # a cookie length that is not 28
        arc.client_cookie(extra[:-34] + struct.pack("<H", 20) + extra[-32:])
    info = pdu.parse_client_info(pdu.client_info("alice", "pw", extra=extra)[4:])
    assert info.user == "alice" and arc.client_cookie(info.extra) == cookie


def test_the_jar_renews_a_sessions_random_and_prunes_ended_sessions():
    jar = arc.CookieJar()
    first = jar.issue(1, alive=lambda sid: True)
    jar.issue(2, alive=lambda sid: True)
    assert jar.check(arc.ClientCookie.answering(first), None)
    second = jar.issue(1, alive=lambda sid: sid == 1)  # session 2 ended: forgotten
    assert len(jar) == 1 and second.random != first.random
    assert not jar.check(arc.ClientCookie.answering(first), None)  # the old one is void
    assert jar.check(arc.ClientCookie.answering(second), None)
    assert not jar.check(arc.ClientCookie(1, bytes(16)), None)
    third = jar.issue(0, alive=lambda sid: True, user="dave")  # the console, dave's
    assert jar.check(arc.ClientCookie.answering(third), None, "DAVE")
    assert not jar.check(arc.ClientCookie.answering(third), None, "erin")  # 0 reused


# -- the round trip in the core -------------------------------------------------------------

class Reconnecting(Stepper):
    password = "pw-a"
    extra = b""
    autoreconnect = True

    def step(self, point: str) -> list[bytes]:
        if point == "CLIENT_INFO":
            self.send_io(pdu.client_info("alice", self.password, extra=self.extra))
            return self.pump()
        if point == "CONFIRM_ACTIVE":
            caps = pdu.server_capabilities(1024, 768, 16)
            if not self.autoreconnect:  # the General set's extraFlags at body offset 10
                (flags,) = struct.unpack_from("<H", caps[0], 14)
                caps[0] = caps[0][:14] + struct.pack("<H", flags & ~pdu.AUTORECONNECT_SUPPORTED) \
                    + caps[0][16:]
            self.send_io(pdu.confirm_active(caps, source=self.user_id))
            return self.pump()
        return super().step(point)


def arc_host(**overrides):
    users = {"alice": "pw-a", "bob": "pw-b"}
    host = Host("whs", lookup_password=users.get, auto_reconnect=arc.CookieJar(), **overrides)
    host.users = users
    return host


def connect(host, address="192.0.2.10", **attrs) -> Reconnecting:
    client = Reconnecting(host, address)
    for name, value in attrs.items():
        setattr(client, name, value)
    client.run()
    return client


def test_the_cookie_at_logon_then_back_into_the_session_without_the_password():
    host = arc_host()
    first = connect(host)
    cookie = first.report.arc_cookie
    (session,) = host.engine.sessions("rdp")
    assert cookie is not None and cookie.logon_id == session.id and len(cookie.random) == 16
    first.drop()  # the network went: the session stays, disconnected
    assert session.state == "disconnected"
    host.users["alice"] = "changed-since"  # the cookie, not the password, lets it in
    again = connect(host, "192.0.2.11", password="stale-password",
                    extra=arc.extended_info(arc.ClientCookie.answering(cookie)))
    assert again.report.activated and again.report.session_id == session.id
    assert sum(r.visible_width * r.height for r in again.report.rects) == 1024 * 768
    assert session.state == "active" and session.address == "192.0.2.11"
    assert host.outcomes() == ["admitted", "disconnect", "reconnect"] and host.failed == []
    assert any("auto-reconnect cookie accepted for session" in line for line in again.logs)
    renewed = again.report.arc_cookie  # regenerated when a client connects (1.3.1.5)
    assert renewed is not None and renewed.random != cookie.random


@pytest.mark.parametrize("forge", ["stale", "wrong-verifier", "ended"])
def test_a_bad_cookie_is_ignored_and_the_password_decides(forge):
    host = arc_host()
    first = connect(host)
    cookie = first.report.arc_cookie
    first.drop()
    if forge == "stale":  # another client connected since: its cookie replaced this one
        connect(host, "192.0.2.12").drop()
        sent = arc.ClientCookie.answering(cookie)
    elif forge == "wrong-verifier":
        sent = arc.ClientCookie(cookie.logon_id, bytes(16))
    else:
        host.engine.end(cookie.logon_id, "admin-reset")
        sent = arc.ClientCookie.answering(cookie)
    again = connect(host, "192.0.2.13", password="wrong",
                    extra=arc.extended_info(sent))
    assert again.core.logon_failed and host.failed  # a failed logon (4625), no way in
    assert any("auto-reconnect cookie for session" in line and "refused" in line
               for line in again.logs)


def test_no_cookie_for_a_client_without_autoreconnect_support_and_the_old_one_is_void():
    host = arc_host()
    first = connect(host)
    cookie = first.report.arc_cookie
    first.drop()
    plain = connect(host, "192.0.2.14", autoreconnect=False)  # the password reattaches it
    assert plain.report.arc_cookie is None and plain.report.activated
    plain.drop()
    again = connect(host, "192.0.2.15", password="wrong",
                    extra=arc.extended_info(arc.ClientCookie.answering(cookie)))
    assert again.core.logon_failed

