"""Disk share backend for SMB2 CREATE/CLOSE/READ/WRITE/FLUSH/QUERY_*/SET_INFO.

Sans-IO towards the network, plain blocking ``os`` calls towards the local disk.  Errors are
raised as ``StatusError`` carrying the NTSTATUS Windows would answer with.

Containment: every CREATE/rename path is split on backslashes, normalised lexically ('..' may
not climb above the share root), then walked one component at a time; each step is matched
case-insensitively and ``realpath``-resolved, and must stay under the share root, so neither
'..' nor a symlink can expose a path outside it.
"""

from __future__ import annotations

import os
import stat
import uuid
import zlib

from impacket import nt_errors as nt

from protocols.errors import StatusError
from protocols.smb2 import fileinfo as fi
from protocols.smb2.fileinfo import FsInfoClass, NetworkOpenInfo
from protocols.smb2.fsbase import (
    CLUSTER,
    DELETE,
    FILE_ALL_ACCESS,
    FILE_APPEND_DATA,
    FILE_CREATE,
    FILE_CREATED,
    FILE_DELETE_ON_CLOSE,
    FILE_DIRECTORY_FILE,
    FILE_EXECUTE,
    FILE_NON_DIRECTORY_FILE,
    FILE_NO_INTERMEDIATE_BUFFERING,
    FILE_OPEN,
    FILE_OPENED,
    FILE_OPEN_IF,
    FILE_OVERWRITE,
    FILE_OVERWRITE_IF,
    FILE_OVERWRITTEN,
    FILE_READ_ATTRIBUTES,
    FILE_READ_DATA,
    FILE_SEQUENTIAL_ONLY,
    FILE_SUPERSEDE,
    FILE_SUPERSEDED,
    FILE_WRITE_ATTRIBUTES,
    FILE_WRITE_DATA,
    FILE_WRITE_THROUGH,
    GENERIC_ALL,
    GENERIC_EXECUTE,
    GENERIC_READ,
    GENERIC_WRITE,
    MAXIMUM_ALLOWED,
    SMB2_INDEX_SPECIFIED,
    SMB2_REOPEN,
    SMB2_RESTART_SCANS,
    SMB2_RETURN_SINGLE_ENTRY,
    WRITE_BITS,
    Node,
    check_deletable,
    granted_access,
    os_errors,
)
from protocols.smb2.names import short_name
from protocols.smb2.names import split_path as _split
from protocols.smb2.names import wildcard_regex as _wildcard_regex
from protocols.smb2.openfile import OpenFile

# The CREATE and access constants stay importable from here (callers name them fs.X).
__all__ = [
    "DiskShare", "NetworkOpenInfo", "OpenFile", "short_name", "_wildcard_regex",
    "FILE_SUPERSEDE", "FILE_OPEN", "FILE_CREATE", "FILE_OPEN_IF", "FILE_OVERWRITE",
    "FILE_OVERWRITE_IF", "FILE_SUPERSEDED", "FILE_OPENED", "FILE_CREATED", "FILE_OVERWRITTEN",
    "FILE_DIRECTORY_FILE", "FILE_WRITE_THROUGH", "FILE_SEQUENTIAL_ONLY",
    "FILE_NO_INTERMEDIATE_BUFFERING", "FILE_NON_DIRECTORY_FILE", "FILE_DELETE_ON_CLOSE",
    "FILE_READ_DATA", "FILE_WRITE_DATA", "FILE_APPEND_DATA", "FILE_EXECUTE",
    "FILE_READ_ATTRIBUTES", "FILE_WRITE_ATTRIBUTES", "DELETE", "MAXIMUM_ALLOWED",
    "GENERIC_ALL", "GENERIC_EXECUTE", "GENERIC_WRITE", "GENERIC_READ", "FILE_ALL_ACCESS",
    "SMB2_RESTART_SCANS", "SMB2_RETURN_SINGLE_ENTRY", "SMB2_INDEX_SPECIFIED", "SMB2_REOPEN",
]


class DiskShare:
    def __init__(self, name: str, root: str | os.PathLike[str], volume_label: str = "") -> None:
        self.name = name
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise ValueError(f"share root {self.root!r} is not a directory")
        self.volume_label = volume_label
        self.serial = zlib.crc32(self.root.encode())
        self._nodes: dict[str, Node] = {}

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

        with os_errors():
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
                granted = granted_access(desired_access, read_only)
                if delete_on_close:
                    check_deletable(not parts, is_dir, read_only, real)
                if truncate:
                    os.truncate(real, 0)
                action = {FILE_SUPERSEDE: FILE_SUPERSEDED, FILE_OVERWRITE: FILE_OVERWRITTEN,
                          FILE_OVERWRITE_IF: FILE_OVERWRITTEN}.get(disp, FILE_OPENED)
            else:
                if disp in (FILE_OPEN, FILE_OVERWRITE):
                    raise StatusError(nt.STATUS_OBJECT_NAME_NOT_FOUND, name)
                is_dir = bool(want_dir)
                read_only = not is_dir and bool(file_attributes & fi.FILE_ATTRIBUTE_READONLY)
                granted = granted_access(desired_access, False)  # the creator may still write
                if delete_on_close:
                    check_deletable(not parts, is_dir, read_only, real)
                if is_dir:
                    os.mkdir(real)
                else:
                    os.close(os.open(real, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
                if read_only:
                    os.chmod(real, os.stat(real).st_mode & ~0o222)
                action = FILE_CREATED

            fd = None
            if not is_dir and granted & (FILE_READ_DATA | FILE_EXECUTE | WRITE_BITS):
                mode = os.O_RDWR if granted & WRITE_BITS else os.O_RDONLY
                fd = os.open(real, mode | os.O_NOFOLLOW | os.O_CLOEXEC)

        node = self._nodes.setdefault(real, Node(real, "\\".join(actual)))
        node.opens += 1
        return OpenFile(self, node, is_directory=is_dir, granted_access=granted,
                        create_options=opts, fd=fd), action

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
        with os_errors():
            vfs = os.statvfs(self.root)
            root_st = os.stat(self.root)
        total = vfs.f_blocks * vfs.f_frsize // CLUSTER
        caller_free = vfs.f_bavail * vfs.f_frsize // CLUSTER
        actual_free = vfs.f_bfree * vfs.f_frsize // CLUSTER
        spu, bps = CLUSTER // 512, 512
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
