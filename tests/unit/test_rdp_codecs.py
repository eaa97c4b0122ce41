"""RDP codecs against byte vectors: the wire facts (what Windows sends) and what FreeRDP 2.11
and rdesktop 1.9 sent to this server (captured from the emulator's input), both ways."""

from __future__ import annotations

import struct

import pytest

from protocols.rdp import gcc, mcs, pdu
from protocols.rdp.x224 import (
    CREDSSP_FRAME,
    FASTPATH_FRAME,
    HYBRID_REQUIRED_BY_SERVER,
    PROTOCOL_HYBRID,
    PROTOCOL_SSL,
    SSL_REQUIRED_BY_SERVER,
    TPKT_FRAME,
    DecodeError,
    FrameDecoder,
    connection_confirm,
    connection_request,
    negotiation_failure,
    parse_connection_request,
    x224_data,
)

h = bytes.fromhex

# -- what the wire facts say Windows sends ------------------------------------------------
CC_SSL = h("030000130ed000001234000200080001000000")
ATTACH_USER_CONFIRM = h("0300000b02f0802e000006")
CHANNEL_JOIN_CONFIRM_1003 = h("03 00 00 0f 02 f0 80 3e 00 00 06 03 eb 03 eb")
LICENSE_VALID_CLIENT = h("0300002202f08068000103eb701480000000ff031000070000000200000004000000")
SET_ERROR_INFO_DENIED = h("03 00 00 24 02 f0 80 68 00 01 03 eb 70 16 16 00 17 00 ea 03 ea 03"
                          " 01 00 00 01 08 00 2f 00 00 00 07 00 00 00")
DEACTIVATE_ALL = h("0300001b02f08068000103eb700d0d001600ea03ea030100010000")
DPUM = h("0300000902f0802180")

# -- captured from xfreerdp 2.11 (whs, TLS) --------------------------------------------------
FREERDP_CR = h("0300002b26e00000000000436f6f6b69653a206d737473686173683d616c6963650d0a"
               "0100080003000000")
FREERDP_ERECT_DOMAIN = h("0300000c02f0800401000100")
FREERDP_ATTACH_USER = h("0300000802f08028")
FREERDP_JOIN_1008 = h("0300000c02f08038000603f0")
FREERDP_SYNCHRONIZE = h("0300002502f08064000603eb70801616001700ef03ea030100000104001f000000"
                        "0100ea03")
FREERDP_FONT_LIST = h("0300002902f08064000603eb70801a1a001700ef03ea030100000108002700000000"
                      "00000003003200")
FREERDP_CLIENT_INFO = h(
    "0300015b02f08064000603eb70814c4000000000000000fb470b0000000a00120000000000000061"
    "006c0069006300650000005000610073007300770030007200640021000000000000000200140031"
    "00320037002e0030002e0030002e0031000000400043003a005c00570069006e0064006f00770073"
    "005c00530079007300740065006d00330032005c006d007300740073006300610078002e0064006c"
    "006c0000000000000043006f006f007200640069006e006100740065006400200055006e00690076"
    "0065007200730061006c002000540069006d00650000000000000000000000000000000000000000"
    "0000000000000000000000000043006f006f007200640069006e006100740065006400200055006e"
    "006900760065007200730061006c002000540069006d006500000000000000000000000000000000"
    "000000000000000000000000000000000000000000800100000000")
# -- captured from rdesktop 1.9 (-0: the console) ---------------------------------------
RDESKTOP_CR = h("0300002924e00000000000436f6f6b69653a206d737473686173683d626f620d0a01000800"
                "03000000")
RDESKTOP_ERECT_DOMAIN = h("0300000c02f0800400010001")


def tpdu(frame: bytes) -> bytes:
    """The X.224 TPDU inside one TPKT frame."""
    assert frame[0] == 3 and struct.unpack(">H", frame[2:4])[0] == len(frame)
    return frame[4:]


def mcs_payload(frame: bytes) -> bytes:
    assert frame[4:7] == b"\x02\xf0\x80"
    return frame[7:]


def test_connection_confirm_selecting_tls_is_the_windows_bytes():
    assert connection_confirm(PROTOCOL_SSL) == CC_SSL


def test_negotiation_failures_carry_the_code():
    assert negotiation_failure(SSL_REQUIRED_BY_SERVER) == h("030000130ed0000012340003000800"
                                                            "01000000")
    assert negotiation_failure(HYBRID_REQUIRED_BY_SERVER)[-4:] == h("05000000")


@pytest.mark.parametrize("frame, cookie, protocols", [
    (FREERDP_CR, "alice", PROTOCOL_SSL | PROTOCOL_HYBRID),
    (RDESKTOP_CR, "bob", PROTOCOL_SSL | PROTOCOL_HYBRID),
])
def test_connection_requests_of_real_clients_parse_and_rebuild(frame, cookie, protocols):
    request = parse_connection_request(tpdu(frame))
    assert request.mstshash == cookie and request.requested_protocols == protocols
    assert connection_request(protocols, request.cookie) == frame


def test_connection_request_without_negotiation_is_a_legacy_client():
    request = parse_connection_request(tpdu(connection_request(None, b"Cookie: mstshash=x")))
    assert request.requested_protocols is None


@pytest.mark.parametrize("bad", [
    h("06e0000000"),  # LI says 6, 4 bytes follow
    h("08e00000000000ff00"),  # not a negotiation request after the header
    h("0ee00000000000010009000100000000"[:30]),  # RDP_NEG_REQ length 9
    h("26e00000000000436f6f6b69653a206d737473686173683d616c696365"
      "0101080003000000"),  # cookie without CR LF
    h("0ed00000000000010008000100000000"[:30]),  # a Connection Confirm
])
def test_malformed_connection_requests_are_refused(bad):
    with pytest.raises(DecodeError):
        parse_connection_request(bad)


def test_mcs_domain_pdus_are_the_windows_bytes():
    assert x224_data(mcs.attach_user_confirm(1007)) == ATTACH_USER_CONFIRM
    assert mcs.parse_attach_user_confirm(ATTACH_USER_CONFIRM[7:]) == 1007
    assert x224_data(mcs.channel_join_confirm(1007, 1003)) == CHANNEL_JOIN_CONFIRM_1003
    assert x224_data(mcs.disconnect_provider_ultimatum(mcs.RN_USER_REQUESTED)) == DPUM
    assert mcs.parse_domain_pdu(mcs_payload(DPUM)).reason == mcs.RN_USER_REQUESTED
    ultimatum = mcs.disconnect_provider_ultimatum(mcs.RN_PROVIDER_INITIATED)
    assert ultimatum == h("2080") and mcs.parse_domain_pdu(ultimatum).reason == 1


def test_client_domain_pdus_of_real_clients_parse_and_rebuild():
    assert mcs.parse_domain_pdu(mcs_payload(FREERDP_ERECT_DOMAIN)).kind == mcs.ERECT_DOMAIN_REQUEST
    assert mcs.parse_domain_pdu(mcs_payload(RDESKTOP_ERECT_DOMAIN)).kind == \
        mcs.ERECT_DOMAIN_REQUEST
    assert x224_data(mcs.erect_domain_request()) == FREERDP_ERECT_DOMAIN
    assert x224_data(mcs.attach_user_request()) == FREERDP_ATTACH_USER
    join = mcs.parse_domain_pdu(mcs_payload(FREERDP_JOIN_1008))
    assert (join.kind, join.initiator, join.channel) == (mcs.CHANNEL_JOIN_REQUEST, 1007, 1008)
    assert x224_data(mcs.channel_join_request(1007, 1008)) == FREERDP_JOIN_1008


def test_send_data_request_round_trip_and_length_checks():
    sync = mcs.parse_domain_pdu(mcs_payload(FREERDP_SYNCHRONIZE))
    assert (sync.initiator, sync.channel) == (1007, 1003)
    # FreeRDP writes the PER length in two bytes even when one would do (80 16).
    assert mcs_payload(FREERDP_SYNCHRONIZE)[6:8] == h("8016")
    rebuilt = mcs.parse_domain_pdu(mcs.send_data_request(1007, 1003, sync.data))
    assert (rebuilt.initiator, rebuilt.channel, rebuilt.data) == (1007, 1003, sync.data)
    with pytest.raises(DecodeError):
        mcs.parse_domain_pdu(mcs_payload(FREERDP_SYNCHRONIZE)[:-1])  # PER length says more
    long = mcs.send_data_request(1007, 1003, b"x" * 300)
    assert long[6:8] == h("812c") and mcs.parse_domain_pdu(long).data == b"x" * 300


def test_server_pdus_match_the_windows_teardown_bytes():
    def io(payload: bytes) -> bytes:
        return x224_data(mcs.send_data_indication(mcs.IO_CHANNEL, payload))

    assert io(pdu.license_valid_client()) == LICENSE_VALID_CLIENT
    assert io(pdu.set_error_info(pdu.ERRINFO_SERVER_DENIED_CONNECTION)) == SET_ERROR_INFO_DENIED
    assert io(pdu.deactivate_all()) == DEACTIVATE_ALL


def test_client_info_of_freerdp():
    data = mcs.parse_domain_pdu(mcs_payload(FREERDP_CLIENT_INFO)).data
    flags, body = pdu.parse_security_header(data)
    assert flags & pdu.SEC_INFO_PKT
    info = pdu.parse_client_info(body)
    assert (info.domain, info.user, info.password) == ("", "alice", "Passw0rd!")
    assert info.flags & pdu.INFO_UNICODE and info.flags & pdu.INFO_AUTOLOGON
    assert info.wants_logon_errors


def test_client_info_round_trip_and_bad_lengths():
    built = pdu.client_info("bob", "B0b", "WORKGROUP")
    info = pdu.parse_client_info(pdu.parse_security_header(built)[1])
    assert (info.domain, info.user, info.password) == ("WORKGROUP", "bob", "B0b")
    body = bytearray(built[4:])
    struct.pack_into("<H", body, 10, 400)  # cbUserName past the end
    with pytest.raises(DecodeError):
        pdu.parse_client_info(bytes(body))
    struct.pack_into("<H", body, 10, 5)  # odd length in a Unicode field
    with pytest.raises(DecodeError):
        pdu.parse_client_info(bytes(body))


def test_finalization_pdus_of_freerdp_parse():
    for frame, kind in ((FREERDP_SYNCHRONIZE, pdu.PDUTYPE2_SYNCHRONIZE),
                        (FREERDP_FONT_LIST, pdu.PDUTYPE2_FONTLIST)):
        (share,) = pdu.split_share_control(mcs.parse_domain_pdu(mcs_payload(frame)).data)
        assert share.pdu_type == pdu.PDUTYPE_DATAPDU and share.source == 1007
        assert pdu.parse_share_data(share.body).pdu_type2 == kind


def test_connect_initial_and_gcc_round_trip():
    blocks = gcc.client_data_blocks(width=1280, height=800, name="WS01", bpp=32,
                                    channels=("rdpdr", "cliprdr"), cluster_flags=0x0F)
    wire = mcs.connect_initial(gcc.conference_create_request(blocks))
    initial = mcs.parse_connect_initial(wire)
    data = gcc.parse_client_data(gcc.parse_conference_create_request(initial.user_data))
    core = data.core
    assert (core.desktop_width, core.desktop_height, core.client_name) == (1280, 800, "WS01")
    assert core.session_bpp() == 32 and core.supports_error_info
    assert [name for name, _ in data.channels] == ["rdpdr", "cliprdr"]
    assert data.console_requested
    assert not gcc.parse_client_data(gcc.client_data_blocks(cluster_flags=0x0D)).console_requested


def test_connect_response_and_server_blocks():
    blocks = (gcc.server_core(3) + gcc.server_security()
              + gcc.server_network(1003, [1004, 1005, 1006]))
    assert gcc.server_network(1003, [1004]) == h("030c 0c00 eb03 0100 ec03 0000")
    wire = mcs.connect_response(gcc.conference_create_response(blocks))
    assert wire[:2] == mcs.CONNECT_RESPONSE
    # Windows' Connect-Response domain parameters.
    assert h("301a 020122 020103 020100 020101 020100 020101 020300fff8 020102") in wire
    result, user_data = mcs.parse_connect_response(wire)
    assert result == 0
    assert user_data.startswith(h("000500147c00012a14760a01010001c0004d63446e"))
    parsed = gcc.parse_server_data(gcc.parse_conference_create_response(user_data))
    assert parsed[gcc.SC_CORE] == struct.pack("<III", 0x00080004, 3, 0)
    assert parsed[gcc.SC_SECURITY] == bytes(8)


@pytest.mark.parametrize("mutate", [
    lambda b: b[:-1],  # truncated
    lambda b: b[:1] + b"\x66" + b[2:],  # Connect-Response tag instead
    lambda b: b[:3] + b"\x00" + b[4:],  # BER length byte wrong
])
def test_malformed_connect_initial_is_refused(mutate):
    wire = mcs.connect_initial(gcc.conference_create_request(gcc.client_data_blocks()))
    with pytest.raises(DecodeError):
        mcs.parse_connect_initial(mutate(wire))


def test_gcc_refuses_wrong_keys_and_block_lengths():
    request = gcc.conference_create_request(gcc.client_data_blocks())
    with pytest.raises(DecodeError):
        gcc.parse_conference_create_request(request.replace(b"Duca", b"Dxca"))
    blocks = bytearray(gcc.client_data_blocks())
    struct.pack_into("<H", blocks, 2, 9999)  # the core block claims more than there is
    with pytest.raises(DecodeError):
        gcc.parse_client_data(bytes(blocks))


def test_logon_error_pdu_carries_the_status_and_the_570_byte_pad():
    wire = pdu.save_session_info_logon_error(0xC00A0013, pdu.LOGON_FAILED_OTHER)
    (share,) = pdu.split_share_control(wire)
    data = pdu.parse_share_data(share.body)
    assert data.pdu_type2 == pdu.PDUTYPE2_SAVE_SESSION_INFO
    assert data.payload[:22] == h("03000000 1200 02000000 08000000 13000ac0 02000000")
    assert len(data.payload) == 22 + 570


def test_bitmap_rectangles_round_trip_and_stay_under_the_per_limit():
    from protocols.rdp import render

    rects = render.solid_rects((1, 2, 3), 1024, 768, 32)
    updates = pdu.bitmap_updates(rects)
    assert all(len(u) < 0x3FFF for u in updates)
    back = [r for u in updates
            for r in pdu.parse_bitmap_update(pdu.parse_share_data(
                pdu.split_share_control(u)[0].body).payload)]
    assert back == rects
    assert sum(r.visible_width * r.height for r in back) == 1024 * 768
    assert back[0].data[:4] == bytes([3, 2, 1, 0xFF])  # BGRA


def test_frame_decoder_cuts_tpkt_fastpath_and_credssp():
    dec = FrameDecoder()
    dec.feed(FREERDP_ATTACH_USER[:3])
    assert dec.next_frame() is None
    dec.feed(FREERDP_ATTACH_USER[3:] + h("4406") + h("01020304"))
    frame = dec.next_frame()
    assert frame is not None and frame.kind == TPKT_FRAME and frame.data == h("02f08028")
    frame = dec.next_frame()
    assert frame is not None and frame.kind == FASTPATH_FRAME and frame.data == h("440601020304")
    dec.credssp = True
    dec.feed(h("3003020106") + h("30"))
    frame = dec.next_frame()
    assert frame is not None and frame.kind == CREDSSP_FRAME and frame.data == h("3003020106")
    assert dec.next_frame() is None


@pytest.mark.parametrize("bad", [h("0301000a"), h("03000003"), h("ff00"), h("0100")])
def test_frame_decoder_refuses_garbage_from_the_header(bad):
    dec = FrameDecoder()
    dec.feed(bad)
    with pytest.raises(DecodeError):
        dec.next_frame()


def test_frame_decoder_waits_for_a_long_form_tsrequest_split_across_reads():
    ts_request = h("308201f4") + bytes(500)  # long-form DER length: 500 bytes follow
    dec = FrameDecoder()
    dec.credssp = True
    for start, end in ((0, 1), (1, 3), (3, 200)):  # the tag, inside the length, the body
        dec.feed(ts_request[start:end])
        assert dec.next_frame() is None
    dec.feed(ts_request[200:])
    frame = dec.next_frame()
    assert frame is not None and frame.kind == CREDSSP_FRAME and frame.data == ts_request
    assert dec.buffered == 0


def test_frame_decoder_refuses_an_oversized_tsrequest_before_buffering_it():
    dec = FrameDecoder()
    dec.credssp = True
    dec.feed(h("3083ffffff"))
    with pytest.raises(DecodeError):
        dec.next_frame()


# The Conference Create Request as pyrdp-mitm 2.1.0 writes it (pyrdp/parser/gcc.py, checked
# against its writer): connectPDU length 0x2A whatever follows, then the usual framing.
PYRDP_GCC_PREFIX = bytes.fromhex("000500147c00012a000800100001c00044756361")


def test_the_connect_pdu_length_pyrdp_writes_is_accepted_as_windows_accepts_it():
    blocks = gcc.client_data_blocks(name="PYRDP")
    data = PYRDP_GCC_PREFIX + mcs.per_length(len(blocks)) + blocks
    assert gcc.conference_create_request(blocks, connect_length=0x2A) == data
    assert gcc.parse_conference_create_request(data) == blocks
    assert gcc.parse_client_data(blocks).core.client_name == "PYRDP"
    # The user data length still bounds the blocks.
    with pytest.raises(DecodeError):
        gcc.parse_conference_create_request(data[:-1])
