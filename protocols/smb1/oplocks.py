"""SMB1 oplocks (MS-CIFS 3.3.4.2, 3.3.5.30, 3.3.5.35) over the host's ``LeaseTable``, the
same object store SMB2's oplocks and leases live in, so an SMB1 and an SMB2 open of one
file break each other.

NT_CREATE_ANDX asks with Flags REQUEST_OPLOCK (exclusive) / REQUEST_OPBATCH (batch); the
table grants what Windows would: exclusive or batch to the only open, else Level II
(only to a client that set CAP_LEVEL_II_OPLOCKS; none to one whose MaxMpxCount is under
two, MS-CIFS 3.3.5.43). A second open that conflicts makes the table break the holder:
its connection gets an OpLock Break Notification, an SMB_COM_LOCKING_ANDX *request* from
the server (TypeOfLock OPLOCK_RELEASE, NewOpLockLevel 0 or 1, PID and MID 0xFFFF, never
signed), and the second NT_CREATE_ANDX is answered when the holder acknowledges (a
LOCKING_ANDX with OPLOCK_RELEASE and no locks, which has no response), closes the file,
or the table's 35 s timer runs out (sv599_oplockbreakresponsewait's default).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

from impacket import nt_errors
from impacket import smb as i

from protocols.errors import StatusError
from protocols.smb1.messages import Block, Header, andx, join_chain
from protocols.smb2.leases import (
    OPLOCK_BATCH, OPLOCK_EXCLUSIVE, OPLOCK_II, OPLOCK_NONE, Grant, GrantRequest, Holder,
    LeaseTable, OpenRef, R, oplock_level,
)

if TYPE_CHECKING:
    from protocols.smb1.core import Chain, SMB1Core
    from protocols.smb2.state import Open, SMBSession

NT_CREATE_REQUEST_OPLOCK = 0x02
NT_CREATE_REQUEST_OPBATCH = 0x04
CAP_LEVEL_II_OPLOCKS = 0x0080
LOCKING_ANDX_OPLOCK_RELEASE = 0x02
LOCKING_ANDX_LARGE_FILES = 0x10
# SMB1's OpLockLevel in the NT_CREATE_ANDX response (MS-CIFS 2.2.4.64.2).
SMB1_LEVELS = {OPLOCK_NONE: 0, OPLOCK_EXCLUSIVE: 1, OPLOCK_BATCH: 2, OPLOCK_II: 3}
OVERWRITING = frozenset({0, 4, 5})  # FILE_SUPERSEDE, FILE_OVERWRITE, FILE_OVERWRITE_IF
LOCKING_ANDX = struct.Struct("<4xHBBIHH")  # FID, TypeOfLock, NewOpLockLevel, Timeout, counts
UNSOLICITED_ID = 0xFFFF


@dataclass(eq=False)
class WaitingCreate:
    """An NT_CREATE_ANDX (and the chain before it) held until the breaks it caused end."""

    reply: Header
    parts: list[tuple[int, bytes, Any]]
    build: Callable[[int], bytes]  # the NT_CREATE_ANDX words for an SMB1 OpLockLevel
    session: SMBSession
    op: Open
    sequence: int | None = None  # the signing sequence number of its response


@dataclass(eq=False)
class WaitingRequest:
    """A path command held until the oplock breaks it caused end, then run again."""

    header: Header
    message: bytes
    sequence: int | None = None


class OplockCommands:
    # -- NT_CREATE_ANDX: what the open is granted ------------------------------------------
    def grant_oplock(self: SMB1Core, chain: Chain, op: Open, *, flags: int, access: int,
                     disposition: int, created: bool, build: Callable[[int], bytes]
                     ) -> bytes:
        """The NT_CREATE_ANDX response words; when breaks must finish first, the chain is
        marked to wait (``chain.waiting``) and the words are a placeholder."""
        table: LeaseTable | None = self.conn.config.leases
        if table is None or op.tree.share is None:
            return build(0)
        requested = OPLOCK_NONE
        if (self.client_max_mpx or 0) >= 2:  # MS-CIFS 3.3.5.43: OpLockSupport needs two
            if flags & NT_CREATE_REQUEST_OPBATCH:
                requested = OPLOCK_BATCH
            elif flags & NT_CREATE_REQUEST_OPLOCK:
                requested = OPLOCK_EXCLUSIVE
        session = self._session(chain)
        request = GrantRequest(oplock=requested, is_directory=bool(op.handle.is_directory),
                               access=access, overwrite=disposition in OVERWRITING,
                               created=created)
        key = table.file_key(op.tree.share.name, op.handle.path)
        ticket = table.open(key, self.conn, request, self._notify_break, (session, op))
        op.lease = ticket.ref
        if not ticket.waiting_on:
            return build(self._smb1_level(table.grant(ticket)))
        if not chain.last:  # mid-chain the rest cannot wait: what the breaking leave
            return build(self._smb1_level(table.grant_now(ticket)))
        chain.waiting = (ticket, build)
        return build(0)

    def _smb1_level(self: SMB1Core, grant: Grant) -> int:
        level = grant.oplock
        if level == OPLOCK_II and not self.client_capabilities & CAP_LEVEL_II_OPLOCKS:
            return 0  # the table keeps it as Level II; the client is told none
        return SMB1_LEVELS.get(level, 0)

    def hold_create(self: SMB1Core, chain: Chain, reply: Header,
                    parts: list[tuple[int, bytes, Any]]) -> WaitingCreate:
        ticket, build = chain.waiting
        session, op = ticket.ref.cookie
        waiting = WaitingCreate(reply, parts, build, session, op)
        self._waiting = [w for w in self._waiting if not w.op.lease.closed]
        self._waiting.append(waiting)
        ticket.on_ready = lambda grant: self._complete_create(waiting, grant)
        return waiting

    def _complete_create(self: SMB1Core, waiting: WaitingCreate, grant: Grant) -> None:
        # Runs inside another connection's request or on a timer: a bug here costs this
        # connection only.
        try:
            if waiting in self._waiting:
                self._waiting.remove(waiting)
            conn = self.conn
            if conn.close_requested or conn.sessions.get(waiting.session.id) is not \
                    waiting.session:
                return
            command, _, data = waiting.parts[-1]
            waiting.parts[-1] = (command, waiting.build(self._smb1_level(grant)), data)
            message = join_chain(waiting.reply, waiting.parts)
            if waiting.sequence is not None:
                message = self.signing.sign(message, waiting.sequence)
            conn._send_unsolicited(message, None)
        except Exception as exc:
            self.conn._fail_unsolicited(exc)

    # -- path commands (DELETE, RENAME) break oplocks too ---------------------------------------
    def breaks_done(self: SMB1Core, chain: Chain, tree: Any, path: str, access: int) -> bool:
        """Whether a path command may run now. Opening the file for DELETE breaks another
        open's exclusive or batch oplock (MS-FSA's object store does it for any open); if
        it must wait, the chain is marked (``chain.retry``) and the whole request runs
        again once the breaks are done."""
        table: LeaseTable | None = self.conn.config.leases
        if table is None or tree.share is None:
            return True
        key = table.file_key(tree.share.name, path)
        if key not in table.files:
            return True
        ticket = table.open(key, self.conn, GrantRequest(oplock=OPLOCK_NONE, access=access),
                            lambda *args: None)
        if ticket.waiting_on and chain.last:
            chain.retry = ticket
            return False
        if ticket.waiting_on:
            table.grant_now(ticket)
        ticket.ref.close()
        return True

    def hold_request(self: SMB1Core, chain: Chain, header: Header, message: bytes
                     ) -> WaitingRequest:
        ticket = chain.retry
        waiting = WaitingRequest(header, message)
        ticket.on_ready = lambda grant: self._rerun(waiting, ticket)
        return waiting

    def _rerun(self: SMB1Core, waiting: WaitingRequest, ticket: Any) -> None:
        # Runs inside another request (maybe this connection's own acknowledgment) or on
        # a timer: what that request was holding is put back afterwards.
        outer = self._held, self._activate
        self._held = self._activate = None
        try:
            ticket.ref.close()
            conn = self.conn
            if conn.close_requested:
                return
            replies = self._run(waiting.header, waiting.message)
            if self._held is not None:  # it has to wait again
                self._held.sequence = waiting.sequence
            for reply in replies:
                if waiting.sequence is not None:
                    reply = self.signing.sign(reply, waiting.sequence)
                conn._send_unsolicited(reply, None)
        except Exception as exc:
            self.conn._fail_unsolicited(exc)
        finally:
            self._held, self._activate = outer

    # -- the break notification --------------------------------------------------------------
    def _notify_break(self: SMB1Core, holder: Holder, ref: OpenRef, to: int, ack: bool
                      ) -> None:
        conn = self.conn
        if conn.close_requested:
            return
        try:
            _session, op = ref.cookie
            level = 1 if to & R and self.client_capabilities & CAP_LEVEL_II_OPLOCKS else 0
            header = Header(i.SMB.SMB_COM_LOCKING_ANDX, tid=op.tree.id, pid=UNSOLICITED_ID,
                            mid=UNSOLICITED_ID)
            words = andx(struct.pack("<HBBIHH", op.file_id[0], LOCKING_ANDX_OPLOCK_RELEASE,
                                     level, 0, 0, 0))
            conn.log(f"smb {conn.address}: SMB1 break oplock "
                     f"{oplock_level(holder.state)} -> {level}"
                     f"{' (ack required)' if ack else ''}")
            conn._send_unsolicited(join_chain(header, [(i.SMB.SMB_COM_LOCKING_ANDX, words, b"")]),
                                   None)
        except Exception as exc:  # another connection's NT_CREATE is running this
            conn._fail_unsolicited(exc)

    # -- LOCKING_ANDX ------------------------------------------------------------------------
    def locking_andx(self: SMB1Core, block: Block, chain: Chain) -> Any:
        if len(block.words) < LOCKING_ANDX.size:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "LOCKING_ANDX words")
        fid, lock_type, new_level, _timeout, unlocks, locks = LOCKING_ANDX.unpack_from(
            block.words)
        op = self._op(chain, fid)
        if lock_type & LOCKING_ANDX_OPLOCK_RELEASE:
            table: LeaseTable | None = self.conn.config.leases
            if table is not None:
                try:
                    table.ack_oplock(op.lease, OPLOCK_II if new_level == 1 else OPLOCK_NONE)
                except StatusError:
                    pass  # no break outstanding on this FID: nothing released, no error
            if not unlocks and not locks:
                return None  # an oplock break acknowledgment has no response
        range_size = 20 if lock_type & LOCKING_ANDX_LARGE_FILES else 10
        if (unlocks + locks) * range_size > len(block.data):
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "LOCKING_ANDX ranges")
        if locks and op.lease is not None:
            op.lease.table.contend_write(op.lease)
        # Byte-range locks are granted without being enforced, as over SMB2.
        return andx(b""), b""
