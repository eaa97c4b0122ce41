"""Disk share backend for SMB2 CREATE/CLOSE/READ/WRITE/FLUSH/QUERY_*/SET_INFO.

Sans-IO towards the network, plain blocking ``os`` calls towards the local disk.  Errors are
raised as ``StatusError`` carrying the NTSTATUS Windows would answer with.

Containment: every CREATE/rename path is split on backslashes, normalised lexically ('..' may
not climb above the share root), then walked one component at a time; each step is matched
case-insensitively and ``realpath``-resolved, and must stay under the share root, so neither
'..' nor a symlink can expose a path outside it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from impacket import nt_errors as nt

from protocols.errors import StatusError
from protocols.smb2 import fileinfo as fi
from protocols.smb2.fileinfo import FileInfoClass, FsInfoClass, NetworkOpenInfo
from protocols.smb2.names import ILLEGAL as _ILLEGAL
from protocols.smb2.names import short_name
from protocols.smb2.names import split_path as _split
from protocols.smb2.names import wildcard_regex as _wildcard_regex

__all__ = ["DiskShare", "NetworkOpenInfo", "OpenFile", "short_name"]

# CreateDisposition / CreateAction / CreateOptions (MS-SMB2 2.2.13, 2.2.14).
FILE_SUPERSEDE, FILE_OPEN, FILE_CREATE, FILE_OPEN_IF, FILE_OVERWRITE, FILE_OVERWRITE_IF = range(6)
FILE_SUPERSEDED, FILE_OPENED, FILE_CREATED, FILE_OVERWRITTEN = range(4)
FILE_DIRECTORY_FILE = 0x1
FILE_WRITE_THROUGH = 0x2
FILE_SEQUENTIAL_ONLY = 0x4
FILE_NO_INTERMEDIATE_BUFFERING = 0x8
FILE_NON_DIRECTORY_FILE = 0x40
FILE_DELETE_ON_CLOSE = 0x1000

# Access mask bits (MS-SMB2 2.2.13.1.1) and the generic mapping NTFS applies to files.
FILE_READ_DATA = 0x1
FILE_WRITE_DATA = 0x2
FILE_APPEND_DATA = 0x4
FILE_EXECUTE = 0x20
FILE_READ_ATTRIBUTES = 0x80
FILE_WRITE_ATTRIBUTES = 0x100
DELETE = 0x10000
MAXIMUM_ALLOWED = 0x02000000
GENERIC_ALL = 0x10000000
GENERIC_EXECUTE = 0x20000000
GENERIC_WRITE = 0x40000000
GENERIC_READ = 0x80000000
FILE_ALL_ACCESS = 0x001F01FF
_GENERIC_MAP = {GENERIC_READ: 0x00120089, GENERIC_WRITE: 0x00120116,
                GENERIC_EXECUTE: 0x001200A0, GENERIC_ALL: FILE_ALL_ACCESS}
_WRITE_BITS = FILE_WRITE_DATA | FILE_APPEND_DATA

# QUERY_DIRECTORY flags (MS-SMB2 2.2.33).
SMB2_RESTART_SCANS = 0x01
SMB2_RETURN_SINGLE_ENTRY = 0x02
SMB2_INDEX_SPECIFIED = 0x04  # accepted, ignored: FileIndex is 0 in every entry, as on NTFS
SMB2_REOPEN = 0x10

_CLUSTER = 4096  # reported allocation unit: 8 sectors of 512 bytes

_ERRNO_STATUS = {
    errno.ENOENT: nt.STATUS_OBJECT_NAME_NOT_FOUND,
    errno.ENOTDIR: nt.STATUS_OBJECT_PATH_NOT_FOUND,
    errno.EEXIST: nt.STATUS_OBJECT_NAME_COLLISION,
    errno.EACCES: nt.STATUS_ACCESS_DENIED,
    errno.EPERM: nt.STATUS_ACCESS_DENIED,
    errno.ELOOP: nt.STATUS_ACCESS_DENIED,
    errno.EISDIR: nt.STATUS_FILE_IS_A_DIRECTORY,
    errno.ENOTEMPTY: nt.STATUS_DIRECTORY_NOT_EMPTY,
    errno.ENOSPC: nt.STATUS_DISK_FULL,
    errno.EDQUOT: nt.STATUS_DISK_FULL,
    errno.EFBIG: nt.STATUS_DISK_FULL,
    errno.EROFS: nt.STATUS_MEDIA_WRITE_PROTECTED,
    errno.ENAMETOOLONG: nt.STATUS_OBJECT_NAME_INVALID,
    errno.EINVAL: nt.STATUS_INVALID_PARAMETER,
    errno.EXDEV: nt.STATUS_NOT_SAME_DEVICE,
    errno.EBUSY: nt.STATUS_SHARING_VIOLATION,
}


@contextlib.contextmanager
def _os_errors() -> Iterator[None]:
    try:
        yield
    except OSError as e:
        raise StatusError(_ERRNO_STATUS.get(e.errno or 0, nt.STATUS_UNSUCCESSFUL), str(e)) from e
    except (OverflowError, ValueError) as e:  # offsets/sizes os calls reject
        raise StatusError(nt.STATUS_INVALID_PARAMETER, str(e)) from e


def _open_info(st: os.stat_result, is_dir: bool) -> NetworkOpenInfo:
    # Linux keeps no birth time in stat; the older of mtime/ctime is a stable stand-in.
    attrs = fi.FILE_ATTRIBUTE_DIRECTORY if is_dir else fi.FILE_ATTRIBUTE_ARCHIVE
    if not is_dir and not st.st_mode & stat.S_IWUSR:  # READONLY on folders means something else
        attrs |= fi.FILE_ATTRIBUTE_READONLY
    size = 0 if is_dir else st.st_size
    return NetworkOpenInfo(
        creation_time=fi.filetime_from_ns(min(st.st_mtime_ns, st.st_ctime_ns)),
        last_access_time=fi.filetime_from_ns(st.st_atime_ns),
        last_write_time=fi.filetime_from_ns(st.st_mtime_ns),
        change_time=fi.filetime_from_ns(st.st_ctime_ns),
        allocation_size=-(-size // _CLUSTER) * _CLUSTER,
        end_of_file=size,
        file_attributes=attrs or fi.FILE_ATTRIBUTE_NORMAL,
    )


def _granted_access(desired: int, read_only: bool) -> int:
    granted = desired & 0x001FFFFF  # specific + standard rights
    for bit, mapped in _GENERIC_MAP.items():
        if desired & bit:
            granted |= mapped
    if desired & MAXIMUM_ALLOWED:
        granted |= FILE_ALL_ACCESS & ~(_WRITE_BITS if read_only else 0)
    elif read_only and granted & _WRITE_BITS:
        raise StatusError(nt.STATUS_ACCESS_DENIED, "file is read-only")
    return granted


@dataclass(eq=False)
class _Node:
    """What all opens of one file share: its location and the delete-pending flag."""

    real: str  # resolved absolute path on disk
    path: str  # share-relative, backslashes, on-disk case
    opens: int = 0
    delete_pending: bool = False


class DiskShare:
    def __init__(self, name: str, root: str | os.PathLike[str], volume_label: str = "") -> None:
        self.name = name
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise ValueError(f"share root {self.root!r} is not a directory")
        self.volume_label = volume_label
        self.serial = zlib.crc32(self.root.encode())
        self._nodes: dict[str, _Node] = {}

    # --- path handling ----------------------------------------------------------------------

    def _inside(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep)

    @staticmethod
    def _lookup(directory: str, comp: str) -> str | None:
        """The on-disk name for ``comp``: exact if present, else a case-insensitive match."""
        if os.path.lexists(os.path.join(directory, comp)):
            return comp
        folded = comp.lower()
        try:
            names = os.listdir(directory)
        except OSError:
            return None
        return next((n for n in names if n.lower() == folded), None)

    def _resolve(self, parts: list[str]) -> tuple[str, list[str], bool]:
        """-> (real path, on-disk component names, exists)."""
        cur = self.root
        actual: list[str] = []
        for k, comp in enumerate(parts):
            last = k + 1 == len(parts)
            found = self._lookup(cur, comp)
            if found is None:
                if last:
                    return os.path.join(cur, comp), actual + [comp], False
                raise StatusError(nt.STATUS_OBJECT_PATH_NOT_FOUND, comp)
            nxt = os.path.realpath(os.path.join(cur, found))
            if not self._inside(nxt):
                raise StatusError(nt.STATUS_ACCESS_DENIED, "symlink leaves the share")
            if not last and not os.path.isdir(nxt):
                raise StatusError(nt.STATUS_OBJECT_PATH_NOT_FOUND, comp)
            cur = nxt
            actual.append(found)
        return cur, actual, os.path.lexists(cur)

    def _has_open_below(self, real: str) -> bool:
        prefix = real + os.sep
        return any(k.startswith(prefix) for k in self._nodes)

    # --- CREATE ---------------------------------------------------------------------------------

    def open(self, name: str, *, desired_access: int, create_disposition: int,
             create_options: int, file_attributes: int = 0) -> tuple[OpenFile, int]:
        disp, opts = create_disposition, create_options
        want_dir, want_file = opts & FILE_DIRECTORY_FILE, opts & FILE_NON_DIRECTORY_FILE
        delete_on_close = bool(opts & FILE_DELETE_ON_CLOSE)
        if disp > FILE_OVERWRITE_IF or (want_dir and want_file):
            raise StatusError(nt.STATUS_INVALID_PARAMETER, "disposition/options")
        if want_dir and disp not in (FILE_OPEN, FILE_CREATE, FILE_OPEN_IF):
            raise StatusError(nt.STATUS_INVALID_PARAMETER, "a directory cannot be overwritten")
        if delete_on_close and not desired_access & (DELETE | GENERIC_ALL | MAXIMUM_ALLOWED):
            raise StatusError(nt.STATUS_INVALID_PARAMETER, "delete-on-close without DELETE access")

        parts, stream = _split(name)
        real, actual, exists = self._resolve(parts)
        if stream:
            raise StatusError(nt.STATUS_OBJECT_NAME_NOT_FOUND, "named streams are not supported")

        with _os_errors():
            if exists:
                st = os.stat(real)
                node = self._nodes.get(real)
                if node is not None and node.delete_pending:
                    raise StatusError(nt.STATUS_DELETE_PENDING, name)
                is_dir = stat.S_ISDIR(st.st_mode)
                if not is_dir and not stat.S_ISREG(st.st_mode):
                    raise StatusError(nt.STATUS_ACCESS_DENIED, "not a regular file")
                if disp == FILE_CREATE:
                    raise StatusError(nt.STATUS_OBJECT_NAME_COLLISION, name)
                truncate = disp in (FILE_SUPERSEDE, FILE_OVERWRITE, FILE_OVERWRITE_IF)
                if is_dir and (want_file or truncate):
                    raise StatusError(nt.STATUS_FILE_IS_A_DIRECTORY, name)
                if not is_dir and want_dir:
                    raise StatusError(nt.STATUS_NOT_A_DIRECTORY, name)
                read_only = not is_dir and not st.st_mode & stat.S_IWUSR
                if truncate and read_only:
                    raise StatusError(nt.STATUS_ACCESS_DENIED, "file is read-only")
                granted = _granted_access(desired_access, read_only)
                if delete_on_close:
                    self._check_deletable(not parts, is_dir, read_only, real)
                if truncate:
                    os.truncate(real, 0)
                action = {FILE_SUPERSEDE: FILE_SUPERSEDED, FILE_OVERWRITE: FILE_OVERWRITTEN,
                          FILE_OVERWRITE_IF: FILE_OVERWRITTEN}.get(disp, FILE_OPENED)
            else:
                if disp in (FILE_OPEN, FILE_OVERWRITE):
                    raise StatusError(nt.STATUS_OBJECT_NAME_NOT_FOUND, name)
                is_dir = bool(want_dir)
                read_only = not is_dir and bool(file_attributes & fi.FILE_ATTRIBUTE_READONLY)
                granted = _granted_access(desired_access, False)  # the creator may still write
                if delete_on_close:
                    self._check_deletable(not parts, is_dir, read_only, real)
                if is_dir:
                    os.mkdir(real)
                else:
                    os.close(os.open(real, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
                if read_only:
                    os.chmod(real, os.stat(real).st_mode & ~0o222)
                action = FILE_CREATED

            fd = None
            if not is_dir and granted & (FILE_READ_DATA | FILE_EXECUTE | _WRITE_BITS):
                mode = os.O_RDWR if granted & _WRITE_BITS else os.O_RDONLY
                fd = os.open(real, mode | os.O_NOFOLLOW | os.O_CLOEXEC)

        node = self._nodes.setdefault(real, _Node(real, "\\".join(actual)))
        node.opens += 1
        return OpenFile(self, node, is_directory=is_dir, granted_access=granted,
                        create_options=opts, fd=fd), action

    @staticmethod
    def _check_deletable(is_root: bool, is_dir: bool, read_only: bool, real: str) -> None:
        if is_root or read_only:
            raise StatusError(nt.STATUS_CANNOT_DELETE, "share root or read-only")
        if is_dir and os.path.isdir(real) and os.listdir(real):
            raise StatusError(nt.STATUS_DIRECTORY_NOT_EMPTY, "directory not empty")

    # --- QUERY_INFO, SMB2_0_INFO_FILESYSTEM -----------------------------------------------------

    def fs_info(self, info_class: int, output_buffer_length: int | None = None) -> bytes:
        """Same output-buffer policy as ``OpenFile.query_info`` when a length is given."""
        data = self._fs_info(info_class)
        variable: dict[int, int] = {FsInfoClass.VOLUME: 18, FsInfoClass.ATTRIBUTE: 12}
        fixed = variable.get(info_class, len(data))
        if output_buffer_length is not None and output_buffer_length < fixed:
            raise StatusError(nt.STATUS_INFO_LENGTH_MISMATCH, f"fs class {info_class}")
        return data

    def _fs_info(self, info_class: int) -> bytes:
        with _os_errors():
            vfs = os.statvfs(self.root)
            root_st = os.stat(self.root)
        total = vfs.f_blocks * vfs.f_frsize // _CLUSTER
        caller_free = vfs.f_bavail * vfs.f_frsize // _CLUSTER
        actual_free = vfs.f_bfree * vfs.f_frsize // _CLUSTER
        spu, bps = _CLUSTER // 512, 512
        match info_class:
            case FsInfoClass.VOLUME:
                created = fi.filetime_from_ns(min(root_st.st_mtime_ns, root_st.st_ctime_ns))
                return fi.fs_volume_information(created, self.serial, self.volume_label)
            case FsInfoClass.SIZE:
                return fi.fs_size_information(total, caller_free, spu, bps)
            case FsInfoClass.DEVICE:
                return fi.fs_device_information()
            case FsInfoClass.ATTRIBUTE:
                # What NTFS reports, minus features this backend does not implement (named
                # streams, sparse files, reparse points, object ids...) so that clients such as
                # Explorer do not try to use them.
                return fi.fs_attribute_information(
                    fi.FILE_CASE_SENSITIVE_SEARCH | fi.FILE_CASE_PRESERVED_NAMES
                    | fi.FILE_UNICODE_ON_DISK | fi.FILE_PERSISTENT_ACLS)
            case FsInfoClass.FULL_SIZE:
                return fi.fs_full_size_information(total, caller_free, actual_free, spu, bps)
            case FsInfoClass.OBJECT_ID:
                return fi.fs_object_id_information(
                    uuid.uuid5(uuid.NAMESPACE_URL, "file://" + self.root).bytes_le)
            case FsInfoClass.SECTOR_SIZE:
                return fi.fs_sector_size_information()
        raise StatusError(nt.STATUS_INVALID_INFO_CLASS, f"fs class {info_class}")


class OpenFile:
    """One CREATE result.  Location and delete-pending state live on the shared _Node."""

    def __init__(self, share: DiskShare, node: _Node, *, is_directory: bool, granted_access: int,
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
        with _os_errors():
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
        with _os_errors():
            data = os.pread(self._fd, length, offset)
        if not data:
            raise StatusError(nt.STATUS_END_OF_FILE)
        return data

    def write(self, offset: int, data: bytes) -> int:
        self._check()
        if self.is_directory:
            raise StatusError(nt.STATUS_INVALID_DEVICE_REQUEST)
        self._check(_WRITE_BITS)
        assert self._fd is not None
        with _os_errors():
            if offset == 0xFFFFFFFFFFFFFFFF:  # MS-SMB2: "write at end of file"
                offset = os.fstat(self._fd).st_size
            view, done = memoryview(data), 0
            while done < len(view):
                done += os.pwrite(self._fd, view[done:], offset + done)
        return done

    def flush(self) -> None:
        self._check(_WRITE_BITS)
        if self._fd is not None:
            with _os_errors():
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
        return _open_info(self._stat(), self.is_directory)

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
        info = _open_info(st, self.is_directory)
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
                    with _os_errors():
                        os.ftruncate(self._fd, size)
            case _:
                raise StatusError(nt.STATUS_INVALID_INFO_CLASS, f"set class {info_class}")

    def _set_basic(self, u: fi.BasicInfoUpdate) -> None:
        if u.file_attributes & fi.FILE_ATTRIBUTE_DIRECTORY and not self.is_directory:
            raise StatusError(nt.STATUS_INVALID_PARAMETER, "DIRECTORY attribute on a file")
        real, st = self._node.real, self._stat()

        def pick(filetime: int, current_ns: int) -> int:
            return current_ns if filetime in (0, -1, -2) else fi.ns_from_filetime(filetime)

        with _os_errors():
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
        parts, stream = _split(r.file_name)
        if stream or not parts:
            raise StatusError(nt.STATUS_OBJECT_NAME_INVALID, r.file_name)
        parent, parent_actual, parent_exists = share._resolve(parts[:-1])
        if not parent_exists or not os.path.isdir(parent):
            raise StatusError(nt.STATUS_OBJECT_PATH_NOT_FOUND, r.file_name)
        new_name = parts[-1]
        new_real = os.path.join(parent, new_name)
        if self.is_directory and share._has_open_below(node.real):
            raise StatusError(nt.STATUS_ACCESS_DENIED, "files below are open")
        with _os_errors():
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
            DiskShare._check_deletable(self._node.real == self.share.root, self.is_directory,
                                       read_only, self._node.real)
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
        match = _wildcard_regex(pattern).fullmatch
        with _os_errors():
            names = os.listdir(self._node.real)
        # Names Windows could not represent are hidden; NTFS order is roughly case-insensitive.
        names = sorted((n for n in names if not _ILLEGAL.search(n)), key=lambda n: (n.lower(), n))
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
        return fi.DirEntry(name, _open_info(st, is_dir), st.st_ino)
