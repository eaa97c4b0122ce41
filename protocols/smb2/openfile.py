"""One open of a disk share's file or directory (an SMB2 CREATE's result): READ, WRITE,
FLUSH, CLOSE (and delete on close), QUERY_INFO's file classes and security, SET_INFO
(basic, rename, disposition, position, sizes) and QUERY_DIRECTORY. ``fs.DiskShare``
makes them; the path checks are the share's.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import TYPE_CHECKING

from impacket import nt_errors as nt

from protocols.errors import StatusError
from protocols.smb2 import fileinfo as fi
from protocols.smb2.fileinfo import FileInfoClass, NetworkOpenInfo
from protocols.smb2.fsbase import (
    DELETE,
    FILE_DELETE_ON_CLOSE,
    FILE_EXECUTE,
    FILE_NO_INTERMEDIATE_BUFFERING,
    FILE_READ_DATA,
    FILE_SEQUENTIAL_ONLY,
    FILE_WRITE_ATTRIBUTES,
    FILE_WRITE_DATA,
    FILE_WRITE_THROUGH,
    SMB2_REOPEN,
    SMB2_RESTART_SCANS,
    SMB2_RETURN_SINGLE_ENTRY,
    WRITE_BITS,
    Node,
    check_deletable,
    open_info,
    os_errors,
)
from protocols.smb2.names import ILLEGAL, short_name, split_path, wildcard_regex

if TYPE_CHECKING:
    from protocols.smb2.fs import DiskShare


class OpenFile:
    """One CREATE result.  Location and delete-pending state live on the shared Node."""

    def __init__(self, share: DiskShare, node: Node, *, is_directory: bool, granted_access: int,
                 create_options: int, fd: int | None) -> None:
        self.share = share
        self._node = node
        self.is_directory = is_directory
        self.granted_access = granted_access
        self.create_options = create_options
        self.position = 0  # FilePositionInformation; SMB2 READ/WRITE carry their own offsets
        self._fd = fd
        self._delete_on_close = bool(create_options & FILE_DELETE_ON_CLOSE)
        self._closed = False
        self._listing: list[str] | None = None  # QUERY_DIRECTORY snapshot and cursor
        self._cursor = 0
        self._first_query = True

    @property
    def path(self) -> str:
        return self._node.path

    @property
    def delete_pending(self) -> bool:
        return self._node.delete_pending

    def _check(self, access: int = 0) -> None:
        if self._closed:
            raise StatusError(nt.STATUS_FILE_CLOSED)
        if access and not self.granted_access & access:
            raise StatusError(nt.STATUS_ACCESS_DENIED, f"needs access 0x{access:x}")

    def _stat(self) -> os.stat_result:
        with os_errors():
            return os.fstat(self._fd) if self._fd is not None else os.stat(self._node.real)

    # --- READ / WRITE / FLUSH / CLOSE -----------------------------------------------------------

    def read(self, offset: int, length: int) -> bytes:
        self._check()
        if self.is_directory:
            raise StatusError(nt.STATUS_INVALID_DEVICE_REQUEST, "read on a directory")
        self._check(FILE_READ_DATA | FILE_EXECUTE)
        assert self._fd is not None
        if length == 0:
            return b""
        with os_errors():
            data = os.pread(self._fd, length, offset)
        if not data:
            raise StatusError(nt.STATUS_END_OF_FILE)
        return data

    def write(self, offset: int, data: bytes) -> int:
        self._check()
        if self.is_directory:
            raise StatusError(nt.STATUS_INVALID_DEVICE_REQUEST)
        self._check(WRITE_BITS)
        assert self._fd is not None
        with os_errors():
            if offset == 0xFFFFFFFFFFFFFFFF:  # MS-SMB2: "write at end of file"
                offset = os.fstat(self._fd).st_size
            view, done = memoryview(data), 0
            while done < len(view):
                done += os.pwrite(self._fd, view[done:], offset + done)
        return done

    def flush(self) -> None:
        self._check(WRITE_BITS)
        if self._fd is not None:
            with os_errors():
                os.fsync(self._fd)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        node, share = self._node, self.share
        if self._fd is not None:
            os.close(self._fd)
        node.opens -= 1
        if self._delete_on_close:
            node.delete_pending = True
        if node.opens == 0:
            share._nodes.pop(node.real, None)
            if node.delete_pending:
                # CLOSE cannot fail; a directory that refilled meanwhile simply stays.
                with contextlib.suppress(OSError):
                    (os.rmdir if self.is_directory else os.unlink)(node.real)

    # --- QUERY_INFO -----------------------------------------------------------------------------

    def network_open_info(self) -> NetworkOpenInfo:
        self._check()
        return open_info(self._stat(), self.is_directory)

    def query_info(self, info_class: int, output_buffer_length: int) -> bytes:
        """The full encoding of ``info_class``.

        Output-buffer policy: a buffer too small for a fixed-size class, or for the fixed part
        of a variable one, raises STATUS_INFO_LENGTH_MISMATCH as Windows does.  Otherwise the
        full bytes are returned even when longer than ``output_buffer_length``: the caller
        truncates them and answers STATUS_BUFFER_OVERFLOW (a warning that still carries data).
        """
        self._check()
        data, fixed = self._file_info(info_class)
        if output_buffer_length < fixed:
            raise StatusError(nt.STATUS_INFO_LENGTH_MISMATCH, f"class {info_class} needs {fixed}")
        return data

    def _file_info(self, info_class: int) -> tuple[bytes, int]:
        """-> (full encoding, size of its fixed part)."""
        st = self._stat()
        info = open_info(st, self.is_directory)
        name = "\\" + self.path
        links = 1 if self.is_directory else st.st_nlink
        mode = self.create_options & (FILE_WRITE_THROUGH | FILE_SEQUENTIAL_ONLY
                                      | FILE_NO_INTERMEDIATE_BUFFERING | FILE_DELETE_ON_CLOSE)
        C = FileInfoClass
        match info_class:
            case C.BASIC:
                data = fi.basic_information(info)
            case C.STANDARD:
                data = fi.standard_information(info, links, self.delete_pending,
                                               self.is_directory)
            case C.INTERNAL:
                data = fi.internal_information(st.st_ino)
            case C.EA:
                data = fi.ea_information()
            case C.ACCESS:
                data = fi.access_information(self.granted_access)
            case C.NAME:
                return fi.name_information(name), 4
            case C.POSITION:
                data = fi.position_information(self.position)
            case C.MODE:
                data = fi.mode_information(mode)
            case C.ALIGNMENT:
                data = fi.alignment_information()
            case C.ALL:
                return fi.all_information(
                    info, links=links, delete_pending=self.delete_pending,
                    directory=self.is_directory, file_id=st.st_ino,
                    access_mask=self.granted_access, position=self.position, mode=mode,
                    name=name), fi.ALL_INFORMATION_FIXED
            case C.ALTERNATE_NAME:
                if not self.path:
                    raise StatusError(nt.STATUS_OBJECT_NAME_NOT_FOUND, "the root has no 8.3 name")
                return fi.name_information(short_name(self.path.rsplit("\\", 1)[-1])), 4
            case C.STREAM:
                # Only the unnamed data stream; Windows lists none for a directory.
                streams = [] if self.is_directory else [
                    ("::$DATA", info.end_of_file, info.allocation_size)]
                return fi.stream_information(streams), 24 if streams else 0
            case C.COMPRESSION:
                data = fi.compression_information(info.end_of_file)
            case C.NETWORK_OPEN:
                data = fi.network_open_information(info)
            case C.ATTRIBUTE_TAG:
                data = fi.attribute_tag_information(info.file_attributes)
            case C.NORMALIZED_NAME:
                # Relative to the share root without the leading '\' (empty for the root).
                return fi.name_information(self.path), 4
            case _:
                raise StatusError(nt.STATUS_INVALID_INFO_CLASS, f"file class {info_class}")
        return data, len(data)

    def security_info(self, additional_information: int) -> bytes:
        """Owner BUILTIN\\Administrators, group SYSTEM, DACL: Everyone full control."""
        self._check()
        ai = additional_information
        inherit = fi.OBJECT_INHERIT_ACE | fi.CONTAINER_INHERIT_ACE if self.is_directory else 0
        return fi.security_descriptor(
            "S-1-5-32-544" if ai & fi.OWNER_SECURITY_INFORMATION else None,
            "S-1-5-18" if ai & fi.GROUP_SECURITY_INFORMATION else None,
            [(fi.ACCESS_ALLOWED_ACE_TYPE, inherit, fi.FILE_ALL_ACCESS, "S-1-1-0")]
            if ai & fi.DACL_SECURITY_INFORMATION else None)

    # --- SET_INFO -------------------------------------------------------------------------------

    def set_info(self, info_class: int, data: bytes) -> None:
        self._check()
        C = FileInfoClass
        match info_class:
            case C.BASIC:
                self._check(FILE_WRITE_ATTRIBUTES)
                self._set_basic(fi.parse_basic_information(data))
            case C.RENAME:
                self._check(DELETE)
                self._rename(fi.parse_rename_information(data))
            case C.DISPOSITION:
                self._check(DELETE)
                self._set_delete_pending(fi.parse_disposition_information(data))
            case C.POSITION:
                position = fi.parse_int64(data)
                if position < 0:
                    raise StatusError(nt.STATUS_INVALID_PARAMETER, "negative position")
                self.position = position
            case C.ALLOCATION | C.END_OF_FILE:
                size = fi.parse_int64(data)
                if self.is_directory or size < 0:
                    raise StatusError(nt.STATUS_INVALID_PARAMETER, "size")
                self._check(FILE_WRITE_DATA)
                assert self._fd is not None  # opened because FILE_WRITE_DATA was granted
                # Allocation only ever shrinks the data (to fit); growing it reserves nothing.
                if info_class == C.END_OF_FILE or size < self._stat().st_size:
                    with os_errors():
                        os.ftruncate(self._fd, size)
            case _:
                raise StatusError(nt.STATUS_INVALID_INFO_CLASS, f"set class {info_class}")

    def _set_basic(self, u: fi.BasicInfoUpdate) -> None:
        if u.file_attributes & fi.FILE_ATTRIBUTE_DIRECTORY and not self.is_directory:
            raise StatusError(nt.STATUS_INVALID_PARAMETER, "DIRECTORY attribute on a file")
        real, st = self._node.real, self._stat()

        def pick(filetime: int, current_ns: int) -> int:
            return current_ns if filetime in (0, -1, -2) else fi.ns_from_filetime(filetime)

        with os_errors():
            # Creation and change time cannot be set on Linux; accepted and ignored.
            if {u.last_access_time, u.last_write_time} - {0, -1, -2}:
                os.utime(real, ns=(pick(u.last_access_time, st.st_atime_ns),
                                   pick(u.last_write_time, st.st_mtime_ns)))
            if u.file_attributes and not self.is_directory:  # 0 = leave attributes alone
                if u.file_attributes & fi.FILE_ATTRIBUTE_READONLY:
                    mode = st.st_mode & ~0o222
                else:
                    mode = st.st_mode | stat.S_IWUSR
                if mode != st.st_mode:
                    os.chmod(real, stat.S_IMODE(mode))

    def _rename(self, r: fi.RenameInfo) -> None:
        share, node = self.share, self._node
        if r.root_directory:
            raise StatusError(nt.STATUS_INVALID_PARAMETER, "RootDirectory must be 0 in SMB2")
        if node.real == share.root:
            raise StatusError(nt.STATUS_ACCESS_DENIED, "cannot rename the share root")
        parts, stream = split_path(r.file_name)
        if stream or not parts:
            raise StatusError(nt.STATUS_OBJECT_NAME_INVALID, r.file_name)
        parent, parent_actual, parent_exists = share._resolve(parts[:-1])
        if not parent_exists or not os.path.isdir(parent):
            raise StatusError(nt.STATUS_OBJECT_PATH_NOT_FOUND, r.file_name)
        new_name = parts[-1]
        new_real = os.path.join(parent, new_name)
        if self.is_directory and share._has_open_below(node.real):
            raise StatusError(nt.STATUS_ACCESS_DENIED, "files below are open")
        with os_errors():
            existing = share._lookup(parent, new_name)
            if existing is not None:
                target = os.path.join(parent, existing)
                if os.path.realpath(target) != node.real:  # not just a change of case
                    if not r.replace_if_exists:
                        raise StatusError(nt.STATUS_OBJECT_NAME_COLLISION, r.file_name)
                    if os.path.isdir(target) or os.path.realpath(target) in share._nodes:
                        raise StatusError(nt.STATUS_ACCESS_DENIED, "target is a directory or open")
                    os.unlink(target)
            os.rename(node.real, new_real)
        del share._nodes[node.real]
        node.real, node.path = new_real, "\\".join(parent_actual + [new_name])
        share._nodes[new_real] = node

    def _set_delete_pending(self, pending: bool) -> None:
        if pending:
            st = self._stat()
            read_only = not self.is_directory and not st.st_mode & stat.S_IWUSR
            check_deletable(self._node.real == self.share.root, self.is_directory, read_only,
                            self._node.real)
        self._node.delete_pending = pending

    # --- QUERY_DIRECTORY ------------------------------------------------------------------------

    def query_directory(self, info_class: int, pattern: str, flags: int,
                        output_buffer_length: int) -> bytes:
        """Entries from the handle's cursor that fit in ``output_buffer_length``.

        The pattern is fixed by the first call (or a RESTART_SCANS/REOPEN one), as on Windows;
        the name list is snapshotted then, and each entry is stat'ed when it is returned.
        """
        self._check()
        if not self.is_directory:
            raise StatusError(nt.STATUS_INVALID_PARAMETER, "not a directory")
        if info_class not in fi.DIR_FIXED_SIZE:
            raise StatusError(nt.STATUS_INVALID_INFO_CLASS, f"directory class {info_class}")
        if self._listing is None or flags & (SMB2_RESTART_SCANS | SMB2_REOPEN):
            self._listing = self._scan(pattern or "*")
            self._cursor, self._first_query = 0, True

        entries: list[bytes] = []
        used = 0
        while self._cursor < len(self._listing):
            entry = self._dir_entry(self._listing[self._cursor])
            if entry is None:  # vanished, unreadable, or pointing outside the share
                self._cursor += 1
                continue
            raw = fi.dir_entry(info_class, entry)
            start = fi.aligned(used) if entries else 0
            if start + len(raw) > output_buffer_length:
                if not entries:
                    raise StatusError(nt.STATUS_INFO_LENGTH_MISMATCH, "first entry does not fit")
                break
            entries.append(raw)
            used = start + len(raw)
            self._cursor += 1
            if flags & SMB2_RETURN_SINGLE_ENTRY:
                break
        first, self._first_query = self._first_query, False
        if not entries:
            raise StatusError(nt.STATUS_NO_SUCH_FILE if first else nt.STATUS_NO_MORE_FILES)
        return fi.chain_entries(entries)

    def _scan(self, pattern: str) -> list[str]:
        match = wildcard_regex(pattern).fullmatch
        with os_errors():
            names = os.listdir(self._node.real)
        # Names Windows could not represent are hidden; NTFS order is roughly case-insensitive.
        names = sorted((n for n in names if not ILLEGAL.search(n)), key=lambda n: (n.lower(), n))
        return [n for n in [".", ".."] + names if match(n)]

    def _dir_entry(self, name: str) -> fi.DirEntry | None:
        here = self._node.real
        if name == ".":
            path = here
        elif name == "..":  # the share root's parent is not ours to show
            path = here if here == self.share.root else os.path.dirname(here)
        else:
            path = os.path.join(here, name)
        try:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                if not self.share._inside(os.path.realpath(path)):
                    return None
                st = os.stat(path)
        except OSError:
            return None
        is_dir = stat.S_ISDIR(st.st_mode)
        if not is_dir and not stat.S_ISREG(st.st_mode):
            return None
        return fi.DirEntry(name, open_info(st, is_dir), st.st_ino)
