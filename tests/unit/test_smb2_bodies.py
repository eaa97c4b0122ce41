"""Every body layout against impacket's smb3structs, both ways, plus fixed byte vectors."""

import pytest
from impacket import smb3structs as s2

from protocols.errors import StatusError
from protocols.smb2 import bodies

FILE_ID = {"Persistent": 0x1122334455667788, "Volatile": 0x99AABBCCDDEEFF00}
OUR_FILE_ID = {"FileIdPersistent": FILE_ID["Persistent"], "FileIdVolatile": FILE_ID["Volatile"]}

# (our layout, impacket class, field values shared by both; FileID handled apart)
CASES = [
    (bodies.NEGOTIATE, s2.SMB2Negotiate, dict(
        DialectCount=0, SecurityMode=1, Capabilities=0x7F, ClientGuid=b"G" * 16)),
    (bodies.SESSION_SETUP, s2.SMB2SessionSetup, dict(
        Flags=0, SecurityMode=2, Capabilities=1, Channel=0, SecurityBufferOffset=0x58,
        SecurityBufferLength=0, PreviousSessionId=7)),
    (bodies.TREE_CONNECT, s2.SMB2TreeConnect, dict(PathOffset=0x48, PathLength=0)),
    (bodies.CREATE, s2.SMB2Create, dict(
        RequestedOplockLevel=9, ImpersonationLevel=2, DesiredAccess=0x120089,
        FileAttributes=0x80, ShareAccess=7, CreateDisposition=1, CreateOptions=0x40,
        NameOffset=0x78, NameLength=0, CreateContextsOffset=0, CreateContextsLength=0)),
    (bodies.CLOSE, s2.SMB2Close, dict(Flags=1)),
    (bodies.FLUSH, s2.SMB2Flush, {}),
    (bodies.READ, s2.SMB2Read, dict(Padding=0x50, Length=65536, Offset=1 << 33,
                                    MinimumCount=1, RemainingBytes=3)),
    (bodies.LOCK, s2.SMB2Lock, dict(LockCount=0, LockSequence=5)),
    (bodies.IOCTL, s2.SMB2Ioctl, dict(CtlCode=0x00140204, InputOffset=0x78, InputCount=0,
                                      OutputOffset=0x78, OutputCount=0, MaxOutputResponse=24,
                                      Flags=1)),
    (bodies.QUERY_DIRECTORY, s2.SMB2QueryDirectory, dict(
        FileInformationClass=0x25, Flags=1, FileNameOffset=0x60, FileNameLength=0,
        OutputBufferLength=65536)),
    (bodies.QUERY_INFO, s2.SMB2QueryInfo, dict(
        InfoType=1, FileInfoClass=18, OutputBufferLength=4096, InputBufferOffset=0x68,
        AdditionalInformation=0, Flags=0)),
    (bodies.SET_INFO, s2.SMB2SetInfo, dict(InfoType=1, FileInfoClass=20, BufferLength=0,
                                           BufferOffset=0x60)),
    (bodies.OPLOCK_BREAK, s2.SMB2OplockBreakAcknowledgment, dict(OplockLevel=1)),
    (bodies.LEASE_BREAK_ACK, s2.SMB2LeaseBreakAcknowledgement, dict(
        LeaseKey=b"K" * 16, LeaseState=3, LeaseDuration=0)),
    (bodies.LEASE_BREAK_NOTIFICATION, s2.SMB2LeaseBreakNotification, dict(
        NewEpoch=2, Flags=1, LeaseKey=b"L" * 16, CurrentLeaseState=7, NewLeaseState=3,
        BreakReason=0, AccessMaskHint=0, ShareMaskHint=0)),
    (bodies.SESSION_SETUP_RESPONSE, s2.SMB2SessionSetup_Response, dict(
        SessionFlags=2, SecurityBufferOffset=0x48, SecurityBufferLength=0)),
    (bodies.TREE_CONNECT_RESPONSE, s2.SMB2TreeConnect_Response, dict(
        ShareType=1, ShareFlags=0x30, Capabilities=0, MaximalAccess=0x1F01FF)),
    (bodies.CREATE_RESPONSE, s2.SMB2Create_Response, dict(
        OplockLevel=0, CreateAction=2, CreationTime=1, LastAccessTime=2, LastWriteTime=3,
        ChangeTime=4, AllocationSize=4096, EndOfFile=5, FileAttributes=0x20,
        CreateContextsOffset=0, CreateContextsLength=0)),
    (bodies.CLOSE_RESPONSE, s2.SMB2Close_Response, dict(
        Flags=1, CreationTime=1, LastAccessTime=2, LastWriteTime=3, ChangeTime=4,
        AllocationSize=8, EndofFile=7, FileAttributes=0x10)),
    (bodies.READ_RESPONSE, s2.SMB2Read_Response, dict(DataOffset=0x50, DataLength=0)),
    (bodies.WRITE_RESPONSE, s2.SMB2Write_Response, dict(Count=12, Remaining=0)),
    (bodies.IOCTL_RESPONSE, s2.SMB2Ioctl_Response, dict(
        CtlCode=0x00140204, InputOffset=0x70, InputCount=0, OutputOffset=0x70, OutputCount=0)),
    (bodies.OUTPUT_RESPONSE, s2.SMB2QueryInfo_Response, dict(
        OutputBufferOffset=0x48, OutputBufferLength=0)),
]


def impacket_bytes(cls, values):
    st = cls()
    for key, value in values.items():
        st[key] = value
    if "FileID" in dict((f[0], 1) for f in cls.structure):
        fid = s2.SMB2_FILEID()
        fid["Persistent"], fid["Volatile"] = FILE_ID["Persistent"], FILE_ID["Volatile"]
        st["FileID"] = fid
    for name in ("AlignPad", "Buffer", "Padding", "NegotiateContextList", "Locks"):
        if name in dict((f[0], 1) for f in cls.structure) and name not in values:
            st[name] = b""
    if cls is s2.SMB2Negotiate:
        st["Dialects"] = []
    return st.getData()


@pytest.mark.parametrize("layout,cls,values", CASES, ids=[c[0].name for c in CASES])
def test_layout_matches_impacket_both_ways(layout, cls, values):
    theirs = impacket_bytes(cls, values)
    extra = OUR_FILE_ID if "FileIdPersistent" in layout.fields else {}
    ours = layout.pack(**values, **extra)
    assert theirs[:layout.size] == ours
    parsed = layout.parse(theirs)
    for key, value in {**values, **extra}.items():
        assert getattr(parsed, key) == value
    assert parsed.StructureSize == layout.structure_size


def test_write_request_vector():
    raw = bytes.fromhex("3100" "7000" "05000000" "0000000000000000" + "11" * 8 + "22" * 8
                        + "00000000" "00000000" "0000" "0000" "00000000")
    req = bodies.WRITE.parse(raw)
    assert (req.DataOffset, req.Length, req.FileIdPersistent) == (0x70, 5, 0x1111111111111111)
    assert bodies.WRITE.pack(**req._asdict()) == raw


def test_negotiate_response_fixed_part_vector():
    raw = bodies.NEGOTIATE_RESPONSE.pack(SecurityMode=1, DialectRevision=0x0311,
                                         ServerGuid=b"S" * 16, SecurityBufferOffset=0x80)
    assert raw[:6] == bytes.fromhex("4100" "0100" "1103") and len(raw) == 64
    assert raw[56:58] == b"\x80\x00"
    assert bodies.NEGOTIATE_RESPONSE.parse(raw).ServerGuid == b"S" * 16


def test_short_bodies_are_invalid_parameter():
    with pytest.raises(StatusError) as err:
        bodies.CREATE.parse(b"\x39\x00")
    assert err.value.status == 0xC000000D


def test_pack_refuses_unknown_fields():
    with pytest.raises(TypeError):
        bodies.CLOSE.pack(Bogus=1)


def test_empty_response_vector():
    assert bodies.EMPTY_RESPONSE == bytes.fromhex("04000000")


def test_set_info_response_vector():
    assert bodies.SET_INFO_RESPONSE == bytes.fromhex("0200")


# Layouts without a StructureSize: checked against impacket both ways all the same.
NO_SIZE_CASES = [
    (bodies.CREATE_CONTEXT, s2.SMB2CreateContext, dict(
        Next=56, NameOffset=16, NameLength=4, DataOffset=24, DataLength=32)),
    (bodies.LEASE_V1, s2.SMB2_CREATE_REQUEST_LEASE, dict(
        LeaseKey=b"k" * 16, LeaseState=7, LeaseFlags=2, LeaseDuration=0)),
    (bodies.LEASE_V2, s2.SMB2_CREATE_REQUEST_LEASE_V2, dict(
        LeaseKey=b"k" * 16, LeaseState=3, Flags=4, LeaseDuration=0, ParentLeaseKey=b"p" * 16,
        Epoch=9)),
]


@pytest.mark.parametrize("layout,cls,values", NO_SIZE_CASES, ids=[c[0].name for c in NO_SIZE_CASES])
def test_unsized_layout_matches_impacket_both_ways(layout, cls, values):
    st = cls()
    for key, value in values.items():
        st[key] = value
    if "Buffer" in dict((f[0], 1) for f in cls.structure):
        st["Buffer"] = b""
    theirs = st.getData()
    assert theirs[:layout.size] == layout.pack(**values)
    assert len(theirs) == layout.size
    parsed = layout.parse(theirs)
    for key, value in values.items():
        assert getattr(parsed, key) == value
    again = cls(layout.pack(**values))
    for key, value in values.items():
        assert again[key] == value
