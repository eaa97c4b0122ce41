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

The PDU codec is ``pdu``; the ``Service`` base, ``Caller``, ``ServerView`` and ``Fault``
are ``service``; what the NET API services share is ``netapi``. This module frames PDUs
on a pipe, runs the association (bind, fragments, dispatch) and keeps the registry of
pipes and their services. The names below are re-exported for the modules and tests
that import them from here.
"""

from __future__ import annotations

import itertools
import struct
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from protocols.dcerpc.pdu import (
    ABSTRACT_SYNTAX_NOT_SUPPORTED,
    ACCEPTANCE,
    ALTER_CONTEXT,
    ALTER_CONTEXT_RESP,
    AUTH3,
    BIND,
    BIND_ACK,
    BIND_TIME_FEATURE_PREFIX,
    CO_CANCEL,
    COMMON_HEADER,
    DREP_LITTLE_ENDIAN,
    FEATURE_KEEP_CONNECTION_ON_ORPHAN,
    FEATURE_SECURITY_CONTEXT_MULTIPLEXING,
    HEADER_SIZE,
    MIN_FRAG,
    NAK_AUTHENTICATION_TYPE_NOT_RECOGNIZED,
    NAK_PROTOCOL_VERSION_NOT_SUPPORTED,
    NAK_REASON_NOT_SPECIFIED,
    NCA_S_FAULT_CONTEXT_MISMATCH,
    NCA_S_FAULT_UNSPEC,
    NCA_S_OP_RNG_ERROR,
    NCA_S_PROTO_ERROR,
    NCA_S_UNK_IF,
    NDR64_SYNTAX,
    NDR_SYNTAX,
    NEGOTIATE_ACK,
    ORPHANED,
    PFC_FIRST_FRAG,
    PFC_LAST_FRAG,
    PFC_OBJECT_UUID,
    PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED,
    PROVIDER_REJECTION,
    REASON_NOT_SPECIFIED,
    REQUEST,
    REQUEST_BODY,
    RPC_X_BAD_STUB_DATA,
    SEC_TRAILER_SIZE,
    SERVER_MAX_FRAG,
    SHUTDOWN,
    SYNTAX_SIZE,
    BindRequest,
    ContextElement,
    PDUError,
    call_id_of,
    pack_bind_ack,
    pack_bind_nak,
    pack_fault,
    pack_response,
    parse_bind,
)
from protocols.dcerpc.service import Caller, Fault, ServerView, Service

__all__ = [
    "MAX_PARTIAL_CALLS", "MAX_PENDING_OUTPUT", "MAX_REQUEST_STUB", "MIN_FRAG",
    "NCA_S_FAULT_CONTEXT_MISMATCH", "NCA_S_FAULT_UNSPEC", "NCA_S_OP_RNG_ERROR",
    "NCA_S_PROTO_ERROR", "NCA_S_UNK_IF", "NDR64_SYNTAX", "NDR_SYNTAX", "RPC_X_BAD_STUB_DATA",
    "Association", "Caller", "Fault", "PipeEndpoint", "PipeService", "ServerView", "Service",
    "known_pipe", "open_pipe", "pack_fault", "pack_response", "parse_bind", "pipe_key",
]

# A served call needs a few hundred bytes of input; anything above this is refused before
# impacket walks it (a lying array count costs time per byte).
MAX_REQUEST_STUB = 16 * 1024

# Requests whose last fragment has not come yet, per association: a pipe carries one call
# at a time, so a client leaving more than this behind has abandoned the oldest.
MAX_PARTIAL_CALLS = 8

# What a client may leave unread before the pipe drops further replies (each whole).
MAX_PENDING_OUTPUT = 1024 * 1024

_assoc_groups = itertools.count(0x5A10)  # for an Association made outside a PipeService

# -- one association: the DCE/RPC server side of one pipe open ------------------------------------

@dataclass
class _PartialCall:
    context_id: int
    opnum: int
    stub: bytearray = field(default_factory=bytearray)


class Association:
    """Binds presentation contexts, reassembles request fragments, dispatches calls."""

    def __init__(self, pipe_name: str, services: list[Service],
                 log: Callable[[str], None] = lambda line: None,
                 assoc_groups: Iterator[int] | None = None) -> None:
        self.pipe_name = pipe_name
        self.assoc_groups = _assoc_groups if assoc_groups is None else assoc_groups
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
            return [pack_fault(call_id_of(pdu), NCA_S_PROTO_ERROR)]
        except Exception as exc:  # a bug must cost one call, never the server
            self.log(f"rpc {self.pipe_name}: internal error {type(exc).__name__}: {exc}")
            return [pack_fault(call_id_of(pdu), NCA_S_FAULT_UNSPEC)]

    def close(self) -> None:
        self._calls.clear()
        for service in self.services:
            service.close()

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
            self.assoc_group = bind.assoc_group or next(self.assoc_groups)
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
        service = self.contexts.get(call.context_id)
        limit = (service.max_request_stub if service else 0) or MAX_REQUEST_STUB
        if len(call.stub) > limit:
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
                call_id = call_id_of(bytes(self._in))
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
        """The pipe open ends (SMB CLOSE, tree or session gone): so do its RPC context
        handles."""
        self.closed = True
        self._in.clear()
        self._out.clear()
        self.association.close()


def pipe_key(name: str) -> str:
    """``srvsvc``, ``\\srvsvc``, ``\\PIPE\\srvsvc``, ``PIPE\\SRVSVC`` -> ``srvsvc``."""
    key = name.replace("/", "\\").strip().lstrip("\\").lower()
    if key.startswith("pipe\\"):
        key = key[len("pipe\\"):].lstrip("\\")
    return key


def _service_classes() -> dict[str, list[type[Service]]]:
    from protocols.dcerpc import lsarpc, samr, spoolss, srvsvc, wkssvc

    # lsarpc, samr and lsass are names of one endpoint on Windows (the LSA process): each
    # serves both interfaces.
    lsass: list[type[Service]] = [lsarpc.LsarpcService, samr.SamrService]
    return {"srvsvc": [srvsvc.SrvsvcService], "wkssvc": [wkssvc.WkssvcService],
            "spoolss": [spoolss.SpoolssService], "lsarpc": lsass, "samr": lsass,
            "lsass": lsass}


def known_pipe(name: str) -> str | None:
    """The canonical name of a pipe this server has, or None."""
    key = pipe_key(name)
    return key if key in _service_classes() else None


def open_pipe(name: str, view: ServerView, caller: Caller, *,
              log: Callable[[str], None] = lambda line: None,
              assoc_groups: Iterator[int] | None = None) -> PipeEndpoint | None:
    """Open ``srvsvc``, ``wkssvc``, ``spoolss``, ``lsarpc``, ``samr`` or ``lsass`` (any
    case, with or without ``\\PIPE\\``); None for any other name (SMB answers
    STATUS_OBJECT_NAME_NOT_FOUND)."""
    key = known_pipe(name)
    if key is None:
        return None
    services = [cls(view, caller) for cls in _service_classes()[key]]
    return PipeEndpoint(key, Association(key, services, log, assoc_groups))


class PipeService:
    """What the SMB core holds (``SMBServerConfig.pipes``): pipes opened against one view."""

    def __init__(self, view: ServerView) -> None:
        self.view = view
        self.assoc_groups = itertools.count(0x5A10)  # per host, as a server numbers its own

    def known(self, name: str) -> str | None:
        return known_pipe(name)

    def open(self, name: str, caller: Caller, *,
             log: Callable[[str], None] = lambda line: None) -> PipeEndpoint | None:
        return open_pipe(name, self.view, caller, log=log, assoc_groups=self.assoc_groups)
