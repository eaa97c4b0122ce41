"""The capability sets of the server's Demand Active, by the edition's profile
(``rdp_capability_sets``, persona data).

"minimal": the emulator's own ten sets (``pdu.server_capabilities``: uncompressed bitmaps,
no drawing orders); what Windows before 10 sends is unverified. "rdp10": the seventeen sets
Windows Server 2016 sends, in its order, byte for byte from Microsoft's decrypted MS-RDSOD
traces (github.com/microsoft/prot-od-netcaps @ 4ee9747a, "[MS-RDSOD]-captureALL/MS-RDSOD_
Example 1_Win10_X64_WS2016_X64_Domain.matp"), but for the Bitmap set, which carries the
session's desktop size and depth as Windows' does. The sets promise the client nothing the
emulator must then do: a server sends what it chooses (it keeps to uncompressed bitmaps),
and the extra input kinds they allow (relative mouse, QoE timestamps) are decoded
(input.py)."""

from __future__ import annotations

import struct

from protocols.rdp.pdu import CAPSTYPE_BITMAP, capability, server_capabilities

MINIMAL, RDP10 = "minimal", "rdp10"
PROFILES = (MINIMAL, RDP10)

# Server 2016's sets as (type, body), in the trace's order.
_SERVER_2016: list[tuple[int, bytes]] = [(kind, bytes.fromhex(body)) for kind, body in [
    (0x09, "ea030000"),  # Share: nodeId 1002
    (0x01, "010003000002000000001d040000000000000101"),  # General: extraFlags 0x041d
    (0x14, "0200000040060000"),  # Virtual Channel: VCCAPS_COMPR_CS_8K, chunks of 1600
    (0x0A, "06000000"),  # Color Cache: 6
    (0x08, "010019001900"),  # Pointer: colour, 25 / 25
    (0x1B, "0100"),  # Large Pointer: 96x96
    (0x0E, "01000000"),  # Font
    (CAPSTYPE_BITMAP, ""),  # Bitmap: the session's (below)
    (0x1D, "04b91b8dca0f004f15589fae2d1a87e2d6000300010103122f777672bd6344afb3b73c9c6f78"
           "8600040000000000a651439c3535ae42910ccdfce5760b5800040000000000d4cc44278a9d74"
           "4e803c0ecbeea19c5400040000000000"),  # Bitmap Codecs: NSCodec, RemoteFX,
    # CODEC_GUID_IGNORE, Image RemoteFX (MS-RDPBCGR 2.2.7.2.10.1.1's GUIDs)
    (0x03, "0000000000000000000000000000000040420f0001001400000001000000aa00010101010100"
           "0000010000010000000101010101010101000101010100000000a106060040420f0040420f00"
           "0100000000000000"),  # Order
    (0x12, "01000000"),  # Bitmap Cache Host Support: revision 2
    (0x0D, "7503" + "00" * 82),  # Input: 0x0375 (scancodes, mouseX, Unicode, fast-path
    # input 2, horizontal wheel, QoE timestamps, relative mouse); the rest zero
    (0x17, "7f000000"),  # Rail
    (0x18, "02000000030c00"),  # Window List
    (0x1A, "a7940000"),  # Multifragment Update: 38055
    (0x1C, "5200000000000000"),  # Surface Commands: surface bits, frame marker, stream
    (0x1E, "00000000"),  # Frame Acknowledge
]]


def _bitmap_2016(width: int, height: int, bpp: int) -> bytes:
    # Server 2016's own Bitmap set at 1024x768x32 reads 2000 0100 0100 0100 0004 0003 0000
    # 0100 0100 00 1e 0100 0000: drawingFlags 0x1e, multiple rectangles.
    return struct.pack("<HHHHHHHHHBBHH", bpp, 1, 1, 1, width, height, 0, 1, 1, 0, 0x1E, 1, 0)


def demand_active_sets(profile: str, width: int, height: int, bpp: int,
                       input_flags: int = 0) -> list[bytes]:
    """``input_flags``: the minimal profile's fast-path flag (the rdp10 sets carry
    Server 2016's own)."""
    if profile == RDP10:
        return [capability(kind, _bitmap_2016(width, height, bpp) if kind == CAPSTYPE_BITMAP
                           else body) for kind, body in _SERVER_2016]
    if profile != MINIMAL:
        raise ValueError(f"unknown capability-set profile {profile!r}")
    return server_capabilities(width, height, bpp, input_flags)
