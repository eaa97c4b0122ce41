"""What one SMB2 connection holds, shared by the command handlers that read and change it.

The connection (``connection.py``) is the sans-IO surface and the dispatcher; its command
handlers live beside it by job (``negotiate.py``, ``session_setup.py``, ``files.py``),
each a mixin over this state.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Mapping

from impacket import nt_errors
from impacket import smb3structs as s2

from protocols.auth.spnego import SpnegoAcceptor
from protocols.dcerpc.pipes import PipeService
from protocols.errors import StatusError
from protocols.sessions import SessionGate
from protocols.smb2 import crypto
from protocols.smb2.budget import PREAUTH_MAX_FRAME, PreauthBudget
from protocols.smb2.leases import LeaseTable
from protocols.smb2.framing import (
    FrameDecoder,
)
from protocols.smb2.messages import (
    HEADER_SIZE,
    Header,
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
CAP_LEASING = s2.SMB2_GLOBAL_CAP_LEASING
CAP_LARGE_MTU = s2.SMB2_GLOBAL_CAP_LARGE_MTU
CAP_MULTI_CHANNEL = s2.SMB2_GLOBAL_CAP_MULTI_CHANNEL
CAP_DIRECTORY_LEASING = s2.SMB2_GLOBAL_CAP_DIRECTORY_LEASING
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
SHARE_FLAG_ENCRYPT_DATA = 0x8000
MAX_CREDITS = 8192

NETBIOS_MAX_IO = 64 * 1024  # Max{Transact,Read,Write}Size over NetBIOS (MS-SMB2 <254>)


class SessionIds:
    """Session ids shaped as Windows allocates them, shared by every connection of a host
    (MS-SMB2 3.3.3 GlobalSessionTable): not 1, 2, 3 but like 0x00002c328000002d, a
    varying high half over a table index with its top bit set (the one Windows id in
    runZero's rumble-smb2-sessions README; the allocation pattern itself is unverified)."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)
        self._index = self._rng.randrange(0x10, 0x100)
        self.live: dict[int, Any] = {}  # id -> (SMBSession, its ConnectionState)

    def allocate(self, session_and_connection: Any = None) -> int:
        while True:
            self._index = (self._index + 1) & 0x7FFFFFFF or 1
            sid = (self._rng.randrange(0x1000, 0x10000) << 32) | 0x80000000 | self._index
            if sid not in self.live:
                self.live[sid] = session_and_connection
                return sid

    def free(self, sid: int) -> None:
        self.live.pop(sid, None)


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
    netbios_name: str = "EMULATOR"  # the computer name; a workgroup host's NTLM domain too
    netbios_domain: str = ""  # '' = the computer name (a standalone host)
    dns_name: str = ""  # '' = the computer name
    dns_domain: str = ""
    allow_anonymous: bool = True
    max_transact: int = 8 * 1024 * 1024  # on direct TCP; NetBIOS gets NETBIOS_MAX_IO
    pipes: PipeService | None = None  # named pipes on IPC$ (DCE/RPC); None: no pipe exists
    # Before its first valid session a connection is cut after preauth_timeout seconds on
    # this clock (MS-SMB2 3.3.6.3; None: no timer), and its buffered bytes count against
    # the shared budget.
    clock: Any = None  # callLater/seconds: the reactor, or task.Clock in tests
    preauth_timeout: float = 30.0
    preauth_budget: PreauthBudget | None = None
    encrypt_shares: frozenset[str] = frozenset()  # lower-case names of EncryptData shares
    leases: LeaseTable | None = None  # shared by all the host's connections; None: no caching
    # The persona (emulator/editions.py): what NEGOTIATE and NTLM say about the host.
    capabilities: int = CAP_MULTI_CHANNEL | CAP_DIRECTORY_LEASING | CAP_ENCRYPTION
    signing_capabilities: bool = False  # answer SMB2_SIGNING_CAPABILITIES (3.1.1)
    aes_256: bool = False  # AES-256-GCM/CCM may be chosen
    start_time: float = 0.0  # NEGOTIATE ServerStartTime (POSIX seconds); 0 = not given
    spnego_mechs: tuple[str, ...] = ("NEGOEX", "MS-KRB5", "KRB5", "KRB5-U2U", "NTLMSSP")
    ntlm_version: bytes = b"\x0a\x00\x65\x4a\x00\x00\x00\x0f"  # 10.0.19045 rev 15
    accept_ntlmv1: bool = False
    accept_lm: bool = False
    force_guest: bool = False  # network logons become Guest (XP Simple File Sharing)
    is_admin: Callable[[str], bool] = lambda user: False  # who may open ADMIN$ / C$
    admin_shares: Mapping[str, Any] = field(default_factory=dict)  # "admin$"/"c$" -> share
    session_ids: SessionIds = field(default_factory=SessionIds)
    # SMB1 (protocols/smb1): the persona's NEGOTIATE/SESSION_SETUP values, None = SMB1 off;
    # smb2 False: a raw SMB2 NEGOTIATE is dropped (XP, 2003).
    smb1: Any = None
    smb2: bool = True
    # The host's armed faults (emulator.core.faults.FaultTable; protocols/smb2/faults.py
    # asks it per request); None: no faults.
    faults: Any = None

    @property
    def max_frame(self) -> int:
        # A maximal WRITE plus its header, body and a transform header, with room to spare.
        return self.max_transact + 64 * 1024


@dataclass
class Tree:
    id: int
    name: str
    share: Any | None  # None for IPC$
    encrypt_data: bool = False  # the share's EncryptData: every request on it is encrypted


@dataclass
class Open:
    file_id: tuple[int, int]
    tree: Tree
    handle: Any  # fs.OpenFile
    lease: Any = None  # leases.OpenRef: the open as the host's lease/oplock table sees it


@dataclass
class SMBSession:
    id: int
    slot: Any  # the engine's session record
    auth: SpnegoAcceptor
    preauth: crypto.PreauthHash | None
    valid: bool = False
    anonymous: bool = False
    guest: bool = False  # mapped to Guest (ForceGuest): no signing key, SESS_GUEST
    signing_required: bool = False
    encrypt_data: bool = False
    keys: crypto.SessionKeys | None = None
    expired: bool = False  # Session.State Expired: re-authentication restores it (3.3.5.2.9)
    reauth: SpnegoAcceptor | None = None  # a re-authentication in progress (3.3.5.5.3)
    trees: dict[int, Tree] = field(default_factory=dict)
    opens: dict[tuple[int, int], Open] = field(default_factory=dict)

    @property
    def signing_key(self) -> bytes | None:
        return (self.keys.signing if self.keys and not self.anonymous and not self.guest
                else None)


@dataclass
class Request:
    header: Header
    message: bytes  # the whole SMB2 message (header + body)
    encrypted: bool
    session: SMBSession | None = None

    @property
    def body(self) -> bytes:
        return self.message[HEADER_SIZE:]


class Disconnect(Exception):
    """Internal: the peer broke the protocol; close the connection."""


class SessionDeleted(Exception):
    """Internal: the request names a session that is gone; ``key`` signs the answer when
    the engine ended it (Samba's signing clients insist on a signed reply)."""

    def __init__(self, key: bytes | None) -> None:
        self.key = key


def utf16(data: bytes) -> str:
    try:
        return data.decode("utf-16-le")
    except UnicodeDecodeError:
        raise StatusError(nt_errors.STATUS_OBJECT_NAME_INVALID, "bad UTF-16") from None


def close_quietly(op: Open) -> None:
    if op.lease is not None:
        op.lease.close()
    try:
        op.handle.close()
    except StatusError:
        pass


def open_label(op: Open) -> str:
    """How an open shows in `net files`: `share\\path`, or `\\PIPE\\name`."""
    if op.tree.share is None:
        return str(op.handle.path)
    return f"{op.tree.share.name}\\{op.handle.path}".rstrip("\\")


class ConnectionState:
    """The fields of one connection, and the helpers more than one handler family uses."""

    def __init__(self, config: SMBServerConfig, *, address: str, netbios: bool = False,
                 log: Callable[[str], None] = lambda line: None) -> None:
        self.config = config
        self.address = address
        self.netbios = netbios
        # MS-SMB2 Connection.ClientName: the client's IP address over direct TCP, its
        # NetBIOS calling name over port 139 (set from the SESSION REQUEST).
        self.client_name = f"[{address}]" if ":" in address else address
        self.log = log
        # Before a session is valid, frames are capped far below the post-logon size.
        self._decoder = FrameDecoder(netbios=netbios,
                                     max_payload=min(PREAUTH_MAX_FRAME, config.max_frame))
        self._out = bytearray()
        self.close_requested = False
        self.abort_requested = False  # close with a TCP RST (a reset fault)
        self._fault_timers: set[Any] = set()  # late replies (faults.py)
        self._fault_pending: dict[int, Any] = {}  # AsyncId -> a request a fault keeps pending
        self.on_output: Callable[[], None] | None = None  # output outside receive_data
        self.authenticated = False  # a session became valid: the pre-auth bounds are lifted
        self._preauth_timer: Any = None
        if config.clock is not None:
            self._preauth_timer = config.clock.callLater(config.preauth_timeout,
                                                         self._preauth_expired)
        if config.preauth_budget is not None:
            config.preauth_budget.join(self, self._closed_from_outside)
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
        self._pending: dict[int, Any] = {}  # AsyncId -> a CREATE waiting for breaks (oplocks.py)
        self.smb1: Any = None  # the SMB1 core, when the first NEGOTIATE chose SMB1
        config.gate.note_connection("smb")

    # -- frames ---------------------------------------------------------------------
    def _disconnect(self, why: str) -> None:
        self.log(f"smb {self.address}: closing connection: {why}")
        self.close_requested = True

    def _closed_from_outside(self, why: str) -> None:
        """A timer or the shared budget closes this connection: the adapter is told."""
        if self.close_requested:
            return
        self._disconnect(why)
        if self.on_output is not None:
            self.on_output()

    def _preauth_expired(self) -> None:
        self._preauth_timer = None
        self._closed_from_outside(
            f"no session within {self.config.preauth_timeout:g} s of connecting")

    def _end_preauth(self) -> None:
        """Stop the pre-authentication timer and leave the budget (for good)."""
        if self._preauth_timer is not None and self._preauth_timer.active():
            self._preauth_timer.cancel()
        self._preauth_timer = None
        if self.config.preauth_budget is not None:
            self.config.preauth_budget.leave(self)

    def share_for(self, session: SMBSession, name: str) -> Any | None:
        """The share a TREE_CONNECT names (lower case; None for IPC$), or the refusal
        (SMB1 and SMB2 alike)."""
        admin_share = self.config.admin_shares.get(name)
        if admin_share is not None:
            # ADMIN$ and C$: administrators only (anonymous and Guest included in "others").
            if session.anonymous or session.guest or not self.config.is_admin(session.slot.user):
                raise StatusError(STATUS_ACCESS_DENIED, f"{name} is for administrators")
            return admin_share
        if name == "ipc$":
            return None
        share = self.config.shares.get(name)
        if share is None:
            raise StatusError(STATUS_BAD_NETWORK_NAME, name)
        if session.anonymous and not self.config.gate.anonymous_may_open("share", name):
            raise StatusError(STATUS_ACCESS_DENIED, "null session to a disk share")
        return share

    def _tree(self, request: Request) -> Tree:
        assert request.session is not None
        tree = request.session.trees.get(request.header.tree_id)
        if tree is None:
            raise StatusError(STATUS_NETWORK_NAME_DELETED, "no such tree")
        if tree.encrypt_data and not request.encrypted:
            raise StatusError(STATUS_ACCESS_DENIED, "unencrypted request on an EncryptData "
                              "share (3.3.5.2.11)")
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

    def _update_opens(self, session: SMBSession) -> None:
        """Tell the engine what the session holds (`net files`, `net session`'s opens, the
        expiry rules) and which shares it uses (NetrConnectionEnum)."""
        # Pipe opens count too: an open \\PIPE\\spoolss keeps a null session alive (KB 328459).
        self.config.gate.set_open_files(session.slot, [open_label(op)
                                                       for op in session.opens.values()])
        self.config.gate.set_trees(session.slot, [t.name for t in session.trees.values()])

    def _close_nth_open(self, session: SMBSession, index: int) -> bool:
        """NetrFileClose: the n-th open as last reported by _update_opens."""
        keys = list(session.opens)
        if not 0 <= index < len(keys):
            return False
        close_quietly(session.opens.pop(keys[index]))
        self._update_opens(session)
        return True

    def _drop_session(self, session: SMBSession) -> None:
        """Forget a session and close what it had open (no engine call)."""
        self.sessions.pop(session.id, None)
        self.config.session_ids.free(session.id)
        for op in session.opens.values():
            close_quietly(op)
        session.opens.clear()
        session.trees.clear()

    def _end_session(self, session: SMBSession, reason: str, status: int | None = None) -> None:
        self._drop_session(session)
        self.config.gate.release(session.slot, reason, status)

    def _validate_negotiate(self, data: bytes) -> bytes:
        """FSCTL_VALIDATE_NEGOTIATE_INFO, an IOCTL answered from NEGOTIATE's state."""
        raise NotImplementedError  # NegotiateHandlers has it
