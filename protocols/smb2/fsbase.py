"""What a disk share and its opens share: the CREATE dispositions, actions and options,
access masks and the generic mapping NTFS applies, the access check, errno -> NTSTATUS,
stat -> MS-FSCC's network-open information, and the per-file node all opens of a file see.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from impacket import nt_errors as nt

from protocols.errors import StatusError
from protocols.smb2 import fileinfo as fi
from protocols.smb2.fileinfo import NetworkOpenInfo

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
WRITE_BITS = FILE_WRITE_DATA | FILE_APPEND_DATA

# QUERY_DIRECTORY flags (MS-SMB2 2.2.33).
SMB2_RESTART_SCANS = 0x01
SMB2_RETURN_SINGLE_ENTRY = 0x02
SMB2_INDEX_SPECIFIED = 0x04  # accepted, ignored: FileIndex is 0 in every entry, as on NTFS
SMB2_REOPEN = 0x10

CLUSTER = 4096  # reported allocation unit: 8 sectors of 512 bytes

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
def os_errors() -> Iterator[None]:
    try:
        yield
    except OSError as e:
        raise StatusError(_ERRNO_STATUS.get(e.errno or 0, nt.STATUS_UNSUCCESSFUL), str(e)) from e
    except (OverflowError, ValueError) as e:  # offsets/sizes os calls reject
        raise StatusError(nt.STATUS_INVALID_PARAMETER, str(e)) from e


def open_info(st: os.stat_result, is_dir: bool) -> NetworkOpenInfo:
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
        allocation_size=-(-size // CLUSTER) * CLUSTER,
        end_of_file=size,
        file_attributes=attrs or fi.FILE_ATTRIBUTE_NORMAL,
    )


def granted_access(desired: int, read_only: bool) -> int:
    granted = desired & 0x001FFFFF  # specific + standard rights
    for bit, mapped in _GENERIC_MAP.items():
        if desired & bit:
            granted |= mapped
    if desired & MAXIMUM_ALLOWED:
        granted |= FILE_ALL_ACCESS & ~(WRITE_BITS if read_only else 0)
    elif read_only and granted & WRITE_BITS:
        raise StatusError(nt.STATUS_ACCESS_DENIED, "file is read-only")
    return granted


@dataclass(eq=False)
class Node:
    """What all opens of one file share: its location and the delete-pending flag."""

    real: str  # resolved absolute path on disk
    path: str  # share-relative, backslashes, on-disk case
    opens: int = 0
    delete_pending: bool = False


def check_deletable(is_root: bool, is_dir: bool, read_only: bool, real: str) -> None:
    """May this be deleted (delete-on-close, or a disposition set)? Else Windows' status."""
    if is_root or read_only:
        raise StatusError(nt.STATUS_CANNOT_DELETE, "share root or read-only")
    if is_dir and os.path.isdir(real) and os.listdir(real):
        raise StatusError(nt.STATUS_DIRECTORY_NOT_EMPTY, "directory not empty")
