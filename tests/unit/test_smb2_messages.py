"""Byte vectors, both ways, for the SMB2 header, compounds and transport framing."""

import pytest
from impacket import smb3structs as s2

from protocols.errors import StatusError
from protocols.smb2.framing import FrameDecoder, FramingError, SessionRequest, frame
from protocols.smb2.messages import (
    ERROR_BODY, CompoundError, Header, buffer_at, join_compound, split_compound,
)

# A NEGOTIATE response header: credits 1, flags SERVER_TO_REDIR, message id 0.
NEG_RESPONSE_HEADER = bytes.fromhex(
    "fe534d4240000000" "00000000" "0000" "0100" "01000000" "00000000"
    "0000000000000000" "00000000" "00000000" "0000000000000000" + "00" * 16)


def test_header_vector_both_ways():
    h = Header(s2.SMB2_NEGOTIATE, credits=1, flags=1)
    assert h.pack() == NEG_RESPONSE_HEADER
    assert Header.parse(NEG_RESPONSE_HEADER) == h


def test_header_matches_impacket_smb2packet():
    pkt = s2.SMB2Packet()
    pkt["CreditCharge"], pkt["Status"], pkt["Command"] = 3, 0xC00000D0, s2.SMB2_SESSION_SETUP
    pkt["CreditRequestResponse"], pkt["Flags"], pkt["MessageID"] = 31, 0x9, 77
    pkt["Reserved"], pkt["TreeID"], pkt["SessionID"] = 0xFEFF, 5, 0x0000040000000001
    pkt["Signature"] = bytes(range(16))
    pkt["Data"] = b""
    raw = pkt.getData()
    h = Header.parse(raw)
    assert (h.credit_charge, h.status, h.command, h.credits, h.flags, h.message_id) == (
        3, 0xC00000D0, 1, 31, 9, 77)
    assert (h.process_id, h.tree_id, h.session_id) == (0xFEFF, 5, 0x0000040000000001)
    assert h.pack() == raw


@pytest.mark.parametrize("raw", [b"", b"\xfeSMB" + b"\0" * 10, b"\xffSMB" + b"\0" * 60])
def test_header_rejects_non_smb2(raw):
    with pytest.raises(ValueError):
        Header.parse(raw)


def test_error_body_is_the_spec_minimum():
    assert ERROR_BODY == bytes.fromhex("090000000000000000")


def _msg(command, extra=b""):
    return Header(command).pack() + extra


def test_compound_split_and_join_round_trip():
    a, b = _msg(5, b"\x01\x02\x03"), _msg(6, b"\x04")
    joined = join_compound([a, b])
    assert len(joined[0]) == 72 and joined[0][20:24] == (72).to_bytes(4, "little")
    assert split_compound(b"".join(joined), 2) == [joined[0], joined[1]]


@pytest.mark.parametrize("next_command", [1, 63, 65, 10_000])
def test_compound_with_a_lying_next_command_is_refused(next_command):
    msg = bytearray(_msg(5, b"\0" * 16))
    msg[20:24] = next_command.to_bytes(4, "little")
    with pytest.raises(ValueError):
        split_compound(bytes(msg), 8192)


def _chain(n):
    one = bytearray(_msg(13))
    one[20:24] = (64).to_bytes(4, "little")
    last = _msg(13)
    return bytes(one) * (n - 1) + last


def test_a_compound_splits_into_slices_that_tile_the_frame():
    frame = _chain(1000)
    messages = split_compound(frame, 1000)
    assert len(messages) == 1000
    assert sum(map(len, messages)) == len(frame)  # each byte lands in one message, once
    assert b"".join(messages) == frame


def test_a_compound_of_more_requests_than_credits_is_refused():
    assert len(split_compound(_chain(5), 5)) == 5
    with pytest.raises(CompoundError, match="more than 4"):
        split_compound(_chain(5), 4)


def test_buffer_at_checks_bounds():
    message = b"\0" * 64 + b"abcd"
    assert buffer_at(message, 64, 4) == b"abcd"
    assert buffer_at(message, 0, 0) == b""
    for offset, length in [(10, 4), (66, 4), (64, 5)]:
        with pytest.raises(StatusError):
            buffer_at(message, offset, length)


def test_direct_tcp_framing_both_ways():
    assert frame(b"abc") == b"\x00\x00\x00\x03abc"
    dec = FrameDecoder(netbios=False, max_payload=100)
    assert dec.feed(b"\x00\x00\x00\x03a") == []
    (f,) = dec.feed(b"bc")
    assert f.payload == b"abc"


def test_netbios_session_request_and_keepalive():
    dec = FrameDecoder(netbios=True, max_payload=100)
    request = b"\x81\x00\x00\x04" + b"\x20ABC"
    items = dec.feed(request + b"\x85\x00\x00\x00" + frame(b"xy"))
    assert isinstance(items[0], SessionRequest)
    assert items[1].payload == b"xy"
    assert len(items) == 2


def test_oversized_frame_is_refused_before_buffering():
    dec = FrameDecoder(netbios=False, max_payload=1000)
    with pytest.raises(FramingError):
        dec.feed(b"\x00\x01\x00\x00")  # 65536 bytes announced, nothing buffered yet
    assert dec.buffered == 4


def test_unknown_frame_type_is_refused():
    with pytest.raises(FramingError):
        FrameDecoder(netbios=False, max_payload=100).feed(b"\x81\x00\x00\x00")
