"""What an RPC interface is here: the ``Service`` base, who may call (``Access``), the
caller (``Caller``), the host as handlers see it (``ServerView``) and ``Fault``.

The stub data (NDR) is always impacket's: each service's request/response classes.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from protocols.dcerpc.pdu import NCA_S_OP_RNG_ERROR, RPC_X_BAD_STUB_DATA

# -- what RPC handlers may ask of the host -----------------------------------------------------

class ServerView(Protocol):
    """The host as the RPC services see it; the emulator implements it over its engine
    (``emulator.rpcview``). Handlers only read through it; what ends a session or closes
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

    def local_domain(self) -> dict[str, Any]:
        """The host's account database (lsarpc, samr): name (the computer name: the
        account domain), sid (the machine SID, S-1-5-21-a-b-c), workgroup (the primary
        domain, which has no SID), restrict_anonymous_sam (a null session may not
        enumerate accounts), anonymous_lookup (a null session may translate SIDs and
        names), lockout_threshold, lockout_minutes, password_complex."""
        ...

    def accounts(self) -> list[dict[str, Any]]:
        """The local accounts (``accounts.Account`` fields): rid, name, enabled, admin,
        logon_count, last_logon (POSIX seconds or None), in RID order."""
        ...


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
    # The largest request stub served (bytes); 0: the pipe's default (``pipes``).
    max_request_stub: ClassVar[int] = 0

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
                # impacket reads a short stub leniently (a SID with fewer sub-authorities
                # than its count, say); what it read must encode back within the stub.
                short = consumed > len(stub) or len(request.getData()) > len(stub)
        except Exception as exc:  # impacket raises anything on bad NDR
            raise Fault(RPC_X_BAD_STUB_DATA, f"{self.name} opnum {opnum}: {exc}") from None
        if short:  # Windows' stubs do not read past the end
            raise Fault(RPC_X_BAD_STUB_DATA, f"{self.name} opnum {opnum}: stub too short")
        response = handler(self, request)
        return bytes(response.getData())

    def close(self) -> None:
        """The pipe open is gone: drop what it held (context handles)."""

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

