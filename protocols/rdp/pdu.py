"""RDP PDUs above MCS (MS-RDPBCGR 2.2.1.11-2.2.9): the security header, Client Info,
licensing, share control/data headers, capability sets, finalization, error reporting,
deactivation and bitmap updates."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from protocols.rdp.mcs import SERVER_CHANNEL
from protocols.rdp.x224 import DecodeError

# Basic security header flags.
SEC_EXCHANGE_PKT = 0x0001
SEC_ENCRYPT = 0x0008
SEC_INFO_PKT = 0x0040
SEC_LICENSE_PKT = 0x0080

# Client Info flags.
INFO_MOUSE = 0x00000001
INFO_DISABLECTRLALTDEL = 0x00000002
INFO_AUTOLOGON = 0x00000008
INFO_UNICODE = 0x00000010
INFO_MAXIMIZESHELL = 0x00000020
INFO_LOGONNOTIFY = 0x00000040
INFO_LOGONERRORS = 0x00010000

# Share control pduType (low 4 bits; TS_PROTOCOL_VERSION 0x10 is or'ed in).
PDUTYPE_DEMANDACTIVEPDU = 0x1
PDUTYPE_CONFIRMACTIVEPDU = 0x3
PDUTYPE_DEACTIVATEALLPDU = 0x6
PDUTYPE_DATAPDU = 0x7
TS_PROTOCOL_VERSION = 0x10
FLOW_PDU_MARKER = 0x8000

# Share data pduType2.
PDUTYPE2_UPDATE = 0x02
PDUTYPE2_CONTROL = 0x14
PDUTYPE2_POINTER = 0x1B
PDUTYPE2_INPUT = 0x1C
PDUTYPE2_SYNCHRONIZE = 0x1F
PDUTYPE2_REFRESH_RECT = 0x21
PDUTYPE2_SUPPRESS_OUTPUT = 0x23
PDUTYPE2_SHUTDOWN_REQUEST = 0x24
PDUTYPE2_SHUTDOWN_DENIED = 0x25
PDUTYPE2_SAVE_SESSION_INFO = 0x26
PDUTYPE2_FONTLIST = 0x27
PDUTYPE2_FONTMAP = 0x28
PDUTYPE2_BITMAPCACHE_PERSISTENT_LIST = 0x2B
PDUTYPE2_SET_ERROR_INFO_PDU = 0x2F

STREAM_LOW, STREAM_MED, STREAM_HI = 0x01, 0x02, 0x04

# Control actions.
CTRLACTION_REQUEST_CONTROL = 0x0001
CTRLACTION_GRANTED_CONTROL = 0x0002
CTRLACTION_DETACH = 0x0003
CTRLACTION_COOPERATE = 0x0004

# Save Session Info.
INFOTYPE_LOGON_EXTENDED_INFO = 0x00000003
LOGON_EX_AUTORECONNECTCOOKIE = 0x00000001
LOGON_EX_LOGONERRORS = 0x00000002
LOGON_FAILED_BAD_PASSWORD = 0x00000000
LOGON_FAILED_OTHER = 0x00000002

# Set Error Info codes (MS-RDPBCGR 2.2.5.1.1).
ERRINFO_RPC_INITIATED_DISCONNECT = 0x1
ERRINFO_RPC_INITIATED_LOGOFF = 0x2
ERRINFO_IDLE_TIMEOUT = 0x3
ERRINFO_LOGON_TIMEOUT = 0x4
ERRINFO_DISCONNECTED_BY_OTHERCONNECTION = 0x5
ERRINFO_SERVER_DENIED_CONNECTION = 0x7
ERRINFO_LOGOFF_BY_USER = 0xC

# Licensing (MS-RDPELE 2.2.2.7): the "valid client" error message.
LICENSE_REQUEST = 0x01
NEW_LICENSE_REQUEST = 0x13
LICENSE_ERROR_ALERT = 0xFF
PREAMBLE_VERSION_3_0 = 0x03
STATUS_VALID_CLIENT = 0x00000007
ST_NO_TRANSITION = 0x00000002
BB_ERROR_BLOB = 0x0004
BB_RANDOM_BLOB = 0x0002
BB_CERTIFICATE_BLOB = 0x0003
BB_CLIENT_USER_NAME_BLOB = 0x000F
BB_CLIENT_MACHINE_NAME_BLOB = 0x0010
KEY_EXCHANGE_ALG_RSA = 0x00000001
CERT_CHAIN_VERSION_1 = 0x00000001
RSA1_MAGIC = 0x31415352

# Capability set types.
CAPSTYPE_GENERAL = 1
CAPSTYPE_BITMAP = 2
CAPSTYPE_ORDER = 3
CAPSTYPE_POINTER = 8
CAPSTYPE_SHARE = 9
CAPSTYPE_COLORCACHE = 10
CAPSTYPE_INPUT = 13
CAPSTYPE_FONT = 14
CAPSTYPE_VIRTUALCHANNEL = 20
CAPSETTYPE_MULTIFRAGMENTUPDATE = 26

# General capability extraFlags.
FASTPATH_OUTPUT_SUPPORTED = 0x0001
LONG_CREDENTIALS_SUPPORTED = 0x0004
AUTORECONNECT_SUPPORTED = 0x0008
NO_BITMAP_COMPRESSION_HDR = 0x0400
# Input capability flags.
INPUT_FLAG_SCANCODES = 0x0001
INPUT_FLAG_MOUSEX = 0x0004
INPUT_FLAG_UNICODE = 0x0010

# Update types.
UPDATETYPE_BITMAP = 0x0001
FASTPATH_OUTPUT_ACTION_FASTPATH = 0x0
FASTPATH_UPDATETYPE_BITMAP = 0x1

SHARE_ID = 0x000103EA  # what Windows uses: 0x10000 + the server channel


# -- security header -----------------------------------------------------------------------

def security_header(flags: int) -> bytes:
    return struct.pack("<HH", flags, 0)


def parse_security_header(data: bytes) -> tuple[int, bytes]:
    if len(data) < 4:
        raise DecodeError("security header too short")
    (flags,) = struct.unpack_from("<H", data)
    if flags & SEC_ENCRYPT:
        raise DecodeError("encrypted PDU on a connection without Standard RDP Security")
    return flags, data[4:]


# -- Client Info PDU (MS-RDPBCGR 2.2.1.11.1.1) -----------------------------------------

@dataclass(frozen=True)
class ClientInfo:
    code_page: int
    flags: int
    domain: str
    user: str
    password: str
    shell: str
    work_dir: str
    extra: bytes = b""  # TS_EXTENDED_INFO_PACKET (autoreconnect.py reads its cookie)

    @property
    def wants_logon_errors(self) -> bool:
        return bool(self.flags & INFO_LOGONERRORS)


def parse_client_info(data: bytes) -> ClientInfo:
    if len(data) < 18:
        raise DecodeError("Client Info PDU too short")
    code_page, flags, *sizes = struct.unpack_from("<IIHHHHH", data)
    unicode = bool(flags & INFO_UNICODE)
    terminator = 2 if unicode else 1
    pos, fields = 18, []
    for size in sizes:
        if size > 512 or (unicode and size % 2):
            raise DecodeError(f"Client Info field of {size} bytes")
        end = pos + size + terminator
        if end > len(data):
            raise DecodeError("Client Info field runs past the end")
        raw = data[pos:pos + size]
        fields.append(raw.decode("utf-16le" if unicode else "cp1252", errors="replace"))
        pos = end
    domain, user, password, shell, work_dir = (f.split("\x00", 1)[0] for f in fields)
    return ClientInfo(code_page, flags, domain, user, password, shell, work_dir, data[pos:])


# What mstsc and FreeRDP always set (FreeRDP's capture in the tests has 0x000b47fb). xrdp
# (libxrdp/xrdp_sec.c, xrdp_sec_process_logon_info) rejects a Client Info PDU whose flags lack
# any of INFO_MOUSE | INFO_DISABLECTRLALTDEL | INFO_UNICODE | INFO_MAXIMIZESHELL (0x33, its
# RDP_LOGON_NORMAL) with "received wrong flags, likely decrypt not working".
INFO_CLIENT_BASE = INFO_MOUSE | INFO_DISABLECTRLALTDEL | INFO_UNICODE | INFO_MAXIMIZESHELL


def client_info(user: str, password: str, domain: str = "", *, autologon: bool = True,
                flags: int = INFO_CLIENT_BASE | INFO_LOGONNOTIFY | INFO_LOGONERRORS,
                extra: bytes = b"") -> bytes:
    """Client side (tests, benchmark): security header + TS_INFO_PACKET (+ ``extra``, a
    TS_EXTENDED_INFO_PACKET: autoreconnect.extended_info).

    Under TLS the security header is the basic one, flags SEC_INFO_PKT and flagsHi 0
    (MS-RDPBCGR 2.2.1.11.1), exactly as FreeRDP sends it. `autologon` adds INFO_AUTOLOGON;
    without it a server shows its own logon screen (xrdp) instead of using the
    credentials."""
    if autologon:
        flags |= INFO_AUTOLOGON
    parts = [s.encode("utf-16le") for s in (domain, user, password, "", "")]
    body = struct.pack("<IIHHHHH", 0, flags, *(len(p) for p in parts))
    body += b"".join(p + b"\x00\x00" for p in parts)
    return security_header(SEC_INFO_PKT) + body + extra


def license_valid_client_message() -> bytes:
    """LICENSE_VALID_CLIENT_DATA (MS-RDPBCGR 2.2.1.12.1): preamble and error message."""
    body = struct.pack("<IIHH", STATUS_VALID_CLIENT, ST_NO_TRANSITION, BB_ERROR_BLOB, 0)
    preamble = struct.pack("<BBH", LICENSE_ERROR_ALERT, PREAMBLE_VERSION_3_0, 4 + len(body))
    return preamble + body


def license_valid_client() -> bytes:
    """The Server License Error PDU - Valid Client under TLS: a basic security header."""
    return security_header(SEC_LICENSE_PKT) + license_valid_client_message()


def license_message_type(data: bytes) -> int:
    """bMsgType of a licensing PDU body (after the security header)."""
    if len(data) < 4:
        raise DecodeError("licensing preamble too short")
    return data[0]


def _blob(data: bytes, pos: int) -> tuple[int, bytes, int]:
    if pos + 4 > len(data):
        raise DecodeError("licensing blob header runs past the end")
    kind, length = struct.unpack_from("<HH", data, pos)
    if pos + 4 + length > len(data):
        raise DecodeError("licensing blob runs past the end")
    return kind, data[pos + 4:pos + 4 + length], pos + 4 + length


def license_request_public_key(data: bytes) -> tuple[int, int, int]:
    """(modulus, exponent, key length in bytes) from a Server License Request (MS-RDPELE
    2.2.2.1) carrying a proprietary server certificate (MS-RDPBCGR 2.2.1.4.3.1.1)."""
    pos = 4 + 32 + 4  # preamble, ServerRandom, ProductInfo.dwVersion
    for _field in ("CompanyName", "ProductId"):
        if pos + 4 > len(data):
            raise DecodeError("license request product info runs past the end")
        (size,) = struct.unpack_from("<I", data, pos)
        pos += 4 + size
    _, _, pos = _blob(data, pos)  # KeyExchangeList
    kind, cert, pos = _blob(data, pos)
    if kind != BB_CERTIFICATE_BLOB or len(cert) < 16:
        raise DecodeError("license request without a server certificate")
    version, _sig_alg, key_alg = struct.unpack_from("<III", cert)
    if version & 0x7FFFFFFF != CERT_CHAIN_VERSION_1 or key_alg != KEY_EXCHANGE_ALG_RSA:
        raise DecodeError(f"server certificate version {version:#x}: only proprietary "
                          "RSA certificates are supported")
    _, key, _ = _blob(cert, 12)
    if len(key) < 20:
        raise DecodeError("RSA public key blob too short")
    magic, keylen, bitlen, _datalen, exponent = struct.unpack_from("<IIIII", key)
    if magic != RSA1_MAGIC or len(key) < 20 + keylen or keylen * 8 < bitlen:
        raise DecodeError("malformed RSA public key blob")
    modulus = int.from_bytes(key[20:20 + bitlen // 8], "little")
    return modulus, exponent, keylen


def client_new_license_request(request: bytes, user: str, machine: str,
                               client_random: bytes, premaster: bytes) -> bytes:
    """Client side: the Client New License Request (MS-RDPELE 2.2.2.2) answering a Server
    License Request; the 48-byte premaster secret is RSA-encrypted with the key of the
    server's proprietary certificate (little-endian, 8 zero bytes of padding, as the
    client random of MS-RDPBCGR 5.3.4.1)."""
    modulus, exponent, keylen = license_request_public_key(request)
    secret = pow(int.from_bytes(premaster, "little"), exponent, modulus)
    encrypted = secret.to_bytes(keylen - 8, "little") + bytes(8)
    body = struct.pack("<II", KEY_EXCHANGE_ALG_RSA, 0x04010000) + client_random  # WinNT, MS
    for kind, value in ((BB_RANDOM_BLOB, encrypted),
                        (BB_CLIENT_USER_NAME_BLOB, user.encode("cp1252") + b"\x00"),
                        (BB_CLIENT_MACHINE_NAME_BLOB, machine.encode("cp1252") + b"\x00")):
        body += struct.pack("<HH", kind, len(value)) + value
    preamble = struct.pack("<BBH", NEW_LICENSE_REQUEST, PREAMBLE_VERSION_3_0, 4 + len(body))
    return security_header(SEC_LICENSE_PKT) + preamble + body


# -- share control / share data ---------------------------------------------------------

def share_control(pdu_type: int, body: bytes, source: int = SERVER_CHANNEL) -> bytes:
    return struct.pack("<HHH", len(body) + 6, pdu_type | TS_PROTOCOL_VERSION, source) + body


def share_data(pdu_type2: int, payload: bytes, share_id: int = SHARE_ID,
               stream: int = STREAM_LOW, source: int = SERVER_CHANNEL) -> bytes:
    header = struct.pack("<IBBHBBH", share_id, 0, stream, len(payload) + 4, pdu_type2, 0, 0)
    return share_control(PDUTYPE_DATAPDU, header + payload, source)


@dataclass(frozen=True)
class SharePDU:
    pdu_type: int  # low 4 bits
    source: int
    body: bytes  # after the share control header


def split_share_control(data: bytes) -> list[SharePDU]:
    """One MCS payload may carry several share control PDUs back to back."""
    out, pos = [], 0
    while pos < len(data):
        if len(data) - pos >= 2 and struct.unpack_from("<H", data, pos)[0] == FLOW_PDU_MARKER:
            break  # flow control PDUs (pre-RDP 5) end the payload
        if len(data) - pos < 6:
            raise DecodeError("share control header too short")
        total, pdu_type, source = struct.unpack_from("<HHH", data, pos)
        if total < 6:
            raise DecodeError(f"share control totalLength {total} too small")
        # aardwolf overstates totalLength of its data PDUs; the MCS length is what holds
        # (Windows accepts it too), so a PDU claiming more just runs to the end.
        total = min(total, len(data) - pos)
        out.append(SharePDU(pdu_type & 0x0F, source, data[pos + 6:pos + total]))
        pos += total
    return out


@dataclass(frozen=True)
class ShareData:
    share_id: int
    pdu_type2: int
    payload: bytes


def parse_share_data(body: bytes) -> ShareData:
    if len(body) < 12:
        raise DecodeError("share data header too short")
    share_id, _pad, _stream, _ulen, pdu_type2, ctype, _clen = struct.unpack_from("<IBBHBBH", body)
    if ctype & 0x20:  # PACKET_COMPRESSED
        raise DecodeError("compressed data PDU (bulk compression was not negotiated)")
    return ShareData(share_id, pdu_type2, body[12:])


# -- capabilities and activation --------------------------------------------------------

def capability(kind: int, body: bytes) -> bytes:
    return struct.pack("<HH", kind, len(body) + 4) + body


def server_capabilities(width: int, height: int, bpp: int, input_flags: int = 0) -> list[bytes]:
    """The capability sets of a Windows Server Demand Active, trimmed to what matters:
    uncompressed bitmaps only, no drawing orders; fast-path input when ``input_flags``
    has INPUT_FLAG_FASTPATH_INPUT (0x08) or INPUT_FLAG_FASTPATH_INPUT2 (0x20)."""
    general = struct.pack("<HHHHHHHHHBB", 1, 3, 0x200, 0, 0,
                          FASTPATH_OUTPUT_SUPPORTED | LONG_CREDENTIALS_SUPPORTED
                          | AUTORECONNECT_SUPPORTED | NO_BITMAP_COMPRESSION_HDR, 0, 0, 0, 1, 1)
    bitmap = struct.pack("<HHHHHHHHHBBHH", bpp, 1, 1, 1, width, height, 0, 1, 1, 0, 0, 1, 0)
    order = (b"\x00" * 16 + struct.pack("<IHHHHHH", 0, 1, 20, 0, 1, 0, 0x0022)
             + b"\x00" * 32 + struct.pack("<HHIIHHHH", 0, 0, 0, 230400, 0, 0, 0, 0))
    pointer = struct.pack("<HHH", 1, 25, 25)
    share = struct.pack("<HH", SERVER_CHANNEL, 0)
    color_cache = struct.pack("<HH", 6, 0)
    input_caps = struct.pack("<HHIIII", INPUT_FLAG_SCANCODES | INPUT_FLAG_MOUSEX
                             | INPUT_FLAG_UNICODE | input_flags, 0, 0x409, 4, 0, 12) \
        + b"\x00" * 64
    font = struct.pack("<HH", 1, 0)
    virtual_channel = struct.pack("<II", 0, 1600)
    multifragment = struct.pack("<I", 0xFFFF)
    return [capability(CAPSTYPE_GENERAL, general), capability(CAPSTYPE_BITMAP, bitmap),
            capability(CAPSTYPE_ORDER, order), capability(CAPSTYPE_POINTER, pointer),
            capability(CAPSTYPE_SHARE, share), capability(CAPSTYPE_COLORCACHE, color_cache),
            capability(CAPSTYPE_INPUT, input_caps), capability(CAPSTYPE_FONT, font),
            capability(CAPSTYPE_VIRTUALCHANNEL, virtual_channel),
            capability(CAPSETTYPE_MULTIFRAGMENTUPDATE, multifragment)]


def demand_active(caps: list[bytes], session_id: int, share_id: int = SHARE_ID) -> bytes:
    source = b"RDP\x00"
    combined = struct.pack("<HH", len(caps), 0) + b"".join(caps)
    body = (struct.pack("<IHH", share_id, len(source), len(combined)) + source + combined
            + struct.pack("<I", session_id))
    return share_control(PDUTYPE_DEMANDACTIVEPDU, body)


@dataclass(frozen=True)
class ConfirmActive:
    share_id: int
    capabilities: dict[int, bytes]


def parse_confirm_active(body: bytes) -> ConfirmActive:
    if len(body) < 10:
        raise DecodeError("Confirm Active too short")
    share_id, _originator, src_len, caps_len = struct.unpack_from("<IHHH", body)
    pos = 10 + src_len
    if pos + caps_len > len(body) or caps_len < 4:
        raise DecodeError("Confirm Active lengths do not fit")
    (count,) = struct.unpack_from("<H", body, pos)
    caps, cpos, end = {}, pos + 4, pos + caps_len
    for _ in range(count):
        if cpos + 4 > end:
            raise DecodeError("capability set header past the end")
        kind, length = struct.unpack_from("<HH", body, cpos)
        if length < 4 or cpos + length > end:
            raise DecodeError(f"capability set {kind} of bad length {length}")
        caps[kind] = body[cpos + 4:cpos + length]
        cpos += length
    return ConfirmActive(share_id, caps)


def confirm_active(caps: list[bytes], *, source: int, share_id: int = SHARE_ID) -> bytes:
    """Client side (tests, benchmark)."""
    src = b"MSTSC\x00"
    combined = struct.pack("<HH", len(caps), 0) + b"".join(caps)
    body = struct.pack("<IHHH", share_id, SERVER_CHANNEL, len(src), len(combined)) + src + combined
    return share_control(PDUTYPE_CONFIRMACTIVEPDU, body, source)


def deactivate_all(share_id: int = SHARE_ID) -> bytes:
    return share_control(PDUTYPE_DEACTIVATEALLPDU, struct.pack("<IH", share_id, 1) + b"\x00")


def synchronize(target: int = SERVER_CHANNEL) -> bytes:
    return share_data(PDUTYPE2_SYNCHRONIZE, struct.pack("<HH", 1, target))


def control(action: int, grant_id: int = 0, control_id: int = 0) -> bytes:
    return share_data(PDUTYPE2_CONTROL, struct.pack("<HHI", action, grant_id, control_id))


def font_map() -> bytes:
    # numberEntries 0, totalNumEntries 0, FONTMAP_FIRST | FONTMAP_LAST, entrySize 4.
    return share_data(PDUTYPE2_FONTMAP, struct.pack("<HHHH", 0, 0, 3, 4))


def font_list() -> bytes:
    return share_data(PDUTYPE2_FONTLIST, struct.pack("<HHHH", 0, 0, 3, 0x32))


def shutdown_denied() -> bytes:
    return share_data(PDUTYPE2_SHUTDOWN_DENIED, b"")


def set_error_info(code: int) -> bytes:
    return share_data(PDUTYPE2_SET_ERROR_INFO_PDU, struct.pack("<I", code))


def save_session_info_logon_error(notification_type: int, notification_data: int) -> bytes:
    fields = struct.pack("<III", 8, notification_type, notification_data)
    info = struct.pack("<HI", 2 + 4 + len(fields), LOGON_EX_LOGONERRORS) + fields
    return share_data(PDUTYPE2_SAVE_SESSION_INFO,
                      struct.pack("<I", INFOTYPE_LOGON_EXTENDED_INFO) + info + b"\x00" * 570)


# -- bitmap updates (MS-RDPBCGR 2.2.9.1.1.3.1.2) --------------------------------------

@dataclass(frozen=True)
class BitmapRect:
    left: int
    top: int
    width: int  # of the bitmap data (a multiple of 4 pixels)
    height: int
    visible_width: int  # what is drawn (destRight = left + visible_width - 1)
    bpp: int
    data: bytes  # bottom-up rows, each padded to 4 bytes, uncompressed

    def header(self) -> bytes:
        """TS_BITMAP_DATA up to the bitmap bytes (18 bytes)."""
        return struct.pack("<HHHHHHHHH", self.left, self.top,
                           self.left + self.visible_width - 1, self.top + self.height - 1,
                           self.width, self.height, self.bpp, 0, len(self.data))

    def encode(self) -> bytes:
        return self.header() + self.data


BITMAP_RECT_HEADER = 18
MAX_UPDATE_PAYLOAD = 16200  # rectangles per update PDU (PER lengths stop at 16 KB)


def bitmap_batches(rects: Iterable[BitmapRect],
                   max_payload: int = MAX_UPDATE_PAYLOAD) -> Iterator[list[BitmapRect]]:
    """The rectangles, as many per update PDU as fit in ``max_payload`` bytes; lazily, so a
    huge screen is never held whole."""
    batch: list[BitmapRect] = []
    size = 0
    for rect in rects:
        n = BITMAP_RECT_HEADER + len(rect.data)
        if batch and size + n > max_payload:
            yield batch
            batch, size = [], 0
        batch.append(rect)
        size += n
    if batch:
        yield batch


def bitmap_update(rects: list[BitmapRect]) -> bytes:
    """One share data PDU (slow-path Update, UPDATETYPE_BITMAP)."""
    return _bitmap_update([rect.encode() for rect in rects])


def fastpath_bitmap_update(rects: list[BitmapRect]) -> bytes:
    """The same rectangles as one fast-path output PDU (MS-RDPBCGR 2.2.9.1.2): what clients
    that announced FASTPATH_OUTPUT_SUPPORTED get (aardwolf draws nothing else)."""
    body = struct.pack("<HH", UPDATETYPE_BITMAP, len(rects)) + b"".join(
        rect.encode() for rect in rects)  # TS_UPDATE_BITMAP_DATA
    inner = bytes([FASTPATH_UPDATETYPE_BITMAP]) + struct.pack("<H", len(body)) + body
    return (bytes([FASTPATH_OUTPUT_ACTION_FASTPATH])
            + struct.pack(">H", 0x8000 | (len(inner) + 3)) + inner)


def bitmap_updates(rects: Iterable[BitmapRect],
                   max_payload: int = MAX_UPDATE_PAYLOAD) -> list[bytes]:
    """Share data PDUs packing as many rectangles as fit in ``max_payload`` bytes each."""
    return [bitmap_update(batch) for batch in bitmap_batches(rects, max_payload)]


def fastpath_bitmap_updates(rects: Iterable[BitmapRect],
                            max_payload: int = MAX_UPDATE_PAYLOAD) -> list[bytes]:
    return [fastpath_bitmap_update(batch) for batch in bitmap_batches(rects, max_payload)]


def parse_fastpath_output(data: bytes) -> list[tuple[int, bytes]]:
    """Client side (tests): a fast-path output PDU -> [(updateCode, updateData)]."""
    pos = 3 if data[1] & 0x80 else 2
    out = []
    while pos < len(data):
        header = data[pos]
        (size,) = struct.unpack_from("<H", data, pos + 1)
        out.append((header & 0x0F, data[pos + 3:pos + 3 + size]))
        pos += 3 + size
    return out


def client_fastpath_output(caps: dict[int, bytes]) -> bool:
    """Did the client's Confirm Active announce fast-path output?"""
    general = caps.get(CAPSTYPE_GENERAL, b"")
    return len(general) >= 12 and bool(struct.unpack_from("<H", general, 10)[0]
                                       & FASTPATH_OUTPUT_SUPPORTED)


def _bitmap_update(encoded: list[bytes]) -> bytes:
    return share_data(PDUTYPE2_UPDATE, struct.pack("<HH", UPDATETYPE_BITMAP, len(encoded))
                      + b"".join(encoded))


def parse_bitmap_update(payload: bytes) -> list[BitmapRect]:
    """Client side (tests): the rectangles of an UPDATETYPE_BITMAP payload."""
    kind, count = struct.unpack_from("<HH", payload)
    if kind != UPDATETYPE_BITMAP:
        raise DecodeError("not a bitmap update")
    rects, pos = [], 4
    for _ in range(count):
        left, top, right, bottom, width, height, bpp, flags, length = struct.unpack_from(
            "<HHHHHHHHH", payload, pos)
        pos += 18
        rects.append(BitmapRect(left, top, width, bottom - top + 1, right - left + 1, bpp,
                                payload[pos:pos + length]))
        pos += length
    return rects
