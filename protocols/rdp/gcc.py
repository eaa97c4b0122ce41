"""T.124 GCC Conference Create Request/Response (PER) and the RDP user data blocks inside
them (MS-RDPBCGR 2.2.1.3.2-2.2.1.4.4)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from protocols.rdp.mcs import MAX_CHANNELS, per_length, read_per_length
from protocols.rdp.x224 import DecodeError

T124_OID = b"\x00\x14\x7c\x00\x01"  # 0.0.20.124.0.1, PER-encoded
H221_CS_KEY = b"Duca"
H221_SC_KEY = b"McDn"

# Client data block types.
CS_CORE, CS_SECURITY, CS_NET, CS_CLUSTER = 0xC001, 0xC002, 0xC003, 0xC004
CS_MONITOR, CS_MCS_MSGCHANNEL, CS_MONITOR_EX, CS_MULTITRANSPORT = 0xC005, 0xC006, 0xC008, 0xC00A
# Server data block types.
SC_CORE, SC_SECURITY, SC_NET, SC_MCS_MSGCHANNEL = 0x0C01, 0x0C02, 0x0C03, 0x0C04
SC_MULTITRANSPORT = 0x0C08

RDP_VERSION_5_PLUS = 0x00080004

# earlyCapabilityFlags (client core data).
RNS_UD_CS_SUPPORT_ERRINFO_PDU = 0x0001
RNS_UD_CS_WANT_32BPP_SESSION = 0x0002
# earlyCapabilityFlags (server core data, 2.2.1.4.2).
RNS_UD_SC_EDGE_ACTIONS_SUPPORTED_V1 = 0x0001
RNS_UD_SC_DYNAMIC_DST_SUPPORTED = 0x0002
RNS_UD_SC_EDGE_ACTIONS_SUPPORTED_V2 = 0x0004
RNS_UD_SC_SKIP_CHANNELJOIN_SUPPORTED = 0x0008
# Multitransport flags (2.2.1.3.8 / 2.2.1.4.6).
TRANSPORTTYPE_UDPFECR, TRANSPORTTYPE_UDPFECL = 0x0001, 0x0004
TRANSPORTTYPE_UDP_PREFERRED, SOFTSYNC_TCP_TO_UDP = 0x0100, 0x0200
# supportedColorDepths.
RNS_UD_24BPP_SUPPORT, RNS_UD_16BPP_SUPPORT = 0x0001, 0x0002
RNS_UD_15BPP_SUPPORT, RNS_UD_32BPP_SUPPORT = 0x0004, 0x0008
# postBeta2ColorDepth / colorDepth.
POST_BETA2_BPP = {0xCA01: 4, 0xCA02: 8, 0xCA03: 15, 0xCA04: 16, 0xCA08: 24}

# Client cluster data flags.
REDIRECTION_SUPPORTED = 0x01
REDIRECTED_SESSIONID_FIELD_VALID = 0x02
REDIRECTED_SMARTCARD = 0x40

_CORE_FIXED = 128  # up to and including imeFileName, without the block header


@dataclass
class ClientCore:
    version: int = RDP_VERSION_5_PLUS
    desktop_width: int = 1024
    desktop_height: int = 768
    color_depth: int = 0xCA01
    keyboard_layout: int = 0x409
    client_build: int = 0
    client_name: str = ""
    post_beta2_color_depth: int | None = None
    high_color_depth: int | None = None
    supported_color_depths: int = 0
    early_capability_flags: int = 0
    server_selected_protocol: int | None = None

    @property
    def supports_error_info(self) -> bool:
        return bool(self.early_capability_flags & RNS_UD_CS_SUPPORT_ERRINFO_PDU)

    def session_bpp(self) -> int:
        """The colour depth the session runs at (what Windows would pick), one of 15/16/24/32.
        4 and 8 bpp sessions are not offered: the server answers 16 and clients follow."""
        if (self.early_capability_flags & RNS_UD_CS_WANT_32BPP_SESSION
                and self.supported_color_depths & RNS_UD_32BPP_SUPPORT):
            return 32
        if self.high_color_depth in (15, 16, 24):
            return self.high_color_depth
        if self.post_beta2_color_depth in POST_BETA2_BPP:
            bpp = POST_BETA2_BPP[self.post_beta2_color_depth]
            if bpp >= 15:
                return bpp
        return 16


@dataclass
class ClientData:
    core: ClientCore
    encryption_methods: int = 0
    channels: list[tuple[str, int]] = field(default_factory=list)  # static channel (name, options)
    cluster_flags: int | None = None
    redirected_session_id: int = 0
    message_channel: bool = False
    multitransport_flags: int | None = None  # CS_MULTITRANSPORT, when the client sent it

    @property
    def console_requested(self) -> bool:
        """Client Cluster Data asking for session 0: mstsc /admin, xfreerdp /admin, rdesktop -0."""
        return (self.cluster_flags is not None
                and bool(self.cluster_flags & REDIRECTED_SESSIONID_FIELD_VALID)
                and self.redirected_session_id == 0)


def _per_octets(data: bytes, pos: int, n: int) -> tuple[bytes, int]:
    if pos + n > len(data):
        raise DecodeError("GCC: truncated")
    return data[pos:pos + n], pos + n


def parse_conference_create_request(data: bytes) -> bytes:
    """-> the client data blocks. Strict about the fixed T.124 framing every client sends."""
    pos = 0
    b, pos = _per_octets(data, pos, 1)  # ConnectData::Key choice: object
    if b != b"\x00":
        raise DecodeError("GCC: key is not an object identifier")
    n, pos = _per_octets(data, pos, 1)
    oid, pos = _per_octets(data, pos, n[0])
    if oid != T124_OID:
        raise DecodeError("GCC: not T.124 (02/98)")
    # The connectPDU length is read and not checked: Windows sends 0x2A in its response
    # whatever follows, and accepts it in a request too (pyrdp-mitm writes 0x2A, noting
    # that Windows takes it). The user data length below is what bounds the blocks.
    _connect_len, pos = read_per_length(data, pos)
    # choice conferenceCreateRequest (0), selection (userData present), conferenceName
    # numeric "1" (length 0 = 1 char, then one packed nibble pair), padding, one UserData
    # set, choice 0xC0 (value present, h221NonStandard), the 4-byte key "Duca".
    head, pos = _per_octets(data, pos, 2)
    if head[0] != 0x00 or not head[1] & 0x08:
        raise DecodeError("GCC: not a Conference Create Request with user data")
    name_len, pos = _per_octets(data, pos, 1)
    _, pos = _per_octets(data, pos, (name_len[0] + 1 + 1) // 2)
    tail, pos = _per_octets(data, pos, 4)  # padding, number of sets, choice, key length - 4
    if tail[1] != 1 or tail[2] != 0xC0 or tail[3] != 0:
        raise DecodeError("GCC: unexpected UserData set")
    key, pos = _per_octets(data, pos, 4)
    if key != H221_CS_KEY:
        raise DecodeError("GCC: client H.221 key is not 'Duca'")
    length, pos = read_per_length(data, pos)
    if pos + length != len(data):
        raise DecodeError("GCC: user data length does not match")
    return data[pos:]


def conference_create_request(blocks: bytes, connect_length: int | None = None) -> bytes:
    """Client side (tests, benchmark); ``connect_length``: the connectPDU length to write
    instead of the true one (pyrdp-mitm writes 0x2A)."""
    body = (b"\x00\x08\x00\x10\x00\x01\xc0\x00" + H221_CS_KEY + per_length(len(blocks))
            + blocks)
    length = len(body) if connect_length is None else connect_length
    return b"\x00\x05" + T124_OID + per_length(length) + body


def conference_create_response(blocks: bytes) -> bytes:
    # connectPDU length 0x2A (clients ignore it), choice 0x14 conferenceCreateResponse,
    # nodeID 0x79F3 (PER 1001-based), tag 1, result success, one set, "McDn".
    return (b"\x00\x05" + T124_OID + b"\x2a\x14\x76\x0a\x01\x01\x00\x01\xc0\x00" + H221_SC_KEY
            + per_length(len(blocks)) + blocks)


def parse_conference_create_response(data: bytes) -> bytes:
    """Client side: -> the server data blocks."""
    prefix = b"\x00\x05" + T124_OID
    if not data.startswith(prefix):
        raise DecodeError("GCC: bad Conference Create Response")
    pos = data.find(H221_SC_KEY)
    if pos < 0:
        raise DecodeError("GCC: no 'McDn' key")
    length, pos = read_per_length(data, pos + 4)
    if pos + length != len(data):
        raise DecodeError("GCC: server data length does not match")
    return data[pos:]


def iter_blocks(data: bytes) -> list[tuple[int, bytes]]:
    """User data blocks -> [(type, body without the 4-byte header)]."""
    out, pos = [], 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise DecodeError("GCC: truncated user data header")
        kind, length = struct.unpack_from("<HH", data, pos)
        if length < 4 or pos + length > len(data):
            raise DecodeError(f"GCC: user data block 0x{kind:04x} of bad length {length}")
        out.append((kind, data[pos + 4:pos + length]))
        pos += length
    return out


def _utf16z(raw: bytes) -> str:
    text = raw.decode("utf-16le", errors="replace")
    return text.split("\x00", 1)[0]


def parse_client_core(body: bytes) -> ClientCore:
    if len(body) < _CORE_FIXED:
        raise DecodeError("GCC: client core data too short")
    version, width, height, depth, _sas, layout, build = struct.unpack_from("<IHHHHII", body)
    core = ClientCore(version=version, desktop_width=width, desktop_height=height,
                      color_depth=depth, keyboard_layout=layout, client_build=build,
                      client_name=_utf16z(body[20:52]))
    # Optional fields: each present only if all before it are.
    rest = body[_CORE_FIXED:]
    if len(rest) >= 2:
        (core.post_beta2_color_depth,) = struct.unpack_from("<H", rest, 0)
    if len(rest) >= 10:
        (core.high_color_depth,) = struct.unpack_from("<H", rest, 8)
    if len(rest) >= 12:
        (core.supported_color_depths,) = struct.unpack_from("<H", rest, 10)
    if len(rest) >= 14:
        (core.early_capability_flags,) = struct.unpack_from("<H", rest, 12)
    if len(rest) >= 84:
        (core.server_selected_protocol,) = struct.unpack_from("<I", rest, 80)
    return core  # the size as asked: the server clamps it (output.clamp_desktop)


def parse_client_data(blocks: bytes) -> ClientData:
    core: ClientCore | None = None
    data = ClientData(ClientCore())
    for kind, body in iter_blocks(blocks):
        if kind == CS_CORE:
            core = parse_client_core(body)
        elif kind == CS_SECURITY:
            if len(body) < 8:
                raise DecodeError("GCC: client security data too short")
            data.encryption_methods, ext = struct.unpack_from("<II", body)
            if not data.encryption_methods:  # French locale clients use extEncryptionMethods
                data.encryption_methods = ext
        elif kind == CS_NET:
            if len(body) < 4:
                raise DecodeError("GCC: client network data too short")
            (count,) = struct.unpack_from("<I", body)
            if count > MAX_CHANNELS or len(body) < 4 + 12 * count:
                raise DecodeError(f"GCC: {count} static channels do not fit")
            for i in range(count):
                name, options = struct.unpack_from("<8sI", body, 4 + 12 * i)
                data.channels.append((name.split(b"\x00", 1)[0].decode("latin-1"), options))
        elif kind == CS_CLUSTER:
            if len(body) < 8:
                raise DecodeError("GCC: client cluster data too short")
            data.cluster_flags, data.redirected_session_id = struct.unpack_from("<II", body)
        elif kind == CS_MCS_MSGCHANNEL:
            data.message_channel = True
        elif kind == CS_MULTITRANSPORT:
            if len(body) < 4:
                raise DecodeError("GCC: client multitransport data too short")
            (data.multitransport_flags,) = struct.unpack_from("<I", body)
    if core is None:
        raise DecodeError("GCC: no client core data")
    data.core = core
    return data


def block(kind: int, body: bytes) -> bytes:
    return struct.pack("<HH", kind, len(body) + 4) + body


def server_core(requested_protocols: int, version: int = RDP_VERSION_5_PLUS,
                early_flags: int = 0) -> bytes:
    return block(SC_CORE, struct.pack("<III", version, requested_protocols, early_flags))


def server_security() -> bytes:
    # ENCRYPTION_METHOD_NONE, ENCRYPTION_LEVEL_NONE: TLS/CredSSP protect the connection.
    return block(SC_SECURITY, struct.pack("<II", 0, 0))


def server_security_rdp(method: int, level: int, server_random: bytes,
                        certificate: bytes) -> bytes:
    """TS_UD_SC_SEC1 under Standard RDP Security (2.2.1.4.3): the method and level chosen,
    the server random and the server certificate (236 bytes in all for a 512-bit key)."""
    return block(SC_SECURITY, struct.pack("<IIII", method, level, len(server_random),
                                          len(certificate)) + server_random + certificate)


@dataclass(frozen=True)
class ServerSecurity:
    method: int
    level: int
    server_random: bytes
    certificate: bytes


def parse_server_security(body: bytes) -> ServerSecurity:
    """Client side: TS_UD_SC_SEC1."""
    if len(body) < 8:
        raise DecodeError("GCC: server security data too short")
    method, level = struct.unpack_from("<II", body)
    if method == 0:
        return ServerSecurity(0, level, b"", b"")
    random_len, cert_len = struct.unpack_from("<II", body, 8)
    if 16 + random_len + cert_len > len(body):
        raise DecodeError("GCC: server security data lengths do not fit")
    return ServerSecurity(method, level, body[16:16 + random_len],
                          body[16 + random_len:16 + random_len + cert_len])


def server_network(io_channel: int, channel_ids: list[int]) -> bytes:
    body = struct.pack("<HH", io_channel, len(channel_ids))
    body += b"".join(struct.pack("<H", c) for c in channel_ids)
    if len(channel_ids) % 2:
        body += b"\x00\x00"
    return block(SC_NET, body)


def server_message_channel(channel: int) -> bytes:
    return block(SC_MCS_MSGCHANNEL, struct.pack("<H", channel))


def server_multitransport(flags: int) -> bytes:
    return block(SC_MULTITRANSPORT, struct.pack("<I", flags))


def client_data_blocks(*, width: int = 1024, height: int = 768, name: str = "pytest",
                       selected_protocol: int = 1, bpp: int = 16, early_flags: int = 1,
                       channels: tuple[str, ...] = (), cluster_flags: int | None = 0x0D,
                       redirected_session_id: int = 0, encryption_methods: int = 0,
                       message_channel: bool = False,
                       multitransport_flags: int | None = None) -> bytes:
    """Client side (tests, benchmark): FreeRDP-shaped client data blocks."""
    depth_flags = RNS_UD_24BPP_SUPPORT | RNS_UD_16BPP_SUPPORT | RNS_UD_15BPP_SUPPORT
    if bpp == 32:
        depth_flags |= RNS_UD_32BPP_SUPPORT
        early_flags |= RNS_UD_CS_WANT_32BPP_SESSION
    core = struct.pack("<IHHHHII", RDP_VERSION_5_PLUS, width, height, 0xCA01, 0xAA03, 0x409,
                       2600)
    core += name.encode("utf-16le")[:30].ljust(32, b"\x00")
    core += struct.pack("<III", 4, 0, 12) + b"\x00" * 64
    core += struct.pack("<HHIHHH", 0xCA01, 1, 0, min(bpp, 24), depth_flags, early_flags)
    core += b"\x00" * 64 + struct.pack("<BBI", 0, 0, selected_protocol)
    out = block(CS_CORE, core)
    if cluster_flags is not None:
        out += block(CS_CLUSTER, struct.pack("<II", cluster_flags, redirected_session_id))
    out += block(CS_SECURITY, struct.pack("<II", encryption_methods, 0))
    net = struct.pack("<I", len(channels)) + b"".join(
        struct.pack("<8sI", c.encode(), 0x80000000) for c in channels)
    out += block(CS_NET, net)
    if message_channel:
        out += block(CS_MCS_MSGCHANNEL, struct.pack("<I", 0))
    if multitransport_flags is not None:
        out += block(CS_MULTITRANSPORT, struct.pack("<I", multitransport_flags))
    return out


def parse_server_data(blocks: bytes) -> dict[int, bytes]:
    return dict(iter_blocks(blocks))
