"""A test-side tap: the bytes a sans-IO connection took and gave, written as a pcap
(raw IPv4, one TCP stream per connection to port 445) for Wireshark's dissector to read.
No capture, no root: the conversation is the test's own."""

from __future__ import annotations

import struct
from pathlib import Path

from protocols.smb2.framing import frame

SERVER = bytes([127, 0, 0, 1])
LINKTYPE_RAW = 101
SYN, ACK, PSH = 0x02, 0x10, 0x08


class Tap:
    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.streams: dict[int, list[int]] = {}  # id -> [client seq, server seq]

    def _stream(self, stream: int) -> list[int]:
        if stream not in self.streams:
            self.streams[stream] = [1000, 5000]
            self._segment(stream, True, b"", SYN, seq=999)
            self._segment(stream, False, b"", SYN | ACK, seq=4999)
            self._segment(stream, True, b"", ACK)
        return self.streams[stream]

    def _segment(self, stream: int, from_client: bool, payload: bytes, flags: int,
                 seq: int | None = None) -> None:
        seqs = self.streams[stream]
        mine, theirs = (0, 1) if from_client else (1, 0)
        client = bytes([127, 0, 1, stream])
        src, dst = (client, SERVER) if from_client else (SERVER, client)
        sport, dport = (40000 + stream, 445) if from_client else (445, 40000 + stream)
        number = seqs[mine] if seq is None else seq
        ack = seqs[theirs] if flags & ACK else 0
        tcp = struct.pack(">HHIIBBHHH", sport, dport, number, ack, 5 << 4, flags, 65535, 0, 0)
        total = 20 + len(tcp) + len(payload)
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0, src, dst)
        ip = ip[:10] + struct.pack(">H", _checksum(ip)) + ip[12:]
        self.packets.append(ip + tcp + payload)
        if seq is None:
            seqs[mine] += len(payload)

    def request(self, stream: int, message: bytes) -> None:
        self._stream(stream)
        self._segment(stream, True, frame(message), PSH | ACK)

    def responses(self, stream: int, messages: list[bytes]) -> None:
        self._stream(stream)
        for message in messages:
            self._segment(stream, False, frame(message), PSH | ACK)

    def write(self, path: Path) -> None:
        out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW))
        for n, packet in enumerate(self.packets):
            out += struct.pack("<IIII", 1_700_000_000 + n // 1000, (n % 1000) * 1000,
                               len(packet), len(packet)) + packet
        path.write_bytes(bytes(out))


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f">{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
