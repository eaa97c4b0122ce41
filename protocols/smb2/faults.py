"""Faults on demand, the SMB side: where the connection asks the host's fault table
(``emulator.core.faults.FaultTable``, in ``SMBServerConfig.faults``) and what each action
does on the wire.

One question per request, asked in ``_dispatch`` once the session (and its signing key)
is known, so an injected status is answered exactly as a real error is: signed when the
request was signed or the session demands it, encrypted when the request was. SESSION_SETUP
asks where the logon is decided (the leg that completes it, the user known), so a status
there is a refused logon, logged as Windows logs it (4625), its slot given back.

Connection-level actions act on the frame's reply: ``drop`` (a clean close instead of the
reply), ``reset`` (TCP RST: the adapter aborts), ``truncate`` (half the reply, then a close),
``stall`` (no reply; the connection stays open), ``delay`` (the reply late, on the host's
clock), ``pending`` (an interim STATUS_PENDING async response as MS-SMB2 3.3.4.2, the request
run and answered after ``delay`` with the same AsyncId; SMB2 CANCEL ends it with
STATUS_CANCELLED, 3.3.5.16) and ``credits`` (no more than N credits granted). Every timer is
on the host's clock and cancelled when the connection goes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from impacket import nt_errors
from impacket import smb3structs as s2

from protocols.errors import StatusError
from protocols.smb2 import bodies, crypto
from protocols.smb2.framing import frame
from protocols.smb2.messages import (
    COMMAND_NAMES, ERROR_BODY, FLAGS_ASYNC_COMMAND, FLAGS_SERVER_TO_REDIR, FLAGS_SIGNED,
    HEADER_SIZE, Header, buffer_at,
)
from protocols.smb2.state import (
    STATUS_PENDING, ConnectionState, Disconnect, Request, SessionDeleted,
    STATUS_USER_SESSION_DELETED,
)

STATUS_CANCELLED = nt_errors.STATUS_CANCELLED
STATUS_NETWORK_SESSION_EXPIRED = 0xC000035C
# What an expired session may still do (MS-SMB2 3.3.5.2.9).
EXPIRED_MAY = frozenset({s2.SMB2_LOGOFF, s2.SMB2_CLOSE, s2.SMB2_LOCK})
# Actions that replace the frame's reply; the request is not run.
CUTS = ("drop", "reset", "stall")
# Never answered asynchronously: their async header would lose the TreeId/SessionId the
# client must learn (they are delayed instead).
NO_ASYNC = frozenset({s2.SMB2_NEGOTIATE, s2.SMB2_SESSION_SETUP, s2.SMB2_TREE_CONNECT})


@dataclass(eq=False)
class FaultPending:
    """A request answered STATUS_PENDING by a fault: it runs when ``timer`` fires."""

    async_id: int
    request: Request
    key: bytes | None
    timer: Any


class FaultHandlers(ConnectionState):
    _frame_fault: Any = None  # the connection-level fault of the frame being answered
    _frame_single = True  # the frame holds one request (pending may answer async)

    def _faults_armed(self) -> bool:
        table = self.config.faults
        return table is not None and table.armed("smb")

    def _ask_faults(self, request: Request, command: str | None = None,
                    user: str | None = None) -> Any:
        """The fault that fires on this request (counted), or None."""
        h = request.header
        session = request.session
        tree = session.trees.get(h.tree_id) if session is not None else None
        path = share = None
        if tree is not None:
            share = tree.name
        elif h.command == s2.SMB2_TREE_CONNECT:  # the share it asks for
            try:
                req = bodies.TREE_CONNECT.parse(request.message, HEADER_SIZE)
                unc = buffer_at(request.message, req.PathOffset, req.PathLength)
                share = unc.decode("utf-16-le", "replace").rstrip("\\").rsplit("\\", 1)[-1]
            except Exception:  # malformed: the handler says so
                share = None
        if h.command == s2.SMB2_CREATE:
            try:
                req = bodies.CREATE.parse(request.message, HEADER_SIZE)
                path = buffer_at(request.message, req.NameOffset,
                                 req.NameLength).decode("utf-16-le", "replace")
            except Exception:  # malformed: the handler says so
                path = None
        if user is None and session is not None and session.slot is not None:
            user = session.slot.user or None
        return self._match_fault(command or COMMAND_NAMES.get(h.command, "?"), user=user,
                                 share=share, path=path)

    def _match_fault(self, command: str, *, user: str | None = None, share: str | None = None,
                     path: str | None = None) -> Any:
        """The one question, SMB2 and SMB1 alike (SMB1 commands by their SMB2 names)."""
        return self.config.faults.match("smb", command, user=user, client=self.address,
                                        share=share, path=path)

    def _fault_at_logon(self, session: Any, user: str, workstation: str) -> Any:
        """Where a logon is decided (SMB2 and SMB1): a status fault refuses it (its slot
        given back, 4625 with that status' Sub Status); another fault is returned for the
        caller to act on."""
        if not self._faults_armed():
            return None
        fault = self._match_fault("SESSION_SETUP", user=user)
        if fault is None or fault.action != "status":
            return fault
        slot = session.slot
        slot.user, slot.client, slot.workstation = user, self.client_name, workstation
        self._end_session(session, "logon-refused", fault.status)
        raise StatusError(fault.status, f"fault {fault.id}: logon refused")

    def _share_gone(self, tree: Any) -> bool:
        """The tree's share was removed (Host.remove_share) or re-pointed."""
        return (tree.share is not None and self.config.shares.get(tree.name) is not tree.share
                and self.config.admin_shares.get(tree.name) is not tree.share)

    def _apply_request_fault(self, fault: Any, request: Request, response: Header,
                             key: bytes | None) -> tuple[Header, bytes, bytes | None] | None:
        """Act on a fired fault before the handler runs. Returns a response to send in
        place of the handler's (pending), or None to go on; raises StatusError (status)."""
        if fault.action == "status":
            raise StatusError(fault.status, f"fault {fault.id}")
        if fault.action == "credits":
            self._cap_credits(response, fault.credits)
            return None
        if (fault.action == "pending" and self._frame_single
                and request.header.command not in NO_ASYNC and request.session is not None):
            return self._go_pending(request, response, key, fault.delay)
        self._frame_fault = fault  # cuts, truncate, delay (and pending mid-compound)
        return None

    def _cap_credits(self, response: Header, most: int) -> None:
        if response.credits > most:
            self._outstanding_credits -= response.credits - most
            response.credits = most

    # -- the frame's reply ------------------------------------------------------------------
    def _send_frame(self, data: bytes) -> None:
        """Queue a framed reply, as the frame's fault (if any) says."""
        fault, self._frame_fault = self._frame_fault, None
        if fault is None:
            self._out += data
            return
        action = fault.action
        if action == "truncate":
            self._out += data[:max(1, len(data) // 2)]
            self._disconnect(f"fault {fault.id}: truncated reply")
        elif action in ("delay", "pending"):
            holder: list[Any] = []
            timer = self.config.clock.callLater(fault.delay, self._late_reply, data, holder)
            holder.append(timer)
            self._fault_timers.add(timer)
        else:
            self._cut(fault)

    def _cut(self, fault: Any) -> None:
        if fault.action == "drop":
            self._disconnect(f"fault {fault.id}: dropped")
        elif fault.action == "reset":
            self.abort_requested = True
            self._disconnect(f"fault {fault.id}: reset")
        else:  # stall: the request is never answered, the connection stays open
            self.log(f"smb {self.address}: fault {fault.id}: request stalled")

    def _late_reply(self, data: bytes, holder: list[Any]) -> None:
        self._fault_timers.discard(holder[0])
        if self.close_requested:
            return
        self._out += data
        if self.on_output is not None:
            self.on_output()

    # -- pending ------------------------------------------------------------------------------
    def _go_pending(self, request: Request, response: Header, key: bytes | None,
                    delay: float) -> tuple[Header, bytes, bytes | None]:
        async_id = self._next_file_id  # unique on this connection, never 0
        self._next_file_id += 1
        timer = self.config.clock.callLater(delay, self._finish_fault_pending, async_id)
        self._fault_pending[async_id] = FaultPending(async_id, request, key, timer)
        response.flags |= FLAGS_ASYNC_COMMAND
        response.process_id, response.tree_id = async_id & 0xFFFFFFFF, async_id >> 32
        response.status = STATUS_PENDING
        return response, ERROR_BODY, None  # an interim response is not signed (3.3.4.1.1)

    def _finish_fault_pending(self, async_id: int) -> None:
        pending = self._fault_pending.pop(async_id, None)
        if pending is None or self.close_requested:
            return
        request = pending.request
        session = request.session
        assert session is not None
        scratch = Header(request.header.command, message_id=request.header.message_id,
                         session_id=session.id, tree_id=request.header.tree_id)
        try:
            if self.sessions.get(session.id) is not session:
                raise SessionDeleted(None)
            status, body = self._handler_for(request.header.command)(self, request, scratch)
        except SessionDeleted:
            status, body = STATUS_USER_SESSION_DELETED, ERROR_BODY
        except StatusError as err:
            status, body = err.status, ERROR_BODY
        except Disconnect as exc:
            self._closed_from_outside(str(exc))
            return
        except Exception as exc:  # a bug costs this connection only
            self._closed_from_outside(f"internal error {type(exc).__name__}: {exc}")
            return
        self._async_final(pending, status, body)

    def _async_final(self, pending: FaultPending, status: int, body: bytes) -> None:
        request = pending.request
        session = request.session
        assert session is not None
        h = request.header
        header = Header(h.command, status=status, credit_charge=h.credit_charge,
                        flags=FLAGS_SERVER_TO_REDIR | FLAGS_ASYNC_COMMAND,
                        message_id=h.message_id, process_id=pending.async_id & 0xFFFFFFFF,
                        tree_id=pending.async_id >> 32, session_id=session.id)
        key = pending.key if self.sessions.get(session.id) is session else None
        if key is not None:
            header.flags |= FLAGS_SIGNED
        message = header.pack() + body
        if key is not None:
            message = crypto.sign(self.dialect or 0, key, message)
        if request.encrypted and session.keys is not None:
            message = crypto.encrypt(self.cipher, session.keys.encryption, session.id, message)
        self._out += frame(message)
        if self.on_output is not None:
            self.on_output()

    def _cancel_fault_pending(self, h: Header) -> bool:
        """SMB2 CANCEL of a request a fault keeps pending: it ends STATUS_CANCELLED and is
        never run."""
        for pending in list(self._fault_pending.values()):
            if h.flags & FLAGS_ASYNC_COMMAND:
                match = pending.async_id == h.process_id | h.tree_id << 32
            else:
                match = pending.request.header.message_id == h.message_id
            session = pending.request.session
            if not match or session is None or session.id != h.session_id:
                continue
            del self._fault_pending[pending.async_id]
            if pending.timer.active():
                pending.timer.cancel()
            self._async_final(pending, STATUS_CANCELLED, ERROR_BODY)
            return True
        return False

    def _end_faults(self) -> None:
        """The connection is gone: no fault timer of it stays on the clock."""
        for timer in self._fault_timers:
            if timer.active():
                timer.cancel()
        self._fault_timers.clear()
        for pending in self._fault_pending.values():
            if pending.timer.active():
                pending.timer.cancel()
        self._fault_pending.clear()

    # -- session faults -----------------------------------------------------------------------
    def _check_expired(self, request: Request) -> None:
        session = request.session
        if (session is not None and session.expired
                and request.header.command not in EXPIRED_MAY):
            raise StatusError(STATUS_NETWORK_SESSION_EXPIRED, "session expired")

    def _handler_for(self, command: int) -> Any:
        raise NotImplementedError  # the connection has the table
