"""SMB1 message codec: the 32-byte header, the parameter/data blocks, AndX chains, and
the two error forms (NT status, or DOS class/code when the client did not set
FLAGS2_NT_STATUS). Layouts are impacket's (``impacket.smb``); ``struct`` here, checked
against impacket both ways in ``tests/unit/test_smb1_messages.py``."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from impacket import nt_errors
from impacket import smb as i

from protocols.errors import StatusError

PROTOCOL_ID = b"\xffSMB"
HEADER = struct.Struct("<4sBIBHH8sHHHHH")
HEADER_SIZE = HEADER.size  # 32

FLAGS_REPLY = i.SMB.FLAGS1_REPLY
FLAGS_CASELESS = i.SMB.FLAGS1_PATHCASELESS
FLAGS_CANONICAL = i.SMB.FLAGS1_CANONICALIZED_PATHS
FLAGS2_LONG_NAMES = i.SMB.FLAGS2_LONG_NAMES
FLAGS2_EAS = i.SMB.FLAGS2_EAS
FLAGS2_SIGNATURE = i.SMB.FLAGS2_SMB_SECURITY_SIGNATURE
FLAGS2_EXTENDED_SECURITY = i.SMB.FLAGS2_EXTENDED_SECURITY
FLAGS2_NT_STATUS = i.SMB.FLAGS2_NT_STATUS
FLAGS2_UNICODE = i.SMB.FLAGS2_UNICODE

NO_ANDX = 0xFF
# The AndX commands (MS-CIFS 2.2.3.4): their first four parameter bytes chain the next.
ANDX_COMMANDS = frozenset({
    i.SMB.SMB_COM_SESSION_SETUP_ANDX, i.SMB.SMB_COM_LOGOFF_ANDX,
    i.SMB.SMB_COM_TREE_CONNECT_ANDX, i.SMB.SMB_COM_NT_CREATE_ANDX, i.SMB.SMB_COM_READ_ANDX,
    i.SMB.SMB_COM_WRITE_ANDX, i.SMB.SMB_COM_OPEN_ANDX, i.SMB.SMB_COM_LOCKING_ANDX,
})
MAX_CHAIN = 8  # more AndX links than any client sends: refused

# NT status -> DOS (class, code), as Windows maps them (MS-CIFS 2.2.2.4 and the command
# error tables; Samba's libcli/util/errormap.c, taken from a live Windows host).
ERRDOS, ERRSRV = 0x01, 0x02
# NT-form codes for SMB-only errors: the DOS class and code in one (MS-CIFS 2.2.2.4).
STATUS_SMB_BAD_TID = 0x00050002  # ERRSRV/ERRinvtid
STATUS_SMB_BAD_COMMAND = 0x00160002  # ERRSRV/ERRbadcmd
STATUS_SMB_BAD_UID = 0x005B0002  # ERRSRV/ERRbaduid
_DOS_ERRORS: dict[int, tuple[int, int]] = {
    nt_errors.STATUS_REQUEST_NOT_ACCEPTED: (ERRDOS, 71),  # ERRreqnotaccep (MS-CIFS 2.2.4.53.2)
    nt_errors.STATUS_LOGON_FAILURE: (ERRSRV, 2),  # ERRbadpw
    nt_errors.STATUS_ACCESS_DENIED: (ERRDOS, 5),  # ERRnoaccess
    nt_errors.STATUS_BAD_NETWORK_NAME: (ERRSRV, 6),  # ERRinvnetname
    nt_errors.STATUS_OBJECT_NAME_NOT_FOUND: (ERRDOS, 2),  # ERRbadfile
    nt_errors.STATUS_NO_SUCH_FILE: (ERRDOS, 2),
    nt_errors.STATUS_OBJECT_PATH_NOT_FOUND: (ERRDOS, 3),  # ERRbadpath
    nt_errors.STATUS_OBJECT_NAME_COLLISION: (ERRDOS, 80),  # ERRfilexists
    nt_errors.STATUS_INVALID_HANDLE: (ERRDOS, 6),  # ERRbadfid
    nt_errors.STATUS_FILE_CLOSED: (ERRDOS, 6),
    nt_errors.STATUS_INVALID_PARAMETER: (ERRDOS, 87),  # ERRinvalidparam
    nt_errors.STATUS_NOT_SUPPORTED: (ERRSRV, 0xFFFF),  # ERRnosupport
    nt_errors.STATUS_NOT_IMPLEMENTED: (ERRDOS, 1),  # ERRbadfunc
    nt_errors.STATUS_USER_SESSION_DELETED: (ERRSRV, 91),
    nt_errors.STATUS_NETWORK_NAME_DELETED: (ERRSRV, 5),
    nt_errors.STATUS_NO_MORE_FILES: (ERRDOS, 18),  # ERRnofiles
    nt_errors.STATUS_END_OF_FILE: (ERRDOS, 38),  # ERRhandleeof
    nt_errors.STATUS_FILE_IS_A_DIRECTORY: (ERRDOS, 5),
    nt_errors.STATUS_NOT_A_DIRECTORY: (ERRDOS, 267),
    nt_errors.STATUS_DIRECTORY_NOT_EMPTY: (ERRDOS, 145),
    nt_errors.STATUS_SHARING_VIOLATION: (ERRDOS, 32),  # ERRbadshare
    nt_errors.STATUS_OBJECT_NAME_INVALID: (ERRDOS, 123),  # ERRinvalidname
    nt_errors.STATUS_DISK_FULL: (ERRDOS, 112),
    0xC00000D9: (ERRDOS, 232),  # STATUS_PIPE_EMPTY -> ERROR_NO_DATA
    nt_errors.STATUS_PIPE_DISCONNECTED: (ERRDOS, 233),  # ERRnotconnected
}
_DOS_DEFAULT = (ERRSRV, 1)  # ERRerror


def dos_error(status: int) -> tuple[int, int]:
    if status >> 28 == 0 and status & 0xFFFF in (ERRDOS, ERRSRV):
        return status & 0xFFFF, status >> 16  # already an SMB error in NT form
    return _DOS_ERRORS.get(status, _DOS_DEFAULT)


@dataclass
class Header:
    command: int
    status: int = 0
    flags: int = 0
    flags2: int = 0
    pid_high: int = 0
    signature: bytes = b"\0" * 8
    tid: int = 0
    pid: int = 0
    uid: int = 0
    mid: int = 0

    @classmethod
    def parse(cls, data: bytes) -> Header:
        if len(data) < HEADER_SIZE:
            raise ValueError("SMB1 message shorter than its header")
        (magic, command, status, flags, flags2, pid_high, signature, _reserved, tid, pid,
         uid, mid) = HEADER.unpack_from(data)
        if magic != PROTOCOL_ID:
            raise ValueError("not an SMB1 message")
        return cls(command, status, flags, flags2, pid_high, signature, tid, pid, uid, mid)

    @property
    def nt_status(self) -> bool:
        return bool(self.flags2 & FLAGS2_NT_STATUS)

    @property
    def unicode(self) -> bool:
        return bool(self.flags2 & FLAGS2_UNICODE)

    def pack(self) -> bytes:
        return HEADER.pack(PROTOCOL_ID, self.command, self.status, self.flags, self.flags2,
                           self.pid_high, self.signature, 0, self.tid, self.pid, self.uid,
                           self.mid)

    def reply(self) -> Header:
        """The response header: the request's ids, REPLY; NT status only to a client that
        asked for it (the DOS form otherwise); Unicode as the client chose."""
        flags2 = (FLAGS2_LONG_NAMES | FLAGS2_EAS
                  | (self.flags2 & (FLAGS2_NT_STATUS | FLAGS2_UNICODE
                                    | FLAGS2_EXTENDED_SECURITY)))
        return Header(self.command, 0, FLAGS_REPLY | FLAGS_CASELESS | FLAGS_CANONICAL, flags2,
                      self.pid_high, b"\0" * 8, self.tid, self.pid, self.uid, self.mid)

    def set_status(self, status: int) -> None:
        """Put ``status`` in the Status field, in the form this client reads."""
        if not status or self.flags2 & FLAGS2_NT_STATUS:
            self.status = status
        else:
            error_class, code = dos_error(status)
            self.status = error_class | code << 16


@dataclass
class Block:
    """One command's parameter words and data bytes, where they sit in the message."""

    command: int
    words: bytes
    data: bytes
    offset: int  # of WordCount in the message
    data_offset: int  # of the first data byte in the message


def read_block(message: bytes, command: int, offset: int) -> Block:
    """The WordCount/Words/ByteCount/Bytes at ``offset``; ValueError when any lies."""
    if offset >= len(message):
        raise ValueError("block outside the message")
    word_count = message[offset]
    words_end = offset + 1 + 2 * word_count
    if words_end + 2 > len(message):
        raise ValueError("WordCount past the end")
    (byte_count,) = struct.unpack_from("<H", message, words_end)
    data_end = words_end + 2 + byte_count
    if data_end > len(message):
        raise ValueError("ByteCount past the end")
    return Block(command, message[offset + 1:words_end], message[words_end + 2:data_end],
                 offset, words_end + 2)


def split_chain(message: bytes, first: int) -> list[Block]:
    """The blocks of an AndX chain: each AndXOffset must point forward and inside."""
    blocks = [read_block(message, first, HEADER_SIZE)]
    while blocks[-1].command in ANDX_COMMANDS and len(blocks[-1].words) >= 4:
        next_command, _, next_offset = struct.unpack_from("<BBH", blocks[-1].words)
        if next_command == NO_ANDX:
            break
        if next_offset <= blocks[-1].offset or next_offset >= len(message):
            raise ValueError("AndXOffset backwards or outside the message")
        if len(blocks) >= MAX_CHAIN:
            raise ValueError("AndX chain too long")
        blocks.append(read_block(message, next_command, next_offset))
    return blocks


def pack_block(words: bytes, data: bytes) -> bytes:
    # A large READ_ANDX answer (CAP_LARGE_READX) can pass 65535 bytes, which ByteCount
    # cannot hold: it keeps the low 16 bits; clients take the length from DataLength and
    # DataLengthHigh (MS-SMB 2.2.4.2.2). smbtorture raw.read.readx reads 64 KiB this way.
    return bytes([len(words) // 2]) + words + struct.pack("<H", len(data) & 0xFFFF) + data


EMPTY_BLOCK = b"\0\0\0"  # WordCount 0, ByteCount 0: the body of an error response


def join_chain(header: Header, parts: list[tuple[int, bytes, Any]]) -> bytes:
    """Header + response blocks ``(command, words, data)``; AndX words get their links.
    An AndX response's words start with the 4 AndX bytes, filled in here. ``data`` may be
    a callable of the data's offset in the message (Unicode strings align to it), and
    words with a ``complete(data_offset)`` method are completed the same way."""
    out = bytearray(header.pack())
    links: list[int] = []
    for n, (command, words, data) in enumerate(parts):
        if n:
            prev = links[-1]
            struct.pack_into("<BBH", out, prev, command, 0, len(out))
        start = len(out)
        data_offset = start + 1 + len(words) + 2
        if callable(data):
            data = data(data_offset)
        complete = getattr(words, "complete", None)
        if complete is not None:
            words = complete(data_offset)
        out += pack_block(words, data)
        if command in ANDX_COMMANDS and len(words) >= 4:
            struct.pack_into("<BBH", out, start + 1, NO_ANDX, 0, 0)
            links.append(start + 1)
        else:
            links.append(start + 1)  # never written: a non-AndX block ends the chain
    return bytes(out)


def andx(words: bytes) -> bytes:
    """Response words with room for the AndX link (filled in by ``join_chain``)."""
    return b"\xff\0\0\0" + words


def smb_string(data: bytes, offset: int, unicode: bool) -> tuple[str, int]:
    """A NUL-terminated string at ``offset`` of ``data`` (Unicode strings start 2-aligned
    relative to the message: the caller passes the alignment-adjusted offset)."""
    if unicode:
        end = offset
        while end + 1 < len(data) and data[end:end + 2] != b"\0\0":
            end += 2
        return data[offset:end].decode("utf-16-le", "replace"), min(len(data), end + 2)
    end = data.find(b"\0", offset)
    if end < 0:
        end = len(data)
    return data[offset:end].decode("cp437", "replace"), end + 1


def buffer_string(data: bytes, offset: int, unicode: bool, what: str) -> tuple[str, int]:
    """A string behind its buffer format byte 0x04 (MS-CIFS 2.2.1.1: the path of DELETE,
    RENAME, CHECK_DIRECTORY...) at ``offset`` of ``data``: (the string, the offset after
    it). A missing 0x04 is STATUS_INVALID_PARAMETER, naming ``what``."""
    if data[offset:offset + 1] != b"\x04":
        raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, what)
    offset += 1
    return smb_string(data, offset + (1 if unicode and offset & 1 else 0), unicode)


def encode_string(text: str, unicode: bool) -> bytes:
    return (text.encode("utf-16-le") + b"\0\0") if unicode else (text.encode("cp437",
                                                                            "replace") + b"\0")
