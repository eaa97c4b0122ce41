"""T.125 MCS as RDP uses it: BER Connect-Initial/Connect-Response (MS-RDPBCGR 2.2.1.3,
2.2.1.4) and the PER-encoded domain PDUs (erect domain, attach user, channel join,
send data, disconnect provider ultimatum)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from protocols.rdp.x224 import DecodeError

# BER application tags.
CONNECT_INITIAL = b"\x7f\x65"
CONNECT_RESPONSE = b"\x7f\x66"
TAG_BOOLEAN, TAG_INTEGER, TAG_OCTET_STRING = 0x01, 0x02, 0x04
TAG_ENUMERATED, TAG_SEQUENCE = 0x0A, 0x30

# DomainMCSPDU choice numbers (the top six bits of the first byte).
ERECT_DOMAIN_REQUEST = 1
DISCONNECT_PROVIDER_ULTIMATUM = 8
ATTACH_USER_REQUEST = 10
ATTACH_USER_CONFIRM = 11
DETACH_USER_REQUEST = 12
CHANNEL_JOIN_REQUEST = 14
CHANNEL_JOIN_CONFIRM = 15
SEND_DATA_REQUEST = 25
SEND_DATA_INDICATION = 26

# DPUM reasons.
RN_DOMAIN_DISCONNECTED = 0
RN_PROVIDER_INITIATED = 1
RN_TOKEN_PURGED = 2
RN_USER_REQUESTED = 3
RN_CHANNEL_PURGED = 4

BASE_CHANNEL = 1001  # PER integer16 offset of user/channel ids
SERVER_CHANNEL = 1002  # the server's own MCS user id (pduSource, send-data initiator)
IO_CHANNEL = 1003  # MCS_GLOBAL_CHANNEL
MAX_CHANNELS = 31  # CHANNEL_MAX_COUNT


# -- BER ---------------------------------------------------------------------------------

def ber_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n <= 0xFF:
        return bytes([0x81, n])
    return bytes([0x82]) + struct.pack(">H", n)


def ber_tlv(tag: bytes | int, content: bytes) -> bytes:
    tag_bytes = bytes([tag]) if isinstance(tag, int) else tag
    return tag_bytes + ber_length(len(content)) + content


def ber_integer(value: int) -> bytes:
    size = max(1, (value.bit_length() + 8) // 8)  # room for the sign bit
    return ber_tlv(TAG_INTEGER, value.to_bytes(size, "big"))


class BerReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos == len(self.data)

    def read(self, tag: bytes | int) -> bytes:
        tag_bytes = bytes([tag]) if isinstance(tag, int) else tag
        end = self.pos + len(tag_bytes)
        if self.data[self.pos:end] != tag_bytes:
            raise DecodeError(f"BER: expected tag {tag_bytes.hex()} at {self.pos}")
        self.pos = end
        if self.pos >= len(self.data):
            raise DecodeError("BER: truncated length")
        first = self.data[self.pos]
        self.pos += 1
        if first < 0x80:
            length = first
        else:
            n = first & 0x7F
            if not 1 <= n <= 2 or self.pos + n > len(self.data):
                raise DecodeError("BER: bad length")
            length = int.from_bytes(self.data[self.pos:self.pos + n], "big")
            self.pos += n
        if self.pos + length > len(self.data):
            raise DecodeError("BER: value runs past the end")
        content = self.data[self.pos:self.pos + length]
        self.pos += length
        return content

    def integer(self) -> int:
        content = self.read(TAG_INTEGER)
        if not 1 <= len(content) <= 4:
            raise DecodeError("BER: bad INTEGER size")
        return int.from_bytes(content, "big", signed=True)


@dataclass(frozen=True)
class DomainParameters:
    max_channel_ids: int
    max_user_ids: int
    max_token_ids: int
    num_priorities: int
    min_throughput: int
    max_height: int
    max_mcs_pdu_size: int
    protocol_version: int

    def encode(self) -> bytes:
        return ber_tlv(TAG_SEQUENCE, b"".join(ber_integer(v) for v in (
            self.max_channel_ids, self.max_user_ids, self.max_token_ids, self.num_priorities,
            self.min_throughput, self.max_height, self.max_mcs_pdu_size,
            self.protocol_version)))

    @classmethod
    def decode(cls, content: bytes) -> DomainParameters:
        r = BerReader(content)
        values = [r.integer() for _ in range(8)]
        if not r.at_end():
            raise DecodeError("BER: trailing bytes in DomainParameters")
        return cls(*values)


# What Windows answers with (its Connect-Response domain parameters), encoded once.
SERVER_DOMAIN_PARAMETERS = DomainParameters(34, 3, 0, 1, 0, 1, 0xFFF8, 2)
_SERVER_DOMAIN_PARAMETERS_BER = SERVER_DOMAIN_PARAMETERS.encode()


@dataclass(frozen=True)
class ConnectInitial:
    target: DomainParameters
    minimum: DomainParameters
    maximum: DomainParameters
    user_data: bytes  # the GCC Conference Create Request


def parse_connect_initial(data: bytes) -> ConnectInitial:
    outer = BerReader(data)
    body = outer.read(CONNECT_INITIAL)
    if not outer.at_end():
        raise DecodeError("BER: bytes after Connect-Initial")
    r = BerReader(body)
    r.read(TAG_OCTET_STRING)  # callingDomainSelector
    r.read(TAG_OCTET_STRING)  # calledDomainSelector
    r.read(TAG_BOOLEAN)  # upwardFlag
    target = DomainParameters.decode(r.read(TAG_SEQUENCE))
    minimum = DomainParameters.decode(r.read(TAG_SEQUENCE))
    maximum = DomainParameters.decode(r.read(TAG_SEQUENCE))
    user_data = r.read(TAG_OCTET_STRING)
    if not r.at_end():
        raise DecodeError("BER: trailing bytes in Connect-Initial")
    return ConnectInitial(target, minimum, maximum, user_data)


def connect_initial(user_data: bytes) -> bytes:
    """Client side (tests, benchmark): FreeRDP's parameters."""
    target = DomainParameters(34, 2, 0, 1, 0, 1, 0xFFFF, 2)
    minimum = DomainParameters(1, 1, 1, 1, 0, 1, 0x420, 2)
    maximum = DomainParameters(0xFFFF, 0xFC17, 0xFFFF, 1, 0, 1, 0xFFFF, 2)
    body = (ber_tlv(TAG_OCTET_STRING, b"\x01") + ber_tlv(TAG_OCTET_STRING, b"\x01")
            + ber_tlv(TAG_BOOLEAN, b"\xff") + target.encode() + minimum.encode()
            + maximum.encode() + ber_tlv(TAG_OCTET_STRING, user_data))
    return ber_tlv(CONNECT_INITIAL, body)


def connect_response(user_data: bytes) -> bytes:
    body = (ber_tlv(TAG_ENUMERATED, b"\x00")  # rt-successful
            + ber_integer(0)  # calledConnectId
            + _SERVER_DOMAIN_PARAMETERS_BER + ber_tlv(TAG_OCTET_STRING, user_data))
    return ber_tlv(CONNECT_RESPONSE, body)


def parse_connect_response(data: bytes) -> tuple[int, bytes]:
    """Client side: -> (result, GCC Conference Create Response)."""
    r = BerReader(BerReader(data).read(CONNECT_RESPONSE))
    result = r.read(TAG_ENUMERATED)[0]
    r.integer()
    DomainParameters.decode(r.read(TAG_SEQUENCE))
    return result, r.read(TAG_OCTET_STRING)


# -- PER ---------------------------------------------------------------------------------

def per_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    if n > 0x3FFF:
        raise ValueError("PER length too large for one fragment")
    return struct.pack(">H", 0x8000 | n)


def read_per_length(data: bytes, pos: int) -> tuple[int, int]:
    """-> (length, position after it)."""
    if pos >= len(data):
        raise DecodeError("PER: truncated length")
    first = data[pos]
    if first & 0xC0 == 0xC0:
        raise DecodeError("PER: fragmented length")
    if first & 0x80:
        if pos + 2 > len(data):
            raise DecodeError("PER: truncated length")
        return ((first & 0x3F) << 8) | data[pos + 1], pos + 2
    return first, pos + 1


@dataclass(frozen=True)
class DomainPDU:
    kind: int
    initiator: int = 0  # user id (1001-based, already offset)
    channel: int = 0
    data: bytes = b""
    reason: int = 0  # DPUM


def parse_domain_pdu(data: bytes) -> DomainPDU:
    if not data:
        raise DecodeError("empty MCS domain PDU")
    kind = data[0] >> 2
    if kind == SEND_DATA_REQUEST:
        if len(data) < 7:
            raise DecodeError("MCS Send Data Request too short")
        initiator, channel = struct.unpack_from(">HH", data, 1)
        length, pos = read_per_length(data, 6)
        if pos + length != len(data):
            raise DecodeError(f"MCS Send Data length {length} does not match the frame")
        return DomainPDU(kind, initiator + BASE_CHANNEL, channel, data[pos:])
    if kind == CHANNEL_JOIN_REQUEST:
        if len(data) != 5:
            raise DecodeError("MCS Channel Join Request of wrong size")
        initiator, channel = struct.unpack_from(">HH", data, 1)
        return DomainPDU(kind, initiator + BASE_CHANNEL, channel)
    if kind == ATTACH_USER_REQUEST:
        if len(data) != 1:
            raise DecodeError("MCS Attach User Request of wrong size")
        return DomainPDU(kind)
    if kind == ERECT_DOMAIN_REQUEST:
        # subHeight and subInterval: PER INTEGERs (FreeRDP: 04 01 00 01 00), which rdesktop
        # writes as two raw 16-bit numbers (04 00 01 00 01). Both mean nothing here.
        if len(data) > 16:
            raise DecodeError("MCS Erect Domain Request too long")
        return DomainPDU(kind)
    if kind == DISCONNECT_PROVIDER_ULTIMATUM:
        if len(data) != 2:
            raise DecodeError("MCS DPUM of wrong size")
        return DomainPDU(kind, reason=((data[0] & 0x03) << 1) | (data[1] >> 7))
    if kind == DETACH_USER_REQUEST:
        return DomainPDU(kind)
    raise DecodeError(f"unexpected MCS domain PDU {kind}")


def erect_domain_request() -> bytes:
    return b"\x04\x01\x00\x01\x00"


def attach_user_request() -> bytes:
    return b"\x28"


def attach_user_confirm(user_id: int) -> bytes:
    return b"\x2e\x00" + struct.pack(">H", user_id - BASE_CHANNEL)


def parse_attach_user_confirm(data: bytes) -> int:
    """Client side: the user channel id an Attach User Confirm (result rt-successful)
    hands out."""
    if len(data) != 4 or data[0] >> 2 != ATTACH_USER_CONFIRM or data[1] != 0:
        raise DecodeError(f"not a successful Attach User Confirm: {data.hex()}")
    return struct.unpack_from(">H", data, 2)[0] + BASE_CHANNEL


def channel_join_request(user_id: int, channel: int) -> bytes:
    return b"\x38" + struct.pack(">HH", user_id - BASE_CHANNEL, channel)


def channel_join_confirm(user_id: int, channel: int) -> bytes:
    return b"\x3e\x00" + struct.pack(">HHH", user_id - BASE_CHANNEL, channel, channel)


def send_data_request(user_id: int, channel: int, payload: bytes) -> bytes:
    return (b"\x64" + struct.pack(">HH", user_id - BASE_CHANNEL, channel) + b"\x70"
            + per_length(len(payload)) + payload)


def send_data_indication(channel: int, payload: bytes, initiator: int = SERVER_CHANNEL) -> bytes:
    return (b"\x68" + struct.pack(">HH", initiator - BASE_CHANNEL, channel) + b"\x70"
            + per_length(len(payload)) + payload)


def parse_send_data_indication(data: bytes) -> tuple[int, bytes]:
    """Client side: -> (channel, payload)."""
    if not data or data[0] >> 2 != SEND_DATA_INDICATION or len(data) < 7:
        raise DecodeError("not an MCS Send Data Indication")
    (channel,) = struct.unpack_from(">H", data, 3)
    length, pos = read_per_length(data, 6)
    if pos + length != len(data):
        raise DecodeError("MCS Send Data Indication length mismatch")
    return channel, data[pos:]


def disconnect_provider_ultimatum(reason: int = RN_USER_REQUESTED) -> bytes:
    return bytes([(DISCONNECT_PROVIDER_ULTIMATUM << 2) | (reason >> 1), (reason & 1) << 7])
