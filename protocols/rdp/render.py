"""What the server draws: a plain desktop for admitted sessions, and the refusal message box
(the edition's text, as Winlogon shows it) for the session turned away at the limit.

Images become uncompressed bitmap rectangles at the session's colour depth: bottom-up
rows, 64-pixel-wide tiles, each row a multiple of 4 bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

from protocols.rdp.pdu import BitmapRect

TILE = 64  # tile width; the height keeps one tile within 8 KB
TILE_BYTES = 7936  # two tiles fit one update PDU (PER lengths stop at 16 KB)
DESKTOP_COLOR = (0x3A, 0x6E, 0xA5)  # the classic Windows desktop blue
DIALOG_FACE = (0xEC, 0xE9, 0xD8)
TITLE_BAR = (0x0A, 0x24, 0x6A)
TEXT = (0, 0, 0)
WHITE = (0xFF, 0xFF, 0xFF)
BYTES_PER_PIXEL = {15: 2, 16: 2, 24: 3, 32: 4}


@functools.lru_cache(maxsize=4)
def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _round4(n: int) -> int:
    return (n + 3) & ~3


def render_message_box(text: str, title: str = "Logon Message", width: int = 520) -> Any:
    """The one-button message box (the refusal, the logon failure) as a PIL RGB image whose
    sides are multiples of 4 pixels: ``dialog.render`` with OK focused (the default)."""
    from protocols.rdp import dialog

    return dialog.render(dialog.DialogSpec(text, title, width=width))


def message_box_origin(screen_w: int, screen_h: int, box: Any) -> tuple[int, int]:
    """Centred, on a 4-pixel grid so tiles stay aligned."""
    from protocols.rdp import dialog

    return dialog.origin(screen_w, screen_h, box.width, box.height)


def _pack_rows(rgb_rows: bytes, width: int, height: int, bpp: int) -> bytes:
    """Top-down packed RGB -> bottom-up rows at ``bpp`` (little-endian pixels), padded."""
    from PIL import Image

    img = Image.frombytes("RGB", (width, height), rgb_rows)
    if bpp == 32:  # BGRA with an opaque alpha byte (FreeRDP reads 32 bpp as BGRA32)
        return img.convert("RGBA").tobytes("raw", "BGRA", 0, -1)
    if bpp == 24:
        stride = _round4(width * 3)
        return img.tobytes("raw", "BGR", stride, -1)
    from PIL import ImageChops

    r, g, b = img.split()
    if bpp == 16:  # RGB565, little-endian
        hi = ImageChops.add(r.point(lambda v: v & 0xF8), g.point(lambda v: v >> 5))
        lo = ImageChops.add(g.point(lambda v: (v << 3) & 0xE0), b.point(lambda v: v >> 3))
    else:  # 15: RGB555
        hi = ImageChops.add(r.point(lambda v: (v >> 1) & 0x7C), g.point(lambda v: v >> 6))
        lo = ImageChops.add(g.point(lambda v: (v << 2) & 0xE0), b.point(lambda v: v >> 3))
    return Image.merge("LA", (lo, hi)).tobytes("raw", "LA", _round4(width * 2), -1)


def tile_height(bpp: int) -> int:
    return TILE_BYTES // (TILE * BYTES_PER_PIXEL[bpp])


def image_rects(img: Any, left: int, top: int, bpp: int, screen_w: int,
                screen_h: int) -> list[BitmapRect]:
    """A PIL RGB image placed at (left, top) -> tiles, clipped to the screen."""
    rects = []
    th = tile_height(bpp)
    for ty in range(0, img.height, th):
        for tx in range(0, img.width, TILE):
            x, y = left + tx, top + ty
            if x >= screen_w or y >= screen_h:
                continue
            w = min(TILE, img.width - tx)
            h = min(th, img.height - ty, screen_h - y)
            visible = min(w, screen_w - x)
            tile = img.crop((tx, ty, tx + w, ty + h))
            w4 = _round4(w)
            if w4 != w:
                from PIL import Image

                padded = Image.new("RGB", (w4, h))
                padded.paste(tile, (0, 0))
                tile, w = padded, w4
            rects.append(BitmapRect(x, y, w, h, visible, bpp,
                                    _pack_rows(tile.tobytes(), w, h, bpp)))
    return rects


def _pixel(color: tuple[int, int, int], bpp: int) -> bytes:
    r, g, b = color
    if bpp == 32:
        return bytes([b, g, r, 0xFF])
    if bpp == 24:
        return bytes([b, g, r])
    value = ((r >> 3) << 11 | (g >> 2) << 5 | b >> 3) if bpp == 16 else \
        ((r >> 3) << 10 | (g >> 3) << 5 | b >> 3)
    return value.to_bytes(2, "little")


@functools.lru_cache(maxsize=64)  # at most 64 tiles of at most 8 KB
def solid_tile(color: tuple[int, int, int], bpp: int, w: int, h: int) -> bytes:
    row = _pixel(color, bpp) * w
    row += b"\x00" * (_round4(len(row)) - len(row))
    return row * h


def iter_solid_rects(color: tuple[int, int, int], width: int, height: int,
                     bpp: int) -> Iterator[BitmapRect]:
    """The whole screen in one colour (the plain desktop), tile by tile as they are taken:
    a screen's worth of bitmaps is never held at once (the tiles share their bytes)."""
    th = tile_height(bpp)
    for y in range(0, height, th):
        for x in range(0, width, TILE):
            visible = min(TILE, width - x)
            w, h = _round4(visible), min(th, height - y)
            yield BitmapRect(x, y, w, h, visible, bpp, solid_tile(color, bpp, w, h))


def solid_rects(color: tuple[int, int, int], width: int, height: int,
                bpp: int) -> list[BitmapRect]:
    return list(iter_solid_rects(color, width, height, bpp))


def refusal_rects(text: str, screen_w: int, screen_h: int, bpp: int) -> list[BitmapRect]:
    """The one-button message box, as the dialog it is with OK focused."""
    from protocols.rdp import dialog

    spec = dialog.DialogSpec(text, width=dialog.box_width(screen_w))
    return dialog_rects(spec, 0, None, screen_w, screen_h, bpp)


def dialog_rects(spec: Any, focus: int | None, pressed: int | None, screen_w: int,
                 screen_h: int, bpp: int) -> list[BitmapRect]:
    """A ``dialog.DialogSpec`` in a state, centred (``dialog.origin``)."""
    from protocols.rdp import dialog

    box = dialog.render(spec, focus, pressed)
    x, y = dialog.origin(screen_w, screen_h, box.width, box.height)
    return image_rects(box, x, y, bpp, screen_w, screen_h)
