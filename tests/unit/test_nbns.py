"""The NetBIOS name service codec against impacket's (an independent implementation of
RFC 1002), both directions."""

import struct

import impacket.nmb as nmb
import pytest

from protocols.nbns.codec import (
    NB, NodeNames, answer, decode_name, encode_name, netbios_name, parse_query,
)

NAMES = NodeNames("XPBOX", "LABNET", "127.0.0.12", bytes.fromhex("02d31826f99b"))


def query(name, suffix, *, status=False, flags=nmb.NM_FLAGS_RD, scope=None):
    packet = nmb.NODE_STATUS_REQUEST() if status else nmb.NAME_QUERY_REQUEST()
    packet["NAME_TRN_ID"] = 0x1234
    packet["QUESTION_NAME"] = nmb.encode_name(name, suffix, scope)[:-1] + b"\x00"
    packet["FLAGS"] = 0 if status else flags
    return packet.getData()


@pytest.mark.parametrize("name,suffix", [("XPBOX", 0x20), ("*", 0x00), ("A" * 15, 0x1E)])
def test_name_encoding_matches_impacket_both_ways(name, suffix):
    raw = b"*" + b"\x00" * 15 if name == "*" else netbios_name(name, suffix)
    ours = encode_name(raw)
    assert ours == nmb.encode_name(name, suffix, None)
    decoded, scope, end = decode_name(ours, 0)
    assert (decoded, scope, end) == (raw, "", len(ours))


def test_node_status_lists_windows_names_flags_and_the_mac():
    reply = answer(query("*", 0, status=True), NAMES)
    packet = nmb.NAME_SERVICE_PACKET(reply)
    assert packet["NAME_TRN_ID"] == 0x1234 and packet["FLAGS"] & 0x8000  # a response
    status = nmb.NBNodeStatusResponse(packet["ANSWERS"])
    rows = [(e["NAME"].rstrip(b" ").decode(), e["TYPE"], e["NAME_FLAGS"])
            for e in status.entries]
    assert rows == [("XPBOX", 0x00, 0x0400), ("XPBOX", 0x03, 0x0400), ("XPBOX", 0x20, 0x0400),
                    ("LABNET", 0x00, 0x8400), ("LABNET", 0x1E, 0x8400)]
    assert status.get_mac() == "02-D3-18-26-F9-9B"


def test_a_name_query_for_an_own_name_gets_its_address():
    for suffix in (0x20, 0x00):
        reply = answer(query("XPBOX", suffix), NAMES)
        packet = nmb.NAME_SERVICE_PACKET(reply)
        assert packet["FLAGS"] & 0xF == 0  # RCODE 0: positive
        assert packet["FLAGS"] & 0x8400 == 0x8400  # a response, authoritative
        positive = nmb.NBPositiveNameQueryResponse(packet["ANSWERS"])
        assert positive.entries == ["127.0.0.12"]
    workgroup = nmb.NAME_SERVICE_PACKET(answer(query("LABNET", 0x1E), NAMES))
    nb_flags = struct.unpack(">H", workgroup["ANSWERS"][-6:-4])[0]
    assert nb_flags & nmb.NB_FLAGS_G  # a group name


def test_what_is_not_a_query_for_our_names_is_not_answered():
    assert answer(query("OTHER", 0x20), NAMES) is None
    assert answer(query("XPBOX", 0x1B), NAMES) is None  # a suffix it does not register
    assert answer(query("XPBOX", 0x20, scope="corp"), NAMES) is None
    reply = answer(query("XPBOX", 0x20), NAMES)
    assert answer(reply, NAMES) is None  # a response, not a query
    for junk in (b"", b"\x00" * 11, query("XPBOX", 0x20)[:20], b"\xff" * 60):
        assert answer(junk, NAMES) is None
    assert parse_query(query("XPBOX", 0x20)).qtype == NB
