"""The SMB2/3 server connection: a sans-IO state machine.

Bytes go in with ``receive_data``; response bytes come out of ``data_to_send``;
``close_requested`` tells the adapter to drop the transport. Nothing here
touches a socket or a reactor. Session slots are asked of the session gate
(the engine): this module never counts sessions itself.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from impacket import smb3structs as s2

from protocols.errors import StatusError
from protocols.smb1.route import smb1_core_for
from protocols.smb2 import crypto
from protocols.smb2.faults import CUTS, FaultHandlers
from protocols.smb2.files import FileHandlers
from protocols.smb2.framing import (
    NEGATIVE_RESPONSE, POSITIVE_RESPONSE, FramingError, NotInSession, SessionRequest, frame,
)
from protocols.smb2.messages import (
    ERROR_BODY, FLAGS_RELATED_OPERATIONS, FLAGS_SERVER_TO_REDIR, FLAGS_SIGNED, HEADER_SIZE,
    SMB1_PROTOCOL_ID, TRANSFORM_PROTOCOL_ID, Header, join_compound, split_compound,
)
from protocols.smb2.negotiate import NegotiateHandlers
from protocols.smb2.session_setup import SessionSetupHandlers
from protocols.smb2.state import (
    ANY_SESSION, ANY_TREE, MAX_CREDITS, STATUS_ACCESS_DENIED, STATUS_INVALID_PARAMETER,
    STATUS_NETWORK_NAME_DELETED, STATUS_PENDING, STATUS_SUCCESS, STATUS_USER_SESSION_DELETED,
    Disconnect, Request,
    SessionDeleted, SMBServerConfig, SMBSession,
)

__all__ = ["SMB2ServerConnection", "SMBServerConfig"]


class SMB2ServerConnection(NegotiateHandlers, SessionSetupHandlers, FileHandlers, FaultHandlers):
    # -- the sans-IO surface ---------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if self.close_requested:
            return
        try:
            items = self._decoder.feed(data)
        except FramingError as exc:
            self._disconnect(f"framing: {exc}")
            return
        for item in items:
            if self.close_requested:
                return
            if isinstance(item, SessionRequest):
                if item.valid:
                    self.client_name = item.calling or self.client_name
                    self._out += POSITIVE_RESPONSE
                else:
                    self._out += NEGATIVE_RESPONSE
                    self._disconnect("malformed NetBIOS SESSION REQUEST")
                continue
            if isinstance(item, NotInSession):
                self._out += NEGATIVE_RESPONSE
                self._disconnect("NetBIOS session message before the SESSION REQUEST")
                continue
            try:
                self._handle_frame(item.payload)
            except Disconnect as exc:
                self._disconnect(str(exc))
            except Exception as exc:  # a bug must cost one connection, never the server
                self._disconnect(f"internal error {type(exc).__name__}: {exc}")
        self._after_frames()

    def _after_frames(self) -> None:
        """Before the first valid session: the partial frame counts against the shared
        budget. Once a session is valid the post-logon frame cap applies."""
        if self.authenticated or self.close_requested:
            return
        if any(s.valid for s in self.sessions.values()):
            self.authenticated = True
            self._decoder.max_payload = self.config.max_frame
            self._end_preauth()
        elif self.config.preauth_budget is not None:
            self.config.preauth_budget.update(self, self._decoder.buffered)

    def data_to_send(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    def connection_lost(self) -> None:
        """The transport is gone: every session of this connection gives its slot back."""
        self._end_preauth()
        self._end_faults()
        for session in list(self.sessions.values()):
            self._end_session(session, "connection-closed")
        self._release_caching()

    def _handle_frame(self, payload: bytes) -> None:
        magic = payload[:4]
        if self.smb1 is None and magic == SMB1_PROTOCOL_ID:
            self.smb1 = smb1_core_for(self, payload)
            if self.smb1 is None:
                self._out += frame(self._smb1_negotiate(payload))
                return
        if self.smb1 is not None:  # protocols/smb1 owns this connection
            if magic != SMB1_PROTOCOL_ID:
                raise Disconnect("an SMB2 message on an SMB1 connection")
            self._frame_fault = None
            replies = self.smb1.handle(payload)
            if self._frame_fault is not None and self._frame_fault.action in CUTS:
                self._cut(self._frame_fault)  # a fault said drop, reset or stall
                replies = []
            for reply in replies:
                self._send_frame(frame(reply))  # truncate or delay the first (faults.py)
            self._frame_fault = None
            return
        if not self.config.smb2:
            raise Disconnect("SMB2 is not spoken here (an SMB1-only host)")
        session = None
        encrypted = magic == TRANSFORM_PROTOCOL_ID
        if encrypted:
            session, payload = self._decrypt(payload)
        try:
            # No more requests than the client holds credits for: before NEGOTIATE, one.
            messages = split_compound(payload, max(1, self._outstanding_credits))
        except ValueError as exc:
            raise Disconnect(str(exc)) from None
        responses: list[bytes] = []
        keys: list[bytes | None] = []
        previous: Header | None = None
        previous_status = STATUS_SUCCESS
        self._chain_file_id = None
        self._frame_fault, self._frame_single = None, len(messages) == 1
        for message in messages:
            try:
                header = Header.parse(message)
            except ValueError as exc:
                raise Disconnect(str(exc)) from None
            if header.flags & FLAGS_SERVER_TO_REDIR:
                raise Disconnect("a response where a request belongs")
            inherited_status = STATUS_SUCCESS
            if header.related and previous is not None:
                # Related operations take the previous request's ids, and its failure
                # (MS-SMB2 3.3.5.2.7.2).
                if header.session_id == ANY_SESSION:
                    header.session_id = previous.session_id
                if header.tree_id == ANY_TREE:
                    header.tree_id = previous.tree_id
                inherited_status = previous_status
            result = self._dispatch(Request(header, message, encrypted), inherited_status)
            if self._frame_fault is not None and self._frame_fault.action in CUTS:
                self._cut(self._frame_fault)  # drop, reset, stall: nothing is answered
                self._frame_fault = None
                return
            if result is None:  # CANCEL has no response
                continue
            response, body, key = result
            previous, previous_status = header, response.status
            responses.append(response.pack() + body)
            keys.append(key)
        if not responses:
            self._frame_fault = None
            return
        signed = [crypto.sign(self.dialect or 0, key, msg) if key is not None else msg
                  for msg, key in zip(join_compound(responses), keys, strict=True)]
        reply = b"".join(signed)
        if session is not None and session.keys is not None:
            reply = crypto.encrypt(self.cipher, session.keys.encryption, session.id, reply)
        self._send_frame(frame(reply))  # a fault may cut, truncate or delay it (faults.py)

    def _decrypt(self, payload: bytes) -> tuple[SMBSession, bytes]:
        try:
            session_id = crypto.parse_transform_session_id(payload)
            session = self.sessions.get(session_id)
            if session is None or session.keys is None or not session.keys.decryption:
                raise Disconnect("encrypted message for an unknown session")
            return session, crypto.decrypt(self.cipher, session.keys.decryption, payload)
        except crypto.DecryptError as exc:
            raise Disconnect(f"undecryptable message: {exc}") from None

    # -- one request ----------------------------------------------------------------------
    def _dispatch(self, request: Request, inherited_status: int
                  ) -> tuple[Header, bytes, bytes | None] | None:
        """Run one request; returns its response header, body and signing key (or None)."""
        h = request.header
        if h.command == s2.SMB2_CANCEL:
            if not self._cancel_fault_pending(h):  # a request a fault keeps pending
                self._cancel_pending(h)  # a CREATE waiting for a break (oplocks.py)
            return None
        response = Header(h.command, credit_charge=h.credit_charge, message_id=h.message_id,
                          process_id=h.process_id, tree_id=h.tree_id, session_id=h.session_id,
                          flags=FLAGS_SERVER_TO_REDIR | (h.flags & FLAGS_RELATED_OPERATIONS))
        # Credits first: NEGOTIATE and SESSION_SETUP hash their exact response header.
        response.credits = self._grant_credits(h)
        handler = _HANDLERS.get(h.command)
        key: bytes | None = None
        try:
            if (self.dialect is None) != (h.command == s2.SMB2_NEGOTIATE):
                raise Disconnect("NEGOTIATE must come first, and once (3.3.5.3.1)")
            if handler is None:
                raise StatusError(STATUS_INVALID_PARAMETER, f"command 0x{h.command:x}")
            _check_structure_size(h.command, request.message)
            if not _SESSIONLESS.get(h.command, lambda hdr: False)(h):
                request.session = self._check_session(request)
                key = self._response_key(request)  # before the handler: LOGOFF ends it
                self._check_expired(request)
                self._check_tree_alive(request)
            if inherited_status:
                raise StatusError(inherited_status, "previous related request failed")
            if h.command != s2.SMB2_SESSION_SETUP and self._faults_armed():
                fault = self._ask_faults(request)  # SESSION_SETUP asks at its logon
                if fault is not None:
                    early = self._apply_request_fault(fault, request, response, key)
                    if early is not None or self._frame_fault is not None and \
                            self._frame_fault.action in CUTS:
                        return early
            status, body = handler(self, request, response)
            if status == STATUS_PENDING:
                key = None  # an interim response is not signed (3.3.4.1.1)
            if h.command == s2.SMB2_SESSION_SETUP:
                key = self._session_setup_key(request, status)
        except SessionDeleted as deleted:
            status, body, key = STATUS_USER_SESSION_DELETED, ERROR_BODY, deleted.key
        except StatusError as err:
            status, body = err.status, ERROR_BODY
        response.status = status
        if key is not None:
            response.flags |= FLAGS_SIGNED
        if request.session is not None and request.session.valid:
            self.config.gate.touch(request.session.slot)
        return response, body, key

    def _handler_for(self, command: int) -> Callable[..., tuple[int, bytes]]:
        return _HANDLERS[command]

    def _check_tree_alive(self, request: Request) -> None:
        """A tree whose share was removed (Host.remove_share) or re-pointed: every request
        on it is STATUS_NETWORK_NAME_DELETED, TREE_DISCONNECT aside."""
        session, h = request.session, request.header
        tree = session.trees.get(h.tree_id) if session is not None else None
        if tree is None or h.command in _TREE_ANY:
            return
        if self._share_gone(tree):
            raise StatusError(STATUS_NETWORK_NAME_DELETED, f"share {tree.name} was removed")

    def _check_session(self, request: Request) -> SMBSession:
        session = self.sessions.get(request.header.session_id)
        if session is None:
            raise SessionDeleted(self._deleted_keys.get(request.header.session_id))
        if not session.valid:
            raise StatusError(STATUS_ACCESS_DENIED, "session setup not finished")
        key = session.signing_key
        if not request.encrypted and key is not None:
            if request.header.signed:
                if not crypto.verify(self.dialect or 0, key, request.message):
                    raise StatusError(STATUS_ACCESS_DENIED, "bad signature")
            elif session.signing_required:
                raise StatusError(STATUS_ACCESS_DENIED, "unsigned request on a signing session")
        if session.encrypt_data and not request.encrypted:
            raise StatusError(STATUS_ACCESS_DENIED, "unencrypted request on an encrypted session")
        return session

    def _response_key(self, request: Request) -> bytes | None:
        """Sign a response when its request was signed or the session demands it (3.3.4.1.1)."""
        session = request.session
        if session is None or request.encrypted or session.signing_key is None:
            return None
        if request.header.signed or session.signing_required:
            return session.signing_key
        return None

    def _grant_credits(self, h: Header) -> int:
        charge = max(1, h.credit_charge)
        self._outstanding_credits = max(0, self._outstanding_credits - charge)
        grant = max(1, min(h.credits, MAX_CREDITS - self._outstanding_credits))
        self._outstanding_credits += grant
        return grant


# Request StructureSize per command (MS-SMB2 2.2); OPLOCK_BREAK has two forms.
_REQUEST_SIZES: dict[int, tuple[int, ...]] = {
    s2.SMB2_NEGOTIATE: (36,), s2.SMB2_SESSION_SETUP: (25,), s2.SMB2_LOGOFF: (4,),
    s2.SMB2_TREE_CONNECT: (9,), s2.SMB2_TREE_DISCONNECT: (4,), s2.SMB2_CREATE: (57,),
    s2.SMB2_CLOSE: (24,), s2.SMB2_FLUSH: (24,), s2.SMB2_READ: (49,), s2.SMB2_WRITE: (49,),
    s2.SMB2_OPLOCK_BREAK: (24, 36), s2.SMB2_LOCK: (48,), s2.SMB2_IOCTL: (57,),
    s2.SMB2_CANCEL: (4,), s2.SMB2_ECHO: (4,), s2.SMB2_QUERY_DIRECTORY: (33,),
    s2.SMB2_CHANGE_NOTIFY: (32,), s2.SMB2_QUERY_INFO: (41,), s2.SMB2_SET_INFO: (33,),
}


def _check_structure_size(command: int, message: bytes) -> None:
    """Windows fails a request whose StructureSize is wrong or whose fixed part is cut short."""
    body_length = len(message) - HEADER_SIZE
    if body_length < 2:
        raise StatusError(STATUS_INVALID_PARAMETER, "no body")
    size = struct.unpack_from("<H", message, HEADER_SIZE)[0]
    if size not in _REQUEST_SIZES.get(command, (size,)) or body_length < size & ~1:
        raise StatusError(STATUS_INVALID_PARAMETER, f"StructureSize {size}")


# A tree whose share went may still be disconnected; TREE_CONNECT's TreeId means nothing.
_TREE_ANY = frozenset({s2.SMB2_TREE_DISCONNECT, s2.SMB2_TREE_CONNECT})

# Commands that may run without an established session.
_SESSIONLESS: dict[int, Callable[[Header], bool]] = {
    s2.SMB2_NEGOTIATE: lambda h: True,
    s2.SMB2_SESSION_SETUP: lambda h: True,
    s2.SMB2_ECHO: lambda h: h.session_id == 0,
}

_HANDLERS: dict[int, Callable[[SMB2ServerConnection, Request, Header], tuple[int, bytes]]] = {
    s2.SMB2_NEGOTIATE: SMB2ServerConnection._negotiate,
    s2.SMB2_SESSION_SETUP: SMB2ServerConnection._session_setup,
    s2.SMB2_LOGOFF: SMB2ServerConnection._logoff,
    s2.SMB2_TREE_CONNECT: SMB2ServerConnection._tree_connect,
    s2.SMB2_TREE_DISCONNECT: SMB2ServerConnection._tree_disconnect,
    s2.SMB2_CREATE: SMB2ServerConnection._create,
    s2.SMB2_CLOSE: SMB2ServerConnection._close,
    s2.SMB2_FLUSH: SMB2ServerConnection._flush,
    s2.SMB2_READ: SMB2ServerConnection._read,
    s2.SMB2_WRITE: SMB2ServerConnection._write,
    s2.SMB2_LOCK: SMB2ServerConnection._lock,
    s2.SMB2_OPLOCK_BREAK: SMB2ServerConnection._oplock_break,
    s2.SMB2_IOCTL: SMB2ServerConnection._ioctl,
    s2.SMB2_ECHO: SMB2ServerConnection._echo,
    s2.SMB2_QUERY_DIRECTORY: SMB2ServerConnection._query_directory,
    s2.SMB2_CHANGE_NOTIFY: SMB2ServerConnection._change_notify,
    s2.SMB2_QUERY_INFO: SMB2ServerConnection._query_info,
    s2.SMB2_SET_INFO: SMB2ServerConnection._set_info,
}
