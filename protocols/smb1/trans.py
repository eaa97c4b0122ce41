"""SMB_COM_TRANSACTION (named pipes: TransactNmPipe, WaitNmPipe; RAP on \\PIPE\\LANMAN)
and SMB_COM_TRANSACTION2 (FIND_FIRST2/FIND_NEXT2, QUERY_FS/PATH/FILE_INFORMATION,
SET_FILE_INFORMATION), FIND_CLOSE2 and CHECK_DIRECTORY.

A transaction that does not fit its primary request is completed by secondary requests
(``protocols/smb1/secondary.py``). Responses larger than the client's MaxBufferSize are
split over several response messages (MS-CIFS 3.3.4.1.2)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from impacket import nt_errors

from protocols.errors import StatusError
from protocols.smb1 import rap
from protocols.smb1.messages import Block, Header, buffer_string, smb_string
from protocols.smb1.secondary import Primary
from protocols.smb2.pipe import PipeHandle
from protocols.smb2.state import Open, close_quietly

if TYPE_CHECKING:
    from protocols.smb1.core import Chain, SMB1Core

TRANS_REQUEST = struct.Struct("<HHHHBBHIHHHHHBB")  # MS-CIFS 2.2.4.33.1 (14 words)
TRANS_RESPONSE = struct.Struct("<HHHHHHHHHBB")  # MS-CIFS 2.2.4.33.2 (10 words)
TRANS_TRANSACT_NMPIPE = 0x0026
TRANS_WAIT_NMPIPE = 0x0053
TRANS_PEEK_NMPIPE = 0x0023
TRANS_QUERY_NMPIPE_STATE = 0x0021
TRANS2_FIND_FIRST2 = 0x0001
TRANS2_FIND_NEXT2 = 0x0002
TRANS2_QUERY_FS_INFORMATION = 0x0003
TRANS2_QUERY_PATH_INFORMATION = 0x0005
TRANS2_QUERY_FILE_INFORMATION = 0x0007
TRANS2_SET_FILE_INFORMATION = 0x0008
FIND_CLOSE_AFTER_REQUEST = 0x0001
FIND_CLOSE_AT_EOS = 0x0002
SEARCH_KEY = 0x10000  # search handles sit in the session's opens under (this + SID, 0)
MAX_SEARCHES = 1000
FILE_LIST_DIRECTORY = 0x0001
FILE_READ_ATTRIBUTES = 0x0080
FILE_OPEN = 1
FILE_DIRECTORY_FILE = 0x0001
STATUS_BUFFER_OVERFLOW = nt_errors.STATUS_BUFFER_OVERFLOW
PASSTHROUGH = 1000  # SMB_INFO_PASSTHROUGH: level - 1000 is the MS-FSCC class

# SMB_FIND_* levels -> MS-FSCC FileInformationClass (MS-CIFS 2.2.8.1, MS-SMB 2.2.8.1).
FIND_LEVELS = {0x101: 1, 0x102: 2, 0x103: 12, 0x104: 3, 0x105: 38, 0x106: 37}
# SMB_QUERY_FILE_* levels -> class (0x107 ALL_INFO is reshaped from FileAllInformation).
QUERY_LEVELS = {0x101: 4, 0x102: 5, 0x104: 9, 0x108: 21, 0x109: 22, 0x10B: 28}
QUERY_ALL_INFO = 0x107
QUERY_EA_INFO = 0x103
SET_LEVELS = {0x101: 4, 0x102: 13, 0x103: 19, 0x104: 20}
# SMB_QUERY_FS_* levels -> FsInformationClass; 1 (SMB_INFO_ALLOCATION) and 2
# (SMB_INFO_VOLUME) are built from FileFsSize/VolumeInformation.
FS_LEVELS = {0x102: 1, 0x103: 3, 0x104: 4, 0x105: 5}


class Transaction(Primary):
    def __init__(self, block: Block, message: bytes, *, named: bool, unicode: bool) -> None:
        if len(block.words) < TRANS_REQUEST.size:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "transaction words")
        (total_params, total_data, max_params, max_data, max_setup, _r1, _flags, _timeout,
         _r2, param_count, param_offset, data_count, data_offset, setup_count,
         _r3) = TRANS_REQUEST.unpack_from(block.words)
        self._take(block, message, "transaction", words_size=TRANS_REQUEST.size,
                   setup_count=setup_count, max_setup=max_setup, total_params=total_params,
                   max_params=max_params, total_data=total_data, max_data=max_data,
                   param_count=param_count, param_offset=param_offset,
                   data_count=data_count, data_offset=data_offset)
        self.setup = struct.unpack_from(f"<{setup_count}H", block.words, TRANS_REQUEST.size)
        self.name = ""
        if named:
            end = block.data_offset + len(block.data)
            start = block.data_offset + (1 if unicode and block.data_offset & 1 else 0)
            self.name, _ = smb_string(message[:end], start, unicode)


def fragments(request: Header, uid: int, tid: int, status: int, params: bytes, data: bytes,
              max_buffer: int, words: Callable[..., bytes], words_size: int,
              overhead: int) -> list[bytes]:
    """A transaction's response messages (TRANSACTION, TRANSACTION2 and NT_TRANSACT alike),
    each within the client's MaxBufferSize: the parameters in the first, the data cut to
    fit. ``words(total_params, total_data, param_count, param_offset, param_displacement,
    data_count, data_offset, data_displacement)`` lays out the command's parameter words."""
    room = max(512, max_buffer - overhead - len(params))
    out: list[bytes] = []
    sent = 0
    while True:
        chunk = data[sent:sent + room]
        part_params = params if not out else b""
        head = 32 + 1 + words_size + 2
        p_off = head + (-head % 4)
        d_off = p_off + len(part_params)
        d_off += -d_off % 4
        packed = words(len(params), len(data), len(part_params), p_off,
                       0 if not out else len(params), len(chunk), d_off, sent)
        body = (b"\0" * (p_off - head) + part_params + b"\0" * (d_off - p_off - len(part_params))
                + chunk)
        reply = request.reply()
        reply.uid, reply.tid = uid, tid
        reply.set_status(status)
        out.append(reply.pack() + bytes([len(packed) // 2]) + packed
                   + struct.pack("<H", len(body)) + body)
        sent += len(chunk)
        if sent >= len(data):
            return out


def responses(request: Header, uid: int, tid: int, status: int, params: bytes, data: bytes,
              max_buffer: int) -> list[bytes]:
    """One TRANSACTION/TRANSACTION2's response messages."""
    return fragments(request, uid, tid, status, params, data, max_buffer,
                     lambda tp, td, pc, po, pd, dc, do, dd: TRANS_RESPONSE.pack(
                         tp, td, 0, pc, po, pd, dc, do, dd, 0, 0),
                     TRANS_RESPONSE.size, overhead=64)


class TransCommands:
    def _trans_reply(self: SMB1Core, chain: Chain, params: bytes, data: bytes,
                     status: int = 0) -> list[bytes]:
        return responses(chain.request, chain.uid, chain.tid, status, params, data,
                         self.client_max_buffer)

    # -- SMB_COM_TRANSACTION ---------------------------------------------------------------
    def transaction(self: SMB1Core, block: Block, chain: Chain) -> list[bytes]:
        self._session(chain), self._tree(chain)
        trans = Transaction(block, chain.message, named=True, unicode=chain.request.unicode)
        if not trans.complete:
            return self.begin_transaction(chain, block.command, trans)
        return self.run_transaction(trans, chain)

    def run_transaction(self: SMB1Core, trans: Transaction, chain: Chain) -> list[bytes]:
        session, tree = self._session(chain), self._tree(chain)
        name = trans.name.upper().rstrip("\0")
        if name == "\\PIPE\\LANMAN":
            params, data = rap.call(self, session, trans.params, trans.max_data)
            return self._trans_reply(chain, params, data)
        if name != "\\PIPE\\" or tree.share is not None or not trans.setup:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, f"transaction {name!r}")
        function = trans.setup[0]
        if function == TRANS_WAIT_NMPIPE:
            return self._trans_reply(chain, b"", b"")
        if len(trans.setup) < 2:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "pipe transaction setup")
        op = self._op(chain, trans.setup[1])
        if not isinstance(op.handle, PipeHandle):
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "not a pipe")
        if function == TRANS_TRANSACT_NMPIPE:
            out = op.handle.transceive(trans.data, min(trans.max_data, 0xFFFF))
            status = STATUS_BUFFER_OVERFLOW if op.handle.overflow else 0
            return self._trans_reply(chain, b"", out, status)
        if function == TRANS_QUERY_NMPIPE_STATE:
            return self._trans_reply(chain, struct.pack("<H", 0x05FF), b"")
        raise StatusError(nt_errors.STATUS_NOT_SUPPORTED, f"pipe function 0x{function:x}")

    # -- SMB_COM_TRANSACTION2 --------------------------------------------------------------
    def transaction2(self: SMB1Core, block: Block, chain: Chain) -> list[bytes]:
        self._session(chain)
        trans = Transaction(block, chain.message, named=False, unicode=chain.request.unicode)
        if not trans.complete:
            return self.begin_transaction(chain, block.command, trans)
        return self.run_transaction2(trans, chain)

    def run_transaction2(self: SMB1Core, trans: Transaction, chain: Chain) -> list[bytes]:
        self._session(chain)
        if len(trans.setup) != 1:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "TRANS2 SetupCount")
        handler = _TRANS2.get(trans.setup[0])
        if handler is None:
            raise StatusError(nt_errors.STATUS_NOT_SUPPORTED, f"TRANS2 0x{trans.setup[0]:x}")
        try:
            params, data = handler(self, trans, chain)
        except struct.error:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "short TRANS2 parameters"
                              ) from None
        return self._trans_reply(chain, params, data)

    def _name_at(self: SMB1Core, chain: Chain, params: bytes, offset: int) -> str:
        if chain.request.unicode:
            return params[offset:].decode("utf-16-le", "replace").split("\0", 1)[0]
        return params[offset:].decode("cp437", "replace").split("\0", 1)[0]

    def _disk_tree(self: SMB1Core, chain: Chain) -> Any:
        tree = self._tree(chain)
        if tree.share is None:
            raise StatusError(nt_errors.STATUS_INVALID_DEVICE_REQUEST, "IPC$ has no files")
        return tree

    def _find_first(self: SMB1Core, trans: Transaction, chain: Chain) -> tuple[bytes, bytes]:
        _attrs, count, flags, level, _storage = struct.unpack_from("<HHHHI", trans.params)
        session, tree = self._session(chain), self._disk_tree(chain)
        info_class = _find_class(level)
        path = self._name_at(chain, trans.params, 12).lstrip("\\")
        directory, _, pattern = path.rpartition("\\")
        if sum(1 for key in session.opens if key[0] >= SEARCH_KEY) >= MAX_SEARCHES:
            raise StatusError(nt_errors.STATUS_INSUFFICIENT_RESOURCES, "too many searches")
        handle, _ = tree.share.open(directory, desired_access=FILE_LIST_DIRECTORY,
                                    create_disposition=FILE_OPEN,
                                    create_options=FILE_DIRECTORY_FILE, file_attributes=0)
        sid = 1
        while (SEARCH_KEY + sid, 0) in session.opens:
            sid += 1
        key = (SEARCH_KEY + sid, 0)
        op = session.opens[key] = Open(key, tree, handle)
        try:
            entries, end = self._entries(op, info_class, pattern or "*", count,
                                         trans.max_data, first=True)
        except StatusError:
            close_quietly(session.opens.pop(key))
            raise
        if flags & FIND_CLOSE_AFTER_REQUEST or (end and flags & FIND_CLOSE_AT_EOS):
            close_quietly(session.opens.pop(key))
        return struct.pack("<HHHHH", sid, _count(entries), int(end), 0,
                           _last_offset(entries)), entries

    def _find_next(self: SMB1Core, trans: Transaction, chain: Chain) -> tuple[bytes, bytes]:
        sid, count, level, _resume, flags = struct.unpack_from("<HHHIH", trans.params)
        session = self._session(chain)
        key = (SEARCH_KEY + sid, 0)
        op = session.opens.get(key)
        if op is None:
            raise StatusError(nt_errors.STATUS_INVALID_HANDLE, f"SID {sid}")
        entries, end = self._entries(op, _find_class(level), "*", count, trans.max_data,
                                     first=False)
        if flags & FIND_CLOSE_AFTER_REQUEST or (end and flags & FIND_CLOSE_AT_EOS):
            close_quietly(session.opens.pop(key))
        return struct.pack("<HHHH", _count(entries), int(end), 0, _last_offset(entries)), entries

    def _entries(self: SMB1Core, op: Open, info_class: int, pattern: str, count: int,
                 max_data: int, *, first: bool) -> tuple[bytes, bool]:
        handle = op.handle
        room = max(512, min(max_data, 0xFFFF))
        flags = 0x02 if count == 1 else 0  # SMB2_RETURN_SINGLE_ENTRY
        try:
            data = handle.query_directory(info_class, pattern, flags, room)
        except StatusError as err:
            if err.status == nt_errors.STATUS_NO_MORE_FILES and not first:
                raise
            if err.status in (nt_errors.STATUS_NO_SUCH_FILE, nt_errors.STATUS_NO_MORE_FILES):
                raise StatusError(nt_errors.STATUS_NO_SUCH_FILE, "no file matches") from None
            raise
        # The handle's snapshot and cursor say whether the search is done (fs.OpenFile).
        listing = handle._listing or []
        return data, handle._cursor >= len(listing)

    def _query_fs(self: SMB1Core, trans: Transaction, chain: Chain) -> tuple[bytes, bytes]:
        (level,) = struct.unpack_from("<H", trans.params)
        share = self._disk_tree(chain).share
        if level == 1:  # SMB_INFO_ALLOCATION
            total, free, spu, bps = struct.unpack("<QQII", share.fs_info(3))
            return b"", struct.pack("<IIIIH", 0, spu, min(total, 0xFFFFFFFF),
                                    min(free, 0xFFFFFFFF), bps)
        if level == 2:  # SMB_INFO_VOLUME
            volume = share.fs_info(1)
            serial, label_length = struct.unpack_from("<II", volume, 8)
            label = volume[18:18 + label_length].decode("utf-16-le")
            encoded = label.encode("utf-16-le") if chain.request.unicode else label.encode()
            return b"", struct.pack("<IB", serial, len(encoded)) + encoded
        info_class = FS_LEVELS.get(level, level - PASSTHROUGH if level > PASSTHROUGH else 0)
        if not info_class:
            raise StatusError(nt_errors.STATUS_INVALID_LEVEL, f"fs level 0x{level:x}")
        return b"", share.fs_info(info_class)

    def _query_path(self: SMB1Core, trans: Transaction, chain: Chain) -> tuple[bytes, bytes]:
        (level,) = struct.unpack_from("<H", trans.params)
        tree = self._disk_tree(chain)
        path = self._name_at(chain, trans.params, 6).strip("\\")
        handle, _ = tree.share.open(path, desired_access=FILE_READ_ATTRIBUTES,
                                    create_disposition=FILE_OPEN, create_options=0,
                                    file_attributes=0)
        try:
            return b"\0\0", _file_info(handle, level)
        finally:
            handle.close()

    def _query_file(self: SMB1Core, trans: Transaction, chain: Chain) -> tuple[bytes, bytes]:
        fid, level = struct.unpack_from("<HH", trans.params)
        return b"\0\0", _file_info(self._op(chain, fid).handle, level)

    def _set_file(self: SMB1Core, trans: Transaction, chain: Chain) -> tuple[bytes, bytes]:
        fid, level = struct.unpack_from("<HH", trans.params)
        info_class = SET_LEVELS.get(level, level - PASSTHROUGH if level > PASSTHROUGH else 0)
        if not info_class:
            raise StatusError(nt_errors.STATUS_INVALID_LEVEL, f"set level 0x{level:x}")
        self._op(chain, fid).handle.set_info(info_class, trans.data)
        return b"\0\0", b""

    # -- FIND_CLOSE2, CHECK_DIRECTORY ---------------------------------------------------
    def find_close(self: SMB1Core, block: Block, chain: Chain) -> tuple[bytes, Any]:
        if len(block.words) < 2:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "FIND_CLOSE2 words")
        session = self._session(chain)
        (sid,) = struct.unpack_from("<H", block.words)
        op = session.opens.pop((SEARCH_KEY + sid, 0), None)
        if op is None:
            raise StatusError(nt_errors.STATUS_INVALID_HANDLE, f"SID {sid}")
        close_quietly(op)
        return b"", b""

    def check_directory(self: SMB1Core, block: Block, chain: Chain) -> tuple[bytes, Any]:
        tree = self._disk_tree(chain)
        path, _ = buffer_string(chain.message[:block.data_offset + len(block.data)],
                                block.data_offset, chain.request.unicode,
                                "CHECK_DIRECTORY format")
        handle, _ = tree.share.open(path.strip("\\"), desired_access=FILE_READ_ATTRIBUTES,
                                    create_disposition=FILE_OPEN,
                                    create_options=FILE_DIRECTORY_FILE, file_attributes=0)
        handle.close()
        return b"", b""


def _find_class(level: int) -> int:
    info_class = FIND_LEVELS.get(level, level - PASSTHROUGH if level > PASSTHROUGH else 0)
    if not info_class:
        raise StatusError(nt_errors.STATUS_INVALID_LEVEL, f"find level 0x{level:x}")
    return info_class


def _file_info(handle: Any, level: int) -> bytes:
    if level == QUERY_EA_INFO:
        return b"\0" * 4  # EaSize: no extended attributes
    if level == QUERY_ALL_INFO:
        # SMB_QUERY_FILE_ALL_INFO (MS-CIFS 2.2.8.3.8): Basic, Standard, EaSize, then the
        # name's length and the name, i.e. FileAllInformation without Internal, Access,
        # Position, Mode, Alignment.
        full = handle.query_info(18, 0xFFFF)
        return full[:64] + full[72:76] + full[96:]
    info_class = QUERY_LEVELS.get(level, level - PASSTHROUGH if level > PASSTHROUGH else 0)
    if not info_class:
        raise StatusError(nt_errors.STATUS_INVALID_LEVEL, f"query level 0x{level:x}")
    return handle.query_info(info_class, 0xFFFF)


def _offsets(entries: bytes) -> list[int]:
    offsets, pos = [], 0
    while entries and pos < len(entries):
        offsets.append(pos)
        (step,) = struct.unpack_from("<I", entries, pos)
        if not step:
            break
        pos += step
    return offsets


def _count(entries: bytes) -> int:
    return len(_offsets(entries))


def _last_offset(entries: bytes) -> int:
    offsets = _offsets(entries)
    return offsets[-1] if offsets else 0


_TRANS2 = {
    TRANS2_FIND_FIRST2: TransCommands._find_first,
    TRANS2_FIND_NEXT2: TransCommands._find_next,
    TRANS2_QUERY_FS_INFORMATION: TransCommands._query_fs,
    TRANS2_QUERY_PATH_INFORMATION: TransCommands._query_path,
    TRANS2_QUERY_FILE_INFORMATION: TransCommands._query_file,
    TRANS2_SET_FILE_INFORMATION: TransCommands._set_file,
}
