"""Transactions over several requests (TRANSACTION2 and NT_TRANSACT with their secondaries)
and NT_TRANSACT's subcommands, driven through the real connection: the interim response,
reassembly in and out of order, the bounds, and the bad fragments that end a transaction."""

import struct

from impacket import smb as i

from protocols.smb1 import signing
from protocols.smb2.fs import DiskShare
from tests.unit.smb1_helpers import (
    NT_FLAGS2, connection, login_extended, make, negotiate, parse, send, status,
    tree_connect,
)
from tests.unit.smb1_helpers import packet as build

TRANS2, TRANS2_SECONDARY, NT_TRANSACT, NT_SECONDARY = 0x32, 0x33, 0xA0, 0xA1
INVALID_PARAMETER, INSUFF_RESOURCES = 0xC000000D, 0xC0000205
QUERY_PATH_INFORMATION, SMB_QUERY_FILE_STANDARD_INFO = 0x0005, 0x0102


def _message(command: int, words: bytes, data: bytes, *, uid, tid, mid, flags2=NT_FLAGS2):
    cmd = i.SMBCommand(command)
    cmd["Parameters"], cmd["Data"] = words, data
    return build(cmd, uid=uid, tid=tid, mid=mid, flags2=flags2)


def _place(words_size: int, params: bytes, data: bytes) -> tuple[int, int, bytes]:
    """(ParameterOffset, DataOffset, the data block) for a block with these words."""
    start = 32 + 1 + words_size + 2
    p_off = start + (-start % 4)
    d_off = p_off + len(params)
    d_off += -d_off % 4
    block = b"\0" * (p_off - start) + params + b"\0" * (d_off - p_off - len(params)) + data
    return p_off, d_off, block


def trans2_primary(setup: int, params: bytes, data: bytes, total_params: int,
                   total_data: int, *, max_data=4096, **ids) -> bytes:
    size = 28 + 2  # 14 words + one setup word
    p_off, d_off, block = _place(size, params, data)
    words = struct.pack("<HHHHBBHIHHHHHBBH", total_params, total_data, 64, max_data, 0, 0,
                        0, 0, 0, len(params), p_off, len(data), d_off, 1, 0, setup)
    return _message(TRANS2, words, block, **ids)


def trans2_secondary(params: bytes, p_disp: int, data: bytes, d_disp: int,
                     total_params: int, total_data: int, **ids) -> bytes:
    p_off, d_off, block = _place(18, params, data)
    words = struct.pack("<HHHHHHHHH", total_params, total_data, len(params), p_off, p_disp,
                        len(data), d_off, d_disp, 0xFFFF)
    return _message(TRANS2_SECONDARY, words, block, **ids)


def nt_primary(function: int, setup: bytes, params: bytes, data: bytes, total_params: int,
               total_data: int, *, max_data=4096, **ids) -> bytes:
    size = 38 + len(setup)
    p_off, d_off, block = _place(size, params, data)
    words = struct.pack("<BHIIIIIIIIBH", 0, 0, total_params, total_data, 64, max_data,
                        len(params), p_off, len(data), d_off, len(setup) // 2,
                        function) + setup
    return _message(NT_TRANSACT, words, block, **ids)


def nt_secondary(params: bytes, p_disp: int, data: bytes, d_disp: int, total_params: int,
                 total_data: int, **ids) -> bytes:
    p_off, d_off, block = _place(36, params, data)
    words = struct.pack("<3xIIIIIIIIx", total_params, total_data, len(params), p_off,
                        p_disp, len(data), d_off, d_disp)
    return _message(NT_SECONDARY, words, block, **ids)


def _tree(tmp_path, edition="xp-pro", **fields):
    (tmp_path / "f.txt").write_bytes(b"x" * 1234)
    _, _, config = make(edition, force_guest=False,
                        shares={"docs": DiskShare("docs", tmp_path)}, **fields)
    conn = connection(config)
    negotiate(conn)
    _, uid = login_extended(conn)
    (reply,) = send(conn, build(tree_connect("\\\\XPBOX\\docs"), uid=uid, mid=3))
    return conn, uid, parse(reply)["Tid"]


def _query_params(name="\\f.txt") -> bytes:
    return struct.pack("<HI", SMB_QUERY_FILE_STANDARD_INFO, 0) + name.encode("utf-16-le") \
        + b"\0\0"


def _trans_data(reply: bytes) -> tuple[bytes, bytes]:
    pkt = parse(reply)
    cmd = i.SMBCommand(pkt["Data"][0])
    words = cmd["Parameters"]
    (_tp, _td, _r, pc, po, _pd, dc, do, _dd) = struct.unpack_from("<HHHHHHHHH", words)
    return reply[po:po + pc], reply[do:do + dc]


def _is_interim(reply: bytes, command: int) -> bool:
    pkt = parse(reply)
    return (pkt["Command"] == command and status(pkt) == 0 and reply[32] == 0
            and reply[33:35] == b"\0\0")


def test_trans2_split_over_a_secondary_runs_once_complete(tmp_path):
    conn, uid, tid = _tree(tmp_path)
    params = _query_params()
    ids = dict(uid=uid, tid=tid, mid=9)
    (interim,) = send(conn, trans2_primary(QUERY_PATH_INFORMATION, params[:4], b"",
                                           len(params), 0, **ids))
    assert _is_interim(interim, TRANS2)
    (final,) = send(conn, trans2_secondary(params[4:], 4, b"", 0, len(params), 0, **ids))
    pkt = parse(final)
    assert pkt["Command"] == TRANS2 and status(pkt) == 0 and pkt["Mid"] == 9
    _, data = _trans_data(final)
    assert struct.unpack_from("<q", data, 8)[0] == 1234  # EndOfFile of f.txt
    assert not conn.smb1._transactions


def test_fragments_out_of_order_are_placed_by_their_displacements(tmp_path):
    conn, uid, tid = _tree(tmp_path)
    params = _query_params()
    ids = dict(uid=uid, tid=tid, mid=9)
    (interim,) = send(conn, trans2_primary(QUERY_PATH_INFORMATION, b"", b"", len(params), 0,
                                           **ids))
    assert _is_interim(interim, TRANS2)
    assert send(conn, trans2_secondary(params[10:], 10, b"", 0, len(params), 0, **ids)) == []
    (final,) = send(conn, trans2_secondary(params[:10], 0, b"", 0, len(params), 0, **ids))
    _, data = _trans_data(final)
    assert status(parse(final)) == 0 and struct.unpack_from("<q", data, 8)[0] == 1234


def _begin(conn, uid, tid, params):
    ids = dict(uid=uid, tid=tid, mid=9)
    send(conn, trans2_primary(QUERY_PATH_INFORMATION, params[:6], b"", len(params), 0,
                              **ids))
    return ids


def test_an_overlapping_fragment_ends_the_transaction(tmp_path):
    conn, uid, tid = _tree(tmp_path)
    params = _query_params()
    ids = _begin(conn, uid, tid, params)
    (reply,) = send(conn, trans2_secondary(params[4:], 4, b"", 0, len(params), 0, **ids))
    pkt = parse(reply)
    assert pkt["Command"] == TRANS2 and status(pkt) == INVALID_PARAMETER
    assert not conn.smb1._transactions and not conn.close_requested
    # The rest of it now belongs to nothing: dropped without an answer.
    assert send(conn, trans2_secondary(params[6:], 6, b"", 0, len(params), 0, **ids)) == []


def test_a_fragment_past_the_total_and_a_growing_total_end_it(tmp_path):
    conn, uid, tid = _tree(tmp_path)
    params = _query_params()
    ids = _begin(conn, uid, tid, params)
    (reply,) = send(conn, trans2_secondary(params[6:] + b"xx", 6, b"", 0, len(params), 0,
                                           **ids))
    assert status(parse(reply)) == INVALID_PARAMETER
    ids = _begin(conn, uid, tid, params)
    (reply,) = send(conn, trans2_secondary(params[6:], 6, b"", 0, len(params) + 2, 0, **ids))
    assert status(parse(reply)) == INVALID_PARAMETER and not conn.smb1._transactions


def test_a_total_shrunk_below_what_arrived_ends_it_and_a_smaller_one_is_taken(tmp_path):
    conn, uid, tid = _tree(tmp_path)
    params = _query_params()
    ids = _begin(conn, uid, tid, params)
    (reply,) = send(conn, trans2_secondary(b"", 0, b"", 0, 4, 0, **ids))
    assert status(parse(reply)) == INVALID_PARAMETER
    # The smallest total counts: a primary announcing 4 extra bytes, then the real total.
    ids = dict(uid=uid, tid=tid, mid=10)
    send(conn, trans2_primary(QUERY_PATH_INFORMATION, params[:6], b"", len(params) + 4, 0,
                              **ids))
    (final,) = send(conn, trans2_secondary(params[6:], 6, b"", 0, len(params), 0, **ids))
    assert status(parse(final)) == 0


def test_huge_totals_are_refused_at_the_primary_without_buffering(tmp_path):
    conn, uid, tid = _tree(tmp_path)
    (reply,) = send(conn, trans2_primary(QUERY_PATH_INFORMATION, b"", b"", 60000, 60000,
                                         uid=uid, tid=tid, mid=4))
    assert status(parse(reply)) == INSUFF_RESOURCES  # MS-CIFS <240>
    assert not conn.smb1._transactions and not conn.close_requested


def test_pending_transactions_are_capped_at_maxmpx(tmp_path):
    conn, uid, tid = _tree(tmp_path)  # XP: MaxMpxCount 10
    for mid in range(20, 30):
        (reply,) = send(conn, trans2_primary(QUERY_PATH_INFORMATION, b"", b"", 20, 0,
                                             uid=uid, tid=tid, mid=mid))
        assert _is_interim(reply, TRANS2)
    (reply,) = send(conn, trans2_primary(QUERY_PATH_INFORMATION, b"", b"", 20, 0, uid=uid,
                                         tid=tid, mid=30))
    assert status(parse(reply)) == INSUFF_RESOURCES and len(conn.smb1._transactions) == 10


def test_logoff_drops_the_sessions_pending_transactions(tmp_path):
    conn, uid, tid = _tree(tmp_path)
    _begin(conn, uid, tid, _query_params())
    logoff = i.SMBCommand(i.SMB.SMB_COM_LOGOFF_ANDX)
    logoff["Parameters"] = i.SMBLogOffAndX()
    logoff["Data"] = b""
    (reply,) = send(conn, build(logoff, uid=uid, mid=11))
    assert status(parse(reply)) == 0 and not conn.smb1._transactions


def test_a_secondary_without_its_primary_gets_no_answer(tmp_path):
    conn, uid, tid = _tree(tmp_path)
    assert send(conn, trans2_secondary(b"abc", 0, b"", 0, 3, 0, uid=uid, tid=tid,
                                       mid=77)) == []
    assert not conn.close_requested


def test_a_secondary_with_lying_offsets_ends_it(tmp_path):
    conn, uid, tid = _tree(tmp_path)
    params = _query_params()
    ids = _begin(conn, uid, tid, params)
    message = bytearray(trans2_secondary(params[6:], 6, b"", 0, len(params), 0, **ids))
    struct.pack_into("<H", message, 33 + 6, 0xFFF0)  # ParameterOffset far outside
    (reply,) = send(conn, bytes(message))
    assert status(parse(reply)) == INVALID_PARAMETER and not conn.smb1._transactions


def _open(conn, uid, tid, name="\\f.txt") -> int:
    cmd = i.SMBCommand(i.SMB.SMB_COM_NT_CREATE_ANDX)
    params = i.SMBNtCreateAndX_Parameters()
    params["FileNameLength"] = len(name) * 2
    params["AccessMask"], params["ShareAccess"] = 0x00120089, 7
    params["Disposition"], params["CreateOptions"] = 1, 0
    params["Impersonation"], params["CreateFlags"] = 2, 0
    cmd["Parameters"] = params
    data = i.SMBNtCreateAndX_Data(flags=i.SMB.FLAGS2_UNICODE)
    data["Pad"], data["FileName"] = 0, name.encode("utf-16-le") + b"\0\0"
    cmd["Data"] = data
    (reply,) = send(conn, build(cmd, uid=uid, tid=tid, mid=5))
    assert status(parse(reply)) == 0
    resp = i.SMBNtCreateAndXResponse_Parameters(i.SMBCommand(parse(reply)["Data"][0])
                                                ["Parameters"])
    return resp["Fid"]


def _nt_data(reply: bytes) -> tuple[bytes, bytes]:
    words = i.SMBCommand(parse(reply)["Data"][0])["Parameters"]
    (_tp, _td, pc, po, _pd, dc, do, _dd, _sc) = struct.unpack_from("<3xIIIIIIIIB", words)
    return reply[po:po + pc], reply[do:do + dc]


def test_nt_transact_query_security_desc_and_the_length_needed(tmp_path):
    conn, uid, tid = _tree(tmp_path)
    fid = _open(conn, uid, tid)
    params = struct.pack("<HHI", fid, 0, 0x7)  # owner, group, DACL
    (reply,) = send(conn, nt_primary(6, b"", params, b"", len(params), 0, uid=uid, tid=tid,
                                     mid=6))
    assert status(parse(reply)) == 0
    needed, descriptor = _nt_data(reply)
    op = conn.sessions[uid].opens[(fid, fid)]
    assert descriptor == op.handle.security_info(7)
    assert struct.unpack("<I", needed)[0] == len(descriptor) and descriptor[0] == 1
    (reply,) = send(conn, nt_primary(6, b"", params, b"", len(params), 0, max_data=8,
                                     uid=uid, tid=tid, mid=7))
    assert status(parse(reply)) == 0xC0000023  # STATUS_BUFFER_TOO_SMALL
    needed, descriptor = _nt_data(reply)
    assert struct.unpack("<I", needed)[0] == len(op.handle.security_info(7)) and not descriptor


def test_nt_transact_set_security_desc_over_a_secondary(tmp_path):
    conn, uid, tid = _tree(tmp_path)
    fid = _open(conn, uid, tid)
    params = struct.pack("<HHI", fid, 0, 0x4)
    sd = bytes(40)
    ids = dict(uid=uid, tid=tid, mid=8)
    (interim,) = send(conn, nt_primary(3, b"", params, sd[:10], len(params), len(sd), **ids))
    assert _is_interim(interim, NT_TRANSACT)
    (final,) = send(conn, nt_secondary(b"", 0, sd[10:], 10, len(params), len(sd), **ids))
    assert parse(final)["Command"] == NT_TRANSACT and status(parse(final)) == 0


def test_nt_transact_notify_change_ioctl_and_unknown(tmp_path):
    conn, uid, tid = _tree(tmp_path)
    fid = _open(conn, uid, tid)
    setup = struct.pack("<IHBB", 0x17, fid, 0, 0)
    expect = {4: 0xC0000002, 2: 0xC00000BB, 5: 0xC00000BB, 0x77: 0xC00000BB}
    for mid, (function, code) in enumerate(expect.items(), start=20):
        (reply,) = send(conn, nt_primary(function, setup, b"", b"", 0, 0, uid=uid, tid=tid,
                                         mid=mid))
        assert status(parse(reply)) == code, hex(function)
    bad = struct.pack("<IHBB", 0x17, 0x3333, 0, 0)
    (reply,) = send(conn, nt_primary(4, bad, b"", b"", 0, 0, uid=uid, tid=tid, mid=40))
    assert status(parse(reply)) == 0xC0000008  # STATUS_INVALID_HANDLE


def test_signing_numbers_the_interim_the_silent_secondary_and_the_final(tmp_path):
    from impacket import ntlm

    from tests.unit.smb1_helpers import PASSWORD, _blob, setup_extended
    (tmp_path / "f.txt").write_bytes(b"x" * 1234)
    _, _, config = make("xp-pro", force_guest=False, signing_required=True,
                        shares={"docs": DiskShare("docs", tmp_path)})
    conn = connection(config)
    negotiate(conn)
    sign = NT_FLAGS2 | i.SMB.FLAGS2_SMB_SECURITY_SIGNATURE
    type1 = ntlm.getNTLMSSPType1("", "", signingRequired=True)
    (r1,) = send(conn, build(setup_extended(type1.getData()), flags2=sign))
    uid = parse(r1)["Uid"]
    type3, key = ntlm.getNTLMSSPType3(type1, _blob(parse(r1)), "alice", PASSWORD, "",
                                      use_ntlmv2=True)
    send(conn, build(setup_extended(type3.getData()), flags2=sign, uid=uid, mid=2))
    (reply,) = send(conn, signing.sign(key, b"", build(tree_connect("\\\\XPBOX\\docs"),
                                                       flags2=sign, uid=uid, mid=3), 2))
    tid = parse(reply)["Tid"]
    params = _query_params()
    ids = dict(uid=uid, tid=tid, mid=9, flags2=sign)
    (interim,) = send(conn, signing.sign(key, b"", trans2_primary(
        QUERY_PATH_INFORMATION, params[:2], b"", len(params), 0, **ids), 4))
    assert _is_interim(interim, TRANS2) and signing.mac(key, b"", interim, 5) == interim[14:22]
    assert send(conn, signing.sign(key, b"", trans2_secondary(
        params[2:6], 2, b"", 0, len(params), 0, **ids), 6)) == []
    (final,) = send(conn, signing.sign(key, b"", trans2_secondary(
        params[6:], 6, b"", 0, len(params), 0, **ids), 8))
    assert status(parse(final)) == 0 and signing.mac(key, b"", final, 9) == final[14:22]


def test_query_file_all_info_has_the_name_length_before_the_name(tmp_path):
    # Wireshark marked the answer malformed when FileNameLength was left out.
    conn, uid, tid = _tree(tmp_path)
    fid = _open(conn, uid, tid)
    params = struct.pack("<HH", fid, 0x107)  # SMB_QUERY_FILE_ALL_INFO
    (reply,) = send(conn, trans2_primary(0x0007, params, b"", len(params), 0, uid=uid,
                                         tid=tid, mid=12))
    assert status(parse(reply)) == 0
    _, data = _trans_data(reply)
    info = i.SMBQueryFileAllInfo(data)
    assert info["EndOfFile"] == 1234 and info["FileNameLength"] == len(info["FileName"])
    assert info["FileName"].decode("utf-16-le").endswith("f.txt")
