"""MS-FSCC encoders/decoders: hand-written byte vectors, then real client parsers."""

import struct

import pytest
from impacket import nt_errors as nt
from impacket import smb
from impacket import smb3structs as s3
from impacket.ldap import ldaptypes
from smbprotocol import file_info as spfi

from protocols.errors import StatusError
from protocols.smb2 import fileinfo as fi
from protocols.smb2.fileinfo import FileInfoClass as C

T1, T2, T3, T4 = (0x01D0000000000001, 0x01D0000000000002, 0x01D0000000000003,
                  0x01D0000000000004)
TIMES_HEX = "010000000000d001" "020000000000d001" "030000000000d001" "040000000000d001"
INFO = fi.NetworkOpenInfo(creation_time=T1, last_access_time=T2, last_write_time=T3,
                          change_time=T4, allocation_size=4096, end_of_file=5,
                          file_attributes=0x20)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_filetime_conversion():
    assert fi.filetime_from_ns(0) == 116444736000000000
    assert fi.filetime_from_ns(1_000_000_000) == (1 + 11644473600) * 10**7
    assert fi.ns_from_filetime(fi.filetime_from_ns(1_700_000_000_123_456_700)) == \
        1_700_000_000_123_456_700


# --- encoders: hand-written vectors from the MS-FSCC layouts ----------------------------------

def test_basic_information_bytes():
    assert fi.basic_information(INFO) == h(TIMES_HEX + "20000000 00000000")


def test_network_open_information_bytes():  # AllocationSize before EndOfFile here
    assert fi.network_open_information(INFO) == h(
        TIMES_HEX + "0010000000000000 0500000000000000 20000000 00000000")


def test_standard_information_bytes():
    assert fi.standard_information(INFO, 1, True, False) == h(
        "0010000000000000 0500000000000000 01000000 01 00 0000")


def test_small_fixed_classes_bytes():
    assert fi.internal_information(0x1122334455667788) == h("8877665544332211")
    assert fi.ea_information() == h("00000000")
    assert fi.access_information(0x001F01FF) == h("ff011f00")
    assert fi.position_information(7) == h("0700000000000000")
    assert fi.mode_information(0x2) == h("02000000")
    assert fi.alignment_information() == h("00000000")
    assert fi.attribute_tag_information(0x10) == h("10000000 00000000")
    assert fi.compression_information(5) == h("0500000000000000 0000 00 00 00 000000")


def test_name_information_bytes():
    assert fi.name_information("\\a") == h("04000000 5c00 6100")


def test_all_information_layout_and_impacket_parse():
    data = fi.all_information(INFO, links=1, delete_pending=False, directory=True,
                              file_id=42, access_mask=0x120089, position=0, mode=0,
                              name="\\dir\\f")
    assert data[:40] == fi.basic_information(INFO)
    assert len(data) == fi.ALL_INFORMATION_FIXED + len("\\dir\\f") * 2
    parsed = s3.FILE_ALL_INFORMATION(data)
    assert parsed["BasicInformation"]["LastWriteTime"] == T3
    assert parsed["StandardInformation"]["EndOfFile"] == 5
    assert parsed["StandardInformation"]["Directory"] == 1
    assert parsed["InternalInformation"]["IndexNumber"] == 42
    assert parsed["AccessInformation"]["AccessFlags"] == 0x120089
    assert parsed["NameInformation"]["FileName"].decode("utf-16-le") == "\\dir\\f"
    sp = spfi.FileAllInformation()
    sp.unpack(data)
    assert sp["name_information"]["file_name"].get_value() == "\\dir\\f"
    assert sp["internal_information"]["index_number"].get_value() == 42


def test_stream_information_bytes():
    assert fi.stream_information([("::$DATA", 5, 4096)]) == h(
        "00000000 0e000000 0500000000000000 0010000000000000"
        "3a00 3a00 2400 4400 4100 5400 4100")
    assert fi.stream_information([]) == b""


ID_BOTH_AB = h(
    "00000000 00000000" + TIMES_HEX + "0500000000000000 0010000000000000 20000000"
    "04000000 00000000 00 00" + "00" * 24 + "0000 8877665544332211 6100 6200")


def test_id_both_directory_entry_bytes():
    entry = fi.DirEntry("ab", INFO, 0x1122334455667788)
    assert fi.dir_entry(C.ID_BOTH_DIRECTORY, entry) == ID_BOTH_AB
    assert len(ID_BOTH_AB) == fi.DIR_FIXED_SIZE[C.ID_BOTH_DIRECTORY] + 4


def test_other_directory_entry_bytes():
    e = fi.DirEntry("ab", INFO, 9)
    head = "00000000 00000000" + TIMES_HEX + "0500000000000000 0010000000000000 20000000"
    assert fi.dir_entry(C.DIRECTORY, e) == h(head + "04000000 6100 6200")
    assert fi.dir_entry(C.FULL_DIRECTORY, e) == h(head + "04000000 00000000 6100 6200")
    assert fi.dir_entry(C.ID_FULL_DIRECTORY, e) == h(
        head + "04000000 00000000 00000000 0900000000000000 6100 6200")
    assert fi.dir_entry(C.BOTH_DIRECTORY, fi.DirEntry("ab", INFO, 9, "AB")) == h(
        head + "04000000 00000000 04 00 41004200" + "00" * 20 + "6100 6200")
    assert fi.dir_entry(C.NAMES, e) == h("00000000 00000000 04000000 6100 6200")
    for cls, fixed in fi.DIR_FIXED_SIZE.items():
        assert len(fi.dir_entry(cls, fi.DirEntry("", INFO, 0))) == fixed
    with pytest.raises(StatusError) as err:
        fi.dir_entry(C.BASIC, e)
    assert err.value.status == nt.STATUS_INVALID_INFO_CLASS


def test_chain_entries_aligns_and_links():
    a = fi.dir_entry(C.NAMES, fi.DirEntry("a", INFO, 0))   # 14 bytes -> padded to 16
    bc = fi.dir_entry(C.NAMES, fi.DirEntry("bc", INFO, 0))  # 16 bytes, last: offset 0
    assert fi.chain_entries([a, bc]) == h(
        "10000000 00000000 02000000 6100 0000"
        "00000000 00000000 04000000 6200 6300")
    assert fi.chain_entries([a]) == a


def test_id_both_chain_parses_with_impacket_and_smbprotocol():
    names = ["a", "longer name.txt", "Ünïcødé"]
    data = fi.chain_entries([fi.dir_entry(C.ID_BOTH_DIRECTORY, fi.DirEntry(n, INFO, k + 1))
                             for k, n in enumerate(names)])
    seen, rest = [], data
    while True:  # the walk impacket's clients do
        rec = smb.SMBFindFileIdBothDirectoryInfo(smb.SMB.FLAGS2_UNICODE)
        rec.fromString(rest)
        seen.append((rec["FileName"].decode("utf-16-le"), rec["FileID"], rec["EndOfFile"]))
        if not rec["NextEntryOffset"]:
            break
        assert rec["NextEntryOffset"] % 8 == 0
        rest = rest[rec["NextEntryOffset"]:]
    assert seen == [(n, k + 1, 5) for k, n in enumerate(names)]
    sp = spfi.FileIdBothDirectoryInformation()
    sp.unpack(data)
    assert sp["file_name"].get_value().decode("utf-16-le") == "a"
    assert sp["file_id"].get_value() == 1


# --- filesystem classes -----------------------------------------------------------------------

def test_fs_classes_bytes():
    assert fi.fs_attribute_information(0x0F) == h("0f000000 ff000000 08000000 4e00540046005300")
    assert fi.fs_volume_information(T1, 0xAABBCCDD, "V") == h(
        "010000000000d001 ddccbbaa 02000000 00 00 5600")
    assert fi.fs_size_information(10, 5, 8, 512) == h(
        "0a00000000000000 0500000000000000 08000000 00020000")
    assert fi.fs_full_size_information(10, 5, 6, 8, 512) == h(
        "0a00000000000000 0500000000000000 0600000000000000 08000000 00020000")
    assert fi.fs_device_information() == h("07000000 20000000")
    assert fi.fs_sector_size_information() == h(
        "00020000 00100000 00100000 00100000 03000000 00000000 00000000")
    assert fi.fs_object_id_information(b"\x01" * 16) == b"\x01" * 16 + bytes(48)


def test_fs_volume_parses_with_smbprotocol():
    sp = spfi.FileFsVolumeInformation()
    sp.unpack(fi.fs_volume_information(T1, 7, "Data"))
    assert sp["volume_serial_number"].get_value() == 7
    assert sp["volume_label"].get_value() == "Data"


# --- security descriptor ----------------------------------------------------------------------

def test_sid_bytes():
    assert fi.sid_bytes("S-1-1-0") == h("0101 000000000001 00000000")
    assert fi.sid_bytes("S-1-5-32-544") == h("0102 000000000005 20000000 20020000")


def test_security_descriptor_owner_only_bytes():
    assert fi.security_descriptor("S-1-5-32-544", None, None) == h(
        "01 00 0080 14000000 00000000 00000000 00000000"
        "0102 000000000005 20000000 20020000")


def test_security_descriptor_parses_with_impacket():
    data = fi.security_descriptor("S-1-5-32-544", "S-1-5-18",
                                  [(0, 3, fi.FILE_ALL_ACCESS, "S-1-1-0")])
    sd = ldaptypes.SR_SECURITY_DESCRIPTOR(data=data)
    assert sd["Control"] == fi.SE_SELF_RELATIVE | fi.SE_DACL_PRESENT
    assert sd["OwnerSid"].formatCanonical() == "S-1-5-32-544"
    assert sd["GroupSid"].formatCanonical() == "S-1-5-18"
    (ace,) = sd["Dacl"].aces
    assert ace["AceType"] == 0 and ace["AceFlags"] == 3
    assert ace["Ace"]["Mask"]["Mask"] == fi.FILE_ALL_ACCESS
    assert ace["Ace"]["Sid"].formatCanonical() == "S-1-1-0"


# --- SET_INFO decoders ------------------------------------------------------------------------

def test_parse_basic_information():
    raw = h(TIMES_HEX + "01000000 00000000")
    assert fi.parse_basic_information(raw) == fi.BasicInfoUpdate(T1, T2, T3, T4, 1)
    blob = smb.SMBSetFileBasicInfo()  # what impacket clients send
    blob["CreationTime"], blob["LastAccessTime"] = 0, -1
    blob["LastWriteTime"], blob["ChangeTime"], blob["ExtFileAttributes"] = T3, 0, 0x80
    assert fi.parse_basic_information(blob.getData()) == fi.BasicInfoUpdate(0, -1, T3, 0, 0x80)


def test_parse_rename_information():
    raw = h("01 00000000000000 0000000000000000 06000000 6100 5c00 6200")
    assert fi.parse_rename_information(raw) == fi.RenameInfo(True, 0, "a\\b")
    req = s3.FILE_RENAME_INFORMATION_TYPE_2()  # what impacket's smb3.rename sends
    req["ReplaceIfExists"], req["RootDirectory"] = 0, 0
    req["FileNameLength"], req["FileName"] = 8, "new1".encode("utf-16-le")
    assert fi.parse_rename_information(req.getData()) == fi.RenameInfo(False, 0, "new1")


def test_parse_small_values():
    assert fi.parse_disposition_information(b"\x01") is True
    assert fi.parse_disposition_information(b"\x00\x00\x00\x00") is False
    assert fi.parse_int64(h("ffffffffffffffff")) == -1
    assert fi.parse_int64(struct.pack("<q", 1 << 40)) == 1 << 40


@pytest.mark.parametrize("parse, data", [
    (fi.parse_basic_information, bytes(39)),
    (fi.parse_rename_information, bytes(19)),
    (fi.parse_rename_information, h("00 00000000000000 0000000000000000 08000000 6100")),
    (fi.parse_disposition_information, b""),
    (fi.parse_int64, bytes(7)),
])
def test_short_set_info_input_is_length_mismatch(parse, data):
    with pytest.raises(StatusError) as err:
        parse(data)
    assert err.value.status == nt.STATUS_INFO_LENGTH_MISMATCH
