"""Input PDUs both ways on byte vectors made by hand from MS-RDPBCGR 2.2.8.1.1.3 (slow-path)
and 2.2.8.1.2 (fast-path)."""

from __future__ import annotations

import pytest

from protocols.rdp import input as rdpinput
from protocols.rdp.input import KeyEvent, MouseEvent, SyncEvent, UnicodeEvent
from protocols.rdp.x224 import DecodeError

ENTER_UP = KeyEvent(0x1C, released=True)
LEFT_DOWN = MouseEvent(0x9000, 300, 200)  # PTRFLAGS_DOWN | PTRFLAGS_BUTTON1

# numEvents 2, pad; then (eventTime, messageType, 6 bytes) per event.
SLOW = bytes.fromhex("0200 0000"
                     "00000000 0400 0080 1c00 0000"  # scancode, KBDFLAGS_RELEASE, Enter
                     "00000000 0180 0090 2c01 c800")  # mouse, down|button1, (300, 200)


def test_slow_path_decodes_and_encodes_the_vector():
    assert rdpinput.decode_slow_path(SLOW) == [ENTER_UP, LEFT_DOWN]
    assert rdpinput.encode_slow_path([ENTER_UP, LEFT_DOWN]) == SLOW


@pytest.mark.parametrize("event", [
    KeyEvent(0x4B, extended=True), UnicodeEvent(0x20), UnicodeEvent(0x41, released=True),
    MouseEvent(0x0800, 8191, 8191), MouseEvent(0x8001, 5, 6, extended=True),
    SyncEvent(0x5)])
def test_every_slow_path_event_kind_round_trips(event):
    assert rdpinput.decode_slow_path(rdpinput.encode_slow_path([event])) == [event]


def test_slow_path_sync_and_unicode_bytes():
    assert rdpinput.encode_slow_path([SyncEvent(0x2)]) == bytes.fromhex(
        "0100 0000 00000000 0000 0000 0200 0000")
    assert rdpinput.encode_slow_path([UnicodeEvent(0x263A)]) == bytes.fromhex(
        "0100 0000 00000000 0500 0000 3a26 0000")


def test_slow_path_shorter_than_its_count_is_bad_input_and_unknown_types_are_skipped():
    with pytest.raises(DecodeError):
        rdpinput.decode_slow_path(SLOW[:-1])
    with pytest.raises(DecodeError):
        rdpinput.decode_slow_path(b"\x01")
    unused = bytes.fromhex("0100 0000 00000000 0200 0000 0000 0000")  # INPUT_EVENT_UNUSED
    assert rdpinput.decode_slow_path(unused) == []


def test_a_slow_path_flood_is_cut_to_the_bound():
    many = rdpinput.encode_slow_path([ENTER_UP] * 5000)
    assert len(rdpinput.decode_slow_path(many)) == rdpinput.MAX_EVENTS_PER_PDU


# fpInputHeader: action 0, numEvents in bits 2-5; length; events.
FAST_ENTER = bytes.fromhex("0404 001c")  # one event: scancode Enter down
FAST_ENTER_UP = bytes.fromhex("0404 011c")  # FASTPATH_INPUT_KBDFLAGS_RELEASE
FAST_MOUSE = bytes.fromhex("0409 20 0090 2c01 c800")  # mouse event (code 1 << 5)


@pytest.mark.parametrize("frame, events", [
    (FAST_ENTER, [KeyEvent(0x1C)]), (FAST_ENTER_UP, [ENTER_UP]), (FAST_MOUSE, [LEFT_DOWN])])
def test_fast_path_decodes_and_encodes_the_vectors(frame, events):
    num, flags, body = rdpinput.fastpath_body(frame)
    assert flags == 0 and rdpinput.decode_fast_path_events(num, body) == events
    assert rdpinput.encode_fast_path(events) == frame


def test_fast_path_unicode_sync_extended_and_the_numevents_byte():
    events = [UnicodeEvent(0x0D), SyncEvent(0x3), KeyEvent(0x4D, extended=True),
              MouseEvent(0x8001, 1, 2, extended=True)] * 5  # 20 > 15: the optional byte
    frame = rdpinput.encode_fast_path(events)
    assert frame[0] == 0x00 and frame[1] & 0x80 == 0 and frame[2] == 20
    num, _flags, body = rdpinput.fastpath_body(frame)
    assert num == 0 and rdpinput.decode_fast_path_events(num, body) == events
    assert rdpinput.encode_fast_path_events([UnicodeEvent(0x41)]) == bytes.fromhex("80 4100")
    assert rdpinput.encode_fast_path_events([SyncEvent(0x2)]) == bytes.fromhex("62")
    assert rdpinput.encode_fast_path_events([KeyEvent(0x4D, extended=True)]) == \
        bytes.fromhex("02 4d")


def test_fast_path_two_byte_length_and_the_qoe_timestamp():
    events = [MouseEvent(0x0800, i, i) for i in range(30)]  # 210 bytes: a two-byte length
    frame = rdpinput.encode_fast_path(events)
    assert frame[1] & 0x80 and int.from_bytes(frame[1:3], "big") & 0x7FFF == len(frame)
    num, _flags, body = rdpinput.fastpath_body(frame)
    assert rdpinput.decode_fast_path_events(num, body) == events
    qoe = bytes([0xC0]) + b"\x01\x00\x00\x00"  # code 6, a timestamp: no event
    assert rdpinput.decode_fast_path_events(1, qoe) == []


@pytest.mark.parametrize("num, body", [(2, bytes.fromhex("001c")), (1, bytes.fromhex("20 0090")),
                                       (1, bytes.fromhex("e0")), (0, b"")])
def test_bad_fast_path_input_is_a_decode_error(num, body):
    with pytest.raises(DecodeError):
        rdpinput.decode_fast_path_events(num, body)


def test_fast_path_header_flags_are_read():
    frame = bytes([0x80 | 0x40 | 1 << 2, 12]) + b"S" * 8 + b"xx"  # ENCRYPTED | CHECKSUM
    num, flags, body = rdpinput.fastpath_body(frame)
    assert num == 1 and flags == 3 and body == b"S" * 8 + b"xx"
