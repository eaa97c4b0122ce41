"""The fixed parts of SMB2 request and response bodies (MS-SMB2 2.2), as struct layouts.

The field names are those of impacket's ``smb3structs``, and the tests check every
layout byte for byte against impacket in both directions. They are declared here
rather than parsed with impacket's ``Structure`` because that parser costs about a
millisecond a message, more than this server's whole CPU budget for a handshake.
"""

from __future__ import annotations

import struct
from collections import namedtuple
from typing import Any

from impacket import nt_errors

from protocols.errors import StatusError


class Layout:
    """One body's fixed part: ``parse`` bytes into a named tuple, ``pack`` keywords to bytes."""

    def __init__(self, name: str, spec: list[tuple[str, str]], structure_size: int) -> None:
        self.name = name
        self.struct = struct.Struct("<" + "".join(fmt for _, fmt in spec))
        self.fields = [field for field, _ in spec]
        self.tuple: Any = namedtuple(name, self.fields)  # type: ignore[misc]
        self.structure_size = structure_size
        self._defaults = {f: (b"" if fmt.endswith("s") else 0) for f, fmt in spec}
        self._defaults["StructureSize"] = structure_size

    @property
    def size(self) -> int:
        return self.struct.size

    def parse(self, data: bytes, offset: int = 0) -> Any:
        """Parse the fixed part at ``offset`` (a whole message and HEADER_SIZE avoids
        copying a large WRITE just to read its first bytes)."""
        if len(data) < offset + self.struct.size:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, f"short {self.name}")
        return self.tuple._make(self.struct.unpack_from(data, offset))

    def pack(self, **values: Any) -> bytes:
        unknown = set(values) - set(self._defaults)
        if unknown:
            raise TypeError(f"{self.name} has no field {', '.join(sorted(unknown))}")
        merged = {**self._defaults, **values}
        return self.struct.pack(*(merged[f] for f in self.fields))


def _layout(name: str, size: int, spec: str) -> Layout:
    """``spec`` is "Field:fmt Field:fmt ..." with struct format codes."""
    pairs = [tuple(item.split(":")) for item in spec.split()]
    return Layout(name, pairs, size)  # type: ignore[arg-type]


FILE_ID = "FileIdPersistent:Q FileIdVolatile:Q"

# -- requests ------------------------------------------------------------------------
NEGOTIATE = _layout("SMB2Negotiate", 36, "StructureSize:H DialectCount:H SecurityMode:H "
                    "Reserved:H Capabilities:I ClientGuid:16s NegotiateContextOffset:I "
                    "NegotiateContextCount:H Reserved2:H")
SESSION_SETUP = _layout("SMB2SessionSetup", 25, "StructureSize:H Flags:B SecurityMode:B "
                        "Capabilities:I Channel:I SecurityBufferOffset:H "
                        "SecurityBufferLength:H PreviousSessionId:Q")
TREE_CONNECT = _layout("SMB2TreeConnect", 9,
                       "StructureSize:H Reserved:H PathOffset:H PathLength:H")
CREATE = _layout("SMB2Create", 57, "StructureSize:H SecurityFlags:B RequestedOplockLevel:B "
                 "ImpersonationLevel:I SmbCreateFlags:Q Reserved:Q DesiredAccess:I "
                 "FileAttributes:I ShareAccess:I CreateDisposition:I CreateOptions:I "
                 "NameOffset:H NameLength:H CreateContextsOffset:I CreateContextsLength:I")
CLOSE = _layout("SMB2Close", 24, f"StructureSize:H Flags:H Reserved:I {FILE_ID}")
FLUSH = _layout("SMB2Flush", 24, f"StructureSize:H Reserved1:H Reserved2:I {FILE_ID}")
READ = _layout("SMB2Read", 49, f"StructureSize:H Padding:B Reserved:B Length:I Offset:Q "
               f"{FILE_ID} MinimumCount:I Channel:I RemainingBytes:I "
               "ReadChannelInfoOffset:H ReadChannelInfoLength:H")
WRITE = _layout("SMB2Write", 49, f"StructureSize:H DataOffset:H Length:I Offset:Q {FILE_ID} "
                "Channel:I RemainingBytes:I WriteChannelInfoOffset:H "
                "WriteChannelInfoLength:H Flags:I")
LOCK = _layout("SMB2Lock", 48, f"StructureSize:H LockCount:H LockSequence:I {FILE_ID}")
IOCTL = _layout("SMB2Ioctl", 57, f"StructureSize:H Reserved:H CtlCode:I {FILE_ID} "
                "InputOffset:I InputCount:I MaxInputResponse:I OutputOffset:I OutputCount:I "
                "MaxOutputResponse:I Flags:I Reserved2:I")
QUERY_DIRECTORY = _layout("SMB2QueryDirectory", 33, "StructureSize:H FileInformationClass:B "
                          f"Flags:B FileIndex:I {FILE_ID} FileNameOffset:H FileNameLength:H "
                          "OutputBufferLength:I")
QUERY_INFO = _layout("SMB2QueryInfo", 41, "StructureSize:H InfoType:B FileInfoClass:B "
                     "OutputBufferLength:I InputBufferOffset:H Reserved:H "
                     f"InputBufferLength:I AdditionalInformation:I Flags:I {FILE_ID}")
SET_INFO = _layout("SMB2SetInfo", 33, "StructureSize:H InfoType:B FileInfoClass:B "
                   "BufferLength:I BufferOffset:H Reserved:H AdditionalInformation:I "
                   f"{FILE_ID}")
# OPLOCK_BREAK: the oplock form of notification, acknowledgment and response share one
# shape (2.2.23.1, 2.2.24.1, 2.2.25.1); the lease forms differ (2.2.23.2, 2.2.24.2, 2.2.25.2).
OPLOCK_BREAK = _layout("SMB2OplockBreakNotification", 24, "StructureSize:H OplockLevel:B "
                       f"Reserved:B Reserved2:I {FILE_ID}")
LEASE_BREAK_ACK = _layout("SMB2LeaseBreakAcknowledgement", 36, "StructureSize:H Reserved:H "
                          "Flags:I LeaseKey:16s LeaseState:I LeaseDuration:Q")
LEASE_BREAK_NOTIFICATION = _layout(
    "SMB2LeaseBreakNotification", 44, "StructureSize:H NewEpoch:H Flags:I LeaseKey:16s "
    "CurrentLeaseState:I NewLeaseState:I BreakReason:I AccessMaskHint:I ShareMaskHint:I")
# A create context's fixed part (2.2.13.2; no StructureSize) and the lease contexts' data
# (2.2.13.2.8 / 2.2.14.2.10 and, for SMB 3.x, 2.2.13.2.10 / 2.2.14.2.11).
CREATE_CONTEXT = _layout("SMB2CreateContext", 0, "Next:I NameOffset:H NameLength:H "
                         "Reserved:H DataOffset:H DataLength:I")
LEASE_V1 = _layout("SMB2_CREATE_REQUEST_LEASE", 0,
                   "LeaseKey:16s LeaseState:I LeaseFlags:I LeaseDuration:Q")
LEASE_V2 = _layout("SMB2_CREATE_REQUEST_LEASE_V2", 0, "LeaseKey:16s LeaseState:I Flags:I "
                   "LeaseDuration:Q ParentLeaseKey:16s Epoch:H Reserved:H")

# -- responses -----------------------------------------------------------------------
NEGOTIATE_RESPONSE = _layout(
    "SMB2Negotiate_Response", 65, "StructureSize:H SecurityMode:H DialectRevision:H "
    "NegotiateContextCount:H ServerGuid:16s Capabilities:I MaxTransactSize:I MaxReadSize:I "
    "MaxWriteSize:I SystemTime:Q ServerStartTime:Q SecurityBufferOffset:H "
    "SecurityBufferLength:H NegotiateContextOffset:I")
SESSION_SETUP_RESPONSE = _layout("SMB2SessionSetup_Response", 9, "StructureSize:H "
                                 "SessionFlags:H SecurityBufferOffset:H SecurityBufferLength:H")
TREE_CONNECT_RESPONSE = _layout("SMB2TreeConnect_Response", 16, "StructureSize:H ShareType:B "
                                "Reserved:B ShareFlags:I Capabilities:I MaximalAccess:I")
CREATE_RESPONSE = _layout(
    "SMB2Create_Response", 89, "StructureSize:H OplockLevel:B Flags:B CreateAction:I "
    "CreationTime:Q LastAccessTime:Q LastWriteTime:Q ChangeTime:Q AllocationSize:Q "
    f"EndOfFile:Q FileAttributes:I Reserved2:I {FILE_ID} CreateContextsOffset:I "
    "CreateContextsLength:I")
CLOSE_RESPONSE = _layout(
    "SMB2Close_Response", 60, "StructureSize:H Flags:H Reserved:I CreationTime:Q "
    "LastAccessTime:Q LastWriteTime:Q ChangeTime:Q AllocationSize:Q EndofFile:Q "
    "FileAttributes:I")
READ_RESPONSE = _layout("SMB2Read_Response", 17, "StructureSize:H DataOffset:B Reserved:B "
                        "DataLength:I DataRemaining:I Reserved2:I")
WRITE_RESPONSE = _layout("SMB2Write_Response", 17, "StructureSize:H Reserved:H Count:I "
                         "Remaining:I WriteChannelInfoOffset:H WriteChannelInfoLength:H")
IOCTL_RESPONSE = _layout("SMB2Ioctl_Response", 49, f"StructureSize:H Reserved:H CtlCode:I "
                         f"{FILE_ID} InputOffset:I InputCount:I OutputOffset:I OutputCount:I "
                         "Flags:I Reserved2:I")
# QUERY_DIRECTORY and QUERY_INFO responses share this shape.
OUTPUT_RESPONSE = _layout("SMB2QueryInfo_Response", 9, "StructureSize:H OutputBufferOffset:H "
                          "OutputBufferLength:I")
# LOGOFF, TREE_DISCONNECT, FLUSH, LOCK and ECHO answer with this alone (StructureSize 4).
EMPTY_RESPONSE = struct.pack("<HH", 4, 0)
# SET_INFO's response is shorter still: StructureSize 2 and nothing else (2.2.40).
SET_INFO_RESPONSE = struct.pack("<H", 2)
