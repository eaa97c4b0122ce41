"""MS-FSCC information classes as little-endian bytes.

Encoders for what SMB2 QUERY_INFO / QUERY_DIRECTORY return (FILE_*, FS_* classes, a minimal
security descriptor) and decoders for what SET_INFO sends.  Plain ``struct`` rather than
impacket's ``Structure``: these run once per directory entry, and the layouts are short enough
that a format string next to the MS-FSCC section number is the clearest documentation.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from impacket import nt_errors

from protocols.errors import StatusError
from protocols.wintime import filetime_from_ns, ns_from_filetime  # noqa: F401 (re-exported)


class FileInfoClass(IntEnum):
    """FILE_INFORMATION_CLASS values used by SMB2 (MS-FSCC 2.4)."""

    DIRECTORY = 1
    FULL_DIRECTORY = 2
    BOTH_DIRECTORY = 3
    BASIC = 4
    STANDARD = 5
    INTERNAL = 6
    EA = 7
    ACCESS = 8
    NAME = 9
    RENAME = 10
    NAMES = 12
    DISPOSITION = 13
    POSITION = 14
    MODE = 16
    ALIGNMENT = 17
    ALL = 18
    ALLOCATION = 19
    END_OF_FILE = 20
    ALTERNATE_NAME = 21
    STREAM = 22
    COMPRESSION = 28
    NETWORK_OPEN = 34
    ATTRIBUTE_TAG = 35
    ID_BOTH_DIRECTORY = 37
    ID_FULL_DIRECTORY = 38
    NORMALIZED_NAME = 48


class FsInfoClass(IntEnum):
    """FS_INFORMATION_CLASS values (MS-FSCC 2.5)."""

    VOLUME = 1
    SIZE = 3
    DEVICE = 4
    ATTRIBUTE = 5
    FULL_SIZE = 7
    OBJECT_ID = 8
    SECTOR_SIZE = 11


# File attributes (MS-FSCC 2.6).
FILE_ATTRIBUTE_READONLY = 0x01
FILE_ATTRIBUTE_HIDDEN = 0x02
FILE_ATTRIBUTE_SYSTEM = 0x04
FILE_ATTRIBUTE_DIRECTORY = 0x10
FILE_ATTRIBUTE_ARCHIVE = 0x20
FILE_ATTRIBUTE_NORMAL = 0x80

def _utf16(name: str) -> bytes:
    return name.encode("utf-16-le", "surrogatepass")


@dataclass(frozen=True)
class NetworkOpenInfo:
    """The attributes every CREATE/CLOSE response and most info classes carry."""

    creation_time: int
    last_access_time: int
    last_write_time: int
    change_time: int
    allocation_size: int
    end_of_file: int
    file_attributes: int


# --- QUERY_INFO, SMB2_0_INFO_FILE -------------------------------------------------------------

def basic_information(i: NetworkOpenInfo) -> bytes:  # 2.4.7, 40 bytes
    return struct.pack("<4qLL", i.creation_time, i.last_access_time, i.last_write_time,
                       i.change_time, i.file_attributes, 0)


def standard_information(i: NetworkOpenInfo, links: int, delete_pending: bool,
                         directory: bool) -> bytes:  # 2.4.41, 24 bytes
    return struct.pack("<qqLBBH", i.allocation_size, i.end_of_file, links,
                       int(delete_pending), int(directory), 0)


def internal_information(file_id: int) -> bytes:  # 2.4.22
    return struct.pack("<Q", file_id)


def ea_information(ea_size: int = 0) -> bytes:  # 2.4.13
    return struct.pack("<L", ea_size)


def access_information(access_mask: int) -> bytes:  # 2.4.1
    return struct.pack("<L", access_mask)


def position_information(offset: int) -> bytes:  # 2.4.35
    return struct.pack("<q", offset)


def mode_information(mode: int) -> bytes:  # 2.4.26
    return struct.pack("<L", mode)


def alignment_information(requirement: int = 0) -> bytes:  # 2.4.3; 0 = FILE_BYTE_ALIGNMENT
    return struct.pack("<L", requirement)


def name_information(name: str) -> bytes:  # 2.4.28 (also Alternate/NormalizedName)
    raw = _utf16(name)
    return struct.pack("<L", len(raw)) + raw


def all_information(i: NetworkOpenInfo, *, links: int, delete_pending: bool, directory: bool,
                    file_id: int, access_mask: int, position: int, mode: int,
                    name: str) -> bytes:  # 2.4.2: the fixed classes back to back, then the name
    return b"".join((
        basic_information(i), standard_information(i, links, delete_pending, directory),
        internal_information(file_id), ea_information(), access_information(access_mask),
        position_information(position), mode_information(mode), alignment_information(),
        name_information(name),
    ))


ALL_INFORMATION_FIXED = 100  # everything up to and including FileNameLength


def stream_information(streams: list[tuple[str, int, int]]) -> bytes:  # 2.4.44
    """``streams``: (name such as '::$DATA', size, allocation size); entries 8-byte aligned."""
    return chain_entries([
        struct.pack("<LLqq", 0, len(_utf16(n)), size, alloc) + _utf16(n)
        for n, size, alloc in streams
    ])


def compression_information(compressed_size: int) -> bytes:  # 2.4.9; format 0 = none
    return struct.pack("<qHBBB3x", compressed_size, 0, 0, 0, 0)


def network_open_information(i: NetworkOpenInfo) -> bytes:  # 2.4.29, 56 bytes
    return struct.pack("<4qqqLL", i.creation_time, i.last_access_time, i.last_write_time,
                       i.change_time, i.allocation_size, i.end_of_file, i.file_attributes, 0)


def attribute_tag_information(attributes: int, reparse_tag: int = 0) -> bytes:  # 2.4.6
    return struct.pack("<LL", attributes, reparse_tag)


# --- QUERY_DIRECTORY ----------------------------------------------------------------------------

@dataclass(frozen=True)
class DirEntry:
    name: str
    info: NetworkOpenInfo
    file_id: int
    short_name: str = ""


# NextEntryOffset, FileIndex, 4 times, EndOfFile, AllocationSize, FileAttributes: shared prefix of
# the Directory/FullDirectory/BothDirectory/Id* classes (note: EndOfFile before AllocationSize).
_DIR_HEAD = struct.Struct("<LL4qqqL")

DIR_FIXED_SIZE = {
    FileInfoClass.DIRECTORY: 64,          # 2.4.10
    FileInfoClass.FULL_DIRECTORY: 68,     # 2.4.14
    FileInfoClass.BOTH_DIRECTORY: 94,     # 2.4.8
    FileInfoClass.NAMES: 12,              # 2.4.33
    FileInfoClass.ID_BOTH_DIRECTORY: 104,  # 2.4.17
    FileInfoClass.ID_FULL_DIRECTORY: 80,  # 2.4.18
}


def dir_entry(info_class: int, e: DirEntry) -> bytes:
    """One directory record with NextEntryOffset 0 (``chain_entries`` links them)."""
    name = _utf16(e.name)
    if info_class == FileInfoClass.NAMES:
        return struct.pack("<LLL", 0, 0, len(name)) + name
    i = e.info
    head = _DIR_HEAD.pack(0, 0, i.creation_time, i.last_access_time, i.last_write_time,
                          i.change_time, i.end_of_file, i.allocation_size, i.file_attributes)
    if info_class == FileInfoClass.DIRECTORY:
        tail = struct.pack("<L", len(name))
    elif info_class == FileInfoClass.FULL_DIRECTORY:
        tail = struct.pack("<LL", len(name), 0)
    elif info_class == FileInfoClass.ID_FULL_DIRECTORY:
        tail = struct.pack("<LLLQ", len(name), 0, 0, e.file_id)
    elif info_class in (FileInfoClass.BOTH_DIRECTORY, FileInfoClass.ID_BOTH_DIRECTORY):
        short = _utf16(e.short_name)[:24]
        tail = struct.pack("<LLBB24s", len(name), 0, len(short), 0, short)
        if info_class == FileInfoClass.ID_BOTH_DIRECTORY:
            tail += struct.pack("<HQ", 0, e.file_id)
    else:
        raise StatusError(nt_errors.STATUS_INVALID_INFO_CLASS, f"directory class {info_class}")
    return head + tail + name


def aligned(n: int) -> int:
    return (n + 7) & ~7


def chain_entries(entries: list[bytes]) -> bytes:
    """Link records via NextEntryOffset, each padded to 8 bytes; the last is 0 and unpadded."""
    out = []
    for k, e in enumerate(entries):
        if k + 1 < len(entries):
            size = aligned(len(e))
            e = struct.pack("<L", size) + e[4:] + bytes(size - len(e))
        out.append(e)
    return b"".join(out)


# --- QUERY_INFO, SMB2_0_INFO_FILESYSTEM ---------------------------------------------------------

def fs_volume_information(creation_time: int, serial: int, label: str,
                          supports_objects: bool = False) -> bytes:  # 2.5.9
    raw = _utf16(label)
    return struct.pack("<qLLBB", creation_time, serial, len(raw), int(supports_objects), 0) + raw


def fs_size_information(total_units: int, available_units: int, sectors_per_unit: int,
                        bytes_per_sector: int) -> bytes:  # 2.5.8
    return struct.pack("<qqLL", total_units, available_units, sectors_per_unit, bytes_per_sector)


FILE_DEVICE_DISK = 0x07
FILE_DEVICE_IS_MOUNTED = 0x20


def fs_device_information(device_type: int = FILE_DEVICE_DISK,
                          characteristics: int = FILE_DEVICE_IS_MOUNTED) -> bytes:  # 2.5.10
    return struct.pack("<LL", device_type, characteristics)


# FileSystemAttributes bits (2.5.1).
FILE_CASE_SENSITIVE_SEARCH = 0x01
FILE_CASE_PRESERVED_NAMES = 0x02
FILE_UNICODE_ON_DISK = 0x04
FILE_PERSISTENT_ACLS = 0x08


def fs_attribute_information(attributes: int, max_component_length: int = 255,
                             fs_name: str = "NTFS") -> bytes:  # 2.5.1
    raw = _utf16(fs_name)
    return struct.pack("<LlL", attributes, max_component_length, len(raw)) + raw


def fs_full_size_information(total_units: int, caller_available: int, actual_available: int,
                             sectors_per_unit: int, bytes_per_sector: int) -> bytes:  # 2.5.4
    return struct.pack("<qqqLL", total_units, caller_available, actual_available,
                       sectors_per_unit, bytes_per_sector)


def fs_object_id_information(object_id: bytes) -> bytes:  # 2.5.6: 16-byte GUID + 48 extended
    return object_id[:16].ljust(16, b"\0") + bytes(48)


SSINFO_FLAGS_ALIGNED_DEVICE = 0x01
SSINFO_FLAGS_PARTITION_ALIGNED_ON_DEVICE = 0x02


def fs_sector_size_information(logical: int = 512, physical: int = 4096) -> bytes:  # 2.5.7
    """A 512e disk: 512-byte logical sectors on 4 KiB physical ones, partition aligned."""
    return struct.pack("<7L", logical, physical, physical, physical,
                       SSINFO_FLAGS_ALIGNED_DEVICE | SSINFO_FLAGS_PARTITION_ALIGNED_ON_DEVICE,
                       0, 0)


# --- security descriptor (MS-DTYP 2.4.6) -------------------------------------------------------

OWNER_SECURITY_INFORMATION = 0x1
GROUP_SECURITY_INFORMATION = 0x2
DACL_SECURITY_INFORMATION = 0x4

SE_DACL_PRESENT = 0x0004
SE_SELF_RELATIVE = 0x8000
ACCESS_ALLOWED_ACE_TYPE = 0
OBJECT_INHERIT_ACE = 0x1
CONTAINER_INHERIT_ACE = 0x2
FILE_ALL_ACCESS = 0x001F01FF


def sid_bytes(sid: str) -> bytes:
    """'S-1-5-32-544' -> binary SID (MS-DTYP 2.4.2.2)."""
    _, rev, auth, *subs = sid.split("-")
    return (struct.pack("<BB", int(rev), len(subs)) + int(auth).to_bytes(6, "big")
            + b"".join(struct.pack("<L", int(s)) for s in subs))


def security_descriptor(owner: str | None, group: str | None,
                        dacl: list[tuple[int, int, int, str]] | None) -> bytes:
    """Self-relative SD; ``dacl`` holds (ace type, ace flags, mask, sid). None parts are left out.

    DACL first, then owner and group, the order Windows itself lays them out in.
    """
    body = b""
    offsets = {}
    if dacl is not None:
        aces = b"".join(struct.pack("<BBHL", t, f, 8 + len(sid_bytes(s)), m) + sid_bytes(s)
                        for t, f, m, s in dacl)
        offsets["dacl"] = 20
        body += struct.pack("<BBHHH", 2, 0, 8 + len(aces), len(dacl), 0) + aces
    for key, sid in (("owner", owner), ("group", group)):
        if sid is not None:
            offsets[key] = 20 + len(body)
            body += sid_bytes(sid)
    control = SE_SELF_RELATIVE | (SE_DACL_PRESENT if dacl is not None else 0)
    return struct.pack("<BBHLLLL", 1, 0, control, offsets.get("owner", 0),
                       offsets.get("group", 0), 0, offsets.get("dacl", 0)) + body


# --- SET_INFO inputs ----------------------------------------------------------------------------

def _need(data: bytes, size: int) -> None:
    if len(data) < size:
        raise StatusError(nt_errors.STATUS_INFO_LENGTH_MISMATCH, f"{len(data)} < {size} bytes")


@dataclass(frozen=True)
class BasicInfoUpdate:
    """FileBasicInformation as sent to SET_INFO; 0 and -1 (or -2) in a time mean 'leave it'."""

    creation_time: int
    last_access_time: int
    last_write_time: int
    change_time: int
    file_attributes: int


def parse_basic_information(data: bytes) -> BasicInfoUpdate:
    _need(data, 40)
    return BasicInfoUpdate(*struct.unpack_from("<4qL", data))


@dataclass(frozen=True)
class RenameInfo:
    replace_if_exists: bool
    root_directory: int
    file_name: str


def parse_rename_information(data: bytes) -> RenameInfo:
    """FILE_RENAME_INFORMATION_TYPE_2 (MS-FSCC 2.4.37.2): the 64-bit-RootDirectory SMB2 form."""
    _need(data, 20)
    replace, root, length = struct.unpack_from("<B7xQL", data)
    _need(data, 20 + length)
    try:
        name = data[20:20 + length].decode("utf-16-le")
    except UnicodeDecodeError as e:
        raise StatusError(nt_errors.STATUS_OBJECT_NAME_INVALID, "rename target") from e
    return RenameInfo(bool(replace), root, name)


def parse_disposition_information(data: bytes) -> bool:  # 2.4.11: DeletePending
    _need(data, 1)
    return data[0] != 0


def parse_int64(data: bytes) -> int:
    """FileAllocation/EndOfFile/PositionInformation: one signed 64-bit value."""
    _need(data, 8)
    return struct.unpack_from("<q", data)[0]
