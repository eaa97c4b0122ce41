"""The Demand Active's capability sets per edition (capsets.py), against Windows Server
2016's own Demand Active from Microsoft's decrypted traces (data/server2016_demand_active.hex)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from emulator.core.editions import EDITIONS
from protocols.rdp import capsets, input, pdu
from tests.unit.test_rdp_connection import Host

TRACE = bytes.fromhex("".join(
    line for line in (Path(__file__).parent / "data" / "server2016_demand_active.hex")
    .read_text().splitlines() if not line.startswith("#")))


def _sets(caps: list[bytes]) -> list[tuple[int, bytes]]:
    return [(struct.unpack_from("<H", c)[0], c[4:]) for c in caps]


def test_rdp10_demand_active_is_server_2016s_byte_for_byte():
    assert pdu.demand_active(capsets.demand_active_sets(capsets.RDP10, 1024, 768, 32), 0) \
        == TRACE


def test_rdp10_bitmap_set_carries_the_session_size_and_depth():
    sets = dict(_sets(capsets.demand_active_sets(capsets.RDP10, 1280, 720, 16)))
    bpp, _, _, _, width, height = struct.unpack_from("<HHHHHH", sets[pdu.CAPSTYPE_BITMAP])
    assert (bpp, width, height) == (16, 1280, 720)


def test_the_minimal_profile_is_the_emulators_ten_sets_and_an_unknown_one_is_refused():
    assert capsets.demand_active_sets(capsets.MINIMAL, 800, 600, 16, 0x20) \
        == pdu.server_capabilities(800, 600, 16, 0x20)
    with pytest.raises(ValueError):
        capsets.demand_active_sets("nt4", 800, 600, 16)


def test_every_edition_names_a_known_profile():
    assert {e.rdp_capability_sets for e in EDITIONS.values()} <= set(capsets.PROFILES)


@pytest.mark.parametrize("edition, from_trace", [("server-2016", True), ("win10", True),
                                                 ("server-2022", True), ("win81", False),
                                                 ("whs", False)])
def test_a_logon_gets_the_editions_sets(edition, from_trace):
    client = Host(edition).connect()
    client.logon("alice", "pw-a", bpp=32)
    # The trace's PDU but for its session id (its last four bytes).
    assert (TRACE[:-4] in client.demand_active) == from_trace


def test_the_input_the_rdp10_sets_allow_is_decoded_relative_moves_and_qoe_ignored():
    key = bytes([input.FASTPATH_INPUT_EVENT_SCANCODE << 5, 0x1E])
    relative = bytes([input.FASTPATH_INPUT_EVENT_RELPOINTER << 5]) + struct.pack(
        "<Hhh", 0x0800, -3, 4)
    qoe = bytes([input.FASTPATH_INPUT_EVENT_QOE_TIMESTAMP << 5]) + struct.pack("<I", 99)
    assert input.decode_fast_path_events(3, relative + qoe + key) == [input.KeyEvent(0x1E)]
    with pytest.raises(input.DecodeError):
        input.decode_fast_path_events(1, relative[:4])  # cut short: bad input
