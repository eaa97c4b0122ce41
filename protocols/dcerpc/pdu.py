"""DCE/RPC connection-oriented PDUs (C706 chapter 12, MS-RPCE 2.2.2): constants and layouts.

PDU layouts are ``struct`` layouts here, for the same reasons ``smb2/bodies.py`` uses
``struct``: parsing untrusted input must never raise anything but our own errors, a
context element may list several transfer syntaxes (impacket's ``CtxItem`` holds one), and
an alter_context_resp carries an empty secondary address (impacket's ``MSRPCBindAck``
always writes its NUL). The field names are impacket's (``rpcrt.MSRPCHeader``,
``MSRPCBind``, ``MSRPCBindAck``, ``MSRPCRespHeader``) and the unit tests check the layouts
against impacket in both directions.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from impacket.uuid import string_to_bin, uuidtup_to_bin

# -- constants (C706 12.6, MS-RPCE 2.2.2) ------------------------------------------------------

REQUEST, RESPONSE, FAULT = 0x00, 0x02, 0x03
BIND, BIND_ACK, BIND_NAK = 0x0B, 0x0C, 0x0D
ALTER_CONTEXT, ALTER_CONTEXT_RESP, AUTH3 = 0x0E, 0x0F, 0x10
SHUTDOWN, CO_CANCEL, ORPHANED = 0x11, 0x12, 0x13

PFC_FIRST_FRAG = 0x01
PFC_LAST_FRAG = 0x02
PFC_DID_NOT_EXECUTE = 0x20
PFC_OBJECT_UUID = 0x80

DREP_LITTLE_ENDIAN = 0x10  # first octet of the data representation: LE, ASCII, IEEE

# p_cont_def_result_t and p_provider_reason_t
ACCEPTANCE, USER_REJECTION, PROVIDER_REJECTION, NEGOTIATE_ACK = 0, 1, 2, 3
REASON_NOT_SPECIFIED = 0
ABSTRACT_SYNTAX_NOT_SUPPORTED = 1
PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED = 2

# bind_nak reject reasons (MS-RPCE 2.2.2.5)
NAK_REASON_NOT_SPECIFIED = 0
NAK_PROTOCOL_VERSION_NOT_SUPPORTED = 4
NAK_AUTHENTICATION_TYPE_NOT_RECOGNIZED = 8

# Fault statuses (MS-RPCE 2.2.2.11; MS-ERREF)
NCA_S_OP_RNG_ERROR = 0x1C010002  # opnum out of range / not served
NCA_S_UNK_IF = 0x1C010003  # no such interface (unknown presentation context)
NCA_S_PROTO_ERROR = 0x1C01000B  # broken PDU
NCA_S_FAULT_CONTEXT_MISMATCH = 0x1C00001A  # unknown context handle
NCA_S_FAULT_UNSPEC = 0x1C000012
RPC_S_ACCESS_DENIED = 0x00000005
RPC_X_BAD_STUB_DATA = 0x000006F7  # the stub (NDR) could not be unmarshalled

# impacket.dcerpc.v5.rpcrt.MSRPC_STANDARD_NDR_SYNTAX, spelled out: importing rpcrt costs
# ~0.1 s of every server start (it pulls in Kerberos), and the handlers that need it
# load on the first pipe open.
NDR_SYNTAX = uuidtup_to_bin(("8a885d04-1ceb-11c9-9fe8-08002b104860", "2.0"))  # NDR 2.0
NDR64_SYNTAX = uuidtup_to_bin(("71710533-BEBA-4937-8319-B5DBEF9CCC36", "1.0"))
# Bind time feature negotiation (MS-RPCE 3.3.1.5.3): 6CB71C2C-9812-4540-<bitmask>...
BIND_TIME_FEATURE_PREFIX = string_to_bin("6CB71C2C-9812-4540-0000-000000000000")[:8]
FEATURE_SECURITY_CONTEXT_MULTIPLEXING = 0x01
FEATURE_KEEP_CONNECTION_ON_ORPHAN = 0x02

COMMON_HEADER = struct.Struct("<BBBBIHHI")  # rpc_vers, rpc_vers_minor, PTYPE, pfc_flags,
#                                             packed_drep, frag_length, auth_length, call_id
HEADER_SIZE = COMMON_HEADER.size  # 16
BIND_BODY = struct.Struct("<HHIB3x")  # max_xmit_frag, max_recv_frag, assoc_group_id, n_context_elem
CONTEXT_ELEM = struct.Struct("<HBx20s")  # p_cont_id, n_transfer_syn, reserved, abstract_syntax
SYNTAX_SIZE = 20  # p_syntax_id_t: UUID + version (major u16, minor u16)
REQUEST_BODY = struct.Struct("<IHH")  # alloc_hint, p_cont_id, opnum
RESPONSE_BODY = struct.Struct("<IHBx")  # alloc_hint, p_cont_id, cancel_count, reserved
FAULT_BODY = struct.Struct("<IHBxII")  # alloc_hint, p_cont_id, cancel_count, reserved,
#                                        status, reserved
RESPONSE_HEADER_SIZE = HEADER_SIZE + RESPONSE_BODY.size  # 24
SEC_TRAILER_SIZE = 8

# Windows answers 4280 on SMB pipes; C706 says no one may ask for less than 1432.
SERVER_MAX_FRAG = 4280
MIN_FRAG = 1432


# -- PDUs -----------------------------------------------------------------------------------------

def pack_header(ptype: int, flags: int, call_id: int, body: bytes, auth_len: int = 0) -> bytes:
    return COMMON_HEADER.pack(5, 0, ptype, flags, DREP_LITTLE_ENDIAN,
                              HEADER_SIZE + len(body), auth_len, call_id) + body


@dataclass
class ContextElement:
    context_id: int
    abstract_syntax: bytes
    transfer_syntaxes: list[bytes]


@dataclass
class BindRequest:
    max_xmit_frag: int
    max_recv_frag: int
    assoc_group: int
    contexts: list[ContextElement]


class PDUError(Exception):
    """The PDU cannot be parsed (truncated, lying lengths)."""


def parse_bind(pdu: bytes, body_end: int) -> BindRequest:
    """The body of a bind or alter_context PDU (C706 12.6.4.3)."""
    if body_end < HEADER_SIZE + BIND_BODY.size:
        raise PDUError("bind body truncated")
    max_xmit, max_recv, group, count = BIND_BODY.unpack_from(pdu, HEADER_SIZE)
    pos = HEADER_SIZE + BIND_BODY.size
    contexts = []
    for _ in range(count):
        if pos + CONTEXT_ELEM.size > body_end:
            raise PDUError("context element truncated")
        context_id, n_transfer, abstract = CONTEXT_ELEM.unpack_from(pdu, pos)
        pos += CONTEXT_ELEM.size
        end = pos + n_transfer * SYNTAX_SIZE
        if end > body_end:
            raise PDUError("transfer syntaxes truncated")
        transfers = [bytes(pdu[p:p + SYNTAX_SIZE]) for p in range(pos, end, SYNTAX_SIZE)]
        pos = end
        contexts.append(ContextElement(context_id, abstract, transfers))
    return BindRequest(max_xmit, max_recv, group, contexts)


def pack_bind_ack(ptype: int, call_id: int, *, max_xmit_frag: int, max_recv_frag: int,
                  assoc_group: int, secondary_address: str,
                  results: list[tuple[int, int, bytes]]) -> bytes:
    """bind_ack (or alter_context_resp): results are (result, reason, transfer syntax)."""
    port = secondary_address.encode("ascii") + b"\0" if secondary_address else b""
    body = struct.pack("<HHIH", max_xmit_frag, max_recv_frag, assoc_group, len(port)) + port
    body += b"\0" * (-(HEADER_SIZE + len(body)) % 4)
    body += struct.pack("<B3x", len(results))
    body += b"".join(struct.pack("<HH", result, reason) + syntax
                     for result, reason, syntax in results)
    return pack_header(ptype, PFC_FIRST_FRAG | PFC_LAST_FRAG, call_id, body)


def pack_bind_nak(call_id: int, reason: int) -> bytes:
    """bind_nak with the versions we speak (5.0), padded to 4 bytes."""
    body = struct.pack("<HBBB", reason, 1, 5, 0)
    body += b"\0" * (-(HEADER_SIZE + len(body)) % 4)
    return pack_header(BIND_NAK, PFC_FIRST_FRAG | PFC_LAST_FRAG, call_id, body)


def pack_fault(call_id: int, status: int, *, context_id: int = 0,
               did_not_execute: bool = True) -> bytes:
    flags = PFC_FIRST_FRAG | PFC_LAST_FRAG | (PFC_DID_NOT_EXECUTE if did_not_execute else 0)
    return pack_header(FAULT, flags, call_id, FAULT_BODY.pack(0, context_id, 0, status, 0))


def pack_response(call_id: int, context_id: int, stub: bytes, max_frag: int) -> list[bytes]:
    """The response PDUs of one call, each at most ``max_frag`` bytes; every fragment
    but the last carries a multiple of 8 stub bytes (NDR alignment survives reassembly).
    alloc_hint is what remains of the stub from that fragment on, as Windows sends it."""
    room = max(8, (max_frag - RESPONSE_HEADER_SIZE) & ~7)
    pdus, offset = [], 0
    while True:
        chunk = stub[offset:offset + room]
        flags = (PFC_FIRST_FRAG if offset == 0 else 0)
        if offset + len(chunk) >= len(stub):
            flags |= PFC_LAST_FRAG
        body = RESPONSE_BODY.pack(len(stub) - offset, context_id, 0) + chunk
        pdus.append(pack_header(RESPONSE, flags, call_id, body))
        offset += len(chunk)
        if flags & PFC_LAST_FRAG:
            return pdus



def call_id_of(pdu: bytes) -> int:
    return struct.unpack_from("<I", pdu, 12)[0] if len(pdu) >= HEADER_SIZE else 0

