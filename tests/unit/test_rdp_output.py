"""What an RDP connection holds to draw its screen: the desktop size is clamped to what
Windows allows, a screen is made as it is taken (never held whole, nothing kept after the
client leaves), a redraw replaces a screen not yet sent, and the message-box cache is
bounded in bytes."""

from __future__ import annotations

import gc
import struct
import tracemalloc

import pytest

from protocols.rdp import mcs, output, pdu, render
from protocols.rdp.x224 import x224_data
from tests.unit.test_rdp_connection import DISPLAY, Host, covered

MiB = 1024 * 1024


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def test_a_desktop_leaves_nothing_behind_once_the_client_is_gone():
    """2048 x 2048 at 32 bpp is 16 MiB of bitmaps: read whole, then the client leaves."""
    host = Host("whs")
    tracemalloc.start()
    try:
        before = traced()
        client = host.connect()
        client.logon("alice", "pw-a", width=2048, height=2048, bpp=32)
        assert covered(client.report.rects) == 2048 * 2048
        client.send(x224_data(mcs.disconnect_provider_ultimatum()))  # the client leaves
        client.drop()
        del client
        retained = traced() - before
    finally:
        tracemalloc.stop()
    assert retained < 1 * MiB, f"{retained / MiB:.1f} MiB kept after the client left"


def test_the_largest_desktop_is_made_as_it_is_taken_and_not_held():
    """8192 x 8192 at 32 bpp is 256 MiB of bitmaps; a slow reader takes 256 KiB of it."""
    host = Host("whs")
    tracemalloc.start()
    try:
        before = traced()
        client = host.connect()
        client.logon("alice", "pw-a", width=8192, height=8192, bpp=32, read_limit=256 * 1024)
        assert client.report.activated and client.core.output_pending
        assert 0 < covered(client.report.rects) < 8192 * 8192
        _, peak = tracemalloc.get_traced_memory()
        client.drop()
        del client
        retained = traced() - before
    finally:
        tracemalloc.stop()
    assert peak - before < 16 * MiB, f"peak {(peak - before) / MiB:.1f} MiB"
    assert retained < 1 * MiB


def test_desktop_sizes_outside_windows_bounds_are_clamped_not_refused():
    host = Host("whs")
    client = host.connect()
    client.logon("alice", "pw-a", width=65535, height=100, bpp=32, read_limit=64 * 1024)
    assert client.core.desktop == (8192, 200) and not client.core.close_requested
    # The Demand Active's bitmap capability set tells the client the size it gets.
    assert struct.pack("<HHHHHH", 32, 1, 1, 1, 8192, 200) in client.demand_active
    assert output.clamp_desktop(0, 9000) == (200, 8192)
    assert output.clamp_desktop(1920, 1080) == (1920, 1080)


def test_a_redraw_replaces_a_screen_not_yet_sent():
    host = Host("whs")
    client = host.connect()
    client.logon("alice", "pw-a", width=640, height=480, read_limit=1)
    client.pump(1)  # one update PDU read
    refresh = pdu.share_data(pdu.PDUTYPE2_REFRESH_RECT, b"\x01\x00\x00\x00" + b"\x00" * 8,
                             source=client.user_id)
    for _ in range(50):
        client.send_io(refresh)
    client.pump()
    # One whole screen after the first PDU, not fifty.
    assert 640 * 480 <= covered(client.report.rects) < 2 * 640 * 480


def test_a_refusal_finishes_its_message_box_before_the_teardown():
    host = Host("whs")
    host.connect().logon("alice", "pw-a")
    host.connect().logon("bob", "pw-b")
    carol = host.connect()
    carol.logon("carol", "pw-c", read_limit=1)  # refused: the finalization PDUs only
    carol.pump(1)  # one update PDU of the message box
    box = render.render_message_box(host.config.refusal_text)
    assert 0 < covered(carol.report.rects) < box.width * box.height
    host.clock.advance(DISPLAY)  # the teardown comes while most of the box is unread
    carol.pump()
    assert covered(carol.report.rects) == box.width * box.height  # then the teardown
    assert carol.report.errinfo == [pdu.ERRINFO_SERVER_DENIED_CONNECTION]
    assert carol.report.deactivated and carol.report.dpum_reason == mcs.RN_USER_REQUESTED
    assert not carol.core.output_pending and carol.core.close_requested


def test_an_ending_drops_what_is_left_of_a_desktop_and_keeps_the_stream_aligned():
    host = Host("whs")
    alice = host.connect()
    alice.logon("alice", "pw-a", width=4096, height=4096, bpp=32, read_limit=1)
    alice.pump(1)
    drawn = covered(alice.report.rects)
    assert 0 < drawn < 4096 * 4096
    (session,) = host.engine.sessions("rdp")
    host.engine.end(session.id, "admin-reset")
    alice.pump()  # the rest: the teardown PDUs, no more bitmaps, all parsed
    assert covered(alice.report.rects) == drawn
    assert alice.report.errinfo == [pdu.ERRINFO_RPC_INITIATED_LOGOFF]
    assert alice.report.deactivated and not alice.core.output_pending


@pytest.mark.parametrize("bpp", [15, 16, 24, 32])
@pytest.mark.parametrize("fastpath", [False, True])
@pytest.mark.parametrize("width, height", [(200, 200), (301, 203), (1024, 768)])
def test_screens_match_the_plain_encoding(bpp, fastpath, width, height):
    rects = render.solid_rects((1, 2, 3), width, height, bpp)
    expected = (pdu.fastpath_bitmap_updates(rects) if fastpath
                else [output.io_pdu(p) for p in pdu.bitmap_updates(rects)])
    output._PREFIXES.clear()
    assert list(output.updates(rects, fastpath)) == expected  # headers made, then reused
    assert list(output.updates(rects, fastpath)) == expected
    output._PREFIXES.clear()
    assert list(output.desktop((1, 2, 3), width, height, bpp, fastpath)) == expected
    assert list(output.screen(None, width, height, bpp, fastpath, (1, 2, 3))) == expected


def test_the_message_box_cache_is_bounded_in_bytes():
    cache = output.PictureCache(max_bytes=1 * MiB)
    text = "The terminal server has exceeded the maximum number of allowed connections."
    for width in range(200, 1400, 8):  # every size a client could ask is a new key
        key = (text, width, 600, 32, True)
        cache.put(key, tuple(output.updates(render.refusal_rects(text, width, 600, 32), True)))
        assert cache.size <= cache.max_bytes
    assert cache.size > 0
    assert cache.get((text, 200, 600, 32, True)) is None  # the oldest went first
    assert output.PICTURES.max_bytes == output.PICTURE_CACHE_BYTES == 8 * MiB
