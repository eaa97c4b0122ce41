"""Byte vectors, both ways, for the SMB2 header, compounds and transport framing."""

import pytest
from impacket import smb3structs as s2

from protocols.errors import StatusError
from protocols.smb2.framing import (
    NEGATIVE_RESPONSE, FrameDecoder, FramingError, NotInSession, SessionRequest,
    decode_netbios_name, encode_netbios_name, frame,
)
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
    dec = FrameDecoder(netbios=True, max_payload=200)
    names = encode_netbios_name("*SMBSERVER") + encode_netbios_name("WS139", 0x00)
    request = b"\x81\x00\x00" + bytes([len(names)]) + names
    items = dec.feed(request + b"\x85\x00\x00\x00" + frame(b"xy"))
    assert items[0] == SessionRequest("*SMBSERVER", "WS139") and items[0].valid
    assert items[1].payload == b"xy"
    assert len(items) == 2


def test_netbios_names_both_ways():
    encoded = encode_netbios_name("Desktop-1")
    assert len(encoded) == 34 and encoded[0] == 32 and encoded[-1] == 0
    assert decode_netbios_name(encoded) == ("DESKTOP-1", 34)
    # With a scope: labels after the name, ending with a zero length.
    scoped = encoded[:-1] + b"\x03lan\x00"
    assert decode_netbios_name(scoped) == ("DESKTOP-1", len(scoped))
    for bad in (b"", b"\x20ABC", b"\x1f" + b"A" * 31 + b"\x00", b"\x20" + b"Z" * 32 + b"\x00",
                b"\x20" + b"CA" * 16 + b"\x00",  # 16 spaces... then NUL: an empty name
                encoded[:-1] + b"\x40" + b"x" * 64 + b"\x00", encoded[:-1]):
        with pytest.raises(ValueError):
            decode_netbios_name(bad)


def test_odd_session_request_is_invalid_and_not_a_session():
    dec = FrameDecoder(netbios=True, max_payload=200)
    (item,) = dec.feed(b"\x81\x00\x00\x04\x20ABC")
    assert isinstance(item, SessionRequest) and not item.valid
    assert not dec.in_session
    # Trailing garbage after the two names is odd too.
    names = encode_netbios_name("A") + encode_netbios_name("B") + b"\x00"
    (item,) = FrameDecoder(netbios=True, max_payload=200).feed(
        b"\x81\x00\x00" + bytes([len(names)]) + names)
    assert not item.valid


def test_message_before_session_request():
    dec = FrameDecoder(netbios=True, max_payload=200)
    assert dec.feed(frame(b"xy") + frame(b"zz")) == [NotInSession()]
    assert NEGATIVE_RESPONSE == b"\x83\x00\x00\x01\x8f"  # nmap's Windows netbios-ssn match


def test_oversized_frame_is_refused_before_buffering():
    dec = FrameDecoder(netbios=False, max_payload=1000)
    with pytest.raises(FramingError):
        dec.feed(b"\x00\x01\x00\x00")  # 65536 bytes announced, nothing buffered yet
    assert dec.buffered == 4


def test_unknown_frame_type_is_refused():
    with pytest.raises(FramingError):
        FrameDecoder(netbios=False, max_payload=100).feed(b"\x81\x00\x00\x00")
