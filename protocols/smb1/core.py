"""The SMB1 core of one connection: a command table over the AndX pipeline.

``SMB2ServerConnection`` owns the transport side (framing, pre-auth bounds, the session
table) and hands every ``\\xffSMB`` frame here once the first NEGOTIATE chose SMB1
(``protocols/smb1/route.py``). ``handle(message)`` returns the response bytes (or
none); a ``Disconnect`` drops the connection. Nothing here counts: sessions ask the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from impacket import nt_errors
from impacket import smb as i

from protocols.auth.spnego import initial_token
from protocols.errors import StatusError
from protocols.smb1 import negotiate as neg
from protocols.smb1.files import FileCommands
from protocols.smb1.messages import (
    EMPTY_BLOCK, STATUS_SMB_BAD_COMMAND, Header, join_chain, split_chain,
)
from protocols.smb1.sessions import FIRST_UID, SessionCommands
from protocols.smb1.signing import Signing
from protocols.smb1.nttrans import NtTransCommands
from protocols.smb1.oplocks import OplockCommands
from protocols.smb1.secondary import SecondaryCommands
from protocols.smb1.trans import TransCommands
from protocols.smb2.state import Disconnect

STATUS_MORE_PROCESSING_REQUIRED = nt_errors.STATUS_MORE_PROCESSING_REQUIRED
NEGOTIATE_FLAGS2 = (i.SMB.FLAGS2_UNICODE | i.SMB.FLAGS2_NT_STATUS | i.SMB.FLAGS2_EAS
                    | i.SMB.FLAGS2_LONG_NAMES)


@dataclass
class Chain:
    """The state one message's AndX chain carries from command to command."""

    request: Header
    message: bytes
    uid: int
    tid: int
    status: int = 0  # a non-error status to answer with (MORE_PROCESSING_REQUIRED)
    fid: int | None = None  # the FID an NT_CREATE_ANDX of this chain opened
    last: bool = True  # the command running is the chain's last
    waiting: Any = None  # (ticket, build): an NT_CREATE_ANDX waits for oplock breaks
    retry: Any = None  # a ticket: the request runs again once its breaks are done


class SMB1Core(SessionCommands, FileCommands, TransCommands, NtTransCommands,
               SecondaryCommands, OplockCommands):
    def __init__(self, conn: Any, persona: neg.SMB1Persona) -> None:
        self.conn = conn  # the SMB2ServerConnection: sessions, config, log, address
        self.persona = persona
        self.workgroup = persona.workgroup
        self.extended = True
        self.challenge = neg.new_challenge()
        self.negotiated = False
        self._next_uid = FIRST_UID
        self._next_tid = 1
        self._next_fid = 0x4000
        self.client_max_buffer = persona.max_buffer  # SESSION_SETUP_ANDX MaxBufferSize
        self.signing = Signing()
        self._transactions: dict[tuple[int, int, int, int], Any] = {}  # awaiting secondaries
        self._waiting: list[Any] = []  # NT_CREATE_ANDX responses held for oplock breaks
        self._held: Any = None  # the one this request just held
        self.client_max_mpx: int | None = None  # the first SESSION_SETUP_ANDX's values
        self.client_capabilities = 0
        self._activate: tuple[bytes, bytes] | None = None  # signing to start after this reply

    def handle(self, message: bytes) -> list[bytes]:
        try:
            header = Header.parse(message)
        except ValueError as exc:
            raise Disconnect(str(exc)) from None
        # The REPLY bit of a request is not checked: nmap's smb.lua retries a failed
        # SESSION_SETUP_ANDX with the response's Flags (0x98), and Windows answers it.
        if header.command == i.SMB.SMB_COM_NEGOTIATE:
            return [self._negotiate(header, message)]
        if not self.negotiated:
            raise Disconnect("SMB1 command before NEGOTIATE")
        signing = self.signing
        sequence = None
        if signing.active:
            sequence, ok = signing.receive(message, header.command)
            if not ok:  # MS-SMB 3.3.5.1: STATUS_ACCESS_DENIED, the request not run
                self.conn.log(f"smb {self.conn.address}: SMB1 bad signature on command "
                              f"0x{header.command:02x}")
                return [signing.sign(self._error(header, nt_errors.STATUS_ACCESS_DENIED),
                                     sequence)]
        self._activate = self._held = None
        replies = self._run(header, message)
        if self._held is not None:  # its response goes out later, with this number
            self._held.sequence = sequence
            self._held = None
        if self._activate is not None and not signing.active:
            signing.activate(*self._activate)
            sequence = 1  # the SESSION_SETUP_ANDX response that starts signing
        self._activate = None
        if sequence is None:
            return replies
        return [signing.sign(reply, sequence) for reply in replies]

    @property
    def signing_enabled(self) -> bool:
        return self.persona.signing_enabled or bool(self.conn.config.signing_required)

    def _run(self, header: Header, message: bytes) -> list[bytes]:
        try:
            blocks = split_chain(message, header.command)
        except ValueError as exc:
            self.conn.log(f"smb {self.conn.address}: SMB1 malformed request: {exc}")
            return [self._error(header, nt_errors.STATUS_INVALID_PARAMETER)]
        chain = Chain(header, message, header.uid, header.tid)
        parts: list[tuple[int, bytes, Any]] = []
        status = 0
        for n, block in enumerate(blocks):
            handler = _COMMANDS.get(block.command)
            chain.last = n == len(blocks) - 1
            try:
                if self.conn._faults_armed() and self._fault_cuts(block, chain):
                    return []  # drop, reset or stall: the connection acts on it
                if handler is None:
                    raise StatusError(STATUS_SMB_BAD_COMMAND,
                                      f"command 0x{block.command:02x}")
                result = handler(self, block, chain)
            except StatusError as err:
                status = err.status
                break
            if chain.retry is not None:  # a path command waiting for oplock breaks
                self._held = self.hold_request(chain, header, message)
                return []
            if result is None:  # a transaction waiting for its secondaries
                return []
            if isinstance(result, list):  # ECHO: one response per echo
                return result
            words, data = result
            parts.append((block.command, words, data))
            if chain.waiting is not None:  # answered once the oplock breaks are done
                reply = header.reply()
                reply.uid, reply.tid = chain.uid, chain.tid
                self._held = self.hold_create(chain, reply, parts)
                return []
            if chain.status:
                status = chain.status
                break
        reply = header.reply()
        reply.uid, reply.tid = chain.uid, chain.tid
        reply.set_status(status)
        if status and status != STATUS_MORE_PROCESSING_REQUIRED:
            if not parts:
                return [reply.pack() + EMPTY_BLOCK]
            # The commands that succeeded keep their responses; the chain ends at the
            # failure, whose status the header carries (MS-CIFS 3.3.5.2).
        if self.conn.sessions.get(chain.uid) is None and status:
            reply.uid = 0 if status != STATUS_MORE_PROCESSING_REQUIRED else chain.uid
        return [join_chain(reply, parts)]

    def _fault_cuts(self, block: Any, chain: Chain) -> bool:
        """Ask the host's faults (SMB1 commands by their SMB2 names): a status raises, a
        drop/reset/stall is True, truncate/delay (pending: delay) go to the connection."""
        name = fault_name(block)
        if name is None or name == "SESSION_SETUP":  # SESSION_SETUP asks at its logon
            return False
        session = self.conn.sessions.get(chain.uid)
        tree = session.trees.get(chain.tid) if session is not None else None
        user = session.slot.user if session is not None and session.slot is not None else None
        fault = self.conn._match_fault(name, user=user or None,
                                       share=tree.name if tree is not None else None)
        return self.fault_acts(fault)

    def fault_acts(self, fault: Any) -> bool:
        if fault is None or fault.action == "credits":  # SMB1 grants no credits
            return False
        if fault.action == "status":
            raise StatusError(fault.status, f"fault {fault.id}")
        self.conn._frame_fault = fault
        return fault.action in ("drop", "reset", "stall")

    def _error(self, header: Header, status: int) -> bytes:
        reply = header.reply()
        reply.set_status(status)
        return reply.pack() + EMPTY_BLOCK

    # -- NEGOTIATE -------------------------------------------------------------------------
    def _negotiate(self, header: Header, message: bytes) -> bytes:
        if self.negotiated:
            raise Disconnect("a second SMB1 NEGOTIATE")
        try:
            block = split_chain(message, header.command)[0]
        except ValueError as exc:
            raise Disconnect(f"malformed NEGOTIATE: {exc}") from None
        config = self.conn.config
        hint = initial_token(config.spnego_mechs) if self.persona.negotiate_blob else b""
        index, flags2, words, data = neg.negotiate_response(
            header, block.data, self.persona, now=config.now(),
            server_guid=config.server_guid, challenge=self.challenge,
            domain=self.workgroup, server_name=config.netbios_name, spnego_hint=hint,
            signing_required=config.signing_required)
        if index is None:
            self.conn.close_requested = True  # nothing in common: answered, then dropped
        self.negotiated = True
        self.extended = bool(flags2 & i.SMB.FLAGS2_EXTENDED_SECURITY)
        reply = header.reply()
        # Windows answers NEGOTIATE with Unicode and NT status set whatever the client
        # asked (XP: Flags2 0xC807 in the MS05-011 capture); clients take Unicode from it.
        reply.flags2 = (NEGOTIATE_FLAGS2 | (header.flags2 & i.SMB.FLAGS2_SMB_SECURITY_SIGNATURE)
                        | (flags2 & i.SMB.FLAGS2_EXTENDED_SECURITY))
        return neg.pack_negotiate(reply, words, data)

    def run_assembled(self, command: int, trans: Any, chain: Chain) -> list[bytes]:
        """A transaction whose secondaries completed it."""
        if command == i.SMB.SMB_COM_TRANSACTION:
            return self.run_transaction(trans, chain)
        if command == i.SMB.SMB_COM_NT_TRANSACT:
            return self.run_nt_transact(trans, chain)
        return self.run_transaction2(trans, chain)

    # -- ECHO ------------------------------------------------------------------------------
    def echo(self, block: Any, chain: Chain) -> list[bytes]:
        if len(block.words) < 2:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "ECHO words")
        count = int.from_bytes(block.words[:2], "little")
        out = []
        # One response per echo (MS-CIFS 3.3.5.32), bounded here at the persona's MaxMpx.
        for n in range(1, min(count, self.persona.max_mpx) + 1):
            reply = chain.request.reply()
            out.append(join_chain(reply, [(block.command, n.to_bytes(2, "little"),
                                           block.data)]))
        return out


# SMB1 commands under the SMB2 names faults use (TRANSACTION2 by its subcommand).
_FAULT_NAMES = {
    i.SMB.SMB_COM_SESSION_SETUP_ANDX: "SESSION_SETUP", i.SMB.SMB_COM_LOGOFF_ANDX: "LOGOFF",
    i.SMB.SMB_COM_TREE_CONNECT_ANDX: "TREE_CONNECT",
    i.SMB.SMB_COM_TREE_DISCONNECT: "TREE_DISCONNECT", i.SMB.SMB_COM_ECHO: "ECHO",
    i.SMB.SMB_COM_NT_CREATE_ANDX: "CREATE", i.SMB.SMB_COM_OPEN_ANDX: "CREATE",
    i.SMB.SMB_COM_CREATE_DIRECTORY: "CREATE", i.SMB.SMB_COM_READ_ANDX: "READ",
    i.SMB.SMB_COM_WRITE_ANDX: "WRITE", i.SMB.SMB_COM_CLOSE: "CLOSE",
    i.SMB.SMB_COM_FIND_CLOSE2: "CLOSE", i.SMB.SMB_COM_TRANSACTION: "IOCTL",
    i.SMB.SMB_COM_DELETE: "SET_INFO", i.SMB.SMB_COM_DELETE_DIRECTORY: "SET_INFO",
    i.SMB.SMB_COM_RENAME: "SET_INFO", i.SMB.SMB_COM_CHECK_DIRECTORY: "QUERY_INFO",
}
_TRANS2_NAMES = {1: "QUERY_DIRECTORY", 2: "QUERY_DIRECTORY", 3: "QUERY_INFO", 5: "QUERY_INFO",
                 6: "SET_INFO", 7: "QUERY_INFO", 8: "SET_INFO"}


def fault_name(block: Any) -> str | None:
    if block.command == i.SMB.SMB_COM_TRANSACTION2:
        if len(block.words) < 30:
            return None
        return _TRANS2_NAMES.get(int.from_bytes(block.words[28:30], "little"))
    return _FAULT_NAMES.get(block.command)


_COMMANDS: dict[int, Callable[..., Any]] = {
    i.SMB.SMB_COM_SESSION_SETUP_ANDX: SMB1Core.session_setup,
    i.SMB.SMB_COM_LOGOFF_ANDX: SMB1Core.logoff,
    i.SMB.SMB_COM_TREE_CONNECT_ANDX: SMB1Core.tree_connect,
    i.SMB.SMB_COM_TREE_DISCONNECT: SMB1Core.tree_disconnect,
    i.SMB.SMB_COM_ECHO: SMB1Core.echo,
    i.SMB.SMB_COM_NT_CREATE_ANDX: SMB1Core.nt_create,
    i.SMB.SMB_COM_OPEN_ANDX: SMB1Core.open_andx,
    i.SMB.SMB_COM_READ_ANDX: SMB1Core.read_andx,
    i.SMB.SMB_COM_WRITE_ANDX: SMB1Core.write_andx,
    i.SMB.SMB_COM_CLOSE: SMB1Core.close,
    i.SMB.SMB_COM_LOCKING_ANDX: SMB1Core.locking_andx,
    i.SMB.SMB_COM_TRANSACTION: SMB1Core.transaction,
    i.SMB.SMB_COM_TRANSACTION2: SMB1Core.transaction2,
    i.SMB.SMB_COM_NT_TRANSACT: SMB1Core.nt_transact,
    i.SMB.SMB_COM_TRANSACTION_SECONDARY: SMB1Core.secondary,
    i.SMB.SMB_COM_TRANSACTION2_SECONDARY: SMB1Core.secondary,
    i.SMB.SMB_COM_NT_TRANSACT_SECONDARY: SMB1Core.secondary,
    i.SMB.SMB_COM_FIND_CLOSE2: SMB1Core.find_close,
    i.SMB.SMB_COM_CHECK_DIRECTORY: SMB1Core.check_directory,
    i.SMB.SMB_COM_DELETE: SMB1Core.delete,
    i.SMB.SMB_COM_CREATE_DIRECTORY: SMB1Core.create_directory,
    i.SMB.SMB_COM_DELETE_DIRECTORY: SMB1Core.delete_directory,
    i.SMB.SMB_COM_RENAME: SMB1Core.rename,
}
