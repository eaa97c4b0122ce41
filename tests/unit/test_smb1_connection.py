"""The SMB1 core driven with bytes through the real connection and engine on a task.Clock:
each edition's NEGOTIATE, both security forms, the limit in NT and DOS form, routing,
and bad input that must end cleanly without leaking a slot."""

import struct

import pytest
from impacket import ntlm
from impacket import smb as i
from impacket import smb3structs as s2

from protocols.smb2.messages import Header as SMB2Header
from tests.unit.smb1_helpers import (
    NT_FLAGS2, PASSWORD, connection, login_extended, make, negotiate, negotiate_request,
    packet, parse, send, setup_extended, setup_plain, status, tree_connect,
)

NO_EXT_FLAGS2 = i.SMB.FLAGS2_NT_STATUS | i.SMB.FLAGS2_LONG_NAMES


def _neg_params(pkt):
    cmd = i.SMBCommand(pkt["Data"][0])
    return i.SMBExtended_Security_Parameters(cmd["Parameters"]), cmd["Data"]


@pytest.mark.parametrize("edition,mpx,buf,caps", [
    ("xp-home", 10, 4356, 0x8000E3FD), ("xp-pro", 10, 4356, 0x8000E3FD),
    ("server-2003", 50, 16644, 0x8001F3FD), ("whs", 50, 16644, 0x8001F3FD)])
def test_negotiate_values_per_edition(edition, mpx, buf, caps):
    _, _, config = make(edition)
    reply = negotiate(connection(config))
    params, data = _neg_params(reply)
    assert reply["Command"] == i.SMB.SMB_COM_NEGOTIATE and status(reply) == 0
    assert (params["DialectIndex"], params["SecurityMode"], params["MaxMpxCount"],
            params["MaxBufferSize"], params["Capabilities"], params["MaxRawSize"]) == (
        0, 0x03, mpx, buf, caps, 65536)
    assert params["ChallengeLength"] == 0
    assert data == config.server_guid  # standalone: the ServerGUID and no SPNEGO blob
    assert reply["Flags1"] == 0x98 and reply["Flags2"] & i.SMB.FLAGS2_UNICODE


def test_negotiate_index_is_the_position_in_the_client_list():
    _, _, config = make("xp-pro")
    names = (b"PC NETWORK PROGRAM 1.0", b"LANMAN1.0", b"Windows for Workgroups 3.1a",
             b"LM1.2X002", b"LANMAN2.1", b"NT LM 0.12")
    params, _ = _neg_params(negotiate(connection(config), dialects=names))
    assert params["DialectIndex"] == 5


def test_negotiate_without_a_common_dialect_answers_0xffff_and_closes():
    _, _, config = make("xp-pro")
    conn = connection(config)
    reply = negotiate(conn, dialects=(b"LANMAN1.0",))
    cmd = i.SMBCommand(reply["Data"][0])
    assert cmd["Parameters"] == b"\xff\xff" and conn.close_requested


def test_non_extended_negotiate_gives_challenge_domain_and_name():
    _, _, config = make("xp-pro")
    reply = negotiate(connection(config), flags2=NO_EXT_FLAGS2 | i.SMB.FLAGS2_UNICODE)
    cmd = i.SMBCommand(reply["Data"][0])
    params = i.SMBNTLMDialect_Parameters(cmd["Parameters"])
    assert params["ChallengeLength"] == 8
    assert params["Capabilities"] == 0x0000E3FD
    assert not reply["Flags2"] & i.SMB.FLAGS2_EXTENDED_SECURITY
    domain, name = cmd["Data"][8:].decode("utf-16-le").split("\0")[:2]
    assert (domain, name) == ("WORKGROUP", "XPBOX")


def test_extended_login_with_ntlmv2_counts_one_session_and_names_the_os():
    engine, _, config = make("xp-pro", force_guest=False)
    conn = connection(config)
    negotiate(conn)
    reply, uid = login_extended(conn)
    assert status(reply) == 0 and reply["Uid"] == uid
    cmd = i.SMBCommand(reply["Data"][0])
    params = i.SMBSessionSetupAndX_Extended_Response_Parameters(cmd["Parameters"])
    strings = cmd["Data"][params["SecurityBlobLength"]:]
    # After a pad byte Windows ends NativeLanMan with a single NUL (MS-SMB <46>), which
    # impacket's own parser cannot read: compared as bytes.
    text = "Windows 5.1\0Windows 2000 LAN Manager".encode("utf-16-le")
    assert strings in (b"\0" + text + b"\0", text + b"\0\0")
    assert engine.counted("smb") == 1
    assert params["Action"] == 0  # not Guest: ForceGuest is off here


def test_force_guest_sets_the_guest_action_bit():
    _, _, config = make("xp-home")
    conn = connection(config)
    negotiate(conn)
    reply, _ = login_extended(conn)
    cmd = i.SMBCommand(reply["Data"][0])
    assert i.SMBSessionSetupAndX_Extended_Response_Parameters(cmd["Parameters"])["Action"] == 1


def _plain_login(conn, password=PASSWORD, flags2=NO_EXT_FLAGS2):
    reply = negotiate(conn, flags2=flags2)
    challenge = i.SMBCommand(reply["Data"][0])["Data"][:8]
    nt = ntlm.get_ntlmv1_response(ntlm.compute_nthash(password), challenge)
    lm = ntlm.get_ntlmv1_response(ntlm.compute_lmhash(password), challenge)
    return send(conn, packet(setup_plain("alice", lm, nt), flags2=flags2))


def test_non_extended_login_with_ntlmv1_then_the_os_strings():
    engine, _, config = make("server-2003")
    conn = connection(config)
    (reply,) = _plain_login(conn)
    pkt = parse(reply)
    assert status(pkt) == 0 and pkt["Uid"]
    cmd = i.SMBCommand(pkt["Data"][0])
    strings = cmd["Data"].split(b"\0")
    assert strings[:3] == [b"Windows Server 2003 3790 Service Pack 2",
                           b"Windows Server 2003 5.2", b"WORKGROUP"]
    assert engine.counted("smb") == 1


def test_ntlmv1_refused_at_level_5_and_the_slot_is_given_back():
    engine, _, config = make("server-2003", accept_ntlmv1=False, accept_lm=False)
    conn = connection(config)
    (reply,) = _plain_login(conn)
    assert status(parse(reply)) == 0xC000006D
    assert engine.counted("smb") == 0 and not conn.close_requested


def test_wrong_password_in_dos_form():
    _, _, config = make("server-2003")
    (reply,) = _plain_login(connection(config), password="nope",
                            flags2=i.SMB.FLAGS2_LONG_NAMES)
    pkt = parse(reply)
    assert (pkt["ErrorClass"], pkt["ErrorCode"]) == (0x02, 2)  # ERRSRV/ERRbadpw


def _first_round(conn, flags2=NT_FLAGS2):
    (reply,) = send(conn, packet(setup_extended(ntlm.getNTLMSSPType1("", "").getData()),
                                 flags2=flags2))
    return parse(reply)


def test_the_sixth_xp_home_session_is_refused_with_request_not_accepted():
    engine, _, config = make("xp-home")
    conns = [connection(config) for _ in range(6)]
    for c in conns:
        negotiate(c)
    for c in conns[:5]:
        assert status(_first_round(c)) == 0xC0000016
    refused = _first_round(conns[5])
    assert (status(refused), refused["Uid"]) == (0xC00000D0, 0)
    assert not conns[5].close_requested and engine.counted("smb") == 5
    conns[0].connection_lost()
    assert status(_first_round(conns[5])) == 0xC0000016


def test_the_refusal_in_dos_form_is_errdos_71():
    _, _, config = make("xp-home")
    conns = [connection(config) for _ in range(6)]
    flags2 = i.SMB.FLAGS2_EXTENDED_SECURITY | i.SMB.FLAGS2_LONG_NAMES  # no NT status
    for c in conns:
        negotiate(c, flags2=flags2)
    for c in conns[:5]:
        _first_round(c, flags2)
    refused = _first_round(conns[5], flags2)
    assert (refused["ErrorClass"], refused["_reserved"], refused["ErrorCode"]) == (1, 0, 71)
    assert not refused["Flags2"] & i.SMB.FLAGS2_NT_STATUS


def test_logoff_frees_the_slot_and_later_requests_get_bad_uid():
    engine, _, config = make("xp-pro")
    conn = connection(config)
    negotiate(conn)
    _, uid = login_extended(conn)
    logoff = i.SMBCommand(i.SMB.SMB_COM_LOGOFF_ANDX)
    logoff["Parameters"] = i.SMBLogOffAndX()
    logoff["Data"] = b""
    (reply,) = send(conn, packet(logoff, uid=uid, mid=3))
    assert status(parse(reply)) == 0 and engine.counted("smb") == 0
    (reply,) = send(conn, packet(tree_connect("\\\\XPBOX\\IPC$"), uid=uid, mid=4))
    assert status(parse(reply)) == 0x005B0002  # STATUS_SMB_BAD_UID


def test_tree_connect_ipc_and_an_unknown_share():
    _, _, config = make("xp-pro")
    conn = connection(config)
    negotiate(conn)
    _, uid = login_extended(conn)
    (reply,) = send(conn, packet(tree_connect("\\\\XPBOX\\IPC$"), uid=uid, mid=3))
    pkt = parse(reply)
    assert status(pkt) == 0 and pkt["Tid"]
    cmd = i.SMBCommand(pkt["Data"][0])
    assert cmd["Data"].startswith(b"IPC\0")
    (reply,) = send(conn, packet(tree_connect("\\\\XPBOX\\nosuch"), uid=uid, mid=4))
    assert status(parse(reply)) == 0xC00000CC  # STATUS_BAD_NETWORK_NAME


def test_session_setup_and_tree_connect_in_one_andx_chain():
    engine, _, config = make("server-2003")
    conn = connection(config)
    reply = negotiate(conn, flags2=NO_EXT_FLAGS2)
    challenge = i.SMBCommand(reply["Data"][0])["Data"][:8]
    nt = ntlm.get_ntlmv1_response(ntlm.compute_nthash(PASSWORD), challenge)
    (reply,) = send(conn, packet(setup_plain("alice", b"", nt), flags2=NO_EXT_FLAGS2,
                                 more=[tree_connect("\\\\XPBOX\\IPC$", unicode=False)]))
    pkt = parse(reply)
    assert status(pkt) == 0 and pkt["Uid"] and pkt["Tid"]
    first = i.SMBCommand(pkt["Data"][0])
    params = i.SMBAndXCommand_Parameters(first["Parameters"])
    assert params["AndXCommand"] == i.SMB.SMB_COM_TREE_CONNECT_ANDX
    assert reply[params["AndXOffset"] + 1:].find(b"IPC\0") > 0
    assert engine.counted("smb") == 1


def test_echo_answers_once_per_echo():
    _, _, config = make("xp-pro")
    conn = connection(config)
    negotiate(conn)
    cmd = i.SMBCommand(i.SMB.SMB_COM_ECHO)
    cmd["Parameters"] = struct.pack("<H", 2)
    cmd["Data"] = b"ping"
    replies = send(conn, packet(cmd))
    assert len(replies) == 2
    assert [i.SMBCommand(parse(r)["Data"][0])["Data"] for r in replies] == [b"ping"] * 2


# -- routing ---------------------------------------------------------------------------


def test_xp_drops_a_raw_smb2_negotiate():
    _, _, config = make("xp-pro")
    conn = connection(config)
    body = s2.SMB2Negotiate()
    body["DialectCount"], body["ClientGuid"], body["Dialects"] = 1, b"g" * 16, [0x0202]
    conn.receive_data(frame_smb2(SMB2Header(s2.SMB2_NEGOTIATE, credits=1).pack()
                                 + body.getData()))
    assert conn.close_requested and conn.data_to_send() == b""


def frame_smb2(message):
    from protocols.smb2.framing import frame
    return frame(message)


def test_xp_answers_a_multi_protocol_negotiate_in_smb1():
    _, _, config = make("xp-pro")
    (reply,) = send(connection(config),
                    negotiate_request((b"NT LM 0.12", b"SMB 2.002", b"SMB 2.???")))
    assert reply[:4] == b"\xffSMB"


def test_win7_gives_smb2_to_a_multi_protocol_client_and_smb1_to_an_smb1_one():
    _, _, config = make("win7")
    (reply,) = send(connection(config), negotiate_request((b"NT LM 0.12", b"SMB 2.002")))
    assert reply[:4] == b"\xfeSMB"
    (reply,) = send(connection(config), negotiate_request((b"NT LM 0.12",)))
    assert reply[:4] == b"\xffSMB"
    params, data = _neg_params(parse(reply))
    assert params["MaxBufferSize"] == 4356 and data[16:17] == b"\x60"  # a SPNEGO hint


def test_smb1_off_drops_an_smb1_only_client():
    _, _, config = make("win10", smb1=None)
    conn = connection(config)
    conn.receive_data(frame_smb2(negotiate_request()))
    assert conn.close_requested


# -- bad input: an error or a clean disconnect, never a leaked slot ----------------------


def test_command_before_negotiate_disconnects():
    _, _, config = make("xp-pro")
    conn = connection(config)
    send(conn, packet(tree_connect("\\\\XPBOX\\IPC$")))
    assert conn.close_requested


def test_a_second_negotiate_disconnects():
    _, _, config = make("xp-pro")
    conn = connection(config)
    negotiate(conn)
    send(conn, negotiate_request())
    assert conn.close_requested


def test_andx_offset_pointing_backwards_is_an_error_not_a_loop():
    engine, _, config = make("xp-pro")
    conn = connection(config)
    negotiate(conn)
    message = bytearray(packet(setup_extended(ntlm.getNTLMSSPType1("", "").getData()),
                               more=[tree_connect("\\\\XPBOX\\IPC$")]))
    struct.pack_into("<H", message, 32 + 1 + 2, 32)  # AndXOffset -> the first block
    (reply,) = send(conn, bytes(message))
    assert status(parse(reply)) == 0xC000000D and engine.counted("smb") == 0
    assert not conn.close_requested


@pytest.mark.parametrize("cut", [33, 40, 60])
def test_truncated_session_setup_is_an_error(cut):
    engine, _, config = make("xp-pro")
    conn = connection(config)
    negotiate(conn)
    message = packet(setup_extended(ntlm.getNTLMSSPType1("", "").getData()))
    (reply,) = send(conn, message[:cut])
    assert status(parse(reply)) & 0xC0000000 == 0xC0000000
    assert engine.counted("smb") == 0


def test_bytecount_lie_is_an_error():
    engine, _, config = make("xp-pro")
    conn = connection(config)
    negotiate(conn)
    message = bytearray(packet(setup_extended(ntlm.getNTLMSSPType1("", "").getData())))
    words = message[32] * 2
    struct.pack_into("<H", message, 33 + words, 0xFFFF)
    (reply,) = send(conn, bytes(message))
    assert status(parse(reply)) == 0xC000000D and engine.counted("smb") == 0


def test_garbage_blob_ends_the_pending_session():
    engine, _, config = make("xp-pro")
    conn = connection(config)
    negotiate(conn)
    (reply,) = send(conn, packet(setup_extended(b"\x60\x03garbage")))
    assert status(parse(reply)) & 0xC0000000 == 0xC0000000
    assert engine.counted("smb") == 0


def test_a_stalled_second_leg_gives_the_slot_back_on_the_clock():
    engine, clock, config = make("xp-pro", setup_timeout=30)
    conn = connection(config)
    negotiate(conn)
    first = _first_round(conn)
    assert engine.counted("smb") == 1
    clock.advance(30)
    assert engine.counted("smb") == 0
    assert first["Uid"] not in conn.sessions


def test_connection_lost_mid_setup_gives_the_slot_back():
    engine, _, config = make("xp-pro")
    conn = connection(config)
    negotiate(conn)
    _first_round(conn)
    conn.connection_lost()
    assert engine.counted("smb") == 0


def test_unknown_command_is_an_error():
    _, _, config = make("xp-pro")
    conn = connection(config)
    negotiate(conn)
    cmd = i.SMBCommand(0x99)
    cmd["Parameters"], cmd["Data"] = b"", b""
    (reply,) = send(conn, packet(cmd))
    assert status(parse(reply)) == 0x00160002  # STATUS_SMB_BAD_COMMAND


def test_non_extended_negotiate_names_are_unicode_even_to_an_oem_client():
    # nmap's smb-os-discovery reads them as UTF-16 whatever it asked for.
    _, _, config = make("xp-pro")
    reply = negotiate(connection(config), flags2=NO_EXT_FLAGS2)
    data = i.SMBCommand(reply["Data"][0])["Data"]
    assert data[8:].decode("utf-16-le").split("\0")[:2] == ["WORKGROUP", "XPBOX"]


def test_ntlmv1_in_the_lm_field_with_a_truncated_nt_field_logs_on():
    # nmap's smb.lua: the NTLMv1 response in the LM field, an 8-byte NT field.
    engine, _, config = make("xp-pro", force_guest=False)
    conn = connection(config)
    negotiate(conn)
    type1 = ntlm.getNTLMSSPType1("", "")
    (r1,) = send(conn, packet(setup_extended(type1.getData())))
    p1 = parse(r1)
    cmd = i.SMBCommand(p1["Data"][0])
    blob = cmd["Data"][:i.SMBSessionSetupAndX_Extended_Response_Parameters(
        cmd["Parameters"])["SecurityBlobLength"]]
    challenge = ntlm.NTLMAuthChallenge(blob)["challenge"]
    v1 = ntlm.get_ntlmv1_response(ntlm.compute_nthash(PASSWORD), challenge)
    auth = ntlm.NTLMAuthChallengeResponse("alice", "", challenge)
    auth["flags"] = 0x00088215
    auth["lanman"], auth["ntlm"] = v1, v1[:8]
    auth["user_name"], auth["domain_name"], auth["host_name"] = (
        "alice".encode("utf-16-le"), b"", b"")
    (r2,) = send(conn, packet(setup_extended(auth.getData()), uid=p1["Uid"], mid=2))
    assert status(parse(r2)) == 0 and engine.counted("smb") == 1


def _logged_in_tree(edition, share_dir):
    from protocols.smb2.fs import DiskShare
    _, _, config = make(edition, force_guest=False, shares={"docs": DiskShare("docs", share_dir)})
    conn = connection(config)
    negotiate(conn)
    _, uid = login_extended(conn)
    (reply,) = send(conn, packet(tree_connect("\\\\XPBOX\\docs"), uid=uid, mid=3))
    return conn, uid, parse(reply)["Tid"]


def test_delete_removes_a_file(tmp_path):
    (tmp_path / "gone.txt").write_text("x")
    conn, uid, tid = _logged_in_tree("xp-pro", tmp_path)
    cmd = i.SMBCommand(i.SMB.SMB_COM_DELETE)
    cmd["Parameters"] = struct.pack("<H", 0x06)
    # The buffer starts at offset 37: the name after the 0x04 is already 2-aligned.
    cmd["Data"] = b"\x04" + "\\gone.txt".encode("utf-16-le") + b"\0\0"
    (reply,) = send(conn, packet(cmd, uid=uid, tid=tid, mid=4))
    assert status(parse(reply)) == 0 and not (tmp_path / "gone.txt").exists()
    (reply,) = send(conn, packet(cmd, uid=uid, tid=tid, mid=5))
    assert status(parse(reply)) == 0xC0000034  # STATUS_OBJECT_NAME_NOT_FOUND


def test_read_andx_past_a_closed_fid_is_invalid_handle(tmp_path):
    conn, uid, tid = _logged_in_tree("xp-pro", tmp_path)
    cmd = i.SMBCommand(i.SMB.SMB_COM_READ_ANDX)
    params = i.SMBReadAndX_Parameters2()
    params["Fid"], params["Offset"], params["MaxCount"] = 0x1234, 0, 100
    cmd["Parameters"], cmd["Data"] = params, b""
    (reply,) = send(conn, packet(cmd, uid=uid, tid=tid, mid=4))
    assert status(parse(reply)) == 0xC0000008


def test_a_transaction_with_huge_totals_is_refused_without_buffering(tmp_path):
    conn, uid, tid = _logged_in_tree("xp-pro", tmp_path)
    cmd = i.SMBCommand(i.SMB.SMB_COM_TRANSACTION2)
    params = i.SMBTransaction2_Parameters()
    for k, v in dict(TotalParameterCount=60000, TotalDataCount=60000, ParameterCount=0,
                     ParameterOffset=0, DataCount=0, DataOffset=0, Setup=b"\x01\x00").items():
        params[k] = v
    cmd["Parameters"], cmd["Data"] = params, b""
    (reply,) = send(conn, packet(cmd, uid=uid, tid=tid, mid=4))
    assert status(parse(reply)) == 0xC0000205  # STATUS_INSUFF_SERVER_RESOURCES (<240>)
    assert not conn.close_requested and not conn.smb1._transactions


def _read(conn, uid, tid, fid, offset, count, mid):
    cmd = i.SMBCommand(i.SMB.SMB_COM_READ_ANDX)
    params = i.SMBReadAndX_Parameters2()
    params["Fid"], params["Offset"] = fid, offset
    params["MaxCount"], params["_reserved"] = count & 0xFFFF, count >> 16  # MaxCountHigh
    cmd["Parameters"], cmd["Data"] = params, b""
    (reply,) = send(conn, packet(cmd, uid=uid, tid=tid, mid=mid))
    words = i.SMBCommand(parse(reply)["Data"][0])["Parameters"]
    length, data_offset, high = struct.unpack_from("<HHH", words, 10)
    length |= high << 16
    return parse(reply), reply[data_offset:data_offset + length]


def test_a_64k_read_and_a_read_at_the_end(tmp_path):
    from tests.unit.test_smb1_oplocks import _create, _granted
    body = bytes(range(256)) * 400  # 102400 bytes
    (tmp_path / "f.txt").write_bytes(body)
    conn, uid, tid = _logged_in_tree("xp-pro", tmp_path)
    (reply,) = send(conn, _create(uid, tid, 4, flags=0))
    _, fid = _granted(reply)
    # 65536 bytes: past what ByteCount holds (CAP_LARGE_READX); it used to end the
    # connection with an internal error.
    pkt, data = _read(conn, uid, tid, fid, 0, 65536, 5)
    assert status(pkt) == 0 and data == body[:65536] and not conn.close_requested
    # At (or past) the end: success with no data, as Windows answers SMB1 (smbtorture
    # raw.oplock.batch4); SMB2 says STATUS_END_OF_FILE.
    pkt, data = _read(conn, uid, tid, fid, len(body), 10, 6)
    assert status(pkt) == 0 and data == b""
