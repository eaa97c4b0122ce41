"""What an RDP connection has to send, in order, and the screens it draws.

Screens are produced as they are taken: the adapter takes them as the transport drains,
so a client asking for a huge desktop, or not reading, never makes the server hold a
frame, and nothing of it stays once the client leaves. The plain desktop is drawn afresh
each time from shared tiles and cached PDU headers; the message boxes (refusal, logon
failure), small but costly to render, are kept in a cache bounded in bytes.
"""

from __future__ import annotations

import struct
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator

from protocols.rdp import mcs, pdu, render
from protocols.rdp.x224 import x224_data

# The desktop size a client may ask for, per side. The "Limit maximum display resolution"
# policy (MaxXResolution/MaxYResolution) goes up to 8192 and makes its value "the maximum
# resolution that can be used by each monitor": a larger request gets a smaller desktop,
# not a refusal. MS-RDPBCGR 2.2.1.3.6: a virtual desktop is at least 200 x 200. What
# Windows does with a request outside this range without such a policy is not documented
# in what we found; the emulator clamps it.
MIN_DESKTOP = 200
MAX_DESKTOP = 8192

PICTURE_CACHE_BYTES = 8 * 1024 * 1024  # message boxes kept for reuse, in all


def clamp_desktop(width: int, height: int) -> tuple[int, int]:
    return (min(max(width, MIN_DESKTOP), MAX_DESKTOP),
            min(max(height, MIN_DESKTOP), MAX_DESKTOP))


def io_pdu(payload: bytes) -> bytes:
    """One payload on the I/O channel: TPKT + X.224 DT + MCS Send Data Indication."""
    return x224_data(mcs.send_data_indication(mcs.IO_CHANNEL, payload))


class _Screen:
    def __init__(self, pdus: Iterator[bytes], bounded: bool) -> None:
        self.pdus = pdus
        self.bounded = bounded  # a message box: small whatever the desktop size


class _Flagged:
    """Frames whose PDUs take security header flags of their own (licensing)."""

    def __init__(self, data: bytes, flags: int) -> None:
        self.data = data
        self.flags = flags


class _Hold:
    """Where the output stops until released (a fault's late answer, or a stall)."""


HOLD_MARK = _Hold()


class Output:
    """Bytes to send, in order; a screen in the queue is drawn only as it is taken.

    ``seal`` (Standard RDP Security) turns frames into what goes on the wire as they are
    taken, so a cipher stream advances in the order the bytes are sent."""

    def __init__(self) -> None:
        self._parts: deque[bytearray | _Flagged | _Screen | _Hold] = deque()
        self.seal: Callable[[bytes, int], bytes] | None = None

    def add(self, data: bytes, flags: int = 0) -> None:
        """Frames whose Send Data Indication PDUs need security ``flags`` (SEC_LICENSE_PKT)
        when sealed."""
        if flags:
            self._parts.append(_Flagged(data, flags))
        else:
            self += data

    def __iadd__(self, data: bytes) -> Output:
        if data:
            if self._parts and isinstance(self._parts[-1], bytearray):
                self._parts[-1] += data
            else:
                self._parts.append(bytearray(data))
        return self

    def add_screen(self, pdus: Iterator[bytes], *, bounded: bool) -> None:
        """A newer screen replaces one not yet sent (a redraw costs nothing while the
        client has not read the last one)."""
        self.drop_screens()
        self._parts.append(_Screen(pdus, bounded))

    def drop_screens(self, *, keep_bounded: bool = False) -> None:
        """Forget what is left of a screen (whole PDUs were sent: the stream stays
        aligned), or only of a desktop (``keep_bounded``: a message box is finished);
        the bytes queued around it stay, in order."""
        self._parts = deque(p for p in self._parts if not isinstance(p, _Screen)
                            or (keep_bounded and p.bounded))

    def hold(self) -> None:
        """What is queued from now on waits for ``release`` (what is queued before goes)."""
        if HOLD_MARK not in self._parts:
            self._parts.append(HOLD_MARK)

    def release(self) -> None:
        self._parts = deque(p for p in self._parts if p is not HOLD_MARK)

    @property
    def held(self) -> bool:
        return HOLD_MARK in self._parts

    @property
    def pending(self) -> bool:
        return bool(self._parts) and self._parts[0] is not HOLD_MARK

    def take(self, limit: int | None = None) -> bytes:
        """Everything (``limit`` None), or the queued bytes plus screen PDUs until about
        ``limit`` bytes are out."""
        out = bytearray()
        parts, seal = self._parts, self.seal
        while parts and (limit is None or len(out) < limit):
            head = parts[0]
            if isinstance(head, _Hold):
                break
            if isinstance(head, bytearray):
                out += head if seal is None else seal(bytes(head), 0)
                parts.popleft()
                continue
            if isinstance(head, _Flagged):
                out += head.data if seal is None else seal(head.data, head.flags)
                parts.popleft()
                continue
            chunk = next(head.pdus, None)
            if chunk is None:
                parts.popleft()
            else:
                out += chunk if seal is None else seal(chunk, 0)
        return bytes(out)


class PictureCache:
    """Least recently used screens, at most ``max_bytes`` of PDUs in all."""

    def __init__(self, max_bytes: int = PICTURE_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[tuple[object, ...], tuple[bytes, ...]] = OrderedDict()

    def get(self, key: tuple[object, ...]) -> tuple[bytes, ...] | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: tuple[object, ...], value: tuple[bytes, ...]) -> None:
        n = sum(len(v) for v in value)
        if n > self.max_bytes or key in self._items:
            return
        self._items[key] = value
        self.size += n
        while self.size > self.max_bytes:
            _key, old = self._items.popitem(last=False)
            self.size -= sum(len(v) for v in old)

    def clear(self) -> None:
        self._items.clear()
        self.size = 0


PICTURES = PictureCache()

# The headers in front of an update's rectangles depend only on how many there are and
# their total length: kept, so drawing packs only the 18-byte rectangle headers.
_PREFIXES: dict[tuple[bool, int, int], bytes] = {}
_MAX_PREFIXES = 256
_RECT_HEADER = struct.Struct("<9H")  # TS_BITMAP_DATA up to the bitmap bytes (pdu.BitmapRect)


def _prefix(fastpath: bool, count: int, total: int) -> bytes:
    key = (fastpath, count, total)
    prefix = _PREFIXES.get(key)
    if prefix is None:  # made once the plain way, from rectangles of these lengths
        n = total - count * pdu.BITMAP_RECT_HEADER
        rects = [pdu.BitmapRect(0, 0, 4, 1, 4, 16, bytes(n if i == 0 else 0))
                 for i in range(count)]
        whole = pdu.fastpath_bitmap_update(rects) if fastpath else io_pdu(pdu.bitmap_update(rects))
        prefix = whole[:len(whole) - total]
        if len(_PREFIXES) >= _MAX_PREFIXES:
            _PREFIXES.clear()
        _PREFIXES[key] = prefix
    return prefix


def _update(parts: list[bytes], count: int, total: int, fastpath: bool) -> bytes:
    return _prefix(fastpath, count, total) + b"".join(parts)


def updates(rects: Iterable[pdu.BitmapRect], fastpath: bool) -> Iterator[bytes]:
    """The bitmap update PDUs that draw ``rects``, one at a time."""
    for batch in pdu.bitmap_batches(rects):
        parts: list[bytes] = []
        for rect in batch:
            parts += (rect.header(), rect.data)
        total = sum(len(p) for p in parts)
        yield _update(parts, len(batch), total, fastpath)


def desktop(color: tuple[int, int, int], width: int, height: int, bpp: int,
            fastpath: bool) -> Iterator[bytes]:
    """``updates(render.iter_solid_rects(...))`` byte for byte, without the objects (a
    logon's desktop in a third of the time): tiles of one colour share their bytes, so a
    PDU is its kept headers, 18-byte rectangle headers and the shared tile bytes."""
    th, tile, limit = render.tile_height(bpp), render.TILE, pdu.MAX_UPDATE_PAYLOAD
    pack = _RECT_HEADER.pack
    parts: list[bytes] = []
    count = size = 0
    for y in range(0, height, th):
        h = min(th, height - y)
        for x in range(0, width, tile):
            visible = min(tile, width - x)
            w = (visible + 3) & ~3
            data = render.solid_tile(color, bpp, w, h)
            n = pdu.BITMAP_RECT_HEADER + len(data)
            if count and size + n > limit:
                yield _update(parts, count, size, fastpath)
                parts, count, size = [], 0, 0
            parts += (pack(x, y, x + visible - 1, y + h - 1, w, h, bpp, 0, len(data)), data)
            count += 1
            size += n
    if count:
        yield _update(parts, count, size, fastpath)


def screen(text: str | None, width: int, height: int, bpp: int, fastpath: bool,
           color: tuple[int, int, int]) -> Iterator[bytes]:
    """The PDUs that draw the desktop (``text`` None) or a message box, lazily."""
    if text is None:
        return desktop(color, width, height, bpp, fastpath)
    key = (text, width, height, bpp, fastpath)
    cached = PICTURES.get(key)
    if cached is None:
        cached = tuple(updates(render.refusal_rects(text, width, height, bpp), fastpath))
        PICTURES.put(key, cached)
    return iter(cached)


def dialog_screen(spec: object, focus: int | None, pressed: int | None, width: int,
                  height: int, bpp: int, fastpath: bool) -> Iterator[bytes]:
    """The PDUs that draw a ``dialog.DialogSpec`` in one state (kept in the picture cache:
    a dialog has a few states)."""
    key = ("dialog", spec, focus, pressed, width, height, bpp, fastpath)
    cached = PICTURES.get(key)
    if cached is None:
        cached = tuple(updates(render.dialog_rects(spec, focus, pressed, width, height, bpp),
                               fastpath))
        PICTURES.put(key, cached)
    return iter(cached)
