"""NT_CREATE_ANDX, READ_ANDX, WRITE_ANDX, CLOSE over the same shares and pipes as SMB2
(``fs.DiskShare``/``OpenFile``, ``pipe.PipeHandle`` onto ``protocols.dcerpc``)."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from impacket import nt_errors

from protocols.dcerpc.pipes import Caller
from protocols.errors import StatusError
from protocols.smb1.messages import Block, andx, buffer_string, smb_string
from protocols.smb2.pipe import PipeHandle
from protocols.smb2.state import Open, close_quietly

if TYPE_CHECKING:
    from protocols.smb1.core import Chain, SMB1Core

# MS-CIFS 2.2.4.64.1 (WordCount 24) and .2 (WordCount 34).
NT_CREATE = struct.Struct("<4xBHIIIQIIIIIB")
NT_CREATE_RESPONSE = struct.Struct("<BHIQQQQIQQHHB")
READ_ANDX = struct.Struct("<4xHIHHIH")  # FID, Offset, MaxCount, MinCount, Timeout, Remaining
READ_RESPONSE = struct.Struct("<HHHHHH8x")  # after AndX: Available .. Reserved2
WRITE_ANDX = struct.Struct("<4xHIIHHHHH")  # FID, Offset, Timeout, WriteMode, Remaining,
#                                            DataLengthHigh, DataLength, DataOffset
# OPEN_ANDX (MS-CIFS 2.2.4.41): Flags, AccessMode, SearchAttrs, FileAttrs, CreationTime,
# OpenMode (then AllocationSize, Timeout, Reserved); the response's FID .. OpenResults.
OPEN_ANDX = struct.Struct("<4xHHHHIH")
OPEN_RESPONSE = struct.Struct("<HHIIHHHH6x")
# AccessMode's low bits -> DesiredAccess (generic read, write, both, execute).
_ACCESS = {0: 0x00120089, 1: 0x00120116, 2: 0x0012019F, 3: 0x001200A0}
# (FileExistsOpts, CreateFile) -> CreateDisposition; OPEN_ANDX's result codes.
_OPEN_DISPOSITIONS = {(1, False): 1, (1, True): 3, (2, False): 4, (2, True): 5, (0, True): 2}
_OPEN_RESULTS = {0: 3, 1: 1, 2: 2, 3: 3, 5: 3}  # superseded/opened/created/overwritten
FILE_TYPE_DISK = 0
FILE_CREATED = 2
FILE_TYPE_MESSAGE_MODE_PIPE = 2
PIPE_STATE_MESSAGE = 0x05FF  # ICount 0xFF, message read and type, ... (MS-CIFS 2.2.4.64.2)
STATUS_BUFFER_OVERFLOW = nt_errors.STATUS_BUFFER_OVERFLOW


def _share_path(name: str) -> str:
    """SMB1 names a file from the share root with a leading backslash."""
    return name.lstrip("\\")


class FileCommands:
    def _new_fid(self: SMB1Core, session: Any) -> tuple[int, int]:
        for _ in range(0x10000):
            fid = self._next_fid
            self._next_fid = (self._next_fid + 1) & 0xFFFF or 1
            if fid != 0xFFFF and (fid, fid) not in session.opens:
                return (fid, fid)
        raise StatusError(nt_errors.STATUS_TOO_MANY_OPENED_FILES, "no free FID")

    def open_handle(self: SMB1Core, chain: Chain, name: str, *, desired_access: int,
                    disposition: int, options: int, attributes: int) -> tuple[Open, int]:
        """Open ``name`` on the chain's tree as NT_CREATE_ANDX and TRANS2 do."""
        session, tree = self._session(chain), self._tree(chain)
        conn = self.conn
        if tree.share is None:
            pipes = conn.config.pipes
            pipe = pipes.known(name) if pipes is not None else None
            if pipes is None or pipe is None:
                raise StatusError(nt_errors.STATUS_OBJECT_NAME_NOT_FOUND, f"pipe {name}")
            if session.anonymous and not conn.config.gate.anonymous_may_open("pipe", pipe):
                raise StatusError(nt_errors.STATUS_ACCESS_DENIED, f"null session to pipe {pipe}")
            slot = session.slot
            caller = Caller(user=slot.user, anonymous=session.anonymous, client=slot.client,
                            address=conn.address)
            endpoint = pipes.open(pipe, caller, log=conn.log)
            if endpoint is None:
                raise StatusError(nt_errors.STATUS_OBJECT_NAME_NOT_FOUND, f"pipe {name}")
            handle: Any = PipeHandle(endpoint)
            action = 1  # FILE_OPENED
        else:
            handle, action = tree.share.open(
                _share_path(name), desired_access=desired_access,
                create_disposition=disposition, create_options=options,
                file_attributes=attributes)
        file_id = self._new_fid(session)
        op = session.opens[file_id] = Open(file_id, tree, handle)
        conn._update_opens(session)
        return op, action

    def _op(self: SMB1Core, chain: Chain, fid: int) -> Open:
        session = self._session(chain)
        op = session.opens.get((fid, fid))
        if op is None or op.tree.id != chain.tid:
            raise StatusError(nt_errors.STATUS_INVALID_HANDLE, f"FID {fid}")
        return op

    # -- NT_CREATE_ANDX --------------------------------------------------------------------
    def nt_create(self: SMB1Core, block: Block, chain: Chain) -> tuple[bytes, Any]:
        if len(block.words) < NT_CREATE.size:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "NT_CREATE_ANDX words")
        (_res, _name_length, flags, root_fid, access, _alloc, attributes, _share_access,
         disposition, options, _imp, _sec) = NT_CREATE.unpack_from(block.words)
        if root_fid:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "RootDirectoryFID")
        h = chain.request
        start = block.data_offset + (1 if h.unicode and block.data_offset & 1 else 0)
        name, _ = smb_string(chain.message[:block.data_offset + len(block.data)], start,
                             h.unicode)
        op, action = self.open_handle(chain, name.rstrip("\0"), desired_access=access,
                                      disposition=disposition, options=options,
                                      attributes=attributes)
        chain.fid = op.file_id[0]
        info = op.handle.network_open_info()
        pipe = isinstance(op.handle, PipeHandle)

        def build(level: int) -> bytes:
            return andx(NT_CREATE_RESPONSE.pack(
                level, op.file_id[0], action, info.creation_time, info.last_access_time,
                info.last_write_time, info.change_time, info.file_attributes,
                info.allocation_size, info.end_of_file,
                FILE_TYPE_MESSAGE_MODE_PIPE if pipe else FILE_TYPE_DISK,
                PIPE_STATE_MESSAGE if pipe else 0,
                1 if getattr(op.handle, "is_directory", False) else 0))

        words = self.grant_oplock(chain, op, flags=flags, access=access,
                                  disposition=disposition, created=action == FILE_CREATED,
                                  build=build)
        return words, b""

    # -- OPEN_ANDX (pysmb's retrieveFile/storeFile) ---------------------------------------
    def open_andx(self: SMB1Core, block: Block, chain: Chain) -> tuple[bytes, Any]:
        if len(block.words) < OPEN_ANDX.size:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "OPEN_ANDX words")
        _flags, access_mode, _search, attributes, _ctime, open_mode = OPEN_ANDX.unpack_from(
            block.words)
        disposition = _OPEN_DISPOSITIONS.get((open_mode & 0x3, bool(open_mode & 0x10)))
        if disposition is None:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, f"OpenMode 0x{open_mode:x}")
        h = chain.request
        start = block.data_offset + (1 if h.unicode and block.data_offset & 1 else 0)
        name, _ = smb_string(chain.message[:block.data_offset + len(block.data)], start,
                             h.unicode)
        op, action = self.open_handle(
            chain, name, desired_access=_ACCESS.get(access_mode & 0x7, _ACCESS[0]),
            disposition=disposition, options=0x40, attributes=attributes)  # non-directory
        info = op.handle.network_open_info()
        pipe = isinstance(op.handle, PipeHandle)
        seconds = max(0, (info.last_write_time - 116444736000000000) // 10_000_000)
        words = andx(OPEN_RESPONSE.pack(
            op.file_id[0], info.file_attributes & 0xFFFF, seconds & 0xFFFFFFFF,
            min(info.end_of_file, 0xFFFFFFFF), access_mode & 0x7,
            FILE_TYPE_MESSAGE_MODE_PIPE if pipe else FILE_TYPE_DISK,
            PIPE_STATE_MESSAGE if pipe else 0, _OPEN_RESULTS.get(action, 1)))
        return words, b""

    # -- READ_ANDX / WRITE_ANDX ------------------------------------------------------------
    def read_andx(self: SMB1Core, block: Block, chain: Chain) -> tuple[bytes, Any]:
        if len(block.words) not in (20, 24):
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "READ_ANDX words")
        fid, offset, max_count, _min, timeout, _rem = READ_ANDX.unpack_from(block.words)
        if len(block.words) == 24:
            offset |= struct.unpack_from("<I", block.words, 20)[0] << 32
        high = timeout & 0xFFFF  # MaxCountHigh with CAP_LARGE_READX (MS-SMB 2.2.4.2.1)
        if high != 0xFFFF:
            max_count |= high << 16
        max_count = min(max_count, self.conn.config.max_transact)
        op = self._op(chain, fid)
        try:
            data = op.handle.read(offset, max_count)
        except StatusError as err:
            if err.status != nt_errors.STATUS_END_OF_FILE or isinstance(op.handle, PipeHandle):
                raise
            # SMB1 reads at or past the end succeed with no data (smbtorture raw.readx and
            # raw.oplock.batch4, written against Windows, expect STATUS_OK there).
            data = b""
        if isinstance(op.handle, PipeHandle) and op.handle.overflow:
            chain.status = STATUS_BUFFER_OVERFLOW  # the rest of the message is still there

        available = 0 if isinstance(op.handle, PipeHandle) else 0xFFFF
        return ReadWords(len(data), available), lambda offset: b"\0" + data

    def write_andx(self: SMB1Core, block: Block, chain: Chain) -> tuple[bytes, Any]:
        if len(block.words) not in (24, 28):
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "WRITE_ANDX words")
        (fid, offset, _timeout, _mode, _remaining, length_high, length,
         data_offset) = WRITE_ANDX.unpack_from(block.words)
        if len(block.words) == 28:
            offset |= struct.unpack_from("<I", block.words, 24)[0] << 32
        length |= length_high << 16
        if data_offset < block.data_offset or data_offset + length > len(chain.message):
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "WRITE_ANDX DataOffset")
        op = self._op(chain, fid)
        written = op.handle.write(offset, chain.message[data_offset:data_offset + length])
        if op.lease is not None:  # data written: Level II oplocks break to none
            op.lease.table.contend_write(op.lease)
        return andx(struct.pack("<HHHH", written & 0xFFFF, 0xFFFF if isinstance(
            op.handle, PipeHandle) else 0, written >> 16, 0)), b""

    # -- DELETE, CREATE_DIRECTORY, DELETE_DIRECTORY (a path in a 0x04 buffer) --------------
    def _path_command(self: SMB1Core, block: Block, chain: Chain, *, skip_words: bool,
                      access: int, disposition: int, options: int) -> tuple[bytes, Any]:
        tree = self._tree(chain)
        if tree.share is None:
            raise StatusError(nt_errors.STATUS_INVALID_DEVICE_REQUEST, "IPC$ has no files")
        if skip_words and len(block.words) < 2:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "path buffer")
        path, _ = buffer_string(chain.message[:block.data_offset + len(block.data)],
                                block.data_offset, chain.request.unicode, "path buffer")
        if not self.breaks_done(chain, tree, _share_path(path), access):
            return b"", b""  # runs again when the oplock breaks are done
        handle, _ = tree.share.open(_share_path(path), desired_access=access,
                                    create_disposition=disposition, create_options=options,
                                    file_attributes=0)
        handle.close()
        return b"", b""

    def delete(self: SMB1Core, block: Block, chain: Chain) -> tuple[bytes, Any]:
        # Open with DELETE and delete-on-close (non-directory), then close.
        return self._path_command(block, chain, skip_words=True, access=0x00010000,
                                  disposition=1, options=0x1040)

    def create_directory(self: SMB1Core, block: Block, chain: Chain) -> tuple[bytes, Any]:
        return self._path_command(block, chain, skip_words=False, access=0x00100001,
                                  disposition=2, options=0x0001)

    def delete_directory(self: SMB1Core, block: Block, chain: Chain) -> tuple[bytes, Any]:
        return self._path_command(block, chain, skip_words=False, access=0x00010000,
                                  disposition=1, options=0x1001)

    def rename(self: SMB1Core, block: Block, chain: Chain) -> tuple[bytes, Any]:
        """SMB_COM_RENAME (MS-CIFS 2.2.4.8): two 0x04 buffers, old and new name; done as
        an open with DELETE and FileRenameInformation, as over SMB2."""
        tree = self._tree(chain)
        if tree.share is None:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "RENAME")
        unicode = chain.request.unicode
        region = chain.message[:block.data_offset + len(block.data)]
        old, pos = buffer_string(region, block.data_offset, unicode, "RENAME")
        new, _ = buffer_string(region, pos, unicode, "RENAME new name")
        if not self.breaks_done(chain, tree, _share_path(old), 0x00010080):
            return b"", b""  # runs again when the oplock breaks are done
        handle, _ = tree.share.open(_share_path(old), desired_access=0x00010080,
                                    create_disposition=1, create_options=0, file_attributes=0)
        try:
            target = _share_path(new).encode("utf-16-le")
            handle.set_info(10, struct.pack("<B7xQI", 0, 0, len(target)) + target)
        finally:
            handle.close()
        return b"", b""

    # -- CLOSE -----------------------------------------------------------------------------
    def close(self: SMB1Core, block: Block, chain: Chain) -> tuple[bytes, Any]:
        if len(block.words) < 6:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "CLOSE words")
        (fid,) = struct.unpack_from("<H", block.words)
        op = self._op(chain, fid)
        session = self._session(chain)
        del session.opens[op.file_id]
        self.conn._update_opens(session)
        close_quietly(op)
        return b"", b""


class ReadWords(bytes):
    """READ_ANDX's words, completed by ``join_chain`` once the data's offset is known: the
    data follows one pad byte (2-aligned, as Windows sends it)."""

    data_length: int
    available: int

    def __new__(cls, data_length: int, available: int) -> ReadWords:
        obj = super().__new__(cls, andx(READ_RESPONSE.pack(available, 0, 0, 0, 0, 0)))
        obj.data_length, obj.available = data_length, available
        return obj

    def complete(self, data_offset: int) -> bytes:
        n = self.data_length
        return andx(READ_RESPONSE.pack(self.available, 0, 0, n & 0xFFFF, data_offset + 1,
                                       n >> 16))
