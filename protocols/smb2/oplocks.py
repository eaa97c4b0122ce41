"""Oplocks and leases on the wire: the lease create contexts, the caching a CREATE is granted
(through the host's ``leases.LeaseTable``), the CREATE that waits for a break (STATUS_PENDING,
then the final response), OPLOCK_BREAK notifications, and the acknowledgments (3.3.5.22).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from impacket import nt_errors
from impacket import smb3structs as s2

from protocols.errors import StatusError
from protocols.smb2 import bodies, crypto
from protocols.smb2.framing import frame
from protocols.smb2.leases import (
    OPLOCK_LEASE, OPLOCK_NONE, Grant, GrantRequest, Holder, LeaseTable, OpenRef, Ticket,
    oplock_level,
)
from protocols.smb2.messages import (
    ERROR_BODY, FLAGS_ASYNC_COMMAND, FLAGS_SERVER_TO_REDIR, FLAGS_SIGNED, HEADER_SIZE, Header,
)
from protocols.smb2.state import (
    STATUS_INVALID_PARAMETER, STATUS_PENDING, STATUS_SUCCESS, ConnectionState, Open, Request,
    SMBSession, close_quietly,
)

LEASE_CONTEXT = b"RqLs"
LEASE_FLAG_BREAK_IN_PROGRESS = 0x02  # 2.2.14.2.10
STATUS_CANCELLED = nt_errors.STATUS_CANCELLED
UNSOLICITED = 0xFFFFFFFFFFFFFFFF  # the MessageId of a break notification (2.2.23)
CAP_LEASING = s2.SMB2_GLOBAL_CAP_LEASING
CAP_DIRECTORY_LEASING = s2.SMB2_GLOBAL_CAP_DIRECTORY_LEASING
OVERWRITING = frozenset({s2.FILE_SUPERSEDE, s2.FILE_OVERWRITE, s2.FILE_OVERWRITE_IF})


@dataclass
class LeaseRequest:
    version: int
    key: bytes
    state: int
    parent_key: bytes | None
    epoch: int


@dataclass(eq=False)
class PendingCreate:
    """A CREATE answered STATUS_PENDING while the breaks it caused are acknowledged."""

    async_id: int
    message_id: int
    credit_charge: int
    session: SMBSession
    key: bytes | None  # signs the final response as the request asked
    encrypted: bool
    op: Open
    finish: Callable[[Grant], bytes]


def create_contexts(message: bytes, offset: int, length: int) -> dict[bytes, bytes]:
    """The create contexts of a CREATE (2.2.13.2), name -> data; a malformed chain is
    STATUS_INVALID_PARAMETER, checked as Samba checks it (smb2_create_blob_parse)."""
    if not length:
        return {}
    if offset < HEADER_SIZE or offset + length > len(message) or offset % 8:
        raise StatusError(STATUS_INVALID_PARAMETER, "create contexts outside the message")
    out: dict[bytes, bytes] = {}
    data = message[offset:offset + length]
    while data:
        if len(data) < bodies.CREATE_CONTEXT.size:
            raise StatusError(STATUS_INVALID_PARAMETER, "short create context")
        ctx = bodies.CREATE_CONTEXT.parse(data)
        extent = ctx.Next or len(data)
        if (ctx.Next % 8 or extent > len(data) or ctx.NameOffset != 16 or ctx.NameLength < 4
                or ctx.NameOffset + ctx.NameLength > extent or ctx.DataOffset % 8
                or (ctx.DataOffset and ctx.DataOffset < ctx.NameOffset + ctx.NameLength)
                or ctx.DataOffset + ctx.DataLength > extent
                or (ctx.Next and ctx.Next < bodies.CREATE_CONTEXT.size)):
            raise StatusError(STATUS_INVALID_PARAMETER, "malformed create context")
        name = data[ctx.NameOffset:ctx.NameOffset + ctx.NameLength]
        out[name] = data[ctx.DataOffset:ctx.DataOffset + ctx.DataLength]
        if not ctx.Next:
            break
        data = data[ctx.Next:]
    return out


def response_contexts(contexts: list[tuple[bytes, bytes]]) -> bytes:
    """Create contexts for a CREATE response, each 8-byte aligned, chained by Next."""
    packed = []
    for i, (name, data) in enumerate(contexts):
        data_offset = 16 + len(name) + (-(16 + len(name)) % 8)
        ctx = bodies.CREATE_CONTEXT.pack(NameOffset=16, NameLength=len(name),
                                         DataOffset=data_offset, DataLength=len(data))
        ctx += name + b"\0" * (data_offset - 16 - len(name)) + data
        if i < len(contexts) - 1:
            ctx += b"\0" * (-len(ctx) % 8)
            ctx = struct.pack("<I", len(ctx)) + ctx[4:]
        packed.append(ctx)
    return b"".join(packed)


class CachingHandlers(ConnectionState):
    # -- CREATE ---------------------------------------------------------------------------
    def _lease_request(self, request: Request, create: Any) -> LeaseRequest | None:
        """The lease a CREATE asks for (3.3.5.9.8, 3.3.5.9.11), or None."""
        contexts = create_contexts(request.message, create.CreateContextsOffset,
                                   create.CreateContextsLength)
        data = contexts.get(LEASE_CONTEXT)
        if data is None or create.RequestedOplockLevel != OPLOCK_LEASE:
            return None  # a lease context without the LEASE level is ignored (3.3.5.9.8)
        if (self.dialect or 0) < 0x0210 or self.config.leases is None:
            return None
        if len(data) == bodies.LEASE_V2.size and (self.dialect or 0) >= 0x0300:
            v2 = bodies.LEASE_V2.parse(data)
            parent = v2.ParentLeaseKey if v2.Flags & s2.SMB2_LEASE_FLAG_PARENT_LEASE_KEY_SET \
                else None
            return LeaseRequest(2, v2.LeaseKey, v2.LeaseState, parent, v2.Epoch)
        if len(data) in (bodies.LEASE_V1.size, bodies.LEASE_V2.size):
            v1 = bodies.LEASE_V1.parse(data)
            return LeaseRequest(1, v1.LeaseKey, v1.LeaseState, None, 0)
        raise StatusError(STATUS_INVALID_PARAMETER, f"lease context of {len(data)} bytes")

    def _check_lease_key(self, share: str, name: str, lease: LeaseRequest | None) -> None:
        table: LeaseTable | None = self.config.leases
        if lease is not None and table is not None:
            table.check_lease_key(self._client_guid, lease.key, table.file_key(share, name))

    @property
    def _client_guid(self) -> bytes:
        return bytes(self._client.get("guid", b"\0" * 16))

    def _grant_caching(self, request: Request, response: Header, session: SMBSession,
                       op: Open, create: Any, lease: LeaseRequest | None,
                       finish: Callable[[Grant], bytes], created: bool = False
                       ) -> tuple[int, bytes]:
        """Register the open with the host's table; answer now, or STATUS_PENDING until the
        breaks it caused are acknowledged (then ``finish`` builds the final body)."""
        table: LeaseTable | None = self.config.leases
        if table is None or op.tree.share is None:
            return STATUS_SUCCESS, finish(Grant(OPLOCK_NONE))
        oplock = create.RequestedOplockLevel
        if oplock == OPLOCK_LEASE and lease is None:
            oplock = OPLOCK_NONE  # LEASE without a (usable) context: no oplock (3.3.5.9.8)
        caps = self._capabilities(self.dialect or 0)  # type: ignore[attr-defined]
        grant_request = GrantRequest(
            oplock=oplock, lease_state=lease.state if lease else 0,
            lease_key=lease.key if lease else None, client_guid=self._client_guid,
            version=lease.version if lease else 1, epoch=lease.epoch if lease else 0,
            parent_key=lease.parent_key if lease else None,
            is_directory=bool(op.handle.is_directory),
            directory_leasing=bool(lease and lease.version == 2 and caps & CAP_DIRECTORY_LEASING),
            access=create.DesiredAccess,
            overwrite=create.CreateDisposition in OVERWRITING, created=created)
        key = table.file_key(op.tree.share.name, op.handle.path)
        ticket = table.open(key, self, grant_request, self._notify_break, (session, op))
        op.lease = ticket.ref
        if not ticket.waiting_on:
            return STATUS_SUCCESS, finish(table.grant(ticket))
        if request.header.next_command:
            # Mid-compound the rest cannot wait: grant now what the breaking holders leave.
            return STATUS_SUCCESS, finish(table.grant_now(ticket))
        async_id = self._next_file_id  # unique on this connection, never 0
        self._next_file_id += 1
        pending = PendingCreate(async_id, request.header.message_id,
                                request.header.credit_charge, session,
                                self._response_key(request),  # type: ignore[attr-defined]
                                request.encrypted, op, finish)
        for stale in [a for a, p in self._pending.items() if p.op.lease.closed]:
            del self._pending[stale]  # its open went (LOGOFF, TREE_DISCONNECT, file close)
        self._pending[async_id] = pending
        ticket.on_ready = lambda grant: self._complete_pending(pending, grant)
        response.flags |= FLAGS_ASYNC_COMMAND
        response.process_id, response.tree_id = async_id & 0xFFFFFFFF, async_id >> 32
        return STATUS_PENDING, ERROR_BODY

    def _contend_write(self, op: Open) -> None:
        if op.lease is not None:
            op.lease.table.contend_write(op.lease)

    def _complete_pending(self, pending: PendingCreate, grant: Grant) -> None:
        # Called from another connection's request or a timer: a bug here costs this
        # connection, never the one whose acknowledgment or close woke us.
        try:
            self._final_response(pending, STATUS_SUCCESS, pending.finish(grant))
        except Exception as exc:
            self._fail_unsolicited(exc)

    def _fail_unsolicited(self, exc: Exception) -> None:
        self._disconnect(f"internal error {type(exc).__name__}: {exc}")
        if self.on_output is not None:
            self.on_output()

    def _cancel_pending(self, h: Header) -> None:
        """SMB2 CANCEL of a waiting CREATE (3.3.5.16): the open is undone and the CREATE
        ends with STATUS_CANCELLED. Any other CANCEL has nothing to stop."""
        for pending in list(self._pending.values()):
            if h.flags & FLAGS_ASYNC_COMMAND:
                match = pending.async_id == h.process_id | h.tree_id << 32
            else:
                match = pending.message_id == h.message_id
            if not match or pending.session.id != h.session_id:
                continue
            session, op = pending.session, pending.op
            if session.opens.pop(op.file_id, None) is not None:
                close_quietly(op)
                self._update_opens(session)
            self._final_response(pending, STATUS_CANCELLED, ERROR_BODY)

    def _final_response(self, pending: PendingCreate, status: int, body: bytes) -> None:
        self._pending.pop(pending.async_id, None)
        session = pending.session
        if self.close_requested or self.sessions.get(session.id) is not session:
            return
        header = Header(s2.SMB2_CREATE, status=status, credit_charge=pending.credit_charge,
                        flags=FLAGS_SERVER_TO_REDIR | FLAGS_ASYNC_COMMAND,
                        message_id=pending.message_id,
                        process_id=pending.async_id & 0xFFFFFFFF,
                        tree_id=pending.async_id >> 32, session_id=session.id)
        if pending.key is not None:
            header.flags |= FLAGS_SIGNED
        message = header.pack() + body
        if pending.key is not None:
            message = crypto.sign(self.dialect or 0, pending.key, message)
        self._send_unsolicited(message, session if pending.encrypted else None)

    def _send_unsolicited(self, message: bytes, encrypt_for: SMBSession | None) -> None:
        if encrypt_for is not None and encrypt_for.keys is not None:
            message = crypto.encrypt(self.cipher, encrypt_for.keys.encryption, encrypt_for.id,
                                     message)
        self._out += frame(message)
        if self.on_output is not None:
            self.on_output()

    def _lease_response_context(self, grant: Grant, lease: LeaseRequest | None) -> bytes:
        holder = grant.lease
        if holder is None or lease is None or holder.lease_key is None:
            return b""
        flags = LEASE_FLAG_BREAK_IN_PROGRESS if grant.break_in_progress else 0
        # The lease answers in the version it was created with, whichever context this
        # CREATE carried (smbtorture smb2.lease.v2_epoch2/v2_epoch3 against Windows).
        if holder.version == 2:
            if holder.parent_key is not None:
                flags |= s2.SMB2_LEASE_FLAG_PARENT_LEASE_KEY_SET
            data = bodies.LEASE_V2.pack(LeaseKey=holder.lease_key, LeaseState=holder.state,
                                        Flags=flags, ParentLeaseKey=holder.parent_key or b"",
                                        Epoch=holder.epoch)
        else:
            data = bodies.LEASE_V1.pack(LeaseKey=holder.lease_key, LeaseState=holder.state,
                                        LeaseFlags=flags)
        return response_contexts([(LEASE_CONTEXT, data)])

    # -- breaks ---------------------------------------------------------------------------
    def _notify_break(self, holder: Holder, ref: OpenRef, to: int, ack: bool) -> None:
        """OPLOCK_BREAK notification (2.2.23): unsolicited, MessageId all ones, unsigned;
        SessionId 0 for a lease (3.3.4.7), the open's session for an oplock (3.3.4.6);
        encrypted when that session encrypts."""
        if self.close_requested:
            return
        try:
            self._send_break(holder, ref, to, ack)
        except Exception as exc:  # the CREATE of another connection is running this
            self._fail_unsolicited(exc)

    def _send_break(self, holder: Holder, ref: OpenRef, to: int, ack: bool) -> None:
        session, op = ref.cookie
        if holder.is_lease:
            assert holder.lease_key is not None
            body = bodies.LEASE_BREAK_NOTIFICATION.pack(
                NewEpoch=holder.epoch if holder.version == 2 else 0,
                Flags=s2.SMB2_NOTIFY_BREAK_LEASE_FLAG_ACK_REQUIRED if ack else 0,
                LeaseKey=holder.lease_key, CurrentLeaseState=holder.state, NewLeaseState=to)
            session_id = 0
        else:
            body = bodies.OPLOCK_BREAK.pack(OplockLevel=oplock_level(to),
                                            FileIdPersistent=op.file_id[0],
                                            FileIdVolatile=op.file_id[1])
            session_id = session.id
        header = Header(s2.SMB2_OPLOCK_BREAK, flags=FLAGS_SERVER_TO_REDIR,
                        message_id=UNSOLICITED, session_id=session_id)
        self.log(f"smb {self.address}: break {'lease' if holder.is_lease else 'oplock'} "
                 f"{holder.state:#x} -> {to:#x}{' (ack required)' if ack else ''}")
        self._send_unsolicited(header.pack() + body, session if session.encrypt_data else None)

    def _oplock_break(self, request: Request, response: Header) -> tuple[int, bytes]:
        """An oplock or lease break acknowledgment (3.3.5.22.1, 3.3.5.22.2)."""
        self._tree(request)
        table: LeaseTable | None = self.config.leases
        size = struct.unpack_from("<H", request.message, HEADER_SIZE)[0]
        if size == bodies.OPLOCK_BREAK.structure_size:
            req = bodies.OPLOCK_BREAK.parse(request.message, HEADER_SIZE)
            op = self._open(request, req)
            if table is None:
                raise StatusError(0xC0000184, "no oplock break pending")
            level = table.ack_oplock(op.lease, req.OplockLevel)
            return STATUS_SUCCESS, bodies.OPLOCK_BREAK.pack(
                OplockLevel=level, FileIdPersistent=op.file_id[0], FileIdVolatile=op.file_id[1])
        if self.dialect == 0x0202:
            raise StatusError(STATUS_INVALID_PARAMETER, "lease break ack on 2.0.2")
        ack = bodies.LEASE_BREAK_ACK.parse(request.message, HEADER_SIZE)
        if table is None:
            raise StatusError(0xC0000034, "no such lease")
        table.ack_lease(self._client_guid, ack.LeaseKey, ack.LeaseState)
        return STATUS_SUCCESS, bodies.LEASE_BREAK_ACK.pack(LeaseKey=ack.LeaseKey,
                                                           LeaseState=ack.LeaseState)

    def _release_caching(self) -> None:
        """Connection loss: no pending CREATE, open, break or timer of ours stays behind."""
        self._pending.clear()
        table: LeaseTable | None = self.config.leases
        if table is not None:
            table.drop_owner(self)


__all__ = ["CachingHandlers", "PendingCreate", "Ticket", "create_contexts",
           "response_contexts"]
