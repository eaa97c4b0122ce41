"""DiskShare / OpenFile against a tmp_path share: dispositions, containment, info, paging."""

import os
import struct

import pytest
from impacket import nt_errors as nt
from impacket import smb
from impacket import smb3structs as s3
from impacket.ldap import ldaptypes

from protocols.errors import StatusError
from protocols.smb2 import fileinfo as fi
from protocols.smb2 import fs
from protocols.smb2.fileinfo import FileInfoClass as C
from protocols.smb2.fileinfo import FsInfoClass as F

RW = fs.GENERIC_READ | fs.GENERIC_WRITE | fs.DELETE


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "sub").mkdir(parents=True)
    (r / "f.txt").write_bytes(b"hello")
    (r / "sub" / "Inner.TXT").write_bytes(b"inner")
    return r


@pytest.fixture
def share(root):
    return fs.DiskShare("data", root)


def status_of(fn, *args, **kw):
    with pytest.raises(StatusError) as err:
        fn(*args, **kw)
    return err.value.status


def op(share, name, disp=fs.FILE_OPEN, opts=0, access=RW, attrs=0):
    return share.open(name, desired_access=access, create_disposition=disp,
                      create_options=opts, file_attributes=attrs)


def rename_blob(name, replace=False):
    raw = name.encode("utf-16-le")
    return struct.pack("<B7xQL", replace, 0, len(raw)) + raw


def names_of(data):
    """Walk a QUERY_DIRECTORY buffer the way impacket's client does."""
    out = []
    while data:
        rec = smb.SMBFindFileIdBothDirectoryInfo(smb.SMB.FLAGS2_UNICODE)
        rec.fromString(data)
        out.append(rec["FileName"].decode("utf-16-le"))
        assert rec["NextEntryOffset"] % 8 == 0
        data = data[rec["NextEntryOffset"]:] if rec["NextEntryOffset"] else b""
    return out


# --- CREATE dispositions ----------------------------------------------------------------------

@pytest.mark.parametrize("disp, action, content", [
    (fs.FILE_OPEN, fs.FILE_OPENED, b"hello"),
    (fs.FILE_OPEN_IF, fs.FILE_OPENED, b"hello"),
    (fs.FILE_OVERWRITE, fs.FILE_OVERWRITTEN, b""),
    (fs.FILE_OVERWRITE_IF, fs.FILE_OVERWRITTEN, b""),
    (fs.FILE_SUPERSEDE, fs.FILE_SUPERSEDED, b""),
])
def test_dispositions_on_existing_file(share, root, disp, action, content):
    h, got = op(share, "f.txt", disp)
    assert got == action and not h.is_directory and h.path == "f.txt"
    assert (root / "f.txt").read_bytes() == content
    h.close()


def test_create_on_existing_is_collision(share):
    assert status_of(op, share, "f.txt", fs.FILE_CREATE) == nt.STATUS_OBJECT_NAME_COLLISION
    assert status_of(op, share, "sub", fs.FILE_CREATE, fs.FILE_DIRECTORY_FILE) == \
        nt.STATUS_OBJECT_NAME_COLLISION


@pytest.mark.parametrize("disp", [fs.FILE_OPEN, fs.FILE_OVERWRITE])
def test_missing_file_not_found(share, disp):
    assert status_of(op, share, "nope.txt", disp) == nt.STATUS_OBJECT_NAME_NOT_FOUND


@pytest.mark.parametrize("disp", [fs.FILE_CREATE, fs.FILE_OPEN_IF, fs.FILE_OVERWRITE_IF,
                                  fs.FILE_SUPERSEDE])
def test_missing_file_created(share, root, disp):
    h, action = op(share, "new.bin", disp)
    assert action == fs.FILE_CREATED and (root / "new.bin").is_file()
    h.close()


def test_create_directory(share, root):
    h, action = op(share, "sub\\newdir", fs.FILE_CREATE, fs.FILE_DIRECTORY_FILE)
    assert action == fs.FILE_CREATED and h.is_directory and (root / "sub" / "newdir").is_dir()
    assert h.path == "sub\\newdir"


def test_share_root_opens_as_directory(share):
    h, action = op(share, "", opts=fs.FILE_DIRECTORY_FILE)
    assert action == fs.FILE_OPENED and h.is_directory and h.path == ""


@pytest.mark.parametrize("name, disp, opts, status", [
    ("missing\\x.txt", fs.FILE_OPEN_IF, 0, nt.STATUS_OBJECT_PATH_NOT_FOUND),
    ("f.txt\\x", fs.FILE_OPEN, 0, nt.STATUS_OBJECT_PATH_NOT_FOUND),
    ("sub", fs.FILE_OPEN, fs.FILE_NON_DIRECTORY_FILE, nt.STATUS_FILE_IS_A_DIRECTORY),
    ("sub", fs.FILE_OVERWRITE_IF, 0, nt.STATUS_FILE_IS_A_DIRECTORY),
    ("f.txt", fs.FILE_OPEN, fs.FILE_DIRECTORY_FILE, nt.STATUS_NOT_A_DIRECTORY),
    ("sub", fs.FILE_OVERWRITE_IF, fs.FILE_DIRECTORY_FILE, nt.STATUS_INVALID_PARAMETER),
    ("f.txt", 6, 0, nt.STATUS_INVALID_PARAMETER),
    ("f.txt:stream", fs.FILE_OPEN, 0, nt.STATUS_OBJECT_NAME_NOT_FOUND),
    ("f.txt:stream:$DATA", fs.FILE_OPEN_IF, 0, nt.STATUS_OBJECT_NAME_NOT_FOUND),
    ("c:f.txt", fs.FILE_OPEN_IF, 0, nt.STATUS_OBJECT_NAME_NOT_FOUND),  # stream 'f.txt' of 'c'

    ("a*b", fs.FILE_OPEN_IF, 0, nt.STATUS_OBJECT_NAME_INVALID),
    ("a?b", fs.FILE_OPEN_IF, 0, nt.STATUS_OBJECT_NAME_INVALID),
    ('a"b', fs.FILE_OPEN_IF, 0, nt.STATUS_OBJECT_NAME_INVALID),
    ("a|b", fs.FILE_OPEN_IF, 0, nt.STATUS_OBJECT_NAME_INVALID),
    ("a<b", fs.FILE_OPEN_IF, 0, nt.STATUS_OBJECT_NAME_INVALID),
    ("a\x00b", fs.FILE_OPEN_IF, 0, nt.STATUS_OBJECT_NAME_INVALID),
    ("a\x01b", fs.FILE_OPEN_IF, 0, nt.STATUS_OBJECT_NAME_INVALID),
    ("sub\\\\x", fs.FILE_OPEN_IF, 0, nt.STATUS_OBJECT_NAME_INVALID),
    ("x" * 256, fs.FILE_OPEN_IF, 0, nt.STATUS_OBJECT_NAME_INVALID),
])
def test_create_errors(share, name, disp, opts, status):
    assert status_of(op, share, name, disp, opts) == status


def test_default_data_stream_is_the_file(share):
    h, _ = op(share, "f.txt::$DATA")
    assert h.read(0, 10) == b"hello"


# --- containment ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "..", "..\\..\\etc\\passwd", "sub\\..\\..\\f.txt", "..\\root\\f.txt",
    "\\etc\\passwd", "\\f.txt", "C:\\Windows", "C:", "C:\\", "/etc/passwd", "sub/../..",
])
def test_escape_attempts_refused(share, name):
    assert status_of(op, share, name, fs.FILE_OPEN_IF) == nt.STATUS_OBJECT_NAME_INVALID


def test_dotdot_inside_share_is_fine(share):
    h, _ = op(share, "sub\\..\\f.txt")
    assert h.path == "f.txt" and h.read(0, 5) == b"hello"


def test_symlinks_out_of_share_refused(share, root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    os.symlink("/etc", root / "etc")
    os.symlink(outside / "secret", root / "secret")
    os.symlink(outside / "planted", root / "dangling")  # target does not exist yet
    os.symlink("sub", root / "inside")  # stays in the share: allowed
    for name in ("etc\\passwd", "etc", "secret", "ETC\\passwd"):
        assert status_of(op, share, name) == nt.STATUS_ACCESS_DENIED, name
    assert status_of(op, share, "dangling", fs.FILE_OPEN_IF) == nt.STATUS_ACCESS_DENIED
    assert not (outside / "planted").exists()
    h, _ = op(share, "inside\\inner.txt")
    assert h.read(0, 5) == b"inner"
    d, _ = op(share, "", opts=fs.FILE_DIRECTORY_FILE)
    listed = names_of(d.query_directory(C.ID_BOTH_DIRECTORY, "*", 0, 65536))
    assert "etc" not in listed and "secret" not in listed and "inside" in listed
    f, _ = op(share, "f.txt")
    assert status_of(f.set_info, C.RENAME, rename_blob("etc\\f.txt")) == \
        nt.STATUS_ACCESS_DENIED
    assert status_of(f.set_info, C.RENAME, rename_blob("..\\f.txt")) == \
        nt.STATUS_OBJECT_NAME_INVALID


def test_case_insensitive_lookup(share, root):
    h, _ = op(share, "SUB\\inner.txt")
    assert h.path == "sub\\Inner.TXT" and h.read(0, 5) == b"inner"
    assert status_of(op, share, "F.TXT", fs.FILE_CREATE) == nt.STATUS_OBJECT_NAME_COLLISION
    h2, action = op(share, "F.TXT", fs.FILE_OPEN_IF)
    assert action == fs.FILE_OPENED and h2.path == "f.txt"
    assert sorted(os.listdir(root)) == ["f.txt", "sub"]


# --- access -----------------------------------------------------------------------------------

def test_access_checks(share, root):
    ro, _ = op(share, "f.txt", access=fs.GENERIC_READ)
    assert status_of(ro.write, 0, b"x") == nt.STATUS_ACCESS_DENIED
    assert status_of(ro.set_info, C.END_OF_FILE, struct.pack("<q", 0)) == \
        nt.STATUS_ACCESS_DENIED
    assert status_of(ro.set_info, C.DISPOSITION, b"\x01") == nt.STATUS_ACCESS_DENIED
    attrs_only, _ = op(share, "f.txt", access=fs.FILE_READ_ATTRIBUTES)
    assert status_of(attrs_only.read, 0, 1) == nt.STATUS_ACCESS_DENIED
    assert attrs_only.network_open_info().end_of_file == 5
    assert status_of(op, share, "f.txt", opts=fs.FILE_DELETE_ON_CLOSE,
                     access=fs.GENERIC_READ) == nt.STATUS_INVALID_PARAMETER


def test_read_only_file(share, root):
    os.chmod(root / "f.txt", 0o444)
    assert status_of(op, share, "f.txt", access=fs.GENERIC_WRITE) == nt.STATUS_ACCESS_DENIED
    assert status_of(op, share, "f.txt", fs.FILE_OVERWRITE_IF) == nt.STATUS_ACCESS_DENIED
    assert status_of(op, share, "f.txt", opts=fs.FILE_DELETE_ON_CLOSE) == \
        nt.STATUS_ACCESS_DENIED  # RW includes write: refused before the delete check
    assert status_of(op, share, "f.txt", opts=fs.FILE_DELETE_ON_CLOSE,
                     access=fs.GENERIC_READ | fs.DELETE) == nt.STATUS_CANNOT_DELETE
    h, _ = op(share, "f.txt", access=fs.MAXIMUM_ALLOWED)
    assert not h.granted_access & fs.FILE_WRITE_DATA
    assert h.network_open_info().file_attributes & fi.FILE_ATTRIBUTE_READONLY
    assert status_of(h.set_info, C.DISPOSITION, b"\x01") == nt.STATUS_CANNOT_DELETE


def test_create_read_only_attribute(share, root):
    h, _ = op(share, "ro.txt", fs.FILE_CREATE, attrs=fi.FILE_ATTRIBUTE_READONLY)
    assert h.write(0, b"still writable by its creator") > 0
    assert not os.stat(root / "ro.txt").st_mode & 0o222


# --- READ / WRITE / FLUSH ---------------------------------------------------------------------

def test_read_write(share, root):
    h, _ = op(share, "f.txt")
    assert h.write(5, b" world") == 6
    assert h.read(0, 100) == b"hello world"
    assert h.read(6, 3) == b"wor"
    assert h.read(11, 0) == b""
    assert status_of(h.read, 11, 10) == nt.STATUS_END_OF_FILE
    assert status_of(h.read, 1000, 1) == nt.STATUS_END_OF_FILE
    assert h.write(0xFFFFFFFFFFFFFFFF, b"!") == 1  # append at end of file
    h.flush()
    assert (root / "f.txt").read_bytes() == b"hello world!"
    h.close()
    assert status_of(h.read, 0, 1) == nt.STATUS_FILE_CLOSED


def test_directory_data_ops_refused(share):
    d, _ = op(share, "sub", opts=fs.FILE_DIRECTORY_FILE)
    assert status_of(d.read, 0, 1) == nt.STATUS_INVALID_DEVICE_REQUEST
    assert status_of(d.write, 0, b"x") == nt.STATUS_INVALID_DEVICE_REQUEST


# --- SET_INFO ---------------------------------------------------------------------------------

def test_truncate_and_extend(share, root):
    h, _ = op(share, "f.txt")
    h.set_info(C.END_OF_FILE, struct.pack("<q", 2))
    assert (root / "f.txt").read_bytes() == b"he"
    h.set_info(C.END_OF_FILE, struct.pack("<q", 4))
    assert (root / "f.txt").read_bytes() == b"he\0\0"
    h.set_info(C.ALLOCATION, struct.pack("<q", 1 << 20))  # growing allocation keeps the data
    assert h.network_open_info().end_of_file == 4
    h.set_info(C.ALLOCATION, struct.pack("<q", 1))
    assert (root / "f.txt").read_bytes() == b"h"
    assert status_of(h.set_info, C.END_OF_FILE, struct.pack("<q", -1)) == \
        nt.STATUS_INVALID_PARAMETER
    assert status_of(h.set_info, C.END_OF_FILE, b"\0" * 4) == nt.STATUS_INFO_LENGTH_MISMATCH


def test_set_basic_information(share, root):
    h, _ = op(share, "f.txt")
    before = os.stat(root / "f.txt")
    when = fi.filetime_from_ns(1_500_000_000 * 10**9)
    h.set_info(C.BASIC, struct.pack("<4qLL", 0, -1, when, 0, 0, 0))
    after = os.stat(root / "f.txt")
    assert after.st_mtime_ns == 1_500_000_000 * 10**9
    assert after.st_atime_ns == before.st_atime_ns
    assert after.st_mode == before.st_mode  # attributes 0: unchanged
    h.set_info(C.BASIC, struct.pack("<4qLL", 0, 0, 0, 0, fi.FILE_ATTRIBUTE_READONLY, 0))
    assert not os.stat(root / "f.txt").st_mode & 0o222
    h.set_info(C.BASIC, struct.pack("<4qLL", 0, 0, 0, 0, fi.FILE_ATTRIBUTE_NORMAL, 0))
    assert os.stat(root / "f.txt").st_mode & 0o200
    assert status_of(h.set_info, C.BASIC, bytes(36)) == nt.STATUS_INFO_LENGTH_MISMATCH


def test_set_position_and_unknown_class(share):
    h, _ = op(share, "f.txt")
    h.set_info(C.POSITION, struct.pack("<q", 3))
    assert h.query_info(C.POSITION, 8) == struct.pack("<q", 3)
    assert status_of(h.set_info, C.STANDARD, bytes(24)) == nt.STATUS_INVALID_INFO_CLASS


def test_rename(share, root):
    h, _ = op(share, "f.txt")
    other, _ = op(share, "f.txt", access=fs.FILE_READ_ATTRIBUTES)
    h.set_info(C.RENAME, rename_blob("sub\\g.txt"))
    assert (root / "sub" / "g.txt").read_bytes() == b"hello" and not (root / "f.txt").exists()
    assert h.path == other.path == "sub\\g.txt"
    assert other.query_info(C.NAME, 100) == fi.name_information("\\sub\\g.txt")
    h.set_info(C.RENAME, rename_blob("sub\\G.TXT"))  # change of case only
    assert sorted(os.listdir(root / "sub")) == ["G.TXT", "Inner.TXT"]
    assert status_of(h.set_info, C.RENAME, rename_blob("sub\\inner.txt")) == \
        nt.STATUS_OBJECT_NAME_COLLISION
    assert status_of(h.set_info, C.RENAME, rename_blob("nodir\\x")) == \
        nt.STATUS_OBJECT_PATH_NOT_FOUND
    h.set_info(C.RENAME, rename_blob("sub\\inner.txt", replace=True))
    assert sorted(os.listdir(root / "sub")) == ["inner.txt"]
    assert (root / "sub" / "inner.txt").read_bytes() == b"hello"


def test_rename_directory_rules(share, root):
    d, _ = op(share, "sub", opts=fs.FILE_DIRECTORY_FILE)
    child, _ = op(share, "sub\\inner.txt")
    assert status_of(d.set_info, C.RENAME, rename_blob("sub2")) == nt.STATUS_ACCESS_DENIED
    child.close()
    f, _ = op(share, "f.txt")
    assert status_of(f.set_info, C.RENAME, rename_blob("sub", replace=True)) == \
        nt.STATUS_ACCESS_DENIED  # a directory is never replaced
    d.set_info(C.RENAME, rename_blob("sub2"))
    assert (root / "sub2" / "Inner.TXT").exists()
    rootdir, _ = op(share, "", opts=fs.FILE_DIRECTORY_FILE)
    assert status_of(rootdir.set_info, C.RENAME, rename_blob("x")) == nt.STATUS_ACCESS_DENIED


def test_delete_via_disposition(share, root):
    h, _ = op(share, "f.txt")
    other, _ = op(share, "f.txt", access=fs.GENERIC_READ)
    h.set_info(C.DISPOSITION, b"\x01")
    assert other.query_info(C.STANDARD, 24)[20] == 1  # DeletePending is per file
    assert status_of(op, share, "f.txt") == nt.STATUS_DELETE_PENDING
    h.close()
    assert (root / "f.txt").exists()  # deleted when the last handle goes
    other.close()
    assert not (root / "f.txt").exists()


def test_undelete(share, root):
    h, _ = op(share, "f.txt")
    h.set_info(C.DISPOSITION, b"\x01")
    h.set_info(C.DISPOSITION, b"\x00")
    h.close()
    assert (root / "f.txt").exists()


def test_delete_directories(share, root):
    d, _ = op(share, "sub", opts=fs.FILE_DIRECTORY_FILE)
    assert status_of(d.set_info, C.DISPOSITION, b"\x01") == nt.STATUS_DIRECTORY_NOT_EMPTY
    assert status_of(op, share, "sub", opts=fs.FILE_DIRECTORY_FILE | fs.FILE_DELETE_ON_CLOSE) \
        == nt.STATUS_DIRECTORY_NOT_EMPTY
    rootdir, _ = op(share, "", opts=fs.FILE_DIRECTORY_FILE)
    assert status_of(rootdir.set_info, C.DISPOSITION, b"\x01") == nt.STATUS_CANNOT_DELETE
    e, action = op(share, "empty", fs.FILE_CREATE,
                   fs.FILE_DIRECTORY_FILE | fs.FILE_DELETE_ON_CLOSE)
    assert (root / "empty").is_dir()
    e.close()
    assert not (root / "empty").exists()


def test_delete_on_close_file(share, root):
    h, _ = op(share, "tmp.txt", fs.FILE_CREATE, fs.FILE_DELETE_ON_CLOSE)
    h.write(0, b"x")
    h.close()
    h.close()  # idempotent
    assert not (root / "tmp.txt").exists()


# --- QUERY_INFO -------------------------------------------------------------------------------

FIXED_SIZES = {C.BASIC: 40, C.STANDARD: 24, C.INTERNAL: 8, C.EA: 4, C.ACCESS: 4, C.POSITION: 8,
               C.MODE: 4, C.ALIGNMENT: 4, C.COMPRESSION: 16, C.NETWORK_OPEN: 56,
               C.ATTRIBUTE_TAG: 8}


def test_query_info_fixed_classes(share, root):
    h, _ = op(share, "sub\\inner.txt")
    for cls, size in FIXED_SIZES.items():
        assert len(h.query_info(cls, 4096)) == size, cls
        assert status_of(h.query_info, cls, size - 1) == nt.STATUS_INFO_LENGTH_MISMATCH
    st = os.stat(root / "sub" / "Inner.TXT")
    assert h.query_info(C.INTERNAL, 8) == struct.pack("<Q", st.st_ino)
    assert h.query_info(C.ACCESS, 4) == struct.pack("<L", h.granted_access)
    info = h.network_open_info()
    assert info.end_of_file == 5 and info.allocation_size == 4096
    assert info.file_attributes == fi.FILE_ATTRIBUTE_ARCHIVE
    assert info.last_write_time == fi.filetime_from_ns(st.st_mtime_ns)
    assert h.query_info(C.NETWORK_OPEN, 56) == fi.network_open_information(info)
    assert status_of(h.query_info, 99, 4096) == nt.STATUS_INVALID_INFO_CLASS


def test_query_info_variable_classes(share):
    h, _ = op(share, "sub\\inner.txt")
    all_info = s3.FILE_ALL_INFORMATION(h.query_info(C.ALL, 4096))
    assert all_info["NameInformation"]["FileName"].decode("utf-16-le") == "\\sub\\Inner.TXT"
    assert all_info["StandardInformation"]["EndOfFile"] == 5
    assert all_info["StandardInformation"]["Directory"] == 0
    assert h.query_info(C.NAME, 100) == fi.name_information("\\sub\\Inner.TXT")
    assert h.query_info(C.NORMALIZED_NAME, 100) == fi.name_information("sub\\Inner.TXT")
    assert h.query_info(C.ALTERNATE_NAME, 100) == fi.name_information("INNER.TXT")
    assert h.query_info(C.STREAM, 100) == fi.stream_information([("::$DATA", 5, 4096)])
    # Fixed part fits but the name does not: full bytes back, the caller truncates and
    # answers STATUS_BUFFER_OVERFLOW.
    assert len(h.query_info(C.NAME, 6)) > 6
    assert len(h.query_info(C.ALL, 100)) > 100
    assert status_of(h.query_info, C.NAME, 3) == nt.STATUS_INFO_LENGTH_MISMATCH
    assert status_of(h.query_info, C.ALL, 99) == nt.STATUS_INFO_LENGTH_MISMATCH
    d, _ = op(share, "", opts=fs.FILE_DIRECTORY_FILE)
    assert d.query_info(C.NAME, 100) == fi.name_information("\\")
    assert d.query_info(C.STREAM, 100) == b""
    assert d.query_info(C.STANDARD, 24)[21] == 1  # Directory
    assert d.network_open_info().file_attributes == fi.FILE_ATTRIBUTE_DIRECTORY


def test_short_names():
    assert fs.short_name("inner.txt") == "INNER.TXT"
    assert fs.short_name("a long name.html") == "ALONGN~1.HTM"
    assert fs.short_name(".bashrc") == "BASHRC~1"
    assert fs.short_name("ünï") == "N~1"


def test_security_info(share):
    h, _ = op(share, "sub", opts=fs.FILE_DIRECTORY_FILE)
    sd = ldaptypes.SR_SECURITY_DESCRIPTOR(data=h.security_info(0x7))
    assert sd["OwnerSid"].formatCanonical() == "S-1-5-32-544"
    assert sd["Dacl"].aces[0]["Ace"]["Sid"].formatCanonical() == "S-1-1-0"
    owner_only = ldaptypes.SR_SECURITY_DESCRIPTOR(data=h.security_info(0x1))
    assert owner_only["OffsetDacl"] == 0 and owner_only["OffsetGroup"] == 0


def test_fs_info(share):
    vol = share.fs_info(F.VOLUME)
    assert struct.unpack_from("<L", vol, 8)[0] == share.serial
    total, avail, spu, bps = struct.unpack("<qqLL", share.fs_info(F.SIZE))
    assert total >= avail > 0 and (spu, bps) == (8, 512)
    total2, caller, actual, _, _ = struct.unpack("<qqqLL", share.fs_info(F.FULL_SIZE))
    assert total2 == total and actual >= caller
    attrs, maxlen, namelen = struct.unpack_from("<LlL", share.fs_info(F.ATTRIBUTE))
    assert attrs & (fi.FILE_CASE_PRESERVED_NAMES | fi.FILE_UNICODE_ON_DISK
                    | fi.FILE_PERSISTENT_ACLS) == 0xE
    assert share.fs_info(F.ATTRIBUTE)[12:] == "NTFS".encode("utf-16-le") and maxlen == 255
    assert share.fs_info(F.DEVICE) == struct.pack("<LL", 7, 0x20)
    assert len(share.fs_info(F.OBJECT_ID)) == 64
    assert len(share.fs_info(F.SECTOR_SIZE)) == 28
    assert status_of(share.fs_info, 2) == nt.STATUS_INVALID_INFO_CLASS
    assert status_of(share.fs_info, F.SIZE, 23) == nt.STATUS_INFO_LENGTH_MISMATCH
    assert len(share.fs_info(F.VOLUME, 18)) == 18  # empty label: no variable part


# --- QUERY_DIRECTORY --------------------------------------------------------------------------

def test_directory_paging_returns_each_entry_once(share, root):
    big = root / "big"
    big.mkdir()
    expected = [f"file {i:03d}{'x' * (i % 17)}.dat" for i in range(60)]
    for n in expected:
        (big / n).write_bytes(b"")
    d, _ = op(share, "big", opts=fs.FILE_DIRECTORY_FILE)
    seen, calls = [], 0
    while True:
        try:
            data = d.query_directory(C.ID_BOTH_DIRECTORY, "*", 0, 400)
        except StatusError as e:
            assert e.status == nt.STATUS_NO_MORE_FILES
            break
        assert len(data) <= 400
        seen += names_of(data)
        calls += 1
    assert seen == [".", ".."] + sorted(expected, key=str.lower)
    assert calls > 10
    assert status_of(d.query_directory, C.ID_BOTH_DIRECTORY, "*", 0, 400) == \
        nt.STATUS_NO_MORE_FILES
    again = d.query_directory(C.ID_BOTH_DIRECTORY, "*", fs.SMB2_RESTART_SCANS, 65536)
    assert names_of(again)[:3] == [".", "..", expected[0]]


def test_directory_entries_carry_stat(share, root):
    d, _ = op(share, "", opts=fs.FILE_DIRECTORY_FILE)
    data = d.query_directory(C.ID_BOTH_DIRECTORY, "f.txt", 0, 65536)
    rec = smb.SMBFindFileIdBothDirectoryInfo(smb.SMB.FLAGS2_UNICODE)
    rec.fromString(data)
    st = os.stat(root / "f.txt")
    assert rec["NextEntryOffset"] == 0 and rec["EndOfFile"] == 5
    assert rec["FileID"] == st.st_ino and rec["ExtFileAttributes"] == 0x20
    assert rec["LastWriteTime"] == fi.filetime_from_ns(st.st_mtime_ns)


def test_directory_listing_like_impacket_listpath(share):
    d, _ = op(share, "", opts=fs.FILE_DIRECTORY_FILE)
    data = d.query_directory(C.FULL_DIRECTORY, "*", 0, 65535)
    files = []
    while True:  # smb3.listPath's loop
        rec = smb.SMBFindFileFullDirectoryInfo(smb.SMB.FLAGS2_UNICODE)
        rec.fromString(data)
        files.append((rec["FileName"].decode("utf-16-le"), rec["ExtFileAttributes"]))
        if not rec["NextEntryOffset"]:
            break
        data = data[rec["NextEntryOffset"]:]
    assert files == [(".", 0x10), ("..", 0x10), ("f.txt", 0x20), ("sub", 0x10)]


@pytest.mark.parametrize("cls", sorted(fi.DIR_FIXED_SIZE))
def test_every_directory_class(share, cls):
    d, _ = op(share, "", opts=fs.FILE_DIRECTORY_FILE)
    data = d.query_directory(cls, "*", 0, 65536)
    count, off = 1, struct.unpack_from("<L", data)[0]
    while off:
        count += 1
        step = struct.unpack_from("<L", data, off)[0]
        off = off + step if step else 0
    assert count == 4


@pytest.mark.parametrize("pattern, expected", [
    ("*", [".", "..", "a.txt", "B.TXT", "c.dat", "noext", "x.y.txt"]),
    ("*.txt", ["a.txt", "B.TXT", "x.y.txt"]),
    ("b.txt", ["B.TXT"]),
    ("?.txt", ["a.txt", "B.TXT"]),
    ("<.txt", ["a.txt", "B.TXT", "x.y.txt"]),
    ('<"', [".", "..", "noext"]),  # Win32 'dir *.' : names without an extension
    (">.txt", ["a.txt", "B.TXT"]),
    ("no>>>>", ["noext"]),
])
def test_wildcards(share, root, pattern, expected):
    dirp = root / "w"
    dirp.mkdir()
    for n in ("a.txt", "B.TXT", "c.dat", "noext", "x.y.txt"):
        (dirp / n).write_bytes(b"")
    d, _ = op(share, "w", opts=fs.FILE_DIRECTORY_FILE)
    assert names_of(d.query_directory(C.ID_BOTH_DIRECTORY, pattern, 0, 65536)) == expected


def test_directory_statuses(share):
    d, _ = op(share, "sub", opts=fs.FILE_DIRECTORY_FILE)
    assert status_of(d.query_directory, C.ID_BOTH_DIRECTORY, "zzz*", 0, 65536) == \
        nt.STATUS_NO_SUCH_FILE
    assert status_of(d.query_directory, C.ID_BOTH_DIRECTORY, "zzz*", 0, 65536) == \
        nt.STATUS_NO_MORE_FILES
    # The pattern sticks until a restart; a restart with a new one works.
    one = d.query_directory(C.NAMES, "INNER.txt", fs.SMB2_RESTART_SCANS, 65536)
    assert one == fi.dir_entry(C.NAMES, fi.DirEntry("Inner.TXT", None, 0))
    assert status_of(d.query_directory, C.NAMES, "*", 0, 65536) == nt.STATUS_NO_MORE_FILES
    single = d.query_directory(C.NAMES, "*", fs.SMB2_RESTART_SCANS | fs.SMB2_RETURN_SINGLE_ENTRY,
                               65536)
    assert single == fi.dir_entry(C.NAMES, fi.DirEntry(".", None, 0))
    assert status_of(d.query_directory, C.ID_BOTH_DIRECTORY, "*", fs.SMB2_REOPEN, 50) == \
        nt.STATUS_INFO_LENGTH_MISMATCH
    assert names_of(d.query_directory(C.ID_BOTH_DIRECTORY, "*", 0, 65536)) == [
        ".", "..", "Inner.TXT"]  # the refused entry was not consumed
    assert status_of(d.query_directory, C.BASIC, "*", 0, 65536) == nt.STATUS_INVALID_INFO_CLASS
    f, _ = op(share, "f.txt")
    assert status_of(f.query_directory, C.ID_BOTH_DIRECTORY, "*", 0, 65536) == \
        nt.STATUS_INVALID_PARAMETER


def test_wildcard_regex_is_case_insensitive_and_anchored():
    rx = fs._wildcard_regex("ab*")
    assert rx.fullmatch("ABC") and not rx.fullmatch("xab")


# --- issue 14: reserved DOS device names are never files -------------------------------------
RESERVED = ["CON", "nul", "Aux", "prn", "com1", "LPT9", "nul.txt", "Aux.tar.gz", "CON .txt",
            "com\u00b9", "sub\\prn", "sub\\lpt1.log", "nul\\x.txt", "con:stream"]


@pytest.mark.parametrize("name", RESERVED)
@pytest.mark.parametrize("opts", [0, fs.FILE_DIRECTORY_FILE])
def test_reserved_device_names_are_invalid_in_any_component(share, root, name, opts):
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    assert status_of(op, share, name, fs.FILE_OPEN_IF, opts) == nt.STATUS_OBJECT_NAME_INVALID
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


@pytest.mark.parametrize("name", ["console.txt", "com10", "nul_", "lpt", "auxiliary.c",
                                  "sub\\connect", "prn2.txt", "xnul"])
def test_names_that_only_look_reserved_are_files(share, root, name):
    h, _ = op(share, name, fs.FILE_CREATE)
    h.close()
    assert (root / name.replace("\\", "/")).is_file()


def test_a_rename_to_a_reserved_name_is_invalid(share, root):
    h, _ = op(share, "f.txt")
    assert status_of(h.set_info, C.RENAME, rename_blob("sub\\NUL.txt")) == \
        nt.STATUS_OBJECT_NAME_INVALID
    assert (root / "f.txt").exists()
