"""NetBIOS name service (RFC 1002 4.2), sans-IO: a datagram in, the answer out.

A host answers a NAME QUERY for one of its own names with a POSITIVE NAME QUERY RESPONSE
(4.2.13) and a NODE STATUS REQUEST with a NODE STATUS RESPONSE (4.2.18) listing its
names, as Windows does: the computer name with the suffixes <00> (workstation), <03>
(messenger) and <20> (file server), the workgroup's <00> and <1E> as group names, and a
MAC address in the statistics. A query for a name it does not hold is not answered (a
node that does not own a broadcast name keeps silent; RFC 1002 4.2.12), nor is
anything that is not a query.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

NB = 0x0020  # RR type NetBIOS general name service
NBSTAT = 0x0021  # RR type node status
IN = 0x0001
OPCODE_QUERY = 0
FLAG_RESPONSE = 0x8000
FLAG_AA = 0x0400  # authoritative answer
FLAG_RD = 0x0100  # recursion desired (copied from the request)
FLAG_BROADCAST = 0x0010
GROUP = 0x8000  # NB_FLAGS / NAME_FLAGS: a group name
ACTIVE = 0x0400  # NAME_FLAGS: the name is active
NAME_TTL = 300000  # seconds, the TTL Windows puts in a positive name query response
HEADER = struct.Struct(">HHHHHH")
WILDCARD = b"*" + b"\x00" * 15  # the node status request's name

# The suffixes of the names a Windows host registers: its own, then its workgroup's.
COMPUTER_SUFFIXES = (0x00, 0x03, 0x20)
WORKGROUP_SUFFIXES = (0x00, 0x1E)


class BadName(ValueError):
    pass


def encode_name(name16: bytes, scope: str = "") -> bytes:
    """First-level encoding (RFC 1001 14.1): each nibble of the 16 bytes as 'A' + nibble,
    then the scope's labels."""
    if len(name16) != 16:
        raise ValueError("a NetBIOS name is 16 bytes")
    half = bytes(c for b in name16 for c in (0x41 + (b >> 4), 0x41 + (b & 0x0F)))
    labels = [half, *(part.encode("ascii") for part in scope.split(".") if part)]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def decode_name(data: bytes, offset: int) -> tuple[bytes, str, int]:
    """(the 16-byte name, its scope, the offset after it). No compression pointers: a
    query's name is never compressed."""
    if offset >= len(data) or data[offset] != 0x20 or offset + 33 > len(data):
        raise BadName("not an encoded NetBIOS name")
    half = data[offset + 1:offset + 33]
    if any(not 0x41 <= c <= 0x50 for c in half):
        raise BadName("bad first-level encoding")
    name = bytes(((half[i] - 0x41) << 4) | (half[i + 1] - 0x41) for i in range(0, 32, 2))
    offset += 33
    labels = []
    while True:
        if offset >= len(data):
            raise BadName("name runs past the datagram")
        length = data[offset]
        offset += 1
        if length == 0:
            break
        if length > 63 or offset + length > len(data):
            raise BadName("bad scope label")
        labels.append(data[offset:offset + length].decode("ascii", "replace"))
        offset += length
    return name, ".".join(labels), offset


def netbios_name(name: str, suffix: int) -> bytes:
    """A name as its 16 bytes: upper case, padded with spaces to 15, then the suffix."""
    raw = name.upper().encode("ascii", "replace")[:15]
    return raw.ljust(15, b" ") + bytes([suffix])


@dataclass(frozen=True)
class Query:
    transaction: int
    flags: int
    name: bytes  # 16 bytes
    scope: str
    qtype: int
    encoded: bytes  # the question name as sent, echoed in the answer

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & FLAG_BROADCAST)


def parse_query(data: bytes) -> Query | None:
    """A name query or node status request; None for anything else (answers, other
    opcodes, malformed datagrams)."""
    if len(data) < HEADER.size:
        return None
    tid, flags, qd, _an, _ns, _ar = HEADER.unpack_from(data)
    if flags & FLAG_RESPONSE or (flags >> 11) & 0xF != OPCODE_QUERY or qd != 1:
        return None
    try:
        name, scope, end = decode_name(data, HEADER.size)
    except BadName:
        return None
    if end + 4 > len(data):
        return None
    qtype, qclass = struct.unpack_from(">HH", data, end)
    if qclass != IN or qtype not in (NB, NBSTAT):
        return None
    return Query(tid, flags, name, scope, qtype, data[HEADER.size:end])


@dataclass(frozen=True)
class NodeNames:
    """What one host answers for."""

    computer: str
    workgroup: str
    address: str  # IPv4, dotted
    mac: bytes  # 6 bytes

    def names(self) -> list[tuple[bytes, bool]]:
        """(16-byte name, group?) in the order Windows' nbtstat -A lists them."""
        return [*((netbios_name(self.computer, s), False) for s in COMPUTER_SUFFIXES),
                *((netbios_name(self.workgroup, s), True) for s in WORKGROUP_SUFFIXES)]


def name_query_response(query: Query, names: NodeNames, group: bool) -> bytes:
    flags = FLAG_RESPONSE | FLAG_AA | (query.flags & FLAG_RD)
    rdata = struct.pack(">H", GROUP if group else 0) + _ipv4(names.address)
    return (HEADER.pack(query.transaction, flags, 0, 1, 0, 0) + query.encoded
            + struct.pack(">HHIH", NB, IN, NAME_TTL, len(rdata)) + rdata)


def node_status_response(query: Query, names: NodeNames) -> bytes:
    entries = names.names()
    rdata = bytes([len(entries)]) + b"".join(
        name + struct.pack(">H", ACTIVE | (GROUP if group else 0)) for name, group in entries)
    rdata += names.mac + b"\x00" * 40  # STATISTICS: UNIT_ID, then counters Windows zeroes
    flags = FLAG_RESPONSE | FLAG_AA
    return (HEADER.pack(query.transaction, flags, 0, 1, 0, 0) + query.encoded
            + struct.pack(">HHIH", NBSTAT, IN, 0, len(rdata)) + rdata)


def answer(data: bytes, names: NodeNames) -> bytes | None:
    """The datagram to send back, or None."""
    query = parse_query(data)
    if query is None or query.scope:
        return None
    if query.qtype == NBSTAT:
        ours = {n for n, _ in names.names()}
        if query.name == WILDCARD or query.name in ours:
            return node_status_response(query, names)
        return None
    for name, group in names.names():
        if query.name == name:
            return name_query_response(query, names, group)
    return None


def _ipv4(address: str) -> bytes:
    parts = [int(p) for p in address.split(".")]
    return bytes(parts)
