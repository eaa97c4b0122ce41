"""What the fuzzers found, kept as plain regression tests (README: Fuzzing)."""

from __future__ import annotations

import struct

import pytest

from protocols.smb2.framing import frame
from protocols.smb2.messages import Header
from tests.fuzz.harness import Host, served_again, smb_frames, vectors

STATUS_INVALID_PARAMETER = 0xC000000D
PREAUTH, ENCRYPTION = 0x0001, 0x0002
SHA_512 = 0x0001


def negotiate_311(*contexts: tuple[int, bytes]) -> bytes:
    """A NEGOTIATE offering only 3.1.1 with the given (type, data) contexts, each data as
    it is, whatever its counts claim."""
    offset = 64 + 36 + 2
    offset += -offset % 8
    body = struct.pack("<HHHHI16sIHH", 36, 1, 1, 0, 0, b"fuzz-finding-gd!", offset,
                       len(contexts), 0) + struct.pack("<H", 0x0311)
    body += b"\0" * (offset - 64 - len(body))
    for i, (kind, data) in enumerate(contexts):
        body += struct.pack("<HHI", kind, len(data), 0) + data
        if i < len(contexts) - 1:
            body += b"\0" * (-(64 + len(body)) % 8)
    return frame(Header(0, credits=1).pack() + body)


SALT = struct.pack("<HHH", 1, 32, SHA_512) + b"s" * 32


@pytest.mark.parametrize("contexts", [
    [(PREAUTH, b"")],  # a preauth context with no data at all
    [(PREAUTH, struct.pack("<HHH", 5, 0, SHA_512))],  # 5 hash algorithms, room for one
    [(PREAUTH, SALT), (ENCRYPTION, struct.pack("<HH", 3, 1))],  # 3 ciphers, room for one
    [(PREAUTH, SALT), (ENCRYPTION, b"\x01")],  # a cipher count cut in half
], ids=["empty-preauth", "hash-count-overruns", "cipher-count-overruns", "short-encryption"])
def test_a_negotiate_context_whose_counts_overrun_it_is_invalid_parameter(share_dir, contexts):
    """Found by the long fuzz run: these raised struct.error inside the NEGOTIATE handler,
    which cost the connection as an "internal error". They are a malformed request:
    STATUS_INVALID_PARAMETER, as for the other malformed contexts."""
    host = Host(share_dir)
    conn = host.smb_connection()
    conn.receive_data(negotiate_311(*contexts))
    (reply,) = smb_frames(conn.data_to_send())
    assert struct.unpack_from("<I", reply, 8)[0] == STATUS_INVALID_PARAMETER
    assert not host.internal_errors(), host.internal_errors()
    conn.connection_lost()
    served_again(host, smb=vectors("smb")[0])


def test_a_well_formed_311_negotiate_still_succeeds(share_dir):
    host = Host(share_dir)
    conn = host.smb_connection()
    conn.receive_data(negotiate_311((PREAUTH, SALT), (ENCRYPTION, struct.pack("<HH", 1, 1))))
    (reply,) = smb_frames(conn.data_to_send())
    assert struct.unpack_from("<I", reply, 8)[0] == 0
    assert struct.unpack_from("<H", reply, 64 + 4)[0] == 0x0311
