"""The SMB2/3 server connection: a sans-IO state machine.

Bytes go in with ``receive_data``; response bytes come out of ``data_to_send``;
``close_requested`` tells the adapter to drop the transport. Nothing here
touches a socket or a reactor. Session slots are asked of the session gate
(the engine): this module never counts sessions itself.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Mapping

from impacket import nt_errors
from impacket import smb3structs as s2

from protocols.auth.ntlm import AuthFailure, NTLMAcceptor
from protocols.auth.spnego import SpnegoAcceptor, initial_token
from protocols.dcerpc.pipes import Caller, PipeService
from protocols.errors import StatusError
from protocols.sessions import SessionGate
from protocols.smb2 import bodies, crypto
from protocols.smb2.pipe import PipeHandle
from protocols.smb2.framing import (
    POSITIVE_RESPONSE,
    FrameDecoder,
    FramingError,
    SessionRequest,
    frame,
)
from protocols.wintime import filetime_from_seconds
from protocols.smb2.messages import (
    ERROR_BODY,
    FLAGS_RELATED_OPERATIONS,
    FLAGS_SERVER_TO_REDIR,
    FLAGS_SIGNED,
    HEADER_SIZE,
    SMB1_PROTOCOL_ID,
    TRANSFORM_PROTOCOL_ID,
    Header,
    buffer_at,
    join_compound,
    split_compound,
)

STATUS_SUCCESS = 0
STATUS_PENDING = 0x00000103
STATUS_MORE_PROCESSING_REQUIRED = nt_errors.STATUS_MORE_PROCESSING_REQUIRED
STATUS_BUFFER_OVERFLOW = nt_errors.STATUS_BUFFER_OVERFLOW
STATUS_INVALID_PARAMETER = nt_errors.STATUS_INVALID_PARAMETER
STATUS_ACCESS_DENIED = nt_errors.STATUS_ACCESS_DENIED
STATUS_NOT_SUPPORTED = nt_errors.STATUS_NOT_SUPPORTED
STATUS_USER_SESSION_DELETED = nt_errors.STATUS_USER_SESSION_DELETED
STATUS_NETWORK_NAME_DELETED = nt_errors.STATUS_NETWORK_NAME_DELETED
STATUS_FILE_CLOSED = nt_errors.STATUS_FILE_CLOSED
STATUS_BAD_NETWORK_NAME = nt_errors.STATUS_BAD_NETWORK_NAME
STATUS_OBJECT_NAME_NOT_FOUND = nt_errors.STATUS_OBJECT_NAME_NOT_FOUND
STATUS_NOT_FOUND = nt_errors.STATUS_NOT_FOUND
STATUS_INVALID_DEVICE_REQUEST = nt_errors.STATUS_INVALID_DEVICE_REQUEST
STATUS_END_OF_FILE = nt_errors.STATUS_END_OF_FILE
STATUS_REQUEST_NOT_ACCEPTED = nt_errors.STATUS_REQUEST_NOT_ACCEPTED

# Warnings (severity 2) still carry a body: the data that fitted.
WARNING_WITH_DATA = {STATUS_BUFFER_OVERFLOW}

FSCTL_DFS_GET_REFERRALS = 0x00060194
FSCTL_PIPE_TRANSCEIVE = 0x0011C017
FSCTL_VALIDATE_NEGOTIATE_INFO = 0x00140204

CAP_DFS = s2.SMB2_GLOBAL_CAP_DFS
CAP_LARGE_MTU = s2.SMB2_GLOBAL_CAP_LARGE_MTU
CAP_ENCRYPTION = s2.SMB2_GLOBAL_CAP_ENCRYPTION
SIGNING_ENABLED = s2.SMB2_NEGOTIATE_SIGNING_ENABLED
SIGNING_REQUIRED = s2.SMB2_NEGOTIATE_SIGNING_REQUIRED
SESSION_FLAG_IS_GUEST = 0x1
SESSION_FLAG_IS_NULL = 0x2
SESSION_FLAG_ENCRYPT_DATA = 0x4
SESSION_SETUP_FLAG_BINDING = 0x1

DIALECT_WILDCARD = 0x02FF
DIALECTS = (0x0202, 0x0210, 0x0300, 0x0302, 0x0311)
SHA_512 = 0x0001
# Windows' own order of preference when the client offers several ciphers.
CIPHER_PREFERENCE = (crypto.AES_128_GCM, crypto.AES_128_CCM, crypto.AES_256_GCM,
                     crypto.AES_256_CCM)

FILE_ID_ANY = (0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
ANY_SESSION = 0xFFFFFFFFFFFFFFFF
ANY_TREE = 0xFFFFFFFF
FULL_ACCESS = 0x001F01FF
SHARE_FLAG_NO_CACHING = 0x30
MAX_CREDITS = 8192

# The session id's high bits, so ids look like Windows' and never collide with 0.
SESSION_ID_BASE = 0x0000_0400_0000_0000


@dataclass
class SMBServerConfig:
    """What the SMB core needs to know about the host it plays."""

    gate: SessionGate
    lookup_password: Callable[[str], str | None]
    shares: Mapping[str, Any]  # lower-case share name -> fs.DiskShare
    now: Callable[[], float]
    max_dialect: int = 0x0311
    server_guid: bytes = field(default_factory=lambda: os.urandom(16))
    signing_required: bool = False
    encrypt_data: bool = False
    netbios_name: str = "EMULATOR"
    netbios_domain: str = "WORKGROUP"
    dns_name: str = "emulator"
    dns_domain: str = ""
    allow_anonymous: bool = True
    max_transact: int = 8 * 1024 * 1024
    pipes: PipeService | None = None  # named pipes on IPC$ (DCE/RPC); None: no pipe exists

    @property
    def max_frame(self) -> int:
        # A maximal WRITE plus its header, body and a transform header, with room to spare.
        return self.max_transact + 64 * 1024


@dataclass
class Tree:
    id: int
    name: str
    share: Any | None  # None for IPC$


@dataclass
class Open:
    file_id: tuple[int, int]
    tree: Tree
    handle: Any  # fs.OpenFile


@dataclass
class SMBSession:
    id: int
    slot: Any  # the engine's session record
    auth: SpnegoAcceptor
    preauth: crypto.PreauthHash | None
    valid: bool = False
    anonymous: bool = False
    signing_required: bool = False
    encrypt_data: bool = False
    keys: crypto.SessionKeys | None = None
    trees: dict[int, Tree] = field(default_factory=dict)
    opens: dict[tuple[int, int], Open] = field(default_factory=dict)

    @property
    def signing_key(self) -> bytes | None:
        return self.keys.signing if self.keys and not self.anonymous else None


@dataclass
class Request:
    header: Header
    message: bytes  # the whole SMB2 message (header + body)
    encrypted: bool
    session: SMBSession | None = None

    @property
    def body(self) -> bytes:
        return self.message[HEADER_SIZE:]


class SMB2ServerConnection:
    def __init__(self, config: SMBServerConfig, *, address: str, netbios: bool = False,
                 log: Callable[[str], None] = lambda line: None) -> None:
        self.config = config
        self.address = address
        self.log = log
        self._decoder = FrameDecoder(netbios=netbios, max_payload=config.max_frame)
        self._out = bytearray()
        self.close_requested = False
        self.dialect: int | None = None
        self._client: dict[str, Any] = {}
        self.cipher = 0
        self.preauth: crypto.PreauthHash | None = None
        self.sessions: dict[int, SMBSession] = {}
        self._next_tree_id = 1
        self._next_file_id = 1
        self._outstanding_credits = 1
        self._chain_file_id: tuple[int, int] | None = None  # the CREATE of this compound
        self._deleted_keys: dict[int, bytes] = {}  # sessions the engine ended -> signing key
        config.gate.note_connection("smb")

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
                self._out += POSITIVE_RESPONSE
                continue
            try:
                self._handle_frame(item.payload)
            except _Disconnect as exc:
                self._disconnect(str(exc))
            except Exception as exc:  # a bug must cost one connection, never the server
                self._disconnect(f"internal error {type(exc).__name__}: {exc}")

    def data_to_send(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    def connection_lost(self) -> None:
        """The transport is gone: every session of this connection gives its slot back."""
        for session in list(self.sessions.values()):
            self._end_session(session, "connection-closed")

    # -- frames ---------------------------------------------------------------------
    def _disconnect(self, why: str) -> None:
        self.log(f"smb {self.address}: closing connection: {why}")
        self.close_requested = True

    def _handle_frame(self, payload: bytes) -> None:
        magic = payload[:4]
        if magic == SMB1_PROTOCOL_ID:
            self._out += frame(self._smb1_negotiate(payload))
            return
        session = None
        encrypted = magic == TRANSFORM_PROTOCOL_ID
        if encrypted:
            session, payload = self._decrypt(payload)
        try:
            messages = split_compound(payload)
        except ValueError as exc:
            raise _Disconnect(str(exc)) from None
        responses: list[bytes] = []
        keys: list[bytes | None] = []
        previous: Header | None = None
        previous_status = STATUS_SUCCESS
        self._chain_file_id = None
        for message in messages:
            try:
                header = Header.parse(message)
            except ValueError as exc:
                raise _Disconnect(str(exc)) from None
            if header.flags & FLAGS_SERVER_TO_REDIR:
                raise _Disconnect("a response where a request belongs")
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
            if result is None:  # CANCEL has no response
                continue
            response, body, key = result
            previous, previous_status = header, response.status
            responses.append(response.pack() + body)
            keys.append(key)
        if not responses:
            return
        signed = [crypto.sign(self.dialect or 0, key, msg) if key is not None else msg
                  for msg, key in zip(join_compound(responses), keys, strict=True)]
        reply = b"".join(signed)
        if session is not None and session.keys is not None:
            reply = crypto.encrypt(self.cipher, session.keys.encryption, session.id, reply)
        self._out += frame(reply)

    def _decrypt(self, payload: bytes) -> tuple[SMBSession, bytes]:
        try:
            session_id = crypto.parse_transform_session_id(payload)
            session = self.sessions.get(session_id)
            if session is None or session.keys is None or not session.keys.decryption:
                raise _Disconnect("encrypted message for an unknown session")
            return session, crypto.decrypt(self.cipher, session.keys.decryption, payload)
        except crypto.DecryptError as exc:
            raise _Disconnect(f"undecryptable message: {exc}") from None

    # -- one request ----------------------------------------------------------------------
    def _dispatch(self, request: Request, inherited_status: int
                  ) -> tuple[Header, bytes, bytes | None] | None:
        """Run one request; returns its response header, body and signing key (or None)."""
        h = request.header
        if h.command == s2.SMB2_CANCEL:
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
                raise _Disconnect("NEGOTIATE must come first, and once (3.3.5.3.1)")
            if handler is None:
                raise StatusError(STATUS_INVALID_PARAMETER, f"command 0x{h.command:x}")
            _check_structure_size(h.command, request.message)
            if not _SESSIONLESS.get(h.command, lambda hdr: False)(h):
                request.session = self._check_session(request)
                key = self._response_key(request)  # before the handler: LOGOFF ends it
            if inherited_status:
                raise StatusError(inherited_status, "previous related request failed")
            status, body = handler(self, request, response)
            if h.command == s2.SMB2_SESSION_SETUP:
                key = self._session_setup_key(request, status)
        except _SessionDeleted as deleted:
            status, body, key = STATUS_USER_SESSION_DELETED, ERROR_BODY, deleted.key
        except StatusError as err:
            status, body = err.status, ERROR_BODY
        response.status = status
        if key is not None:
            response.flags |= FLAGS_SIGNED
        if request.session is not None and request.session.valid:
            self.config.gate.touch(request.session.slot)
        return response, body, key

    def _check_session(self, request: Request) -> SMBSession:
        session = self.sessions.get(request.header.session_id)
        if session is None:
            raise _SessionDeleted(self._deleted_keys.get(request.header.session_id))
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

    def _tree(self, request: Request) -> Tree:
        assert request.session is not None
        tree = request.session.trees.get(request.header.tree_id)
        if tree is None:
            raise StatusError(STATUS_NETWORK_NAME_DELETED, "no such tree")
        return tree

    def _open(self, request: Request, file_id: Any) -> Open:
        """The open a request names (its body's FileId fields), or the chain's CREATE."""
        assert request.session is not None
        key = (file_id.FileIdPersistent, file_id.FileIdVolatile)
        if key == FILE_ID_ANY and request.header.related and self._chain_file_id is not None:
            key = self._chain_file_id
        op = request.session.opens.get(key)
        if op is None or op.tree.id != request.header.tree_id:
            raise StatusError(STATUS_FILE_CLOSED, "no such open")
        return op

    # -- SMB1 multi-protocol negotiate ---------------------------------------------------------
    def _smb1_negotiate(self, payload: bytes) -> bytes:
        """Answer an SMB1 NEGOTIATE that offers SMB2 with an SMB2 NEGOTIATE response (3.3.5.3)."""
        if self.dialect is not None or len(payload) < 35 or payload[4] != 0x72:
            raise _Disconnect("SMB1 is not spoken here")
        byte_count = struct.unpack_from("<H", payload, 33)[0]
        names = payload[35:35 + byte_count].split(b"\x02")
        offered = {n.rstrip(b"\0") for n in names if n}
        if b"SMB 2.???" in offered and self.config.max_dialect > 0x0202:
            dialect = DIALECT_WILDCARD
        elif b"SMB 2.002" in offered or b"SMB 2.???" in offered:
            dialect = 0x0202
        else:
            raise _Disconnect("SMB1-only client")
        if dialect == 0x0202:
            self.dialect = dialect
        self._client = {"capabilities": 0, "guid": b"\0" * 16, "security_mode": 0,
                        "dialects": [dialect]}
        header = Header(s2.SMB2_NEGOTIATE, credits=1, flags=FLAGS_SERVER_TO_REDIR)
        return header.pack() + self._negotiate_body(dialect, [])

    # -- command handlers: each returns (status, body) or raises StatusError -------------------
    def _negotiate(self, request: Request, response: Header) -> tuple[int, bytes]:
        req = bodies.NEGOTIATE.parse(request.message, HEADER_SIZE)
        dialects_end = bodies.NEGOTIATE.size + 2 * req.DialectCount
        if not req.DialectCount or len(request.body) < dialects_end:
            raise StatusError(STATUS_INVALID_PARAMETER, "no dialects")
        offered = list(struct.unpack(f"<{req.DialectCount}H",
                                     request.body[bodies.NEGOTIATE.size:dialects_end]))
        common = [d for d in DIALECTS if d in offered and d <= self.config.max_dialect]
        if not common:
            self.close_requested = True  # Windows answers, then drops the connection
            raise StatusError(STATUS_NOT_SUPPORTED, "no common dialect")
        dialect = max(common)
        contexts: list[tuple[int, bytes]] = []
        if dialect == 0x0311:
            contexts = self._negotiate_contexts(request)
            self.preauth = crypto.PreauthHash()
            self.preauth.update(request.message)
        elif dialect in (0x0300, 0x0302) and req.Capabilities & CAP_ENCRYPTION:
            self.cipher = crypto.AES_128_CCM  # the only cipher before 3.1.1
        self.dialect = dialect
        self._client = {"capabilities": req.Capabilities, "guid": req.ClientGuid,
                        "security_mode": req.SecurityMode, "dialects": offered}
        body = self._negotiate_body(dialect, contexts)
        if self.preauth is not None:
            self.preauth.update(response.pack() + body)
        return STATUS_SUCCESS, body

    def _negotiate_contexts(self, request: Request) -> list[tuple[int, bytes]]:
        offset, count = struct.unpack_from("<IH", request.body, 28)
        pos, seen_preauth, ciphers = offset, False, None
        for _ in range(count):
            pos += -pos % 8
            ctx_type, length = struct.unpack_from("<HH", buffer_at(request.message, pos, 8))
            data = buffer_at(request.message, pos + 8, length)
            try:  # counts that overrun the context's DataLength: a malformed context
                if ctx_type == s2.SMB2_PREAUTH_INTEGRITY_CAPABILITIES:
                    algs_count = struct.unpack_from("<H", data)[0]
                    algs = struct.unpack_from(f"<{algs_count}H", data, 4)
                    seen_preauth = SHA_512 in algs
                elif ctx_type == s2.SMB2_ENCRYPTION_CAPABILITIES:
                    n = struct.unpack_from("<H", data)[0]
                    ciphers = struct.unpack_from(f"<{n}H", data, 2)
            except struct.error:
                raise StatusError(STATUS_INVALID_PARAMETER,
                                  f"negotiate context 0x{ctx_type:x} too short") from None
            pos += 8 + length
        if not seen_preauth:
            raise StatusError(STATUS_INVALID_PARAMETER, "3.1.1 without SHA-512 preauth")
        salt = os.urandom(32)
        out = [(s2.SMB2_PREAUTH_INTEGRITY_CAPABILITIES,
                struct.pack("<HHH", 1, len(salt), SHA_512) + salt)]
        if ciphers is not None:
            self.cipher = next((c for c in CIPHER_PREFERENCE if c in ciphers), 0)
            out.append((s2.SMB2_ENCRYPTION_CAPABILITIES, struct.pack("<HH", 1, self.cipher)))
        return out

    def _capabilities(self, dialect: int) -> int:
        caps = CAP_DFS
        if dialect != 0x0202:
            caps |= CAP_LARGE_MTU
        if dialect in (0x0300, 0x0302):
            caps |= CAP_ENCRYPTION
        return caps

    def _security_mode(self) -> int:
        return SIGNING_ENABLED | (SIGNING_REQUIRED if self.config.signing_required else 0)

    def _negotiate_body(self, dialect: int, contexts: list[tuple[int, bytes]]) -> bytes:
        token = initial_token()
        size = 65536 if dialect in (0x0202, DIALECT_WILDCARD) else self.config.max_transact
        token_offset = HEADER_SIZE + bodies.NEGOTIATE_RESPONSE.size
        padding = b"\0" * (-(token_offset + len(token)) % 8) if contexts else b""
        packed = []
        for i, (ctx_type, data) in enumerate(contexts):
            ctx = struct.pack("<HHI", ctx_type, len(data), 0) + data
            if i < len(contexts) - 1:  # contexts start 8-byte aligned; the last is not padded
                ctx += b"\0" * (-len(ctx) % 8)
            packed.append(ctx)
        fixed = bodies.NEGOTIATE_RESPONSE.pack(
            SecurityMode=self._security_mode(), DialectRevision=dialect,
            NegotiateContextCount=len(contexts), ServerGuid=self.config.server_guid,
            Capabilities=self._capabilities(dialect), MaxTransactSize=size, MaxReadSize=size,
            MaxWriteSize=size, SystemTime=filetime_from_seconds(self.config.now()),
            SecurityBufferOffset=token_offset, SecurityBufferLength=len(token),
            NegotiateContextOffset=token_offset + len(token) + len(padding) if contexts else 0)
        return fixed + token + padding + b"".join(packed)

    def _session_setup(self, request: Request, response: Header) -> tuple[int, bytes]:
        req = bodies.SESSION_SETUP.parse(request.message, HEADER_SIZE)
        token = buffer_at(request.message, req.SecurityBufferOffset, req.SecurityBufferLength)
        if req.Flags & SESSION_SETUP_FLAG_BINDING:
            # No multichannel here, so no binding (3.3.5.5 step 3).
            raise StatusError(STATUS_REQUEST_NOT_ACCEPTED, "session binding")
        session = self.sessions.get(request.header.session_id)
        if request.header.session_id == 0:
            session = self._new_session()
        elif session is None or session.valid:
            # Re-authentication of a live session is not offered; an unknown id is deleted.
            raise StatusError(STATUS_USER_SESSION_DELETED, "no session in progress")
        request.session = session
        response.session_id = session.id
        if session.preauth is not None:
            session.preauth.update(request.message)
        try:
            step = session.auth.step(token)
        except AuthFailure as failure:
            self._end_session(session, "auth-failed", failure.status)
            raise StatusError(failure.status, "authentication failed") from None
        if not step.complete:
            data = _session_setup_body(0, step.token)
            if session.preauth is not None:
                response.status = STATUS_MORE_PROCESSING_REQUIRED
                session.preauth.update(response.pack() + data)
            return STATUS_MORE_PROCESSING_REQUIRED, data
        result = step.result
        assert result is not None
        session.anonymous = result.anonymous
        session.keys = crypto.derive_session_keys(
            self.dialect or 0, result.session_key,
            session.preauth.value if session.preauth is not None else None,
            self.cipher or crypto.AES_128_CCM)  # the cipher only sizes 3.1.1 keys
        if not session.anonymous:
            session.signing_required = bool(self.config.signing_required
                                            or req.SecurityMode & SIGNING_REQUIRED)
            session.encrypt_data = self.config.encrypt_data and self.cipher != 0
        flags = SESSION_FLAG_IS_NULL if session.anonymous else 0
        if session.encrypt_data:
            flags |= SESSION_FLAG_ENCRYPT_DATA
        refused = self.config.gate.logon(session.slot, user=result.user,
                                         client=result.workstation, anonymous=result.anonymous)
        if refused:  # per-client grouping judged the limit only now; the engine let go
            self._drop_session(session)
            raise StatusError(refused, "session limit reached")
        session.valid = True
        return STATUS_SUCCESS, _session_setup_body(flags, step.token)

    def _session_setup_key(self, request: Request, status: int) -> bytes | None:
        """The final SESSION_SETUP response is signed: always on 3.1.1, else when signing is
        required (3.3.5.5.3); nothing before it can be."""
        session = request.session
        if status != STATUS_SUCCESS or session is None or session.signing_key is None:
            return None
        if self.dialect == 0x0311 or session.signing_required or request.header.signed:
            return session.signing_key
        return None

    def _new_session(self) -> SMBSession:
        """Ask the engine for a slot: the first round of a new session is where Windows
        refuses at the limit (a session is allocated for SessionId 0, 3.3.5.5.1)."""
        admission = self.config.gate.request_session("smb", self.address)
        if not admission.admitted:
            raise StatusError(admission.status, "session limit reached")
        ntlm = NTLMAcceptor(
            self.config.lookup_password, netbios_name=self.config.netbios_name,
            netbios_domain=self.config.netbios_domain, dns_name=self.config.dns_name,
            dns_domain=self.config.dns_domain, now=self.config.now,
            allow_anonymous=self.config.allow_anonymous)
        preauth = self.preauth.copy() if self.preauth is not None else None
        session = SMBSession(SESSION_ID_BASE + admission.session.id, admission.session,
                             SpnegoAcceptor(ntlm), preauth)
        self.sessions[session.id] = session
        admission.session.close_hook = lambda reason: self._ended_by_engine(session)
        admission.session.file_closer = lambda index: self._close_nth_open(session, index)
        return session

    def _ended_by_engine(self, session: SMBSession) -> None:
        """Admin delete, autodisconnect, null-session expiry, setup timeout: later requests
        on the session get STATUS_USER_SESSION_DELETED, signed as a signing client expects."""
        if session.signing_key is not None:
            self._deleted_keys[session.id] = session.signing_key
        self._drop_session(session)

    def _drop_session(self, session: SMBSession) -> None:
        """Forget a session and close what it had open (no engine call)."""
        self.sessions.pop(session.id, None)
        for op in session.opens.values():
            _close_quietly(op)
        session.opens.clear()
        session.trees.clear()

    def _end_session(self, session: SMBSession, reason: str, status: int | None = None) -> None:
        self._drop_session(session)
        self.config.gate.release(session.slot, reason, status)

    def _logoff(self, request: Request, response: Header) -> tuple[int, bytes]:
        assert request.session is not None
        self._end_session(request.session, "logoff")
        return STATUS_SUCCESS, bodies.EMPTY_RESPONSE

    def _echo(self, request: Request, response: Header) -> tuple[int, bytes]:
        return STATUS_SUCCESS, bodies.EMPTY_RESPONSE

    def _tree_connect(self, request: Request, response: Header) -> tuple[int, bytes]:
        session = request.session
        assert session is not None
        req = bodies.TREE_CONNECT.parse(request.message, HEADER_SIZE)
        path = _utf16(buffer_at(request.message, req.PathOffset, req.PathLength))
        name = path.rstrip("\\").rsplit("\\", 1)[-1].lower()
        if name == "ipc$":
            share, share_type, flags = None, s2.SMB2_SHARE_TYPE_PIPE, SHARE_FLAG_NO_CACHING
        else:
            share = self.config.shares.get(name)
            if share is None:
                raise StatusError(STATUS_BAD_NETWORK_NAME, path)
            if session.anonymous and not self.config.gate.anonymous_may_open("share", name):
                raise StatusError(STATUS_ACCESS_DENIED, "null session to a disk share")
            share_type, flags = s2.SMB2_SHARE_TYPE_DISK, 0
        tree = Tree(self._next_tree_id, name, share)
        self._next_tree_id += 1
        session.trees[tree.id] = tree
        self._update_opens(session)
        response.tree_id = tree.id
        return STATUS_SUCCESS, bodies.TREE_CONNECT_RESPONSE.pack(
            ShareType=share_type, ShareFlags=flags, MaximalAccess=FULL_ACCESS)

    def _tree_disconnect(self, request: Request, response: Header) -> tuple[int, bytes]:
        session = request.session
        assert session is not None
        tree = self._tree(request)
        for key, op in list(session.opens.items()):
            if op.tree is tree:
                _close_quietly(session.opens.pop(key))
        del session.trees[tree.id]
        self._update_opens(session)
        return STATUS_SUCCESS, bodies.EMPTY_RESPONSE

    def _update_opens(self, session: SMBSession) -> None:
        """Tell the engine what the session holds (`net files`, `net session`'s opens, the
        expiry rules) and which shares it uses (NetrConnectionEnum)."""
        # Pipe opens count too: an open \\PIPE\\spoolss keeps a null session alive (KB 328459).
        self.config.gate.set_open_files(session.slot, [_open_label(op)
                                                       for op in session.opens.values()])
        self.config.gate.set_trees(session.slot, [t.name for t in session.trees.values()])

    def _close_nth_open(self, session: SMBSession, index: int) -> bool:
        """NetrFileClose: the n-th open as last reported by _update_opens."""
        keys = list(session.opens)
        if not 0 <= index < len(keys):
            return False
        _close_quietly(session.opens.pop(keys[index]))
        self._update_opens(session)
        return True

    def _create(self, request: Request, response: Header) -> tuple[int, bytes]:
        session = request.session
        assert session is not None
        tree = self._tree(request)
        req = bodies.CREATE.parse(request.message, HEADER_SIZE)
        name = _utf16(buffer_at(request.message, req.NameOffset, req.NameLength))
        handle: Any
        if tree.share is None:
            pipes = self.config.pipes
            pipe = pipes.known(name) if pipes is not None else None
            if pipes is None or pipe is None:
                raise StatusError(STATUS_OBJECT_NAME_NOT_FOUND, f"pipe {name}")
            if session.anonymous and not self.config.gate.anonymous_may_open("pipe", pipe):
                # RestrictNullSessAccess: refused, yet the null session still counts.
                raise StatusError(STATUS_ACCESS_DENIED, f"null session to pipe {pipe}")
            slot = session.slot
            caller = Caller(user=slot.user, anonymous=session.anonymous, client=slot.client,
                            address=self.address)
            endpoint = pipes.open(pipe, caller, log=self.log)
            if endpoint is None:
                raise StatusError(STATUS_OBJECT_NAME_NOT_FOUND, f"pipe {name}")
            handle, action = PipeHandle(endpoint), s2.FILE_OPENED
        else:
            if name.startswith("\\"):
                raise StatusError(STATUS_INVALID_PARAMETER, "leading backslash")
            handle, action = tree.share.open(
                name, desired_access=req.DesiredAccess,
                create_disposition=req.CreateDisposition, create_options=req.CreateOptions,
                file_attributes=req.FileAttributes)
        file_id = (self._next_file_id, self._next_file_id)
        self._next_file_id += 1
        session.opens[file_id] = Open(file_id, tree, handle)
        self._chain_file_id = file_id
        self._update_opens(session)
        return STATUS_SUCCESS, bodies.CREATE_RESPONSE.pack(
            CreateAction=action, FileIdPersistent=file_id[0], FileIdVolatile=file_id[1],
            **_attributes(handle.network_open_info(), "EndOfFile"))

    def _close(self, request: Request, response: Header) -> tuple[int, bytes]:
        session = request.session
        assert session is not None
        req = bodies.CLOSE.parse(request.message, HEADER_SIZE)
        op = self._open(request, req)
        body = bodies.CLOSE_RESPONSE.pack()
        if req.Flags & s2.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB:
            body = bodies.CLOSE_RESPONSE.pack(
                Flags=s2.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB,
                **_attributes(op.handle.network_open_info(), "EndofFile"))
        del session.opens[op.file_id]
        self._update_opens(session)
        op.handle.close()
        return STATUS_SUCCESS, body

    def _flush(self, request: Request, response: Header) -> tuple[int, bytes]:
        req = bodies.FLUSH.parse(request.message, HEADER_SIZE)
        self._open(request, req).handle.flush()
        return STATUS_SUCCESS, bodies.EMPTY_RESPONSE

    def _read(self, request: Request, response: Header) -> tuple[int, bytes]:
        req = bodies.READ.parse(request.message, HEADER_SIZE)
        op = self._open(request, req)
        if req.Length > self.config.max_transact:
            raise StatusError(STATUS_INVALID_PARAMETER, "read larger than MaxReadSize")
        data = op.handle.read(req.Offset, req.Length)
        status = STATUS_SUCCESS
        if isinstance(op.handle, PipeHandle):
            # Message mode: a message longer than the READ leaves the rest for the next one.
            status = STATUS_BUFFER_OVERFLOW if op.handle.overflow else STATUS_SUCCESS
        elif len(data) < req.MinimumCount or (not data and req.Length):
            raise StatusError(STATUS_END_OF_FILE, "read at end of file")
        return status, bodies.READ_RESPONSE.pack(
            DataOffset=HEADER_SIZE + bodies.READ_RESPONSE.size, DataLength=len(data)) + data

    def _write(self, request: Request, response: Header) -> tuple[int, bytes]:
        req = bodies.WRITE.parse(request.message, HEADER_SIZE)
        op = self._open(request, req)
        data = buffer_at(request.message, req.DataOffset, req.Length)
        written = op.handle.write(req.Offset, data)
        return STATUS_SUCCESS, bodies.WRITE_RESPONSE.pack(Count=written)

    def _lock(self, request: Request, response: Header) -> tuple[int, bytes]:
        self._open(request, bodies.LOCK.parse(request.message, HEADER_SIZE))
        # Byte-range locks are granted without being enforced: one client per file is the
        # common case in the tests this emulator serves.
        return STATUS_SUCCESS, bodies.EMPTY_RESPONSE

    def _ioctl(self, request: Request, response: Header) -> tuple[int, bytes]:
        req = bodies.IOCTL.parse(request.message, HEADER_SIZE)
        code = req.CtlCode
        status = STATUS_SUCCESS
        if code == FSCTL_VALIDATE_NEGOTIATE_INFO:
            output = self._validate_negotiate(
                buffer_at(request.message, req.InputOffset, req.InputCount))
        elif code == FSCTL_DFS_GET_REFERRALS:
            raise StatusError(STATUS_NOT_FOUND, "no DFS namespace here")
        elif code == FSCTL_PIPE_TRANSCEIVE:
            op = self._open(request, req)
            if not isinstance(op.handle, PipeHandle):
                raise StatusError(STATUS_INVALID_DEVICE_REQUEST, "transceive on a file")
            output = op.handle.transceive(
                buffer_at(request.message, req.InputOffset, req.InputCount),
                min(req.MaxOutputResponse, self.config.max_transact))
            if op.handle.overflow:  # the reply goes on with READs
                status = STATUS_BUFFER_OVERFLOW
        else:
            raise StatusError(STATUS_NOT_SUPPORTED, f"FSCTL 0x{code:08x}")
        offset = HEADER_SIZE + bodies.IOCTL_RESPONSE.size
        return status, bodies.IOCTL_RESPONSE.pack(
            CtlCode=code, FileIdPersistent=req.FileIdPersistent,
            FileIdVolatile=req.FileIdVolatile, InputOffset=offset, OutputOffset=offset,
            OutputCount=len(output)) + output

    def _validate_negotiate(self, data: bytes) -> bytes:
        """FSCTL_VALIDATE_NEGOTIATE_INFO (3.3.5.15.12): a mismatch means tampering: disconnect."""
        try:
            caps, guid, mode, count = struct.unpack_from("<I16sHH", data)
            dialects = list(struct.unpack_from(f"<{count}H", data, 24))
        except struct.error:
            raise _Disconnect("short VALIDATE_NEGOTIATE_INFO") from None
        client = self._client
        if (caps, guid, mode, dialects) != (client["capabilities"], client["guid"],
                                             client["security_mode"], client["dialects"]):
            raise _Disconnect("VALIDATE_NEGOTIATE_INFO does not match the NEGOTIATE")
        return struct.pack("<I16sHH", self._capabilities(self.dialect or 0),
                           self.config.server_guid, self._security_mode(), self.dialect)

    def _query_directory(self, request: Request, response: Header) -> tuple[int, bytes]:
        req = bodies.QUERY_DIRECTORY.parse(request.message, HEADER_SIZE)
        op = self._open(request, req)
        pattern = _utf16(buffer_at(request.message, req.FileNameOffset,
                                   req.FileNameLength)) or "*"
        data = op.handle.query_directory(req.FileInformationClass, pattern, req.Flags,
                                         req.OutputBufferLength)
        return STATUS_SUCCESS, _output_body(data)

    def _query_info(self, request: Request, response: Header) -> tuple[int, bytes]:
        req = bodies.QUERY_INFO.parse(request.message, HEADER_SIZE)
        op = self._open(request, req)
        info_type, info_class, limit = req.InfoType, req.FileInfoClass, req.OutputBufferLength
        if info_type == s2.SMB2_0_INFO_FILE:
            data = op.handle.query_info(info_class, limit)
        elif info_type == s2.SMB2_0_INFO_FILESYSTEM and op.tree.share is not None:
            data = op.tree.share.fs_info(info_class)
        elif info_type == s2.SMB2_0_INFO_SECURITY:
            data = op.handle.security_info(req.AdditionalInformation)
        else:
            raise StatusError(STATUS_NOT_SUPPORTED, f"info type {info_type}")
        status = STATUS_SUCCESS
        if len(data) > limit:
            status, data = STATUS_BUFFER_OVERFLOW, data[:limit]
        return status, _output_body(data)

    def _set_info(self, request: Request, response: Header) -> tuple[int, bytes]:
        req = bodies.SET_INFO.parse(request.message, HEADER_SIZE)
        op = self._open(request, req)
        data = buffer_at(request.message, req.BufferOffset, req.BufferLength)
        if req.InfoType == s2.SMB2_0_INFO_FILE:
            op.handle.set_info(req.FileInfoClass, data)
        elif req.InfoType != s2.SMB2_0_INFO_SECURITY:  # ACL changes are accepted, not kept
            raise StatusError(STATUS_NOT_SUPPORTED, f"set info type {req.InfoType}")
        return STATUS_SUCCESS, bodies.SET_INFO_RESPONSE

    def _change_notify(self, request: Request, response: Header) -> tuple[int, bytes]:
        raise StatusError(STATUS_NOT_SUPPORTED, "change notification")


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


def _utf16(data: bytes) -> str:
    try:
        return data.decode("utf-16-le")
    except UnicodeDecodeError:
        raise StatusError(nt_errors.STATUS_OBJECT_NAME_INVALID, "bad UTF-16") from None


def _session_setup_body(flags: int, token: bytes) -> bytes:
    return bodies.SESSION_SETUP_RESPONSE.pack(
        SessionFlags=flags, SecurityBufferOffset=HEADER_SIZE + bodies.SESSION_SETUP_RESPONSE.size,
        SecurityBufferLength=len(token)) + token


def _attributes(info: Any, end_of_file_field: str) -> dict[str, int]:
    """The times, sizes and attributes CREATE and CLOSE responses both carry."""
    return {"CreationTime": info.creation_time, "LastAccessTime": info.last_access_time,
            "LastWriteTime": info.last_write_time, "ChangeTime": info.change_time,
            "AllocationSize": info.allocation_size, end_of_file_field: info.end_of_file,
            "FileAttributes": info.file_attributes}


def _output_body(data: bytes) -> bytes:
    """QUERY_DIRECTORY and QUERY_INFO responses: the output buffer right after the body."""
    return bodies.OUTPUT_RESPONSE.pack(
        OutputBufferOffset=HEADER_SIZE + bodies.OUTPUT_RESPONSE.size,
        OutputBufferLength=len(data)) + data


def _open_label(op: Open) -> str:
    """How an open shows in `net files`: `share\\path`, or `\\PIPE\\name`."""
    if op.tree.share is None:
        return str(op.handle.path)
    return f"{op.tree.share.name}\\{op.handle.path}".rstrip("\\")


def _close_quietly(op: Open) -> None:
    try:
        op.handle.close()
    except StatusError:
        pass


class _Disconnect(Exception):
    """Internal: the peer broke the protocol; close the connection."""


class _SessionDeleted(Exception):
    """Internal: the request names a session that is gone; ``key`` signs the answer when
    the engine ended it (Samba's signing clients insist on a signed reply)."""

    def __init__(self, key: bytes | None) -> None:
        self.key = key


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
    s2.SMB2_IOCTL: SMB2ServerConnection._ioctl,
    s2.SMB2_ECHO: SMB2ServerConnection._echo,
    s2.SMB2_QUERY_DIRECTORY: SMB2ServerConnection._query_directory,
    s2.SMB2_CHANGE_NOTIFY: SMB2ServerConnection._change_notify,
    s2.SMB2_QUERY_INFO: SMB2ServerConnection._query_info,
    s2.SMB2_SET_INFO: SMB2ServerConnection._set_info,
}
