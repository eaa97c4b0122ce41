"""The dialogs the server draws in a session (the refusal's "Logon Message", the take-over
questions) with push buttons as Windows' classic controls behave and look:

- the default button has a black frame; the focused one a dotted focus rectangle inside;
  a pressed one is drawn sunken with its label moved one pixel down and right;
- Enter presses the default button (a focused push button is the default one); Space
  presses the focused button while held and chooses it when let go; Tab / Shift+Tab and
  the arrow keys move the focus; Escape chooses the cancel button (none: ignored);
- the left mouse button down on a button presses it (and focuses it); up on the same
  button chooses it; up elsewhere chooses nothing.

``Dialog`` is the state (sans-IO: events in, a chosen button's label out); ``render`` the
picture, cached per state (a few states per dialog, so a flood of Tabs costs lookups).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from protocols.rdp import input as rdpinput

DIALOG_FACE = (0xEC, 0xE9, 0xD8)
TITLE_BAR = (0x0A, 0x24, 0x6A)
TEXT = (0, 0, 0)
WHITE = (0xFF, 0xFF, 0xFF)
SHADOW = (0x80, 0x80, 0x80)  # COLOR_BTNSHADOW
DARK_SHADOW = (0x40, 0x40, 0x40)  # COLOR_3DDKSHADOW
LIGHT = (0xF1, 0xEF, 0xE2)  # COLOR_3DLIGHT

# Set 1 scancodes (what RDP clients send).
SC_ESCAPE, SC_TAB, SC_ENTER, SC_SPACE = 0x01, 0x0F, 0x1C, 0x39
SC_LSHIFT, SC_RSHIFT = 0x2A, 0x36
SC_LEFT, SC_RIGHT, SC_UP, SC_DOWN = 0x4B, 0x4D, 0x48, 0x50

TITLE_H, LINE_H, BUTTON_W, BUTTON_H, BUTTON_GAP = 26, 22, 80, 26, 12


@dataclass(frozen=True)
class DialogSpec:
    text: str
    title: str = "Logon Message"
    buttons: tuple[str, ...] = ("OK",)
    default: int = 0  # the button Enter presses (and the first focused)
    cancel: int | None = 0  # the button Escape chooses; None: Escape does nothing
    width: int = 520


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    lines: tuple[str, ...]
    buttons: tuple[tuple[int, int, int, int], ...]  # (left, top, right, bottom), inclusive


@functools.lru_cache(maxsize=4)
def _cached_font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _round4(n: int) -> int:
    return (n + 3) & ~3


@functools.lru_cache(maxsize=32)
def layout(spec: DialogSpec) -> Layout:
    """Where everything goes: the text wrapped to the width by measuring word by word, the
    buttons centred in a row at the bottom; both sides multiples of 4 pixels."""
    from PIL import Image, ImageDraw

    font = _cached_font(15)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    inner = spec.width - 40
    lines: list[str] = []
    for paragraph in spec.text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if probe.textlength(candidate, font=font) <= inner or not line:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    height = _round4(TITLE_H + 20 + LINE_H * len(lines) + 16 + BUTTON_H + 14)
    width = _round4(spec.width)
    n = len(spec.buttons)
    row = n * BUTTON_W + (n - 1) * BUTTON_GAP
    x, y = (width - row) // 2, height - BUTTON_H - 12
    buttons = tuple((x + i * (BUTTON_W + BUTTON_GAP), y,
                     x + i * (BUTTON_W + BUTTON_GAP) + BUTTON_W, y + BUTTON_H)
                    for i in range(n))
    return Layout(width, height, tuple(lines), buttons)


@functools.lru_cache(maxsize=64)
def render(spec: DialogSpec, focus: int | None = 0, pressed: int | None = None) -> Any:
    """The dialog as a PIL RGB image in this state."""
    from PIL import Image, ImageDraw

    lay = layout(spec)
    font, title_font = _cached_font(15), _cached_font(14)
    img = Image.new("RGB", (lay.width, lay.height), DIALOG_FACE)
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, lay.width - 1, lay.height - 1], outline=DARK_SHADOW)
    d.rectangle([1, 1, lay.width - 2, TITLE_H], fill=TITLE_BAR)
    d.text((10, 5), spec.title, font=title_font, fill=WHITE)
    y = TITLE_H + 20
    for line in lay.lines:
        d.text((20, y), line, font=font, fill=TEXT)
        y += LINE_H
    # The default button is the focused one when a button has the focus (Windows moves
    # the default frame with the focus among push buttons).
    default = focus if focus is not None else spec.default
    for i, (label, box) in enumerate(zip(spec.buttons, lay.buttons, strict=True)):
        _button(d, box, label, font, default=i == default, focused=i == focus,
                pressed=i == pressed)
    return img


def _button(d: Any, box: tuple[int, int, int, int], label: str, font: Any, *, default: bool,
            focused: bool, pressed: bool) -> None:
    left, top, right, bottom = box
    if default or pressed:  # the black frame of the default (and of a pushed) button
        d.rectangle([left, top, right, bottom], outline=TEXT)
        left, top, right, bottom = left + 1, top + 1, right - 1, bottom - 1
    if pressed:  # DFCS_PUSHED: a flat shadow frame, the face inside
        d.rectangle([left, top, right, bottom], outline=SHADOW, fill=DIALOG_FACE)
    else:  # raised: highlight and light top-left, dark shadow and shadow bottom-right
        d.rectangle([left, top, right, bottom], fill=DIALOG_FACE)
        d.line([left, bottom, left, top, right, top], fill=WHITE)
        d.line([left, bottom, right, bottom, right, top], fill=DARK_SHADOW)
        d.line([left + 1, bottom - 1, left + 1, top + 1, right - 1, top + 1], fill=LIGHT)
        d.line([left + 1, bottom - 1, right - 1, bottom - 1, right - 1, top + 1], fill=SHADOW)
    shift = 1 if pressed else 0
    w = d.textlength(label, font=font)
    d.text((left + (right - left - w) / 2 + shift, top + 3 + shift), label, font=font, fill=TEXT)
    if focused:  # the dotted focus rectangle, every other pixel
        fl, ft, fr, fb = left + 3, top + 3, right - 3, bottom - 3
        for x in range(fl, fr + 1, 2):
            d.point([(x, ft), (x, fb)], fill=TEXT)
        for y in range(ft, fb + 1, 2):
            d.point([(fl, y), (fr, y)], fill=TEXT)


def box_width(screen_w: int) -> int:
    """A dialog's width on a screen: 520 pixels, or the screen's less a margin."""
    return min(520, screen_w - 8)


def origin(screen_w: int, screen_h: int, width: int, height: int) -> tuple[int, int]:
    """Centred, on a 4-pixel grid so tiles stay aligned."""
    return max(0, (screen_w - width) // 2) & ~3, max(0, (screen_h - height) // 2)


class Dialog:
    """One dialog on one session's screen: focus, the pressed button, what was chosen."""

    def __init__(self, spec: DialogSpec, screen: tuple[int, int]) -> None:
        self.spec = spec
        self.layout = layout(spec)
        self.left, self.top = origin(*screen, self.layout.width, self.layout.height)
        self.focus: int = spec.default
        self.pressed: int | None = None
        self._space_down = False
        self._mouse_on: int | None = None  # the button the left mouse button went down on
        self._shift = False
        self.chosen: str | None = None

    @property
    def look(self) -> tuple[int | None, int | None]:
        """What the picture depends on: (focus, pressed)."""
        return self.focus, self.pressed

    def image(self) -> Any:
        return render(self.spec, self.focus, self.pressed)

    def button_centre(self, label: str) -> tuple[int, int]:
        """Screen coordinates of a button's centre (the tests click there)."""
        left, top, right, bottom = self.layout.buttons[self.spec.buttons.index(label)]
        return self.left + (left + right) // 2, self.top + (top + bottom) // 2

    def handle(self, event: rdpinput.InputEvent) -> str | None:
        """One event; the label of the button chosen by it, or None. After a choice the
        dialog takes no more input."""
        if self.chosen is not None:
            return None
        if isinstance(event, rdpinput.KeyEvent):
            self._key(event.scancode, event.released)
        elif isinstance(event, rdpinput.UnicodeEvent):
            scancode = {0x0D: SC_ENTER, 0x20: SC_SPACE, 0x09: SC_TAB, 0x1B: SC_ESCAPE}.get(
                event.code)
            if scancode is not None:
                self._key(scancode, event.released)
        elif isinstance(event, rdpinput.MouseEvent) and not event.extended:
            self._mouse(event)
        return self.chosen

    def _choose(self, index: int) -> None:
        self.pressed = None
        self.chosen = self.spec.buttons[index]

    def _key(self, scancode: int, released: bool) -> None:
        if scancode in (SC_LSHIFT, SC_RSHIFT):
            self._shift = not released
            return
        if released:
            if scancode == SC_SPACE and self._space_down:
                self._space_down = False
                self._choose(self.focus)
            return
        if self._space_down or self._mouse_on is not None:
            return  # a button is held: Windows ignores other keys until it is let go
        n = len(self.spec.buttons)
        if scancode == SC_ENTER:
            self._choose(self.focus)
        elif scancode == SC_SPACE:
            self._space_down = True
            self.pressed = self.focus
        elif scancode == SC_ESCAPE:
            if self.spec.cancel is not None:
                self._choose(self.spec.cancel)
        elif scancode == SC_TAB:
            self.focus = (self.focus + (-1 if self._shift else 1)) % n
        elif scancode in (SC_LEFT, SC_UP):
            self.focus = (self.focus - 1) % n
        elif scancode in (SC_RIGHT, SC_DOWN):
            self.focus = (self.focus + 1) % n

    def _hit(self, x: int, y: int) -> int | None:
        for i, (left, top, right, bottom) in enumerate(self.layout.buttons):
            if self.left + left <= x <= self.left + right and \
                    self.top + top <= y <= self.top + bottom:
                return i
        return None

    def _mouse(self, event: rdpinput.MouseEvent) -> None:
        hit = self._hit(event.x, event.y)
        if event.left_down:
            if hit is not None and not self._space_down:
                self._mouse_on = self.focus = self.pressed = hit
        elif event.left_up:
            on, self._mouse_on = self._mouse_on, None
            if on is not None:
                if hit == on:
                    self._choose(on)
                else:
                    self.pressed = None
        elif event.flags & rdpinput.PTRFLAGS_MOVE and self._mouse_on is not None:
            # Held: the button shows pressed only while the pointer is over it.
            self.pressed = self._mouse_on if hit == self._mouse_on else None
