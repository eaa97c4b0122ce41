"""SMB2 message framing helpers: the 64-byte header, compound splitting, bodies.

The header and the bodies (``bodies.py``) are packed with ``struct``: every
message passes through them, and the tests cross-check the bytes against
impacket's ``SMB2Packet`` and ``smb3structs``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from impacket import nt_errors

from protocols.errors import StatusError

PROTOCOL_ID = b"\xfeSMB"
SMB1_PROTOCOL_ID = b"\xffSMB"
TRANSFORM_PROTOCOL_ID = b"\xfdSMB"
HEADER_SIZE = 64

# MS-SMB2 2.2.1.2 Command, by code: the names faults and logs use (SMB1 maps onto them).
COMMAND_NAMES = {
    0x00: "NEGOTIATE", 0x01: "SESSION_SETUP", 0x02: "LOGOFF", 0x03: "TREE_CONNECT",
    0x04: "TREE_DISCONNECT", 0x05: "CREATE", 0x06: "CLOSE", 0x07: "FLUSH", 0x08: "READ",
    0x09: "WRITE", 0x0A: "LOCK", 0x0B: "IOCTL", 0x0C: "CANCEL", 0x0D: "ECHO",
    0x0E: "QUERY_DIRECTORY", 0x0F: "CHANGE_NOTIFY", 0x10: "QUERY_INFO", 0x11: "SET_INFO",
    0x12: "OPLOCK_BREAK",
}

FLAGS_SERVER_TO_REDIR = 0x1
FLAGS_ASYNC_COMMAND = 0x2
FLAGS_RELATED_OPERATIONS = 0x4
FLAGS_SIGNED = 0x8

# <4s H H I H H I I Q I I Q 16s>: ProtocolId, StructureSize, CreditCharge, Status,
# Command, CreditRequest/Response, Flags, NextCommand, MessageId, Reserved (ProcessId),
# TreeId, SessionId, Signature (sync form: MS-SMB2 2.2.1.2).
_HEADER = struct.Struct("<4sHHIHHIIQIIQ16s")


@dataclass
class Header:
    command: int
    status: int = 0
    credit_charge: int = 0
    credits: int = 0
    flags: int = 0
    next_command: int = 0
    message_id: int = 0
    process_id: int = 0
    tree_id: int = 0
    session_id: int = 0
    signature: bytes = b"\0" * 16

    @classmethod
    def parse(cls, data: bytes) -> Header:
        if len(data) < HEADER_SIZE:
            raise ValueError("short SMB2 header")
        (pid, size, charge, status, command, credits, flags, next_command, message_id,
         process_id, tree_id, session_id, signature) = _HEADER.unpack_from(data)
        if pid != PROTOCOL_ID or size != HEADER_SIZE:
            raise ValueError("not an SMB2 header")
        return cls(command, status, charge, credits, flags, next_command, message_id,
                   process_id, tree_id, session_id, signature)

    def pack(self) -> bytes:
        return _HEADER.pack(PROTOCOL_ID, HEADER_SIZE, self.credit_charge, self.status,
                            self.command, self.credits, self.flags, self.next_command,
                            self.message_id, self.process_id, self.tree_id, self.session_id,
                            self.signature)

    @property
    def related(self) -> bool:
        return bool(self.flags & FLAGS_RELATED_OPERATIONS)

    @property
    def signed(self) -> bool:
        return bool(self.flags & FLAGS_SIGNED)


class CompoundError(ValueError):
    """A compound the server will not run: broken chaining, or more requests than credits."""


def split_compound(data: bytes, max_messages: int) -> list[bytes]:
    """Split a compound request into its messages (MS-SMB2 3.3.5.2.7).

    One pass over the NextCommand offsets (4 bytes read per message), then each message
    is copied once: the work is linear in the frame. Every request of a compound consumes
    a credit (MS-SMB2 3.3.1.1, 3.3.5.2.3; Samba's smbd_smb2_request_validate checks each
    one against the granted credits and drops the connection), so a compound holding
    more than ``max_messages`` (the credits the client holds) is refused before any of
    it runs.
    """
    bounds: list[tuple[int, int]] = []
    start, end = 0, len(data)
    while True:
        if end - start < HEADER_SIZE:
            raise CompoundError("short SMB2 message in compound")
        if len(bounds) >= max_messages:
            raise CompoundError(f"compound of more than {max_messages} requests "
                                "(the credits granted)")
        next_command = struct.unpack_from("<I", data, start + 20)[0]
        if next_command == 0:
            bounds.append((start, end))
            break
        if next_command < HEADER_SIZE or next_command > end - start or next_command % 8:
            raise CompoundError(f"bad NextCommand {next_command}")
        bounds.append((start, start + next_command))
        start += next_command
    if len(bounds) == 1:
        return [data]
    return [data[a:b] for a, b in bounds]


def join_compound(messages: list[bytes]) -> list[bytes]:
    """Pad all but the last response to 8 bytes and set NextCommand (before signing)."""
    out = []
    for i, msg in enumerate(messages):
        if i < len(messages) - 1:
            msg = msg + b"\0" * (-len(msg) % 8)
            msg = msg[:20] + struct.pack("<I", len(msg)) + msg[24:]
        out.append(msg)
    return out


# The body of every error response: StructureSize 9, no error contexts, ByteCount 0,
# and the one ErrorData byte the spec asks for (MS-SMB2 2.2.2).
ERROR_BODY = struct.pack("<HBBI", 9, 0, 0, 0) + b"\0"

def buffer_at(message: bytes, offset: int, length: int) -> bytes:
    """A variable-length field addressed from the start of the SMB2 header, bounds-checked."""
    if length == 0:
        return b""
    if offset < HEADER_SIZE or offset + length > len(message):
        raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "buffer outside the message")
    return message[offset:offset + length]


def fixed_body_size(structure_size: int) -> int:
    """Bodies declare StructureSize as fixed part + 1 when a variable part follows."""
    return structure_size & ~1

