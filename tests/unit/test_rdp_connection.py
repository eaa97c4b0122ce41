"""The RDP core on a task.Clock with the real session engine: admission, the refusal and
its timing, console/admin sessions, take-over, disconnects, engine-initiated endings, and
bad input. The client side is scripted from the codec helpers (no sockets, no TLS)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.task import Clock

from emulator.core.editions import get_edition
from emulator.core.engine import Rules, SessionEngine
from emulator.core.events import EventLog
from protocols.rdp import gcc, mcs, pdu, render
from emulator.harness.rdp_client import ServerReport, absorb
from protocols.rdp.connection import LOGON_FAILURE_TEXT, RDPServerConfig, RDPServerConnection
from protocols.rdp.proprietary_cert import ServerKey
from protocols.rdp.security import StandardSecurityConfig
from protocols.rdp.x224 import (
    PROTOCOL_HYBRID,
    PROTOCOL_RDP,
    PROTOCOL_SSL,
    TYPE_RDP_NEG_FAILURE,
    TYPE_RDP_NEG_RSP,
    connection_request,
    parse_connection_confirm,
    x224_data,
)

USERS = {"alice": "pw-a", "bob": "pw-b", "carol": "pw-c", "dave": "pw-d"}
DISPLAY = 30.0
TIMEOUT = 20.0
SERVER_KEY = ServerKey.generate()  # for the editions that speak Standard RDP Security


class Host:
    """One emulated host: engine + clock + the RDP config its connections share."""

    def __init__(self, edition: str = "whs", **overrides: Any) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        ed = get_edition(edition)
        self.events = EventLog(self.clock.seconds)
        self.engine = SessionEngine(ed, self.clock, self.events,
                                    rules=overrides.pop("rules", None) or Rules())
        self.failed: list[tuple[str, str, str, int]] = []
        settings: dict[str, Any] = dict(
            gate=self.engine, lookup_password=USERS.get, clock=self.clock,
            # The scripted client speaks TLS, not CredSSP: NLA is offered, not required,
            # unless a test asks for the edition's default (nla_mode=ed.rdp_nla_default).
            refusal_text=ed.rdp_refusal_text, nla=ed.rdp_nla,
            nla_mode="offered" if ed.rdp_nla else "off",
            early_user_auth=ed.rdp_early_user_auth, neg_flags=ed.rdp_neg_flags,
            server_version=ed.rdp_server_version, direct_tls=ed.rdp_direct_tls,
            server_early_flags=ed.rdp_early_capability_flags,
            multitransport=ed.rdp_multitransport, capability_sets=ed.rdp_capability_sets,
            refusal_logon_error=ed.rdp_logon_error, refusal_display_seconds=DISPLAY,
            handshake_timeout=TIMEOUT, on_failed_logon=lambda *a: self.failed.append(a),
            security_layers=ed.rdp_security_layers, answers_negotiation=ed.rdp_negotiation,
            takeover=ed.rdp_takeover, refusal_ok_errinfo=ed.rdp_refusal_ok_errinfo,
            fastpath_input_flag=ed.rdp_fastpath_input_flag)
        if "rdp" in ed.rdp_security_layers:
            settings["standard_security"] = StandardSecurityConfig(key=SERVER_KEY)
        settings.update(overrides)
        self.config = RDPServerConfig(**settings)

    def connect(self, address: str = "192.0.2.10") -> Client:
        return Client(self, address)

    def outcomes(self) -> list[str]:
        return [r["outcome"] for r in self.events.query()]


class Client:
    def __init__(self, host: Host, address: str) -> None:
        self.host = host
        self.logs: list[str] = []
        self.core = RDPServerConnection(host.config, address=address, log=self.logs.append)
        self.notified = 0
        self.core.on_output = self._notified
        self.report = ServerReport()
        self.user_id = 0  # the Attach User Confirm's
        self._pending = b""
        self.frames_seen = 0

    def _notified(self) -> None:
        self.notified += 1

    def send(self, data: bytes) -> None:
        self.core.receive_data(data)

    def pump(self, limit: int | None = None) -> list[bytes]:
        """Parse what the server wrote into TPKT payloads, recording them in the report
        (with ``limit``: about that much of a screen, as a slow reader would take it)."""
        self._pending += (self.core.data_to_send() if limit is None
                          else self.core.data_to_send(limit))
        frames = []
        while len(self._pending) >= 4:
            if self._pending[0] == 3:  # TPKT
                (length,) = struct.unpack_from(">H", self._pending, 2)
                start = 4
            else:  # fast-path output, two-byte length
                length, start = struct.unpack_from(">H", self._pending, 1)[0] & 0x7FFF, 0
            if len(self._pending) < length:
                break
            frames.append(self._pending[start:length])
            self._pending = self._pending[length:]
        for frame in frames:
            if frame[0] == 0 or frame[1] & 0xF0 == 0xF0:
                absorb(self.report, frame)
        self.frames_seen += len(frames)
        return frames

    def attach_user(self) -> None:
        """Erect Domain and Attach User: the confirm names the user channel."""
        self.send(x224_data(mcs.erect_domain_request()) + x224_data(mcs.attach_user_request()))
        confirm = self.pump()[-1]  # after the Connect Response, if it is still unread
        self.user_id = mcs.parse_attach_user_confirm(confirm[3:])

    def join(self, *channels: int) -> None:
        """Join the user channel, the I/O channel and ``channels``, as a client does."""
        for channel in (self.user_id, mcs.IO_CHANNEL, *channels):
            self.send(x224_data(mcs.channel_join_request(self.user_id, channel)))

    def send_io(self, payload: bytes) -> None:
        self.send(x224_data(mcs.send_data_request(self.user_id, mcs.IO_CHANNEL, payload)))

    def negotiate(self, requested: int | None = PROTOCOL_SSL | PROTOCOL_HYBRID) -> tuple[int, int]:
        self.send(connection_request(requested, b"Cookie: mstshash=x"))
        (frame,) = self.pump()
        return parse_connection_confirm(frame)

    def logon(self, user: str, password: str, *, console: bool = False, early_flags: int = 1,
              width: int = 1024, height: int = 768, bpp: int = 16, fastpath: bool = True,
              channels: tuple[str, ...] = ("rdpdr", "cliprdr", "rdpsnd"),
              read_limit: int | None = None) -> ServerReport:
        kind, selected = self.negotiate(PROTOCOL_SSL)
        assert (kind, selected) == (TYPE_RDP_NEG_RSP, PROTOCOL_SSL)
        assert self.core.tls_requested
        self.core.tls_started()
        blocks = gcc.client_data_blocks(width=width, height=height, bpp=bpp, channels=channels,
                                        early_flags=early_flags, name="WS-" + user.upper(),
                                        cluster_flags=0x0F if console else 0x0D)
        self.send(x224_data(mcs.connect_initial(gcc.conference_create_request(blocks))))
        self.pump()
        self.attach_user()
        # Windows' numbering: the static channels from 1004, then the user channel.
        assert self.user_id == mcs.IO_CHANNEL + 1 + len(channels)
        for channel in (self.user_id, mcs.IO_CHANNEL, *range(1004, 1004 + len(channels))):
            self.send(x224_data(mcs.channel_join_request(self.user_id, channel)))
            (joined,) = self.pump()
            assert joined[3:] == mcs.channel_join_confirm(self.user_id, channel)
        self.send_io(pdu.client_info(user, password))
        self.demand_active = b"".join(self.pump())
        assert self.report.licensed and self.report.session_id is not None
        caps = pdu.server_capabilities(width, height, bpp)
        if not fastpath:  # the General capability set comes first: clear its extraFlags bit
            caps[0] = caps[0][:14] + struct.pack("<H", struct.unpack_from("<H", caps[0], 14)[0]
                                                 & ~pdu.FASTPATH_OUTPUT_SUPPORTED) + caps[0][16:]
        self.send_io(pdu.confirm_active(caps, source=self.user_id))
        for message in (pdu.synchronize(), pdu.control(pdu.CTRLACTION_COOPERATE),
                        pdu.control(pdu.CTRLACTION_REQUEST_CONTROL), pdu.font_list()):
            self.send_io(message)
        self.pump(read_limit)
        assert self.report.activated
        return self.report

    def drop(self) -> None:
        self.core.connection_lost()


def covered(rects: list[pdu.BitmapRect]) -> int:
    return sum(r.visible_width * r.height for r in rects)


# -- admission and the refusal ------------------------------------------------------------

def test_home_server_admits_two_users_and_draws_a_desktop():
    host = Host("whs")
    for user in ("alice", "bob"):
        client = host.connect()
        report = client.logon(user, USERS[user])
        assert covered(report.rects) == 1024 * 768  # the whole plain desktop
        assert not report.errinfo and not client.core.close_requested
    assert host.engine.counted("rdp") == 2
    assert host.outcomes() == ["admitted", "admitted"]
    sessions = host.engine.sessions("rdp")
    assert [(s.user, s.client, s.address, s.console) for s in sessions] == [
        ("alice", "WS-ALICE", "192.0.2.10", False), ("bob", "WS-BOB", "192.0.2.10", False)]


def test_the_third_user_sees_the_refusal_for_the_display_time_then_is_torn_down():
    host = Host("whs")
    host.connect().logon("alice", "pw-a")
    host.connect().logon("bob", "pw-b")
    carol = host.connect("192.0.2.30")
    report = carol.logon("carol", "pw-c")
    box = render.render_message_box(get_edition("whs").rdp_refusal_text)
    assert covered(report.rects) == box.width * box.height  # only the message box
    assert host.outcomes()[-1] == "denied"
    denied = host.events.query()[-1]
    assert denied["provider"] == "TermService" and denied["user"] == "carol"
    assert denied["message"].startswith("The terminal server has exceeded")
    host.clock.advance(DISPLAY - 0.5)
    assert carol.pump() == [] and not carol.core.close_requested  # still on screen
    host.clock.advance(0.5)
    carol.pump()
    assert carol.notified >= 1  # the adapter is told to flush outside dataReceived
    assert report.errinfo == [pdu.ERRINFO_SERVER_DENIED_CONNECTION]
    assert report.logon_errors == []  # 2003-era: no Save Session Info logon error
    assert report.deactivated and report.dpum_reason == mcs.RN_USER_REQUESTED
    assert carol.core.close_requested and not carol.core.close_abruptly
    carol.drop()
    assert host.engine.counted("rdp") == 2 and host.engine.counters["denied:rdp"] == 1


def test_server_2022_refusal_sends_the_logon_error_and_the_configured_errinfo():
    host = Host("server-2022", denial_errinfo=0x10A)
    host.connect().logon("alice", "pw-a")
    host.connect().logon("bob", "pw-b")
    carol = host.connect()
    carol.logon("carol", "pw-c")
    host.clock.advance(DISPLAY)
    carol.pump()
    assert carol.report.logon_errors == [(0xC00A0013, pdu.LOGON_FAILED_OTHER)]
    assert carol.report.errinfo == [0x10A]


def test_no_set_error_info_for_a_client_that_did_not_ask_for_it():
    host = Host("whs", refusal_display_seconds=0)
    host.connect().logon("alice", "pw-a")
    host.connect().logon("bob", "pw-b")
    carol = host.connect()
    carol.logon("carol", "pw-c", early_flags=0)
    host.clock.advance(0)
    carol.pump()
    assert carol.report.errinfo == [] and carol.report.dpum_reason == mcs.RN_USER_REQUESTED


@pytest.mark.parametrize("bpp, fastpath", [(15, False), (16, True), (24, False), (32, True)])
def test_the_message_box_is_drawn_at_the_session_depth(bpp, fastpath):
    host = Host("whs")
    host.connect().logon("alice", "pw-a")
    host.connect().logon("bob", "pw-b")
    carol = host.connect()
    report = carol.logon("carol", "pw-c", bpp=bpp, width=800, height=600, fastpath=fastpath)
    assert carol.core.fastpath_output == fastpath
    assert {r.bpp for r in report.rects} == {bpp}
    size = render.BYTES_PER_PIXEL[bpp]
    assert all(len(r.data) == ((size * r.width + 3) & ~3) * r.height for r in report.rects)


# -- console and /admin ----------------------------------------------------------------------

def test_console_request_is_session_zero_not_counted_and_a_second_one_takes_it_over():
    host = Host("whs")
    host.connect().logon("alice", "pw-a")
    host.connect().logon("bob", "pw-b")
    first = host.connect()
    assert first.logon("carol", "pw-c", console=True).session_id == 0
    assert covered(first.report.rects) == 1024 * 768
    assert host.engine.counted("rdp") == 2
    second = host.connect("192.0.2.99")
    second.logon("dave", "pw-d", console=True)
    first.pump()
    assert first.report.errinfo == [pdu.ERRINFO_DISCONNECTED_BY_OTHERCONNECTION]
    assert first.core.close_requested
    (console,) = host.engine.find_active("rdp", console=True)
    assert (console.id, console.user, console.address) == (0, "dave", "192.0.2.99")
    first.drop()  # the old connection going away does not touch the taken session
    assert console.state == "active"


def test_console_flag_counts_like_any_session_where_the_edition_has_no_exemption():
    host = Host("win10")  # no exemption: /admin meets the one session like any logon
    host.connect().logon("alice", "pw-a")
    bob = host.connect()
    bob.logon("bob", "pw-b", console=True)
    assert covered(bob.report.rects) < 1024 * 768 and host.engine.counted("rdp") == 1
    assert bob.core.dialog is not None and bob.core.dialog.spec.buttons == ("Yes", "No")


# -- sessions outlive connections ------------------------------------------------------------

def test_a_dropped_connection_leaves_a_counted_session_that_the_same_user_reattaches():
    host = Host("whs")
    alice = host.connect()
    alice.logon("alice", "pw-a")
    host.connect().logon("bob", "pw-b")
    alice.drop()
    (session,) = host.engine.find_active("rdp", user="alice")
    assert session.state == "disconnected" and host.engine.counted("rdp") == 2
    carol = host.connect()
    carol.logon("carol", "pw-c")
    assert covered(carol.report.rects) < 1024 * 768  # refused: the disconnected one counts
    again = host.connect("192.0.2.77")
    report = again.logon("alice", "pw-a")
    assert report.session_id == session.id and covered(report.rects) == 1024 * 768
    assert session.state == "active" and session.address == "192.0.2.77"
    assert "reconnect" in host.outcomes()


def test_the_same_user_connecting_again_takes_the_live_session_over():
    host = Host("win10")
    first = host.connect()
    first.logon("alice", "pw-a")
    host.connect().logon("alice", "pw-a")
    first.pump()
    assert first.report.errinfo == [pdu.ERRINFO_DISCONNECTED_BY_OTHERCONNECTION]
    assert first.report.dpum_reason == mcs.RN_USER_REQUESTED and first.core.close_requested
    assert host.engine.counted("rdp") == 1


def test_a_second_user_of_a_client_sku_is_asked_not_refused():
    host = Host("win10")
    host.connect().logon("alice", "pw-a")
    bob = host.connect()
    bob.logon("bob", "pw-b")
    assert "denied" not in host.outcomes()
    assert bob.core.dialog is not None and bob.core.dialog.spec.buttons == ("Yes", "No")
    assert bob.core.dialog.spec.text.startswith("Another user is signed in.")


def test_single_session_takeover_switch_ends_the_other_users_session():
    host = Host("win10", takeover_other_user=True)
    alice = host.connect()
    alice.logon("alice", "pw-a")
    bob = host.connect()
    bob.logon("bob", "pw-b")
    alice.pump()
    assert alice.report.errinfo == [pdu.ERRINFO_DISCONNECTED_BY_OTHERCONNECTION]
    assert covered(bob.report.rects) == 1024 * 768
    assert [s.user for s in host.engine.sessions("rdp")] == ["bob"]


# -- the engine ends sessions ----------------------------------------------------------------

@pytest.mark.parametrize("end, errinfo, reason, stays", [
    (lambda e, s: e.end(s.id, "admin-reset"), pdu.ERRINFO_RPC_INITIATED_LOGOFF,
     mcs.RN_USER_REQUESTED, False),
    (lambda e, s: e.admin_disconnect(s.id), pdu.ERRINFO_RPC_INITIATED_DISCONNECT,
     mcs.RN_PROVIDER_INITIATED, True),
])
def test_admin_reset_and_disconnect_tell_the_client_why(end: Callable[..., Any], errinfo, reason,
                                                      stays):
    host = Host("whs")
    alice = host.connect()
    alice.logon("alice", "pw-a")
    (session,) = host.engine.sessions("rdp")
    end(host.engine, session)
    alice.pump()
    assert alice.notified >= 1
    assert alice.report.errinfo == [errinfo] and alice.report.deactivated
    assert alice.report.dpum_reason == reason and alice.core.close_requested
    alice.drop()
    assert (host.engine.get(session.id) is not None) == stays


def test_idle_limit_disconnects_with_errinfo_3():
    host = Host("whs", rules=Rules(rdp_idle_limit=60.0))
    alice = host.connect()
    alice.logon("alice", "pw-a")
    host.clock.advance(61)
    alice.pump()
    assert alice.report.errinfo == [pdu.ERRINFO_IDLE_TIMEOUT]
    assert host.engine.sessions("rdp")[0].state == "disconnected"


def test_shutdown_request_is_denied_and_the_session_stays():
    host = Host("whs")
    alice = host.connect()
    alice.logon("alice", "pw-a")
    alice.send_io(pdu.share_data(pdu.PDUTYPE2_SHUTDOWN_REQUEST, b"", source=alice.user_id))
    alice.pump()
    assert alice.report.shutdown_denied and not alice.core.close_requested
    alice.send(x224_data(mcs.disconnect_provider_ultimatum()))  # the client leaves
    assert alice.core.close_requested
    alice.drop()
    assert host.engine.sessions("rdp")[0].state == "disconnected"


# -- logon failures, negotiation ---------------------------------------------------------------

def test_wrong_password_on_the_tls_path_shows_the_logon_failure_and_counts_nothing():
    host = Host("server-2022")
    client = host.connect("192.0.2.5")
    report = client.logon("alice", "wrong")
    box = render.render_message_box(LOGON_FAILURE_TEXT)
    assert covered(report.rects) == box.width * box.height
    assert host.failed == [("192.0.2.5", "alice", "WS-ALICE", 0xC000006D)]
    assert host.engine.sessions("rdp") == [] and host.events.query() == []
    host.clock.advance(DISPLAY)
    client.pump()
    assert report.logon_errors == [(0xC000006D, pdu.LOGON_FAILED_BAD_PASSWORD)]
    assert report.errinfo == [] and report.dpum_reason == mcs.RN_USER_REQUESTED


@pytest.mark.parametrize("edition, requested, expected", [
    ("tls-only", 0, (TYPE_RDP_NEG_FAILURE, 0x1)),  # SSL_REQUIRED_BY_SERVER
    ("tls-only", None, (TYPE_RDP_NEG_FAILURE, 0x1)),  # no RDP_NEG_REQ at all
    # NLA offered, SecurityLayer Negotiate (Windows' default): Standard RDP Security
    ("server-2022", 0, (TYPE_RDP_NEG_RSP, PROTOCOL_RDP)),
    # NLA required (as 2022 ships): HYBRID_REQUIRED_BY_SERVER, with or without RDP_NEG_REQ
    ("server-2022/required", 0, (TYPE_RDP_NEG_FAILURE, 0x5)),
    ("server-2022/required", None, (TYPE_RDP_NEG_FAILURE, 0x5)),
    ("server-2022/required", PROTOCOL_SSL, (TYPE_RDP_NEG_FAILURE, 0x5)),
    ("whs", PROTOCOL_SSL | PROTOCOL_HYBRID, (TYPE_RDP_NEG_RSP, PROTOCOL_SSL)),  # no NLA in 2003
    ("server-2022", PROTOCOL_SSL, (TYPE_RDP_NEG_RSP, PROTOCOL_SSL)),
])
def test_security_negotiation(edition, requested, expected):
    # "tls-only": a 2003-era host whose security layer is SSL (test_rdp_security.py has the
    # editions' own layers: XP's RDP Security, 2003's Negotiate).
    if edition == "tls-only":
        host = Host("whs", credssp=lambda: object(), security_layers=("tls",))
    elif edition.endswith("/required"):
        host = Host(edition.split("/")[0], credssp=lambda: object(), nla_mode="required")
    else:
        host = Host(edition, credssp=lambda: object())
    client = host.connect()
    assert client.negotiate(requested) == expected
    assert client.core.close_requested == (expected[0] == TYPE_RDP_NEG_FAILURE)


def test_nla_edition_selects_credssp_and_drops_a_bad_tsrequest():
    from protocols.auth.credssp import CredSSPAcceptor

    host = Host("server-2022", credssp=lambda: CredSSPAcceptor(USERS.get, b"\x30\x00"))
    client = host.connect()
    assert client.negotiate(PROTOCOL_SSL | PROTOCOL_HYBRID) == (TYPE_RDP_NEG_RSP, PROTOCOL_HYBRID)
    client.core.tls_started()
    client.send(bytes.fromhex("3003020102"))  # a TSRequest with only a version
    assert client.core.close_requested
    assert len(host.failed) == 1 and host.engine.sessions() == []


# -- bad input -------------------------------------------------------------------------------

def _through(client: Client, stage: str) -> None:
    """Drive a client up to ``stage`` of the handshake."""
    client.negotiate(PROTOCOL_SSL)
    client.core.tls_started()
    if stage == "mcs-connect":
        return
    client.send(x224_data(mcs.connect_initial(gcc.conference_create_request(
        gcc.client_data_blocks()))))
    client.attach_user()


GARBAGE = {
    "x224": [b"\x03\x00\x00\x05\xff", b"\x16\x02\x01\x02\x00" + b"\x00" * 20,
             b"\x03\x00\x00\x0b\x06\xd0\x00\x00\x00\x00\x00"],
    "mcs-connect": [x224_data(b"\x7f\x65\x82\xff\xff"), x224_data(b"\x7f\x66\x00"),
                    x224_data(mcs.connect_initial(b"\x00\x05"))],
    "mcs-domain": [x224_data(b"\x64\x00\x06\x03\xeb\x70\x80"),  # PER length truncated
                   x224_data(mcs.send_data_request(1007, 1003, b"\x40\x00")),
                   x224_data(mcs.send_data_request(1007, 1003, b"\x40\x00\x00\x00" + b"\xff" * 30)),
                   x224_data(b"\xfc"), b"\x04\x02\x00"],  # fast-path before activation
}


@pytest.mark.parametrize("stage, garbage", [(s, g) for s, gs in GARBAGE.items() for g in gs])
def test_bad_input_is_one_log_line_a_clean_close_and_nothing_counted(stage, garbage):
    host = Host("whs")
    client = host.connect()
    if stage != "x224":
        _through(client, stage)
    client.send(garbage)
    assert client.core.close_requested and client.core.close_abruptly
    assert len(client.logs) == 1 and "bad input" in client.logs[0]
    client.drop()
    assert host.engine.sessions() == [] and host.events.query() == []


def test_a_client_stalling_mid_handshake_is_dropped_after_the_timeout():
    host = Host("whs")
    client = host.connect()
    _through(client, "mcs-domain")
    host.clock.advance(TIMEOUT - 1)
    assert not client.core.close_requested
    host.clock.advance(1)
    assert client.core.close_requested and client.notified == 1
    assert len(client.logs) == 1 and "no logon within 20 s" in client.logs[0]
    client.drop()
    assert host.engine.sessions() == [] and host.events.query() == []


def test_a_stalled_activation_gives_back_its_pending_slot():
    host = Host("whs")
    host.connect().logon("alice", "pw-a")
    client = host.connect()
    _through(client, "mcs-domain")
    client.join()
    client.send_io(pdu.client_info("bob", "pw-b"))  # admitted: a pending slot
    assert host.engine.counted("rdp") == 2
    host.clock.advance(TIMEOUT)
    assert client.core.close_requested
    client.drop()
    assert host.engine.counted("rdp") == 1


def _admitted_not_activated(client: Client, user: str) -> None:
    """Through Client Info: the engine holds a pending slot, activation has not happened."""
    _through(client, "mcs-domain")
    client.join()
    client.send_io(pdu.client_info(user, USERS[user]))
    client.pump()


def test_bad_input_after_admission_gives_the_pending_slot_back():
    host = Host("whs")
    host.connect().logon("alice", "pw-a")
    client = host.connect()
    _admitted_not_activated(client, "bob")
    assert host.engine.counted("rdp") == 2
    client.send_io(b"\x06\x00\x17\x00")  # a share control header cut short
    assert client.core.close_requested and client.core.close_abruptly
    assert len(client.logs) == 1 and "bad input" in client.logs[0]
    client.drop()
    assert host.engine.counted("rdp") == 1 and host.outcomes()[-1] == "connection-closed"


def test_bad_input_in_a_live_session_disconnects_it_like_a_drop():
    host = Host("whs")
    alice = host.connect()
    alice.logon("alice", "pw-a")
    alice.send_io(pdu.share_data(pdu.PDUTYPE2_CONTROL, b"\x01", source=alice.user_id))  # short
    assert alice.core.close_requested and alice.core.close_abruptly
    assert len(alice.logs) == 1 and "Control PDU too short" in alice.logs[0]
    alice.drop()
    (session,) = host.engine.sessions("rdp")
    assert session.state == "disconnected" and host.engine.counted("rdp") == 1


@pytest.mark.parametrize("garbage", [
    bytes.fromhex("16030100"),  # a second TLS ClientHello instead of a TSRequest
    bytes.fromhex("3084ffffffff"),  # a TSRequest claiming 4 GB, refused from its header
    bytes.fromhex("3080"),  # BER indefinite length: not DER
])
def test_bad_credssp_framing_is_one_log_line_and_no_failed_logon(garbage):
    host = Host("server-2022", credssp=lambda: object())
    client = host.connect()
    assert client.negotiate(PROTOCOL_SSL | PROTOCOL_HYBRID) == (TYPE_RDP_NEG_RSP, PROTOCOL_HYBRID)
    client.core.tls_started()
    client.send(garbage)
    assert client.core.close_requested and client.core.close_abruptly
    assert len(client.logs) == 1 and "bad input in state credssp" in client.logs[0]
    client.drop()
    assert host.failed == [] and host.engine.sessions() == [] and host.events.query() == []


def test_the_engine_ending_a_session_mid_handshake_stops_the_handshake_timer():
    host = Host("whs")
    client = host.connect()
    _admitted_not_activated(client, "bob")
    (session,) = host.engine.sessions("rdp")
    host.engine.end(session.id, "admin-reset")
    client.pump()
    assert client.report.errinfo == [pdu.ERRINFO_RPC_INITIATED_LOGOFF]
    assert client.core.close_requested and not client.core.close_abruptly
    assert host.clock.getDelayedCalls() == []  # no pre-logon timer left to fire later
    host.clock.advance(TIMEOUT)
    assert client.logs == [] and client.notified == 1 and not client.core.close_abruptly
