"""Standard RDP Security: RC4, the Terminal Services signing key and the proprietary
certificate, session keys, MACs (salted and not), the key update every 4096 packets, the
security layers per edition (XP's Connection Confirm without RDP_NEG_RSP, 2003's
Negotiate), logons over it on task.Clock, bad input in the new decoders, and two real
clients' conversations (xfreerdp /sec:rdp, rdesktop) recorded and replayed."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from protocols.rdp import gcc, mcs, pdu, rdpsec
from emulator.harness.rdp_client import ClientSecurity, absorb
from protocols.rdp.proprietary_cert import (
    TSSK_MODULUS,
    TSSK_PRIVATE_EXPONENT,
    TSSK_PUBLIC_EXPONENT,
    ServerKey,
    parse_proprietary_certificate,
    proprietary_certificate,
)
from protocols.rdp.security import (
    SEC_ENCRYPT,
    SEC_LICENSE_ENCRYPT_CS,
    SEC_LICENSE_PKT,
    SEC_SECURE_CHECKSUM,
    StandardSecurityConfig,
)
from protocols.rdp.state import State
from protocols.rdp.x224 import (
    NO_NEGOTIATION,
    PROTOCOL_HYBRID,
    PROTOCOL_RDP,
    PROTOCOL_SSL,
    TYPE_RDP_NEG_FAILURE,
    TYPE_RDP_NEG_RSP,
    connection_request,
    x224_data,
)
from tests.unit.test_rdp_connection import USERS, Client, Host, covered

DATA = Path(__file__).parent / "data"
KEY = ServerKey.generate()  # one per test run: 512-bit, as XP's


def rdp_host(edition: str = "xp-pro", **overrides: Any) -> Host:
    from emulator.core.editions import get_edition

    ed = get_edition(edition)
    overrides.setdefault("security_layers", ed.rdp_security_layers)
    overrides.setdefault("answers_negotiation", ed.rdp_negotiation)
    overrides.setdefault("standard_security", StandardSecurityConfig(
        encryption_level=ed.rdp_encryption_level,
        encryption_methods=ed.rdp_encryption_methods, key=KEY))
    return Host(edition, **overrides)


# -- the primitives ----------------------------------------------------------------------------

def test_rc4_matches_rfc_6229():
    # RFC 6229, 40-bit key 0x0102030405, keystream at offset 0.
    stream = rdpsec.rc4(bytes.fromhex("0102030405")).update(bytes(16))
    assert stream == bytes.fromhex("b2396305f03dc027ccc3524a0a1118a8")


def test_the_published_terminal_services_key_is_a_key_pair():
    for m in (2, 0x1234567890ABCDEF, TSSK_MODULUS - 2):
        assert pow(pow(m, TSSK_PRIVATE_EXPONENT, TSSK_MODULUS), TSSK_PUBLIC_EXPONENT,
                   TSSK_MODULUS) == m
    assert TSSK_MODULUS.bit_length() == 512


def test_the_proprietary_certificate_has_the_512_bit_layout_and_verifies():
    cert = proprietary_certificate(KEY)
    assert len(cert) == 184  # 2.2.1.4.3.1.1 with a 512-bit key
    assert struct.unpack_from("<IIIHH", cert) == (1, 1, 1, 0x0006, 92)
    assert struct.unpack_from("<IIII", cert, 16) == (0x31415352, 72, 512, 63)
    assert struct.unpack_from("<HH", cert, 108) == (0x0008, 72) and cert[-8:] == bytes(8)
    key = parse_proprietary_certificate(cert)  # the signature checked with the TSSK
    assert (key.modulus, key.exponent, key.size) == (KEY.modulus, 0x10001, 64)
    tampered = cert[:40] + bytes([cert[40] ^ 1]) + cert[41:]
    with pytest.raises(ValueError, match="signature does not verify"):
        parse_proprietary_certificate(tampered)
    block = gcc.server_security_rdp(2, 2, bytes(32), cert)
    assert len(block) == 236  # TS_UD_SC_SEC1 for a 512-bit key


def test_the_client_random_goes_through_raw_rsa_both_ways():
    random = bytes(range(32))
    encrypted = parse_proprietary_certificate(proprietary_certificate(KEY)) \
        .encrypt_client_random(random)
    assert len(encrypted) == 72 and encrypted[-8:] == bytes(8)
    assert KEY.decrypt_client_random(encrypted) == random


def test_session_keys_mirror_and_reduce_to_40_and_56_bits():
    cr, sr = bytes(range(32)), bytes(range(32, 64))
    for method, size in ((rdpsec.ENCRYPTION_METHOD_128BIT, 16),
                         (rdpsec.ENCRYPTION_METHOD_56BIT, 8), (rdpsec.ENCRYPTION_METHOD_40BIT, 8)):
        server = rdpsec.session_keys(cr, sr, method)
        client = rdpsec.session_keys(cr, sr, method, server=False)
        assert (server.encrypt, server.decrypt) == (client.decrypt, client.encrypt)
        assert server.mac_key == client.mac_key and len(server.encrypt) == size
    full = rdpsec.session_keys(cr, sr, rdpsec.ENCRYPTION_METHOD_128BIT)
    k56 = rdpsec.session_keys(cr, sr, rdpsec.ENCRYPTION_METHOD_56BIT)
    k40 = rdpsec.session_keys(cr, sr, rdpsec.ENCRYPTION_METHOD_40BIT)
    assert k56.encrypt == b"\xd1" + full.encrypt[1:8]
    assert k40.encrypt == b"\xd1\x26\x9e" + full.encrypt[3:8]
    assert k40.mac_key == b"\xd1\x26\x9e" + full.mac_key[3:8]


def test_a_mac_salted_with_the_count_differs_and_a_bad_one_is_refused():
    cr, sr = bytes(32), bytes(range(32))
    server = rdpsec.SecurityContext.for_server(cr, sr, rdpsec.ENCRYPTION_METHOD_128BIT)
    client = rdpsec.SecurityContext.for_client(cr, sr, rdpsec.ENCRYPTION_METHOD_128BIT)
    key = server.mac_key
    assert rdpsec.mac_signature(key, b"data") != rdpsec.mac_signature(key, b"data", 0)
    assert rdpsec.mac_signature(key, b"data", 0) != rdpsec.mac_signature(key, b"data", 1)
    signature, data = client.encrypt(b"hello", salted=True)
    assert server.decrypt(signature, data, salted=True) == b"hello"
    signature, data = client.encrypt(b"hello")
    with pytest.raises(rdpsec.MACError):
        server.decrypt(bytes(8), data)


@pytest.mark.parametrize("method", [rdpsec.ENCRYPTION_METHOD_40BIT,
                                    rdpsec.ENCRYPTION_METHOD_56BIT,
                                    rdpsec.ENCRYPTION_METHOD_128BIT])
def test_both_sides_update_their_keys_after_4096_packets_and_stay_in_step(method):
    cr, sr = bytes(range(32)), bytes(range(100, 132))
    server = rdpsec.SecurityContext.for_server(cr, sr, method)
    client = rdpsec.SecurityContext.for_client(cr, sr, method)
    first = server._out.key
    for i in range(rdpsec.KEY_UPDATE_INTERVAL + 10):
        payload = i.to_bytes(4, "little") * 3
        assert client.decrypt(*server.encrypt(payload, salted=True), salted=True) == payload
        assert server.decrypt(*client.encrypt(payload), salted=False) == payload
        if i == rdpsec.KEY_UPDATE_INTERVAL - 1:
            assert server._out.key == first  # 4096 packets on the first key
    assert server._out.key != first and server._out.uses == 10
    assert server._out.key == rdpsec.update_key(first, first, method)
    if method != rdpsec.ENCRYPTION_METHOD_128BIT:
        assert server._out.key[:1] == b"\xd1"


# -- the client side of the tests -----------------------------------------------------------------

class SecureClient(Client):
    """The test client over Standard RDP Security."""

    security: ClientSecurity | None = None

    def pump(self, limit: int | None = None) -> list[bytes]:
        self._pending += (self.core.data_to_send() if limit is None
                          else self.core.data_to_send(limit))
        frames = []
        while len(self._pending) >= 4:
            if self._pending[0] == 3:
                (length,) = struct.unpack_from(">H", self._pending, 2)
                start = 4
            else:
                length, start = struct.unpack_from(">H", self._pending, 1)[0] & 0x7FFF, 0
            if len(self._pending) < length:
                break
            frame = self._pending[start:length]
            self._pending = self._pending[length:]
            if self.security is not None:
                frame = self.security.unseal(frame)
            frames.append(frame)
        for frame in frames:
            if frame[0] == 0 or frame[1] & 0xF0 == 0xF0:
                absorb(self.report, frame)
        return frames

    def send_io(self, payload: bytes, flags: int = 0) -> None:
        assert self.security is not None
        self.send(x224_data(mcs.send_data_request(self.user_id, mcs.IO_CHANNEL,
                                                  self.security.wrap(payload, flags))))

    def connect_rdp(self, requested: int | None = None, *, methods: int = 0x0B,
                    salted: bool = True, license_encrypt: bool = True) -> None:
        """Through the Security Exchange PDU."""
        self.negotiate(requested)
        assert self.core.state == State.MCS_CONNECT and not self.core.tls_requested
        blocks = gcc.client_data_blocks(selected_protocol=0, encryption_methods=methods,
                                        channels=("rdpdr", "cliprdr"))
        self.send(x224_data(mcs.connect_initial(gcc.conference_create_request(blocks))))
        (response,) = self.pump()
        _result, user_data = mcs.parse_connect_response(response[3:])
        server = gcc.parse_server_data(gcc.parse_conference_create_response(user_data))
        self.server_security = gcc.parse_server_security(server[gcc.SC_SECURITY])
        self.security = ClientSecurity(self.server_security, salted=salted,
                                       license_encrypt=license_encrypt)
        self.attach_user()
        self.join(1004, 1005)
        self.pump()
        self.send(x224_data(mcs.send_data_request(self.user_id, mcs.IO_CHANNEL,
                                                  self.security.security_exchange())))
        assert self.core.state == State.MCS_DOMAIN

    def logon_rdp(self, user: str, password: str, **kw: Any) -> Any:
        self.connect_rdp(**kw)
        self.send_io(pdu.client_info(user, password)[4:], pdu.SEC_INFO_PKT)
        self.pump()
        assert self.report.licensed and self.report.session_id is not None
        self.send_io(pdu.confirm_active(pdu.server_capabilities(1024, 768, 16),
                                        source=self.user_id))
        for message in (pdu.synchronize(), pdu.control(pdu.CTRLACTION_COOPERATE),
                        pdu.control(pdu.CTRLACTION_REQUEST_CONTROL), pdu.font_list()):
            self.send_io(message)
        self.pump()
        return self.report


def secure_client(host: Host, address: str = "192.0.2.10") -> SecureClient:
    return SecureClient(host, address)


# -- security layers per edition ---------------------------------------------------------------

@pytest.mark.parametrize("requested", [None, PROTOCOL_RDP, PROTOCOL_SSL,
                                       PROTOCOL_SSL | PROTOCOL_HYBRID])
def test_xp_answers_every_connection_request_without_rdp_neg_rsp(requested):
    client = secure_client(rdp_host("xp-pro"))
    client.send(connection_request(requested, b"Cookie: mstshash=x"))
    (frame,) = client.pump()
    assert frame == bytes.fromhex("06d00000123400")  # LI 6, CC, src-ref 0x1234, class 0
    assert not client.core.close_requested and not client.core.tls_requested


@pytest.mark.parametrize("requested, expected, tls", [
    (PROTOCOL_SSL | PROTOCOL_HYBRID, (TYPE_RDP_NEG_RSP, PROTOCOL_SSL), True),
    (PROTOCOL_RDP, (TYPE_RDP_NEG_RSP, PROTOCOL_RDP), False),
    (None, (NO_NEGOTIATION, PROTOCOL_RDP), False),  # no RDP_NEG_REQ: no rdpNegData back
])
@pytest.mark.parametrize("edition", ["whs", "server-2003", "vista", "win7", "server-2008r2",
                                     "win10"])
def test_negotiate_layer_picks_tls_when_offered_and_rdp_security_otherwise(edition, requested,
                                                                           expected, tls):
    # SecurityLayer "Negotiate" with NLA not required ("any version": 7-era's default, 10's
    # with NLA turned off): a legacy client gets Standard RDP Security.
    client = secure_client(rdp_host(edition))
    assert client.negotiate(requested) == expected
    assert client.core.tls_requested == tls and not client.core.close_requested


@pytest.mark.parametrize("requested", [PROTOCOL_RDP, None, PROTOCOL_SSL])
@pytest.mark.parametrize("edition", ["win7", "win10"])
def test_nla_required_refuses_standard_rdp_security_and_tls(edition, requested):
    client = secure_client(rdp_host(edition, nla_mode="required"))
    assert client.negotiate(requested) == (TYPE_RDP_NEG_FAILURE, 0x05)  # HYBRID_REQUIRED
    assert client.core.close_requested and not client.core.tls_requested


@pytest.mark.parametrize("offered, chosen", [(0x0B, 0x02), (0x09, 0x08), (0x01, 0x01),
                                             (0x1B, 0x02)])
def test_client_compatible_picks_the_strongest_method_the_client_offers(offered, chosen):
    client = secure_client(rdp_host())
    client.connect_rdp(methods=offered)
    assert (client.server_security.method, client.server_security.level) == (chosen, 2)
    assert len(client.server_security.server_random) == 32


def test_no_method_in_common_is_a_clean_close_one_line_nothing_counted():
    host = rdp_host()
    client = secure_client(host)
    client.negotiate(None)
    blocks = gcc.client_data_blocks(selected_protocol=0, encryption_methods=0x10)  # FIPS only
    client.send(x224_data(mcs.connect_initial(gcc.conference_create_request(blocks))))
    assert client.pump() == [] and client.core.close_requested
    assert len(client.logs) == 1 and "no encryption method in common" in client.logs[0]
    client.drop()
    assert host.engine.sessions() == [] and host.events.query() == []


# -- logons over Standard RDP Security ------------------------------------------------------------

@pytest.mark.parametrize("methods", [0x01, 0x08, 0x0B])
@pytest.mark.parametrize("salted", [True, False])
def test_xp_logon_over_rdp_security_draws_the_desktop(methods, salted):
    host = rdp_host()
    client = secure_client(host)
    report = client.logon_rdp("alice", USERS["alice"], methods=methods, salted=salted)
    assert report.activated and covered(report.rects) == 1024 * 768
    assert host.outcomes() == ["admitted"] and client.logs == []
    assert client.core.fastpath_output  # the desktop went fast-path, encrypted
    sent = client.core._security  # type: ignore[attr-defined]
    assert sent.salted == salted


@pytest.mark.parametrize("license_encrypt", [True, False])
def test_licensing_is_encrypted_only_when_the_client_said_it_can_read_it(license_encrypt):
    client = secure_client(rdp_host())
    client.logon_rdp("alice", USERS["alice"], license_encrypt=license_encrypt)
    assert client.security is not None
    flags = client.security.license_flags
    assert flags is not None and flags & SEC_LICENSE_PKT and flags & SEC_LICENSE_ENCRYPT_CS
    assert bool(flags & SEC_ENCRYPT) == license_encrypt


def test_xp_asks_the_second_user_and_encrypted_fast_path_enter_takes_the_session_over():
    from protocols.rdp import input as rdpinput

    host = rdp_host()
    alice = secure_client(host)
    alice.logon_rdp("alice", USERS["alice"])
    bob = secure_client(host, "192.0.2.20")
    report = bob.logon_rdp("bob", USERS["bob"])
    assert "denied" not in host.outcomes() and bob.core.dialog is not None
    assert bob.core.dialog.spec.text.startswith(
        "The user EMULATOR\\alice is currently logged on to this computer.")
    enter = rdpinput.encode_fast_path_events([rdpinput.KeyEvent(0x1C)])
    bob.send(bob.security.fastpath(enter))  # encrypted, salted MAC: Yes is the default
    alice.pump()
    bob.pump()
    # XP does not ask the logged-on user (not known to): alice is disconnected at once.
    assert alice.report.errinfo == [pdu.ERRINFO_DISCONNECTED_BY_OTHERCONNECTION]
    assert alice.core.close_requested and not bob.core.close_requested
    sessions = {s.user: s.state for s in host.engine.sessions("rdp")}
    assert sessions == {"alice": "disconnected", "bob": "active"}
    assert host.engine.counted("rdp") == 1 and report.errinfo == []


def test_xp_no_over_encrypted_slow_path_ends_the_second_user_and_leaves_the_first():
    from protocols.rdp import input as rdpinput

    host = rdp_host()
    alice = secure_client(host)
    alice.logon_rdp("alice", USERS["alice"])
    bob = secure_client(host, "192.0.2.20")
    bob.logon_rdp("bob", USERS["bob"])
    keys = [rdpinput.KeyEvent(0x0F), rdpinput.KeyEvent(0x0F, released=True),
            rdpinput.KeyEvent(0x1C)]  # Tab to No, Enter
    bob.send_io(pdu.share_data(pdu.PDUTYPE2_INPUT, rdpinput.encode_slow_path(keys)))
    bob.pump()
    assert bob.report.errinfo == [pdu.ERRINFO_LOGOFF_BY_USER] and bob.core.close_requested
    alice.pump()
    assert alice.report.errinfo == [] and not alice.core.close_requested
    assert [(s.user, s.state) for s in host.engine.sessions("rdp")] == [("alice", "active")]


def test_whs_seed_story_over_rdp_security_two_users_console_third_refused():
    from emulator.core.editions import TS_REFUSAL_2003

    host = rdp_host("whs")
    for user in ("alice", "bob"):
        assert secure_client(host).logon_rdp(user, USERS[user]).activated
    carol = secure_client(host)
    report = carol.logon_rdp("carol", USERS["carol"])
    denied = host.events.query()[-1]
    assert denied["outcome"] == "denied" and denied["message"] == TS_REFUSAL_2003
    assert covered(report.rects) < 1024 * 768  # only the message box
    assert host.engine.counted("rdp") == 2


def test_more_than_4096_packets_each_way_keep_both_streams_in_step():
    host = rdp_host()
    client = secure_client(host)
    client.logon_rdp("alice", USERS["alice"])
    security = client.security
    assert security is not None
    for _ in range(rdpsec.KEY_UPDATE_INTERVAL + 50):  # mouse moves, fast-path, encrypted
        client.send(security.fastpath(b"\x20\x00\x08\x10\x00\x10\x00", 1))
    rect = pdu.share_data(pdu.PDUTYPE2_REFRESH_RECT, struct.pack("<B3xHHHH", 1, 0, 0, 99, 99),
                          source=client.user_id)
    drawn = len(client.report.rects)
    for _ in range(45):  # ~97 update PDUs a desktop: past 4096 server PDUs
        client.send_io(rect)
        client.pump()
    assert not client.core.close_requested and client.logs == []
    assert client.core._security.context._in.total > 4096  # type: ignore[attr-defined]
    assert client.core._security.context._out.total > 4096  # type: ignore[attr-defined]
    assert len(client.report.rects) > drawn  # decrypted and MAC-checked by the client


# -- bad input in the new decoders ----------------------------------------------------------

def _to_exchange(client: SecureClient) -> None:
    """Through the channel joins: the next PDU is the Security Exchange."""
    client.negotiate(None)
    blocks = gcc.client_data_blocks(selected_protocol=0, encryption_methods=0x0B,
                                    channels=("rdpdr",))
    client.send(x224_data(mcs.connect_initial(gcc.conference_create_request(blocks))))
    (response,) = client.pump()
    _result, user_data = mcs.parse_connect_response(response[3:])
    server = gcc.parse_server_data(gcc.parse_conference_create_response(user_data))
    client.security = ClientSecurity(gcc.parse_server_security(server[gcc.SC_SECURITY]))
    client.attach_user()
    assert client.user_id == _USER


_USER = mcs.IO_CHANNEL + 2  # the user channel after rdpdr's (1004)


def _sdr(payload: bytes) -> bytes:
    return x224_data(mcs.send_data_request(_USER, mcs.IO_CHANNEL, payload))


EXCHANGE_GARBAGE = {
    "short security exchange": _sdr(b"\x01\x00\x00\x00\x48\x00"),
    "wrong encrypted length": _sdr(struct.pack("<HHI", 1, 0, 64) + bytes(64)),
    "length past the end": _sdr(struct.pack("<HHI", 1, 0, 72) + bytes(40)),
    "random not below the modulus": _sdr(struct.pack("<HHI", 1, 0, 72) + b"\xff" * 72),
    "random that decrypts past 32 bytes": _sdr(struct.pack("<HHI", 1, 0, 72) + bytes([7]) +
                                               bytes(71)),
    "client info instead of the exchange": _sdr(pdu.client_info("alice", "x")),
    "virtual channel first": x224_data(mcs.send_data_request(_USER, 1004, b"\x00" * 8)),
}


@pytest.mark.parametrize("name", list(EXCHANGE_GARBAGE))
def test_bad_security_exchange_is_one_log_line_and_a_clean_close(name):
    host = rdp_host()
    client = secure_client(host)
    _to_exchange(client)
    client.send(EXCHANGE_GARBAGE[name])
    assert client.core.close_requested and client.core.close_abruptly
    assert len(client.logs) == 1 and "bad input in state security-exchange" in client.logs[0]
    client.drop()
    assert host.engine.sessions() == [] and host.events.query() == []
    assert host.clock.getDelayedCalls() == []


def _encrypted_garbage(client: SecureClient, kind: str) -> bytes:
    security = client.security
    assert security is not None
    info = pdu.client_info("alice", USERS["alice"])[4:]
    if kind == "bad MAC":
        signature, data = security.context.encrypt(info, True)
        return _sdr(struct.pack("<HH", 0x0848, 0) + bytes(8) + data)
    if kind == "shorter than its MAC":
        return _sdr(struct.pack("<HH", 0x0848, 0) + b"\x01\x02\x03")
    if kind == "cut short":
        return _sdr(security.wrap(info, pdu.SEC_INFO_PKT)[:-5])
    if kind == "unencrypted":
        return _sdr(pdu.client_info("alice", USERS["alice"]))
    if kind == "salt flag flipped":
        wrapped = bytearray(security.wrap(info, pdu.SEC_INFO_PKT))
        wrapped[1] ^= SEC_SECURE_CHECKSUM >> 8
        return _sdr(bytes(wrapped))
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["bad MAC", "shorter than its MAC", "cut short", "unencrypted",
                                  "salt flag flipped"])
def test_bad_encrypted_client_info_is_one_log_line_and_nothing_counted(kind):
    host = rdp_host()
    client = secure_client(host)
    client.connect_rdp()
    client.send(_encrypted_garbage(client, kind))
    assert client.core.close_requested and client.core.close_abruptly
    assert len(client.logs) == 1 and "bad input in state mcs-domain" in client.logs[0]
    client.drop()
    assert host.engine.sessions() == [] and host.events.query() == []


def test_a_bad_mac_in_a_live_session_disconnects_it_like_a_drop():
    host = rdp_host()
    client = secure_client(host)
    client.logon_rdp("alice", USERS["alice"])
    assert client.security is not None
    good = client.security.fastpath(b"\x20\x00\x08\x10\x00\x10\x00")
    client.send(good[:3] + bytes(8) + good[11:])  # fast-path input with a zero MAC
    assert client.core.close_requested and client.core.close_abruptly
    assert len(client.logs) == 1 and "MAC" in client.logs[0]
    client.drop()
    (session,) = host.engine.sessions("rdp")
    # Kept, disconnected; XP counts only the connected session (Fast User Switching).
    assert session.state == "disconnected" and host.engine.counted("rdp") == 0


def test_unencrypted_fast_path_input_under_rdp_security_is_refused():
    client = secure_client(rdp_host())
    client.logon_rdp("alice", USERS["alice"])
    client.send(b"\x04\x09\x20\x00\x08\x10\x00\x10\x00")
    assert client.core.close_abruptly and "unencrypted fast-path" in client.logs[0]


# -- real clients, recorded ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["xfreerdp", "rdesktop"])
def test_a_recorded_real_client_conversation_replays_to_an_active_session(name):
    """What xfreerdp /sec:rdp and rdesktop sent to the emulator (record_rdpsec_vector.py),
    fed to a core with the same server key and server random: every MAC FreeRDP and
    rdesktop computed verifies, so the key derivation and MACs are theirs too."""
    vector = json.loads((DATA / f"rdpsec_{name}.json").read_text())
    key = json.loads((DATA / "rdpsec_server_key.json").read_text())
    server_random = bytes.fromhex(vector["server_random"])
    host = rdp_host(lookup_password={vector["user"]: vector["password"]}.get,
                    standard_security=StandardSecurityConfig(
                        key=ServerKey(int(key["n"], 16), int(key["e"], 16), int(key["d"], 16)),
                        random=lambda n: server_random[:n]))
    client = secure_client(host)
    for chunk in vector["received"]:
        client.send(bytes.fromhex(chunk))
        client.core.data_to_send()
        if client.core.close_requested:
            break
    assert client.logs == [], client.logs
    assert host.outcomes() == ["admitted"]
    assert host.engine.sessions("rdp")[0].user == vector["user"]
    assert client.core.state == State.ACTIVE  # the recording ends with the client killed


def test_mutated_encrypted_pdus_never_escape_as_exceptions():
    """200 seeded mutations of an encrypted Client Info and of encrypted fast-path input:
    each is answered, or ends the connection with at most one log line; never an exception
    out of receive_data, never a session counted for a broken logon."""
    import random

    rng = random.Random(11)
    for i in range(200):
        host = rdp_host()
        client = secure_client(host)
        if i % 2:
            client.logon_rdp("alice", USERS["alice"])
            assert client.security is not None
            frame = bytearray(client.security.fastpath(b"\x20\x00\x08\x10\x00\x10\x00"))
        else:
            client.connect_rdp()
            assert client.security is not None
            frame = bytearray(_sdr(client.security.wrap(
                pdu.client_info("alice", USERS["alice"])[4:], pdu.SEC_INFO_PKT)))
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(frame))
            frame[pos] = rng.randrange(256)
        if rng.random() < 0.3:
            del frame[rng.randrange(len(frame)):]
        client.send(bytes(frame))
        client.core.data_to_send()
        assert len(client.logs) <= 1
        client.drop()
        if i % 2 == 0 and client.logs:
            assert host.engine.sessions() == []


def test_a_client_stalling_before_its_security_exchange_is_dropped_at_the_timeout():
    from tests.unit.test_rdp_connection import TIMEOUT

    host = rdp_host()
    client = secure_client(host)
    _to_exchange(client)
    host.clock.advance(TIMEOUT)
    assert client.core.close_requested and client.core.close_abruptly
    assert len(client.logs) == 1 and "stalled in state security-exchange" in client.logs[0]
    assert host.clock.getDelayedCalls() == []


def test_levels_and_methods_that_are_not_built_are_refused_at_configuration():
    with pytest.raises(ValueError, match="encryption level 1"):
        StandardSecurityConfig(encryption_level=1, key=KEY)
    with pytest.raises(ValueError, match="RC4 only"):
        StandardSecurityConfig(encryption_methods=0x10, key=KEY)


def test_the_adapter_starts_no_tls_under_rdp_security():
    from tests.unit.test_rdp_adapter import connect

    host = rdp_host("xp-pro")
    protocol, transport = connect(host)
    protocol.dataReceived(connection_request(PROTOCOL_SSL | PROTOCOL_HYBRID))
    assert transport.value() == bytes.fromhex("0300000b06d00000123400")
    assert not transport.tls_started and not transport.disconnecting
    protocol.connectionLost(None)
    assert host.clock.getDelayedCalls() == []
