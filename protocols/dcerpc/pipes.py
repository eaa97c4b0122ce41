"""Named pipes on IPC$ and the DCE/RPC connection-oriented protocol spoken over them.

Sans-IO: a ``PipeEndpoint`` is one open of a named pipe. The SMB core writes the
client's bytes in (WRITE, or the input of FSCTL_PIPE_TRANSCEIVE) and reads the
server's bytes out (READ, or the output of the transceive); nothing here touches a
socket, a reactor or the engine. What RPC handlers may ask of the host goes through
``ServerView``, which the emulator implements over its session engine.

The pipe is in message mode, as Windows' RPC pipes are: every PDU the server sends is
one message, and a read returns at most one message. A read shorter than the message
returns what fits and sets ``overflow`` (the SMB side answers STATUS_BUFFER_OVERFLOW and
the client reads the rest). Clients rely on that: impacket and pysmb parse exactly one
fragment per read.

PDU layouts (C706 chapter 12, MS-RPCE 2.2.2) are ``struct`` layouts here, for the same
reasons ``smb2/bodies.py`` uses ``struct``: parsing untrusted input must never raise
anything but our own errors, a context element may list several transfer syntaxes
(impacket's ``CtxItem`` holds one), and an alter_context_resp carries an empty secondary
address (impacket's ``MSRPCBindAck`` always writes its NUL). The field names are
impacket's (``rpcrt.MSRPCHeader``, ``MSRPCBind``, ``MSRPCBindAck``, ``MSRPCRespHeader``)
and the unit tests check the layouts against impacket in both directions. The stub data
(NDR) is always impacket's: ``srvs``, ``wkst``, ``rprn`` request/response classes.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import logging
import struct
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from impacket.dcerpc.v5.dtypes import NULL
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
# A served call needs a few hundred bytes of input; anything above this is refused before
# impacket walks it (a lying array count costs time per byte).
MAX_REQUEST_STUB = 16 * 1024

# Requests whose last fragment has not come yet, per association: a pipe carries one call
# at a time, so a client leaving more than this behind has abandoned the oldest.
MAX_PARTIAL_CALLS = 8

# What a client may leave unread before the pipe drops further replies (each whole).
MAX_PENDING_OUTPUT = 1024 * 1024

_assoc_groups = itertools.count(0x5A10)


# -- what RPC handlers may ask of the host -----------------------------------------------------

class ServerView(Protocol):
    """The host as the RPC services see it; the emulator implements it over its engine
    (``emulator.core.rpcview``). Handlers only read through it; what ends a session or closes
    a file is the engine's doing, asked for here.

    File ids (NetrFileEnum, NetrFileClose) are ``(session id << 16) | (1 + index)`` in 32
    bits, the index into that session's ``open_files``.
    """

    def sessions(self) -> list[dict[str, Any]]:
        """Every session as the engine's ``Session.to_dict`` gives it: id, protocol
        ("smb"/"rdp"), user, client (NTLM workstation, may be ""), address, state
        ("pending", "active", "idle", "disconnected"), opens, open_files, trees (share
        names an SMB session is connected to), idle_seconds, logon_time (ISO 8601 or
        POSIX seconds; None before logon), anonymous, console. srvsvc shows the SMB
        sessions, wkssvc's NetrWkstaUserEnum the interactive (RDP) logons."""
        ...

    def delete_sessions(self, client: str | None, user: str | None) -> int:
        """Close the matching SMB sessions (NetrSessionDel); returns how many."""
        ...

    def shares(self) -> list[tuple[str, int, str, str]]:
        """(name, STYPE_* type, remark, path) for every share, IPC$ included."""
        ...

    def server_info(self) -> dict[str, Any]:
        """name, comment, platform_id, version_major, version_minor, type, users,
        autodisconnect (minutes; -1 = off), domain (the workgroup)."""
        ...

    def set_autodisconnect(self, minutes: int) -> None: ...

    def close_file(self, file_id: int) -> bool:
        """Close the open with this NetrFileEnum id; False when there is none."""
        ...

    def is_admin(self, user: str) -> bool: ...

    def session_enum_needs_admin(self) -> bool:
        """Windows 10 1607+ / Server 2016+: every NetrSessionEnum level is for admins."""
        ...

    def now(self) -> float: ...


@dataclass(frozen=True)
class Caller:
    """Who opened the pipe: the SMB session's account and computer."""

    user: str
    anonymous: bool
    client: str
    address: str


class Fault(Exception):
    """Raised by an operation before it acts: the call is answered with a fault PDU with
    ``status`` and PFC_DID_NOT_EXECUTE (an operation that went wrong after acting is a bug,
    answered nca_s_fault_unspec without that flag)."""

    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(f"fault 0x{status:08X} {detail}".strip())
        self.status = status


# -- one RPC interface ---------------------------------------------------------------------------

# (impacket request NDRCALL class, handler taking the service and the parsed request and
# returning an impacket response)
Operation = tuple[type, Callable[[Any, Any], Any]]


class Access(enum.Enum):
    """Who may make a call or ask for an info level (``Service.permits``)."""

    ANYONE = "anyone"  # null sessions included
    USERS = "users"  # any authenticated account
    ADMINS = "admins"  # ``ServerView.is_admin``


class Service:
    """One RPC interface served on a pipe; one instance per pipe open (association).

    Subclasses set ``name``, ``interface`` (impacket's ``MSRPC_UUID_*``: the UUID and the
    version served) and ``operations``: opnum -> (impacket request class, handler).
    """

    name: ClassVar[str] = ""
    interface: ClassVar[bytes] = b""  # p_syntax_id_t: UUID (wire order), major, minor (u16)
    operations: ClassVar[dict[int, Operation]] = {}

    def __init__(self, view: ServerView, caller: Caller) -> None:
        self.view = view
        self.caller = caller

    def accepts(self, abstract_syntax: bytes) -> bool:
        """Same UUID and major version, and a minor version we serve (C706 12.6.3.1)."""
        major, minor = struct.unpack_from("<HH", abstract_syntax, 16)
        served_major, served_minor = struct.unpack_from("<HH", self.interface, 16)
        return (abstract_syntax[:16] == self.interface[:16] and major == served_major
                and minor <= served_minor)

    def call(self, opnum: int, stub: bytes) -> bytes:
        operation = self.operations.get(opnum)
        if operation is None:
            raise Fault(NCA_S_OP_RNG_ERROR, f"{self.name} opnum {opnum}")
        request_class, handler = operation
        request = request_class()
        try:
            with _impacket_quiet():
                consumed = request.fromString(stub)
        except Exception as exc:  # impacket raises anything on bad NDR
            raise Fault(RPC_X_BAD_STUB_DATA, f"{self.name} opnum {opnum}: {exc}") from None
        if consumed > len(stub):  # impacket reads a short stub leniently; Windows does not
            raise Fault(RPC_X_BAD_STUB_DATA, f"{self.name} opnum {opnum}: stub too short")
        response = handler(self, request)
        return bytes(response.getData())

    def permits(self, access: Access) -> bool:
        """May the caller make a call (or ask for an info level) open to ``access``?"""
        if access is Access.ANYONE:
            return True
        if self.caller.anonymous:
            return False
        return access is Access.USERS or self.view.is_admin(self.caller.user)


@contextlib.contextmanager
def _impacket_quiet() -> Iterator[None]:
    """impacket logs every NDR field it fails to unpack at ERROR; a bad stub is the client's
    problem, answered with a fault and logged once by the association."""
    logger = logging.getLogger("impacket")
    before = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = before


# -- what the NET API handlers (srvsvc, wkssvc) share ---------------------------------------------

# NET_API_STATUS values (MS-ERREF 2.2, lmerr.h) both services answer.
NERR_SUCCESS = 0
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_LEVEL = 124


def string_arg(ndr: Any, key: str) -> str | None:
    """A ``[string] wchar_t*`` argument up to its first NUL; None for a NULL ``[unique]``
    pointer. Code units that are not UTF-16 (a lone surrogate) become U+FFFD, so such a
    name matches nothing instead of failing the call."""
    member = ndr.fields[key]
    if "ReferentID" in member.fields:  # a pointer (LPWSTR); a bare WSTR has none
        if member.fields["ReferentID"] == 0:
            return None
        member = member.fields["Data"]
    raw: bytes = member.fields["Data"]
    return raw.decode("utf-16-le", "replace").split("\0", 1)[0]


def is_null(ndr: Any, key: str) -> bool:
    """Is the ``[unique]`` pointer ``key`` of ``ndr`` NULL?"""
    return ndr.fields[key].fields["ReferentID"] == 0


def dword(value: float) -> int:
    """Clamp to an unsigned 32-bit NDR DWORD."""
    return max(0, min(int(value), 0xFFFFFFFF))


def fill(target: Any, values: dict[str, Any]) -> Any:
    """Set every field of an impacket info structure from ``values``, keyed by the field's
    name after its level prefix (``sesi10_cname`` <- ``values["cname"]``), so one dict of
    values serves every level; returns ``target``."""
    for name, _type in target.structure:
        target[name] = values[name.split("_", 1)[1]]
    return target


def union_arm(union: Any, level: int, what: str) -> str:
    """Tag a ``[switch_is(Level)]`` union of a response with ``level``; the arm's name. A
    level the union has no arm for cannot be answered: bad stub data, as Windows' stub."""
    arm = type(union).union.get(level)
    if arm is None:
        raise Fault(RPC_X_BAD_STUB_DATA, f"{what} level {level}")
    union["tag"] = level
    return str(arm[0])


class InfoAnswer:
    """The answer to a Net*GetInfo call: the level's arm of the info union, or (with an
    error) a NULL arm."""

    def __init__(self, response: Any, union_key: str, level: int, what: str) -> None:
        self.response = response
        self.union = response[union_key]
        self.arm = union_arm(self.union, level, what)

    def fields(self, values: dict[str, Any]) -> Any:
        fill(self.union[self.arm], values)
        self.response["ErrorCode"] = NERR_SUCCESS
        return self.response

    def error(self, status: int) -> Any:
        self.union[self.arm] = NULL
        self.response["ErrorCode"] = status
        return self.response


class EnumAnswer:
    """The answer to a Net*Enum call: the level's container (``EntriesRead``, ``Buffer``),
    ``TotalEntries``, ``ResumeHandle`` and ``ErrorCode``. Everything is answered at once,
    whatever the preferred maximum length: the resume handle comes back 0 (NULL when the
    client sent NULL)."""

    def __init__(self, request: Any, response: Any, info_key: str, union_key: str,
                 level: int, what: str) -> None:
        self.response = response
        info = response[info_key]
        info["Level"] = level
        self.union = info[union_key]
        self.arm = union_arm(self.union, level, what)
        response["TotalEntries"] = 0
        response["ResumeHandle"] = NULL if is_null(request, "ResumeHandle") else 0

    def entries(self, entries: list[Any]) -> Any:
        container = self.union[self.arm]
        container["EntriesRead"] = len(entries)
        if entries:
            for entry in entries:
                container["Buffer"].append(entry)
        else:
            container["Buffer"] = NULL
        self.response["TotalEntries"] = len(entries)
        self.response["ErrorCode"] = NERR_SUCCESS
        return self.response

    def error(self, status: int) -> Any:
        """No entries (an empty container) and ``status``."""
        self.entries([])
        self.response["ErrorCode"] = status
        return self.response

    def unserved_level(self) -> Any:
        """A level the union has but this server does not serve: a NULL container."""
        self.union[self.arm] = NULL
        self.response["ErrorCode"] = ERROR_INVALID_LEVEL
        return self.response


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


# -- one association: the DCE/RPC server side of one pipe open ------------------------------------

@dataclass
class _PartialCall:
    context_id: int
    opnum: int
    stub: bytearray = field(default_factory=bytearray)


class Association:
    """Binds presentation contexts, reassembles request fragments, dispatches calls."""

    def __init__(self, pipe_name: str, services: list[Service],
                 log: Callable[[str], None] = lambda line: None) -> None:
        self.pipe_name = pipe_name
        self.services = services
        self.log = log
        self.contexts: dict[int, Service] = {}
        self.assoc_group = 0
        self.max_xmit_frag = SERVER_MAX_FRAG
        self._calls: dict[int, _PartialCall] = {}

    def receive(self, pdu: bytes) -> list[bytes]:
        """One whole PDU in (frag_length bytes); the PDUs to send back out."""
        try:
            return self._receive(pdu)
        except PDUError as exc:
            self.log(f"rpc {self.pipe_name}: bad PDU: {exc}")
            return [pack_fault(_call_id(pdu), NCA_S_PROTO_ERROR)]
        except Exception as exc:  # a bug must cost one call, never the server
            self.log(f"rpc {self.pipe_name}: internal error {type(exc).__name__}: {exc}")
            return [pack_fault(_call_id(pdu), NCA_S_FAULT_UNSPEC)]

    def _receive(self, pdu: bytes) -> list[bytes]:
        if len(pdu) < HEADER_SIZE or struct.unpack_from("<H", pdu, 8)[0] != len(pdu):
            raise PDUError("not one whole PDU")
        vers, minor, ptype, flags, drep, frag_len, auth_len, call_id = \
            COMMON_HEADER.unpack_from(pdu)
        body_end = frag_len - (auth_len + SEC_TRAILER_SIZE if auth_len else 0)
        if body_end < HEADER_SIZE:
            raise PDUError(f"auth_length {auth_len} beyond frag_length {frag_len}")
        little_endian = drep & 0xF0 == DREP_LITTLE_ENDIAN  # integer representation nibble
        if ptype in (BIND, ALTER_CONTEXT):
            if vers != 5 or minor > 1:
                return [pack_bind_nak(call_id, NAK_PROTOCOL_VERSION_NOT_SUPPORTED)]
            if auth_len:
                # Over a named pipe the SMB session already authenticated the caller;
                # DCE/RPC-level authentication is not offered.
                return [pack_bind_nak(call_id, NAK_AUTHENTICATION_TYPE_NOT_RECOGNIZED)]
            if not little_endian:
                return [pack_bind_nak(call_id, NAK_REASON_NOT_SPECIFIED)]
            try:
                bind = parse_bind(pdu, body_end)
            except PDUError as exc:
                self.log(f"rpc {self.pipe_name}: bad bind: {exc}")
                return [pack_bind_nak(call_id, NAK_REASON_NOT_SPECIFIED)]
            return [self._bind(ptype, call_id, bind)]
        if ptype == REQUEST:
            if not little_endian or auth_len:
                return [pack_fault(call_id, NCA_S_PROTO_ERROR)]
            return self._request(pdu, flags, call_id, body_end)
        if ptype in (AUTH3, SHUTDOWN):
            return []  # no answer is defined
        if ptype in (CO_CANCEL, ORPHANED):
            self._calls.pop(call_id, None)  # calls run at once; a partial one is dropped
            return []
        raise PDUError(f"PDU type {ptype} from a client")

    def _bind(self, ptype: int, call_id: int, bind: BindRequest) -> bytes:
        if ptype == BIND:
            # A bind sizes the association and joins a group; alter_context only adds
            # contexts.
            self.max_xmit_frag = max(MIN_FRAG, min(bind.max_recv_frag, SERVER_MAX_FRAG))
            self.assoc_group = bind.assoc_group or next(_assoc_groups)
        results = [self._negotiate(ctx) for ctx in bind.contexts]
        return pack_bind_ack(
            BIND_ACK if ptype == BIND else ALTER_CONTEXT_RESP, call_id,
            max_xmit_frag=self.max_xmit_frag, max_recv_frag=SERVER_MAX_FRAG,
            assoc_group=self.assoc_group,
            # Windows names the pipe in a bind_ack and leaves an alter_context_resp's empty.
            secondary_address=f"\\PIPE\\{self.pipe_name}" if ptype == BIND else "",
            results=results)

    def _negotiate(self, ctx: ContextElement) -> tuple[int, int, bytes]:
        no_syntax = b"\0" * SYNTAX_SIZE
        feature = next((t for t in ctx.transfer_syntaxes if t[:8] == BIND_TIME_FEATURE_PREFIX),
                       None)
        if feature is not None:
            # Bind time feature negotiation: a context offered only to carry the client's
            # feature bits; answer those we honour (neither needs anything of us here).
            bits = struct.unpack_from("<H", feature, 8)[0]
            return NEGOTIATE_ACK, bits & (FEATURE_SECURITY_CONTEXT_MULTIPLEXING
                                          | FEATURE_KEEP_CONNECTION_ON_ORPHAN), no_syntax
        service = next((s for s in self.services if s.accepts(ctx.abstract_syntax)), None)
        if service is None:
            return PROVIDER_REJECTION, ABSTRACT_SYNTAX_NOT_SUPPORTED, no_syntax
        if NDR_SYNTAX not in ctx.transfer_syntaxes:
            return PROVIDER_REJECTION, PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED, no_syntax
        self.contexts[ctx.context_id] = service
        return ACCEPTANCE, REASON_NOT_SPECIFIED, NDR_SYNTAX

    def _request(self, pdu: bytes, flags: int, call_id: int, body_end: int) -> list[bytes]:
        start = HEADER_SIZE + REQUEST_BODY.size + (16 if flags & PFC_OBJECT_UUID else 0)
        if body_end < start:
            raise PDUError("request header truncated")
        _alloc_hint, context_id, opnum = REQUEST_BODY.unpack_from(pdu, HEADER_SIZE)
        # A first fragment (re)starts the call; a later one continues it. Either way the
        # call leaves ``_calls`` here and goes back only while more fragments are due.
        started = self._calls.pop(call_id, None)
        if flags & PFC_FIRST_FRAG:
            call = _PartialCall(context_id, opnum)
        elif started is None:
            return [pack_fault(call_id, NCA_S_PROTO_ERROR, context_id=context_id)]
        else:
            call = started
        call.stub += pdu[start:body_end]
        if len(call.stub) > MAX_REQUEST_STUB:
            return [pack_fault(call_id, RPC_X_BAD_STUB_DATA, context_id=context_id)]
        if flags & PFC_LAST_FRAG:
            return self._dispatch(call_id, call)
        if len(self._calls) >= MAX_PARTIAL_CALLS:
            abandoned = next(iter(self._calls))  # the one left alone the longest
            del self._calls[abandoned]
            self.log(f"rpc {self.pipe_name}: call {abandoned} abandoned mid-request; dropped")
        self._calls[call_id] = call
        return []

    def _dispatch(self, call_id: int, call: _PartialCall) -> list[bytes]:
        service = self.contexts.get(call.context_id)
        if service is None:
            return [pack_fault(call_id, NCA_S_UNK_IF, context_id=call.context_id)]
        try:
            stub = service.call(call.opnum, bytes(call.stub))
        except Fault as fault:
            self.log(f"rpc {self.pipe_name}: {fault}")
            return [pack_fault(call_id, fault.status, context_id=call.context_id)]
        except Exception as exc:  # a bug in a handler: a fault, logged, never a crash
            self.log(f"rpc {self.pipe_name}: opnum {call.opnum} failed: "
                     f"{type(exc).__name__}: {exc}")
            return [pack_fault(call_id, NCA_S_FAULT_UNSPEC, context_id=call.context_id,
                               did_not_execute=False)]
        return pack_response(call_id, call.context_id, stub, self.max_xmit_frag)


def _call_id(pdu: bytes) -> int:
    return struct.unpack_from("<I", pdu, 12)[0] if len(pdu) >= HEADER_SIZE else 0


# -- one open of a named pipe ---------------------------------------------------------------------

class PipeEndpoint:
    """One open of a named pipe: bytes in, messages out (message-mode, like Windows')."""

    def __init__(self, name: str, association: Association) -> None:
        self.name = name
        self.association = association
        self.overflow = False  # the last read/transceive returned part of a message
        self.closed = False
        self._in = bytearray()
        self._out: deque[bytearray] = deque()

    @property
    def pending(self) -> int:
        """Bytes the client has not read yet."""
        return sum(len(m) for m in self._out)

    def write(self, data: bytes) -> None:
        """Client bytes in: every whole PDU is answered at once (queued for reading)."""
        if self.closed:
            return
        self._in += data
        while len(self._in) >= HEADER_SIZE:
            frag_len = struct.unpack_from("<H", self._in, 8)[0]
            if self._in[0] != 5 or frag_len < HEADER_SIZE:
                # No PDU boundary can be trusted any more: answer once, start afresh.
                call_id = _call_id(bytes(self._in))
                self._in.clear()
                self.association.log(f"rpc {self.name}: not a DCE/RPC PDU")
                self._queue([pack_fault(call_id, NCA_S_PROTO_ERROR)])
                return
            if len(self._in) < frag_len:
                return  # the rest of the fragment comes with the next write
            pdu = bytes(self._in[:frag_len])
            del self._in[:frag_len]
            self._queue(self.association.receive(pdu))

    def _queue(self, pdus: list[bytes]) -> None:
        """One reply (all the fragments of one answer), whole or not at all: a client
        must never read the first fragments of an answer whose last one was dropped."""
        if self.pending + sum(len(pdu) for pdu in pdus) > MAX_PENDING_OUTPUT:
            self.association.log(f"rpc {self.name}: client does not read; reply dropped")
            return
        self._out.extend(bytearray(pdu) for pdu in pdus)

    def read(self, max_len: int) -> bytes:
        """At most one message, at most ``max_len`` bytes of it; b"" when nothing is
        pending. ``overflow`` tells whether the message has more (STATUS_BUFFER_OVERFLOW)."""
        self.overflow = False
        if not self._out:
            return b""
        message = self._out[0]
        chunk = bytes(message[:max(0, max_len)])
        del message[:len(chunk)]
        if message:
            self.overflow = True
        else:
            self._out.popleft()
        return chunk

    def transceive(self, data: bytes, max_out: int) -> bytes:
        """FSCTL_PIPE_TRANSCEIVE: write, then read one message (see ``read``)."""
        self.write(data)
        return self.read(max_out)

    def close(self) -> None:
        self.closed = True
        self._in.clear()
        self._out.clear()


def pipe_key(name: str) -> str:
    """``srvsvc``, ``\\srvsvc``, ``\\PIPE\\srvsvc``, ``PIPE\\SRVSVC`` -> ``srvsvc``."""
    key = name.replace("/", "\\").strip().lstrip("\\").lower()
    if key.startswith("pipe\\"):
        key = key[len("pipe\\"):].lstrip("\\")
    return key


def _service_classes() -> dict[str, list[type[Service]]]:
    from protocols.dcerpc import spoolss, srvsvc, wkssvc  # they build on this module

    return {"srvsvc": [srvsvc.SrvsvcService], "wkssvc": [wkssvc.WkssvcService],
            "spoolss": [spoolss.SpoolssService]}


def known_pipe(name: str) -> str | None:
    """The canonical name of a pipe this server has, or None."""
    key = pipe_key(name)
    return key if key in _service_classes() else None


def open_pipe(name: str, view: ServerView, caller: Caller, *,
              log: Callable[[str], None] = lambda line: None) -> PipeEndpoint | None:
    """Open ``srvsvc``, ``wkssvc`` or ``spoolss`` (any case, with or without ``\\PIPE\\``);
    None for any other name (SMB answers STATUS_OBJECT_NAME_NOT_FOUND)."""
    key = known_pipe(name)
    if key is None:
        return None
    services = [cls(view, caller) for cls in _service_classes()[key]]
    return PipeEndpoint(key, Association(key, services, log))


class PipeService:
    """What the SMB core holds (``SMBServerConfig.pipes``): pipes opened against one view."""

    def __init__(self, view: ServerView) -> None:
        self.view = view

    def known(self, name: str) -> str | None:
        return known_pipe(name)

    def open(self, name: str, caller: Caller, *,
             log: Callable[[str], None] = lambda line: None) -> PipeEndpoint | None:
        return open_pipe(name, self.view, caller, log=log)
