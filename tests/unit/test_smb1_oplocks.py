"""SMB1 oplocks through two real connections over one host's LeaseTable: the levels
NT_CREATE_ANDX grants, the OpLock Break Notification (LOCKING_ANDX from the server), the
second open answered after the acknowledgment, a close or the 35 s timer, and the client
capabilities that limit what is granted."""

import struct

from impacket import smb as i
from impacket import smb3structs as s2

from protocols.smb1 import signing
from protocols.smb2.fs import DiskShare
from protocols.smb2.leases import LeaseTable
from tests.unit.smb1_helpers import (
    NT_FLAGS2, PASSWORD, _blob, connection, make, negotiate, packet, parse, send,
    setup_extended, status, tree_connect,
)
from tests.unit.smb2_helpers import unframe

BATCH_FLAGS = 0x16  # what impacket sends: REQUEST_OPLOCK | REQUEST_OPBATCH | EXTENDED
NONE, EXCLUSIVE, BATCH, LEVEL_II = 0, 1, 2, 3


def _host(tmp_path, **fields):
    (tmp_path / "f.txt").write_bytes(b"data" * 100)
    engine, clock, config = make("xp-pro", force_guest=False,
                                 shares={"docs": DiskShare("docs", tmp_path)}, **fields)
    config = config.__class__(**{**config.__dict__, "leases": LeaseTable(clock)})
    return engine, clock, config


def _login(config, *, caps=0x800000D4, mpx=10, sign=False):
    from impacket import ntlm
    conn = connection(config)
    negotiate(conn)
    flags2 = NT_FLAGS2 | (i.SMB.FLAGS2_SMB_SECURITY_SIGNATURE if sign else 0)
    type1 = ntlm.getNTLMSSPType1("", "", signingRequired=sign)
    first = setup_extended(type1.getData())
    first["Parameters"]["Capabilities"], first["Parameters"]["MaxMpxCount"] = caps, mpx
    (r1,) = send(conn, packet(first, flags2=flags2))
    uid = parse(r1)["Uid"]
    type3, key = ntlm.getNTLMSSPType3(type1, _blob(parse(r1)), "alice", PASSWORD, "",
                                      use_ntlmv2=True)
    (r2,) = send(conn, packet(setup_extended(type3.getData()), flags2=flags2, uid=uid,
                              mid=2))
    assert status(parse(r2)) == 0
    tc = packet(tree_connect("\\\\XPBOX\\docs"), flags2=flags2, uid=uid, mid=3)
    (r3,) = send(conn, signing.sign(key, b"", tc, 2) if sign else tc)
    return conn, uid, parse(r3)["Tid"], key


def _create(uid, tid, mid, *, flags=BATCH_FLAGS, disposition=1, access=0x0012019F,
            name="\\f.txt", flags2=NT_FLAGS2) -> bytes:
    cmd = i.SMBCommand(i.SMB.SMB_COM_NT_CREATE_ANDX)
    params = i.SMBNtCreateAndX_Parameters()
    params["FileNameLength"], params["CreateFlags"] = len(name) * 2, flags
    params["AccessMask"], params["ShareAccess"] = access, 7
    params["Disposition"], params["CreateOptions"], params["Impersonation"] = disposition, 0, 2
    cmd["Parameters"] = params
    data = i.SMBNtCreateAndX_Data(flags=i.SMB.FLAGS2_UNICODE)
    data["Pad"], data["FileName"] = 0, name.encode("utf-16-le") + b"\0\0"
    cmd["Data"] = data
    return packet(cmd, uid=uid, tid=tid, mid=mid, flags2=flags2)


def _granted(reply: bytes) -> tuple[int, int]:
    """(OpLockLevel, FID) of an NT_CREATE_ANDX response."""
    pkt = parse(reply)
    assert status(pkt) == 0, hex(status(pkt))
    words = i.SMBCommand(pkt["Data"][0])["Parameters"]
    return words[4], struct.unpack_from("<H", words, 5)[0]


def _drain(conn) -> list[bytes]:
    messages = unframe(conn.data_to_send())
    return messages


def _break(message: bytes) -> tuple[int, int, int]:
    """(FID, TypeOfLock, NewOpLockLevel) of an OpLock Break Notification."""
    pkt = parse(message)
    assert pkt["Command"] == 0x24 and not pkt["Flags1"] & i.SMB.FLAGS1_REPLY
    assert (pkt["Mid"], pkt["Pid"]) == (0xFFFF, 0xFFFF) and message[14:22] == bytes(8)
    fid, lock_type, level = struct.unpack_from("<HBB", message, 33 + 4)
    return fid, lock_type, level


def _ack(uid, tid, fid, level, mid=50) -> bytes:
    cmd = i.SMBCommand(i.SMB.SMB_COM_LOCKING_ANDX)
    cmd["Parameters"] = b"\xff\0\0\0" + struct.pack("<HBBIHH", fid, 0x02, level, 0, 0, 0)
    cmd["Data"] = b""
    return packet(cmd, uid=uid, tid=tid, mid=mid)


def test_batch_is_granted_to_the_only_open(tmp_path):
    _, _, config = _host(tmp_path)
    a, uid, tid, _ = _login(config)
    (reply,) = send(a, _create(uid, tid, 5))
    assert _granted(reply)[0] == BATCH
    (reply,) = send(a, _create(uid, tid, 6, flags=0x02, name="\\g.txt", disposition=2))
    assert _granted(reply)[0] == EXCLUSIVE
    (reply,) = send(a, _create(uid, tid, 7, flags=0, name="\\h.txt", disposition=2))
    assert _granted(reply)[0] == NONE


def test_a_second_open_breaks_the_batch_and_waits_for_the_ack(tmp_path):
    _, _, config = _host(tmp_path)
    a, uid_a, tid_a, _ = _login(config)
    b, uid_b, tid_b, _ = _login(config)
    level, fid_a = _granted(send(a, _create(uid_a, tid_a, 5))[0])
    assert level == BATCH
    assert send(b, _create(uid_b, tid_b, 5)) == []  # held while A's oplock breaks
    (notification,) = _drain(a)
    assert _break(notification) == (fid_a, 0x02, 1)  # to Level II
    assert send(a, _ack(uid_a, tid_a, fid_a, 1)) == []  # the acknowledgment: no response
    (reply,) = _drain(b)
    assert parse(reply)["Mid"] == 5 and _granted(reply)[0] == LEVEL_II
    # A write through B breaks A's Level II to none, with no acknowledgment awaited.
    _, fid_b = _granted(reply)
    write = i.SMBCommand(i.SMB.SMB_COM_WRITE_ANDX)
    params = i.SMBWriteAndX_Parameters_Short()
    params["Fid"], params["Offset"], params["DataLength"], params["Remaining"] = fid_b, 0, 3, 0
    params["DataOffset"] = 32 + 1 + 24 + 2 + 1
    write["Parameters"], write["Data"] = params, b"\0abc"
    # Level II oplocks all break, the writer's own too (as over SMB2: smbtorture
    # smb2.oplock.batch6 against Windows).
    own, reply = send(b, packet(write, uid=uid_b, tid=tid_b, mid=6))
    assert _break(own) == (fid_b, 0x02, 0)
    assert parse(reply)["Command"] == 0x2F and status(parse(reply)) == 0
    (notification,) = _drain(a)
    assert _break(notification) == (fid_a, 0x02, 0)


def test_the_held_open_is_answered_when_the_holder_closes(tmp_path):
    _, _, config = _host(tmp_path)
    a, uid_a, tid_a, _ = _login(config)
    b, uid_b, tid_b, _ = _login(config)
    _, fid_a = _granted(send(a, _create(uid_a, tid_a, 5))[0])
    assert send(b, _create(uid_b, tid_b, 5)) == []
    _drain(a)
    close = i.SMBCommand(i.SMB.SMB_COM_CLOSE)
    close["Parameters"] = struct.pack("<HI", fid_a, 0)
    close["Data"] = b""
    (reply,) = send(a, packet(close, uid=uid_a, tid=tid_a, mid=6))
    assert status(parse(reply)) == 0
    (reply,) = _drain(b)
    assert _granted(reply)[0] == BATCH  # the only open now


def test_without_an_ack_the_break_completes_after_35_seconds(tmp_path):
    _, clock, config = _host(tmp_path)
    a, uid_a, tid_a, _ = _login(config)
    b, uid_b, tid_b, _ = _login(config)
    send(a, _create(uid_a, tid_a, 5))
    assert send(b, _create(uid_b, tid_b, 5)) == []
    clock.advance(34.9)
    assert _drain(b) == []
    clock.advance(0.2)
    (reply,) = _drain(b)
    assert _granted(reply)[0] == LEVEL_II
    a.connection_lost()
    b.connection_lost()
    assert not config.leases.files and not clock.getDelayedCalls()


def test_an_smb2_open_breaks_an_smb1_oplock(tmp_path):
    _, _, config = _host(tmp_path)
    a, uid_a, tid_a, _ = _login(config)
    _, fid_a = _granted(send(a, _create(uid_a, tid_a, 5))[0])
    table = config.leases
    from protocols.smb2.leases import GrantRequest
    ticket = table.open(table.file_key("docs", "f.txt"), object(), GrantRequest(
        oplock=s2.SMB2_OPLOCK_LEVEL_BATCH, access=0x0012019F), lambda *a: None)
    assert ticket.waiting_on  # the SMB1 holder breaks
    (notification,) = _drain(a)
    assert _break(notification)[0] == fid_a


def test_level_ii_only_to_clients_that_can_hold_it_and_none_under_two_mpx(tmp_path):
    _, _, config = _host(tmp_path)
    a, uid_a, tid_a, _ = _login(config, caps=0x80000054)  # no CAP_LEVEL_II_OPLOCKS
    b, uid_b, tid_b, _ = _login(config, caps=0x80000054)
    _, fid_a = _granted(send(a, _create(uid_a, tid_a, 5))[0])
    send(b, _create(uid_b, tid_b, 5))
    (notification,) = _drain(a)
    assert _break(notification) == (fid_a, 0x02, 0)  # to none, not Level II
    send(a, _ack(uid_a, tid_a, fid_a, 0))
    (reply,) = _drain(b)
    assert _granted(reply)[0] == NONE
    c, uid_c, tid_c, _ = _login(config, mpx=1)
    (reply,) = send(c, _create(uid_c, tid_c, 5, name="\\new.txt", disposition=2))
    assert _granted(reply)[0] == NONE


def test_the_held_response_is_signed_with_its_requests_number(tmp_path):
    _, _, config = _host(tmp_path, signing_required=True)
    a, uid_a, tid_a, key_a = _login(config, sign=True)
    b, uid_b, tid_b, key = _login(config, sign=True)
    flags2 = NT_FLAGS2 | i.SMB.FLAGS2_SMB_SECURITY_SIGNATURE
    (reply,) = send(a, signing.sign(key_a, b"", _create(uid_a, tid_a, 5, flags2=flags2), 4))
    assert _granted(reply)[0] == BATCH
    assert send(b, signing.sign(key, b"", _create(uid_b, tid_b, 5, flags2=flags2), 4)) == []
    # B goes on meanwhile: an ECHO takes 6 and is answered with 7.
    echo = i.SMBCommand(i.SMB.SMB_COM_ECHO)
    echo["Parameters"], echo["Data"] = struct.pack("<H", 1), b"x"
    (pong,) = send(b, signing.sign(key, b"", packet(echo, uid=uid_b, flags2=flags2, mid=6),
                                   6))
    assert signing.mac(key, b"", pong, 7) == pong[14:22]
    (notification,) = _drain(a)  # _break checks it is not signed
    ack = _ack(uid_a, tid_a, _break(notification)[0], 1)
    assert send(a, signing.sign(key_a, b"", ack, 6)) == []
    (reply,) = _drain(b)
    assert _granted(reply)[0] == LEVEL_II and signing.mac(key, b"", reply, 5) == reply[14:22]


def _delete(uid, tid, mid, name="\\f.txt") -> bytes:
    cmd = i.SMBCommand(i.SMB.SMB_COM_DELETE)
    cmd["Parameters"] = struct.pack("<H", 0x06)
    cmd["Data"] = b"\x04" + name.encode("utf-16-le") + b"\0\0"
    return packet(cmd, uid=uid, tid=tid, mid=mid)


def test_a_delete_breaks_the_batch_and_runs_once_the_holder_closes(tmp_path):
    # smbtorture raw.oplock.batch3 (against Windows): the unlink breaks the batch oplock
    # to Level II; the holder closes on the break, and then the unlink succeeds.
    _, _, config = _host(tmp_path)
    a, uid_a, tid_a, _ = _login(config)
    b, uid_b, tid_b, _ = _login(config)
    _, fid_a = _granted(send(a, _create(uid_a, tid_a, 5))[0])
    assert send(b, _delete(uid_b, tid_b, 6)) == []  # held: nothing deleted yet
    assert (tmp_path / "f.txt").exists()
    (notification,) = _drain(a)
    assert _break(notification) == (fid_a, 0x02, 1)
    close = i.SMBCommand(i.SMB.SMB_COM_CLOSE)
    close["Parameters"], close["Data"] = struct.pack("<HI", fid_a, 0), b""
    send(a, packet(close, uid=uid_a, tid=tid_a, mid=7))
    (reply,) = _drain(b)
    assert parse(reply)["Mid"] == 6 and status(parse(reply)) == 0
    assert not (tmp_path / "f.txt").exists()
    assert not config.leases.files  # the command's own registration went with it
