"""Keyboard and mouse input, both ways (the server decodes, the tests encode):

- slow-path: the Input Event PDU's TS_INPUT_PDU_DATA (MS-RDPBCGR 2.2.8.1.1.3.1: numEvents,
  pad, then 12-byte TS_INPUT_EVENTs: eventTime, messageType and 6 bytes of event);
- fast-path: TS_FP_INPUT_PDU (2.2.8.1.2): fpInputHeader (action, numEvents, flags), a one
  or two byte length, under Standard RDP Security the 8-byte dataSignature with the events
  encrypted (``security.StandardSecurity.unwrap_fastpath`` takes those off), an optional
  numEvents byte, then TS_FP_INPUT_EVENTs (2.2.8.1.2.2: a one-byte eventHeader,
  eventFlags in its low 5 bits and eventCode in its high 3).

Events are plain values; what they do is the screen's business (``dialog.py``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from protocols.rdp.x224 import DecodeError

# Slow-path messageType (2.2.8.1.1.3.1.1).
INPUT_EVENT_SYNC = 0x0000
INPUT_EVENT_UNUSED = 0x0002
INPUT_EVENT_SCANCODE = 0x0004
INPUT_EVENT_UNICODE = 0x0005
INPUT_EVENT_MOUSE = 0x8001
INPUT_EVENT_MOUSEX = 0x8002

# keyboardFlags (2.2.8.1.1.3.1.1.1).
KBDFLAGS_EXTENDED = 0x0100
KBDFLAGS_EXTENDED1 = 0x0200
KBDFLAGS_DOWN = 0x4000
KBDFLAGS_RELEASE = 0x8000

# pointerFlags (2.2.8.1.1.3.1.1.3) and extended (2.2.8.1.1.3.1.1.4).
PTRFLAGS_HWHEEL = 0x0400
PTRFLAGS_WHEEL = 0x0200
PTRFLAGS_MOVE = 0x0800
PTRFLAGS_DOWN = 0x8000
PTRFLAGS_BUTTON1 = 0x1000  # left
PTRFLAGS_BUTTON2 = 0x2000  # right
PTRFLAGS_BUTTON3 = 0x4000  # middle
PTRXFLAGS_DOWN = 0x8000
PTRXFLAGS_BUTTON1 = 0x0001
PTRXFLAGS_BUTTON2 = 0x0002

# Fast-path (2.2.8.1.2): header flags (its top 2 bits) and event codes / flags.
FASTPATH_INPUT_ACTION_FASTPATH = 0x0
FASTPATH_INPUT_SECURE_CHECKSUM = 0x1
FASTPATH_INPUT_ENCRYPTED = 0x2
FASTPATH_INPUT_EVENT_SCANCODE = 0x0
FASTPATH_INPUT_EVENT_MOUSE = 0x1
FASTPATH_INPUT_EVENT_MOUSEX = 0x2
FASTPATH_INPUT_EVENT_SYNC = 0x3
FASTPATH_INPUT_EVENT_UNICODE = 0x4
FASTPATH_INPUT_EVENT_QOE_TIMESTAMP = 0x6
FASTPATH_INPUT_EVENT_RELPOINTER = 0x7
FASTPATH_INPUT_KBDFLAGS_RELEASE = 0x01
FASTPATH_INPUT_KBDFLAGS_EXTENDED = 0x02
FASTPATH_INPUT_KBDFLAGS_EXTENDED1 = 0x04

# The most events one PDU may carry that are looked at; the rest are ignored (a slow-path
# PDU could name 65535; a fast-path one at most 255).
MAX_EVENTS_PER_PDU = 256


@dataclass(frozen=True)
class KeyEvent:
    scancode: int
    released: bool = False
    extended: bool = False


@dataclass(frozen=True)
class UnicodeEvent:
    code: int  # a UTF-16 code unit
    released: bool = False


@dataclass(frozen=True)
class MouseEvent:
    flags: int  # pointerFlags (or, ``extended``, extendedPointerFlags)
    x: int
    y: int
    extended: bool = False

    @property
    def left_down(self) -> bool:
        return not self.extended and self.flags & (PTRFLAGS_DOWN | PTRFLAGS_BUTTON1) == \
            (PTRFLAGS_DOWN | PTRFLAGS_BUTTON1)

    @property
    def left_up(self) -> bool:
        return not self.extended and self.flags & (PTRFLAGS_DOWN | PTRFLAGS_BUTTON1) == \
            PTRFLAGS_BUTTON1


@dataclass(frozen=True)
class SyncEvent:
    toggles: int  # TS_SYNC_SCROLL_LOCK 1, NUM_LOCK 2, CAPS_LOCK 4, KANA_LOCK 8


InputEvent = KeyEvent | UnicodeEvent | MouseEvent | SyncEvent


# -- slow-path ----------------------------------------------------------------------------------

_SLOW = struct.Struct("<IHHHH")  # eventTime, messageType, three 16-bit fields


def decode_slow_path(data: bytes) -> list[InputEvent]:
    """TS_INPUT_PDU_DATA (what follows the share data header) -> its events, the first
    ``MAX_EVENTS_PER_PDU``; unknown message types are skipped."""
    if len(data) < 4:
        raise DecodeError("input PDU shorter than its header")
    (count,) = struct.unpack_from("<H", data)
    if len(data) < 4 + count * _SLOW.size:
        raise DecodeError(f"input PDU names {count} events, has room for "
                          f"{(len(data) - 4) // _SLOW.size}")
    events: list[InputEvent] = []
    for i in range(min(count, MAX_EVENTS_PER_PDU)):
        _time, kind, a, b, c = _SLOW.unpack_from(data, 4 + i * _SLOW.size)
        if kind == INPUT_EVENT_SCANCODE:
            events.append(KeyEvent(b & 0xFF, bool(a & KBDFLAGS_RELEASE),
                                   bool(a & KBDFLAGS_EXTENDED)))
        elif kind == INPUT_EVENT_UNICODE:
            events.append(UnicodeEvent(b, bool(a & KBDFLAGS_RELEASE)))
        elif kind in (INPUT_EVENT_MOUSE, INPUT_EVENT_MOUSEX):
            events.append(MouseEvent(a, b, c, kind == INPUT_EVENT_MOUSEX))
        elif kind == INPUT_EVENT_SYNC:
            events.append(SyncEvent(b | c << 16))  # pad2Octets, then toggleFlags (32 bits)
    return events


def encode_slow_path(events: list[InputEvent], event_time: int = 0) -> bytes:
    """The TS_INPUT_PDU_DATA a client sends (wrap it with ``pdu.share_data(PDUTYPE2_INPUT,
    ...)``)."""
    out = bytearray(struct.pack("<HH", len(events), 0))
    for e in events:
        if isinstance(e, KeyEvent):
            flags = (KBDFLAGS_RELEASE if e.released else 0) | \
                (KBDFLAGS_EXTENDED if e.extended else 0)
            out += _SLOW.pack(event_time, INPUT_EVENT_SCANCODE, flags, e.scancode, 0)
        elif isinstance(e, UnicodeEvent):
            out += _SLOW.pack(event_time, INPUT_EVENT_UNICODE,
                              KBDFLAGS_RELEASE if e.released else 0, e.code, 0)
        elif isinstance(e, MouseEvent):
            out += _SLOW.pack(event_time, INPUT_EVENT_MOUSEX if e.extended else INPUT_EVENT_MOUSE,
                              e.flags, e.x, e.y)
        else:
            out += _SLOW.pack(event_time, INPUT_EVENT_SYNC, 0, e.toggles & 0xFFFF,
                              e.toggles >> 16)
    return bytes(out)


# -- fast-path ----------------------------------------------------------------------------------

def fastpath_body(frame: bytes) -> tuple[int, int, bytes]:
    """A whole TS_FP_INPUT_PDU -> (header numEvents, header flags, what follows the
    length); under Standard RDP Security that is the signature and the encrypted events."""
    if len(frame) < 2:
        raise DecodeError("fast-path input shorter than its header")
    header = frame[0]
    if header & 0x3 != FASTPATH_INPUT_ACTION_FASTPATH:
        raise DecodeError("not a fast-path input PDU")
    start = 3 if frame[1] & 0x80 else 2
    return (header >> 2) & 0xF, header >> 6, frame[start:]


def decode_fast_path_events(num_events: int, data: bytes) -> list[InputEvent]:
    """The events of a fast-path input PDU (``data``: plain, from the optional numEvents
    byte on), the first ``MAX_EVENTS_PER_PDU``; an unknown event code is bad input (its
    length cannot be known)."""
    pos = 0
    if num_events == 0:
        if not data:
            raise DecodeError("fast-path input without numEvents")
        num_events, pos = data[0], 1
    events: list[InputEvent] = []
    for _ in range(num_events):
        if pos >= len(data):
            raise DecodeError("fast-path input shorter than its events")
        header = data[pos]
        pos += 1
        code, flags = header >> 5, header & 0x1F
        if code == FASTPATH_INPUT_EVENT_SCANCODE:
            _need(data, pos, 1)
            event: InputEvent | None = KeyEvent(
                data[pos], bool(flags & FASTPATH_INPUT_KBDFLAGS_RELEASE),
                bool(flags & FASTPATH_INPUT_KBDFLAGS_EXTENDED))
            pos += 1
        elif code in (FASTPATH_INPUT_EVENT_MOUSE, FASTPATH_INPUT_EVENT_MOUSEX):
            _need(data, pos, 6)
            pointer, x, y = struct.unpack_from("<HHH", data, pos)
            event = MouseEvent(pointer, x, y, code == FASTPATH_INPUT_EVENT_MOUSEX)
            pos += 6
        elif code == FASTPATH_INPUT_EVENT_SYNC:
            event = SyncEvent(flags)
        elif code == FASTPATH_INPUT_EVENT_UNICODE:
            _need(data, pos, 2)
            (unit,) = struct.unpack_from("<H", data, pos)
            event = UnicodeEvent(unit, bool(flags & FASTPATH_INPUT_KBDFLAGS_RELEASE))
            pos += 2
        elif code == FASTPATH_INPUT_EVENT_QOE_TIMESTAMP:
            _need(data, pos, 4)
            event = None
            pos += 4
        elif code == FASTPATH_INPUT_EVENT_RELPOINTER:  # a move with no position: ignored
            _need(data, pos, 6)
            event = None
            pos += 6
        else:
            raise DecodeError(f"fast-path input event code {code}")
        if event is not None and len(events) < MAX_EVENTS_PER_PDU:
            events.append(event)
    return events


def _need(data: bytes, pos: int, n: int) -> None:
    if pos + n > len(data):
        raise DecodeError("fast-path input event cut short")


def encode_fast_path_events(events: list[InputEvent]) -> bytes:
    out = bytearray()
    for e in events:
        if isinstance(e, KeyEvent):
            flags = (FASTPATH_INPUT_KBDFLAGS_RELEASE if e.released else 0) | \
                (FASTPATH_INPUT_KBDFLAGS_EXTENDED if e.extended else 0)
            out += bytes([FASTPATH_INPUT_EVENT_SCANCODE << 5 | flags, e.scancode & 0xFF])
        elif isinstance(e, UnicodeEvent):
            flags = FASTPATH_INPUT_KBDFLAGS_RELEASE if e.released else 0
            out += bytes([FASTPATH_INPUT_EVENT_UNICODE << 5 | flags]) + struct.pack("<H", e.code)
        elif isinstance(e, MouseEvent):
            code = FASTPATH_INPUT_EVENT_MOUSEX if e.extended else FASTPATH_INPUT_EVENT_MOUSE
            out += bytes([code << 5]) + struct.pack("<HHH", e.flags, e.x, e.y)
        else:
            out += bytes([FASTPATH_INPUT_EVENT_SYNC << 5 | (e.toggles & 0x1F)])
    return bytes(out)


def encode_fast_path(events: list[InputEvent]) -> bytes:
    """A whole unencrypted TS_FP_INPUT_PDU (the TLS case); numEvents in the header when it
    fits its 4 bits, else in the optional byte."""
    body = encode_fast_path_events(events)
    count = len(events)
    if not 0 < count < 16:
        body = bytes([count]) + body
        count = 0
    header = FASTPATH_INPUT_ACTION_FASTPATH | count << 2
    length = len(body) + 2
    if length <= 0x7F:
        return bytes([header, length]) + body
    length += 1
    return bytes([header]) + struct.pack(">H", 0x8000 | length) + body
