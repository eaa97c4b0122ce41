"""Each edition's RDP persona on a task.Clock: the protocol chosen per NLA setting, the
Connection Confirm flags and server core version, HYBRID_EX's Early User Authorization
Result, a bare TLS ClientHello first on the connection, and the config key."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from emulator.config import ConfigError, build_config
from emulator.core.editions import EDITIONS, get_edition
from protocols.auth.credssp import CredSSPStep
from protocols.rdp import gcc, mcs, negotiation
from protocols.rdp.state import State
from protocols.rdp.x224 import (
    FrameDecoder,
    HYBRID_REQUIRED_BY_SERVER,
    PROTOCOL_HYBRID,
    PROTOCOL_HYBRID_EX,
    PROTOCOL_SSL,
    SSL_REQUIRED_BY_SERVER,
    TLS_FRAME,
    TYPE_RDP_NEG_FAILURE,
    TYPE_RDP_NEG_RSP,
    connection_request,
    parse_x224,
    x224_data,
)
from tests.unit.test_rdp_connection import Host

RDP, SSL, HYB, EX = 0, PROTOCOL_SSL, PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX


@pytest.mark.parametrize("nla, requested, early, expected", [
    ("required", SSL | HYB | EX, True, EX),
    ("required", SSL | HYB | EX, False, HYB),  # HYBRID_EX only where the edition has it
    ("required", SSL | HYB, True, HYB),
    ("required", SSL, True, None),  # TLS only: HYBRID_REQUIRED_BY_SERVER
    ("required", RDP, True, None),
    ("offered", SSL | HYB, False, HYB),
    ("offered", SSL, False, SSL),
    ("offered", RDP, False, None),  # SSL_REQUIRED_BY_SERVER
    ("off", SSL | HYB | EX, True, SSL),
    ("off", HYB, False, None),
])
def test_protocol_choice_by_nla_setting(nla, requested, early, expected):
    choice = negotiation.select_protocol(requested, nla, early_user_auth=early)
    assert choice.selected == expected
    if expected is None:
        want = HYBRID_REQUIRED_BY_SERVER if nla == "required" else SSL_REQUIRED_BY_SERVER
        assert choice.failure == want


def test_nla_required_without_an_acceptor_still_refuses_tls():
    assert negotiation.select_protocol(SSL | HYB, "required", credssp=False).selected is None


def test_early_user_authorization_result_both_ways():
    for value in (negotiation.AUTHZ_SUCCESS, negotiation.AUTHZ_ACCESS_DENIED):
        pdu = negotiation.early_user_authorization_result(value)
        assert len(pdu) == 4 and negotiation.parse_early_user_authorization_result(pdu) == value
    assert negotiation.early_user_authorization_result() == b"\x00\x00\x00\x00"
    with pytest.raises(ValueError):
        negotiation.parse_early_user_authorization_result(b"\x00\x00\x00")


def persona_host(edition: str, **overrides: Any) -> Host:
    ed = get_edition(edition)
    return Host(edition, nla_mode=ed.rdp_nla_default, credssp=FakeCredSSP, **overrides)


class FakeCredSSP:
    """Completes on the first TSRequest, as a verified CredSSP exchange would."""

    def step(self, ts_request: bytes) -> CredSSPStep:
        return CredSSPStep(b"", True, None, ("", "alice", "pw-a"))


def _cc(client: Any, requested: int) -> bytes:
    client.send(connection_request(requested, b"Cookie: mstshash=nmap"))
    return client.core.data_to_send()


def test_win10_confirm_is_what_nmaps_terminal_services_match_expects():
    # nmap-service-probes, TerminalServerCookie: requestedProtocols SSL|HYBRID, and the
    # "Windows 10" match \x03\0\0\x13\x0e\xd0\0\0\x124\0\x02\x1f\x08\0\x02\0\0\0.
    client = persona_host("win10").connect()
    assert _cc(client, SSL | HYB) == bytes.fromhex("030000130ed00000123400021f0800020000 00"
                                                   .replace(" ", ""))


@pytest.mark.parametrize("edition, flags", [("win7", 0x01), ("whs", 0x00), ("win81", 0x0f),
                                            ("server-2012r2", 0x0f), ("win11", 0x1f),
                                            ("server-2016", 0x1f), ("server-2022", 0x1f)])
def test_confirm_flags_per_edition(edition, flags):
    client = persona_host(edition).connect()
    tpdu = _cc(client, SSL | HYB)[4:]
    assert tpdu[7] == 0x02 and tpdu[8] == flags


@pytest.mark.parametrize("edition", ["win10", "win11", "server-2022"])
def test_nla_required_editions_refuse_tls_only_and_rdp_only(edition):
    for requested in (SSL, RDP, None):
        client = persona_host(edition).connect()
        tpdu = _cc(client, requested)[4:]
        assert (tpdu[7], tpdu[11]) == (TYPE_RDP_NEG_FAILURE, HYBRID_REQUIRED_BY_SERVER)
        assert client.core.close_requested and not client.core.tls_requested


def test_win7_offers_nla_and_still_serves_tls():
    client = persona_host("win7").connect()
    assert client.negotiate(SSL) == (TYPE_RDP_NEG_RSP, SSL)
    client = persona_host("win7").connect()
    assert client.negotiate(SSL | HYB | EX) == (TYPE_RDP_NEG_RSP, HYB)  # no HYBRID_EX on 7


def test_hybrid_ex_sends_the_early_user_authorization_result_after_credssp():
    client = persona_host("win10").connect()
    assert client.negotiate(SSL | HYB | EX) == (TYPE_RDP_NEG_RSP, EX)
    client.core.tls_started()
    client.send(bytes.fromhex("3003020106"))  # a TSRequest: the fake completes CredSSP
    assert client.core.data_to_send() == b"\x00\x00\x00\x00"
    assert client.core.state == State.MCS_CONNECT


def test_hybrid_sends_no_early_user_authorization_result():
    client = persona_host("win10").connect()
    assert client.negotiate(SSL | HYB) == (TYPE_RDP_NEG_RSP, HYB)
    client.core.tls_started()
    client.send(bytes.fromhex("3003020106"))
    assert client.core.data_to_send() == b"" and client.core.state == State.MCS_CONNECT


@pytest.mark.parametrize("edition, version", [("win7", 0x00080004), ("whs", 0x00080004),
                                              ("win81", 0x00080004), ("server-2016", 0x00080007),
                                              ("win10", 0x0008000D)])
def test_server_core_version_per_edition(edition, version):
    host = Host(edition, server_version=get_edition(edition).rdp_server_version)
    client = host.connect()
    client.negotiate(SSL)
    client.core.tls_started()
    client.send(x224_data(mcs.connect_initial(gcc.conference_create_request(
        gcc.client_data_blocks()))))
    (frame,) = client.pump()
    _, payload = parse_x224(frame)
    _, user_data = mcs.parse_connect_response(payload)
    blocks = gcc.parse_server_data(gcc.parse_conference_create_response(user_data))
    assert struct.unpack_from("<I", blocks[gcc.SC_CORE])[0] == version


# Server 2016's GCC server data, from Microsoft's decrypted MS-RDSOD traces
# (github.com/microsoft/prot-od-netcaps @ 4ee9747a, "[MS-RDSOD]-captureALL/MS-RDSOD_Example
# 1_Win10_X64_WS2016_X64_Domain.matp", after "McDn"): core (RDP 10.2, the client's 0x0b,
# earlyCapabilityFlags 0x06), network (I/O 1003; 1004-1007 for rdpdr, rdpsnd, cliprdr,
# drdynvc), security (none: TLS), message channel 1008, multitransport 0 (the client's 0).
SERVER_2016_CORE = bytes.fromhex("010c1000070008000b00000006000000")
SERVER_2016_GCC = (SERVER_2016_CORE
                   + bytes.fromhex("030c1000eb030400ec03ed03ee03ef03")
                   + bytes.fromhex("020c0c000000000000000000")
                   + bytes.fromhex("040c0600f003")
                   + bytes.fromhex("080c080000000000"))


def _server_gcc(edition: str, requested: int, **client: Any) -> bytes:
    host = Host(edition, nla_mode="off")  # TLS: the scripted client speaks no CredSSP
    conn = host.connect()
    conn.negotiate(requested)
    conn.core.tls_started()
    conn.send(x224_data(mcs.connect_initial(gcc.conference_create_request(
        gcc.client_data_blocks(**client)))))
    (frame,) = conn.pump()
    _, user_data = mcs.parse_connect_response(parse_x224(frame)[1])
    return gcc.parse_conference_create_response(user_data)


def test_server_2016_capture_reads_back_block_by_block():
    blocks = gcc.iter_blocks(SERVER_2016_GCC)
    assert [kind for kind, _ in blocks] == [gcc.SC_CORE, gcc.SC_NET, gcc.SC_SECURITY,
                                            gcc.SC_MCS_MSGCHANNEL, gcc.SC_MULTITRANSPORT]
    assert gcc.server_core(0x0B, 0x00080007, 0x06) == SERVER_2016_CORE
    assert gcc.server_multitransport(0) == SERVER_2016_GCC[-8:]
    assert gcc.server_message_channel(1008) == bytes.fromhex("040c0600f003")


@pytest.mark.parametrize("client_flags, answered", [(0, 0), (0x305, 0x301), (None, None)])
def test_server_2016_answers_the_blocks_as_its_trace_shows(client_flags, answered):
    data = _server_gcc("server-2016", SSL, message_channel=True,
                       multitransport_flags=client_flags,
                       channels=("rdpdr", "rdpsnd", "cliprdr", "drdynvc"))
    # The capture's blocks and channel ids, but for clientRequestedProtocols (0x01 here)
    # and the multitransport answer.
    expected = SERVER_2016_CORE[:8] + struct.pack("<I", SSL) + SERVER_2016_GCC[12:-8]
    if answered is not None:  # without the client's CS_MULTITRANSPORT: no block back
        expected += gcc.server_multitransport(answered)
    assert data == expected


@pytest.mark.parametrize("edition", ["win7", "win81", "whs"])
def test_editions_before_10_send_no_early_flags_and_no_multitransport(edition):
    data = _server_gcc(edition, SSL, multitransport_flags=0x305)
    blocks = dict(gcc.iter_blocks(data))
    assert struct.unpack_from("<I", blocks[gcc.SC_CORE], 8)[0] == 0
    assert gcc.SC_MULTITRANSPORT not in blocks


# -- a bare TLS ClientHello ---------------------------------------------------------------------

HELLO = bytes.fromhex("16030100310100002d0301") + b"\x00" * 40


def test_the_decoder_sees_a_tls_record_first_and_keeps_its_bytes():
    decoder = FrameDecoder()
    decoder.tls_first = True
    decoder.feed(HELLO[:1])
    assert decoder.next_frame() is None  # one byte: not yet known
    decoder.feed(HELLO[1:])
    frame = decoder.next_frame()
    assert frame is not None and frame.kind == TLS_FRAME
    assert decoder.take_buffered() == HELLO and decoder.buffered == 0
    plain = FrameDecoder()  # without tls_first, 0x16 is neither TPKT nor fast-path
    plain.feed(HELLO)
    with pytest.raises(ValueError):
        plain.next_frame()


def test_a_bare_client_hello_starts_tls_with_its_bytes_then_x224_inside():
    host = persona_host("win10")
    client = host.connect()
    client.send(HELLO[:7])
    client.send(HELLO[7:])
    core = client.core
    assert core.tls_requested and core.tls_preface == HELLO and not core.close_requested
    assert core.data_to_send() == b""
    core.tls_started()
    assert core.tls_preface == b"" and not core.tls_requested
    # Inside TLS the client may still negotiate: no second TLS start.
    assert client.negotiate(SSL | HYB) == (TYPE_RDP_NEG_RSP, HYB)
    assert not core.tls_requested and core.state == State.CREDSSP
    assert host.engine.sessions() == [] and host.events.query() == []


def test_after_x224_a_tls_record_is_bad_input():
    client = Host("whs").connect()
    client.negotiate(SSL)
    client.core.tls_started()
    client.send(HELLO)  # TLS inside TLS is not a frame the core knows
    assert client.core.close_requested and client.core.close_abruptly


# -- the config key ----------------------------------------------------------------------------

def test_rdp_nla_config_key():
    assert build_config({}, {"rdp_nla": "off", "edition": "win10"}).rdp_nla == "off"
    assert build_config({"rdp_nla": "required"}, {"edition": "win7"}).rdp_nla == "required"
    with pytest.raises(ConfigError):
        build_config({}, {"rdp_nla": "sometimes"})
    with pytest.raises(ConfigError):  # 2003 has no CredSSP
        build_config({}, {"rdp_nla": "required", "edition": "server-2003"})


def test_cli_flag_reaches_the_config():
    from emulator.cli import build_parser

    args = build_parser().parse_args(["serve", "--rdp-nla", "offered"])
    assert args.rdp_nla == "offered"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--rdp-nla", "maybe"])


def test_editions_ship_nla_as_windows_does():
    nla = {n: e.rdp_nla_default for n, e in EDITIONS.items() if e.rdp_limit != 0}
    assert nla == {
        "xp-pro": "off", "vista": "offered", "win7": "offered", "win81": "required",
        "win10": "required", "win11": "required", "whs": "off", "server-2003": "off",
        "server-2008r2": "offered", "server-2012r2": "required", "server-2016": "required",
        "server-2019": "required", "server-2022": "required", "server-2025": "required"}
    # HYBRID_EX from 8.1 on, exactly where NLA is required by default.
    assert all(e.rdp_early_user_auth == (e.rdp_nla_default == "required")
               for e in EDITIONS.values())


@pytest.mark.parametrize("edition", ["xp-pro", "whs", "server-2003"])
def test_a_bare_client_hello_where_the_edition_has_no_direct_tls_is_bad_input(edition):
    # xp-pro has no TLS; 2003 predates CredSSP's direct approach.
    client = Host(edition).connect()
    client.send(HELLO)
    assert client.core.close_requested and client.core.close_abruptly
    assert not client.core.tls_requested and len(client.logs) == 1
