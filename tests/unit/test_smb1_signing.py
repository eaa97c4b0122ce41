"""SMB1 MD5 signing: the MAC against impacket's client code both ways, a fixed vector,
and the connection's rules (when signing starts, the sequence numbers, a bad signature,
a host that does not sign)."""

import hashlib
import struct
import types

from Cryptodome.Hash import MD4
from impacket import ntlm
from impacket import smb as i

from protocols.smb1 import signing
from tests.unit.smb1_helpers import (
    NT_FLAGS2, PASSWORD, _blob, connection, make, negotiate, packet, parse, send,
    setup_extended, setup_plain, status, tree_connect,
)

SIGN = i.SMB.FLAGS2_SMB_SECURITY_SIGNATURE
KEY = bytes(range(16))


def _impacket_sign(pkt: i.NewSMBPacket, key: bytes, response: bytes, seq: int) -> bytes:
    """impacket's client signer (smb.SMB.signSMB) on a stand-in for its connection."""
    fake = types.SimpleNamespace(_SignSequenceNumber=seq, _SignatureVerificationEnabled=False)
    i.SMB.signSMB(fake, pkt, key, response)
    return pkt.getData()


def _echo_packet(flags2=NT_FLAGS2 | SIGN, uid=0x800, mid=7) -> i.NewSMBPacket:
    cmd = i.SMBCommand(i.SMB.SMB_COM_ECHO)
    cmd["Parameters"], cmd["Data"] = struct.pack("<H", 1), b"ping"
    pkt = i.NewSMBPacket()
    pkt["Flags2"], pkt["Uid"], pkt["Mid"] = flags2, uid, mid
    pkt.addCommand(cmd)
    return pkt


def test_mac_matches_impacket_both_ways():
    for response in (b"", bytes(24)):
        signed = _impacket_sign(_echo_packet(), KEY, response, 5)
        assert signing.mac(KEY, response, signed, 5) == signed[14:22]
        ours = signing.sign(KEY, response, _echo_packet(flags2=NT_FLAGS2).getData(), 9)
        again = _impacket_sign(i.NewSMBPacket(data=ours), KEY, response, 9)
        assert again == ours and ours[10] & SIGN


def test_mac_fixed_vector():
    message = bytes(32) + b"\0\0\0"
    expected = hashlib.md5(KEY + message[:14] + struct.pack("<II", 3, 0) + message[22:])
    assert signing.mac(KEY, b"", message, 3) == expected.digest()[:8]
    # The same bytes through `openssl md5`:
    assert signing.mac(KEY, b"", message, 3).hex() == "38ee7470cde544d8"


def _signed_login(conn, flags2=NT_FLAGS2 | SIGN):
    """Raw NTLMSSP with signing asked for; (final reply, uid, exported session key)."""
    type1 = ntlm.getNTLMSSPType1("", "", signingRequired=True)
    (r1,) = send(conn, packet(setup_extended(type1.getData()), flags2=flags2))
    p1 = parse(r1)
    assert status(p1) == 0xC0000016
    type3, key = ntlm.getNTLMSSPType3(type1, _blob(p1), "alice", PASSWORD, "",
                                      use_ntlmv2=True)
    (r2,) = send(conn, packet(setup_extended(type3.getData()), flags2=flags2, uid=p1["Uid"],
                              mid=2))
    return r2, p1["Uid"], key


def _security_mode(reply):
    cmd = i.SMBCommand(reply["Data"][0])
    return i.SMBExtended_Security_Parameters(cmd["Parameters"])["SecurityMode"]


def _signed(message: bytes, key: bytes, seq: int, response=b"") -> bytes:
    return signing.sign(key, response, message, seq)


def test_required_signing_starts_at_session_setup_and_numbers_each_pair():
    _, _, config = make("xp-pro", force_guest=False, signing_required=True)
    conn = connection(config)
    assert _security_mode(negotiate(conn)) == 0x0F
    final, uid, key = _signed_login(conn)
    assert status(parse(final)) == 0
    # The response that starts signing carries sequence number 1.
    assert final[10] & SIGN and signing.mac(key, b"", final, 1) == final[14:22]
    tc = _signed(packet(tree_connect("\\\\XPBOX\\IPC$"), flags2=NT_FLAGS2 | SIGN, uid=uid,
                        mid=3), key, 2)
    (reply,) = send(conn, tc)
    assert status(parse(reply)) == 0 and signing.mac(key, b"", reply, 3) == reply[14:22]
    echo = _signed(_echo_packet(uid=uid, mid=4).getData(), key, 4)
    (reply,) = send(conn, echo)
    assert status(parse(reply)) == 0 and signing.mac(key, b"", reply, 5) == reply[14:22]


def test_a_bad_or_missing_signature_is_access_denied_and_not_run():
    _, _, config = make("xp-pro", force_guest=False, signing_required=True)
    conn = connection(config)
    negotiate(conn)
    _, uid, key = _signed_login(conn)
    # Signed with the wrong sequence number (3 instead of 2).
    (reply,) = send(conn, _signed(packet(tree_connect("\\\\XPBOX\\IPC$"),
                                         flags2=NT_FLAGS2 | SIGN, uid=uid, mid=3), key, 3))
    pkt = parse(reply)
    assert status(pkt) == 0xC0000022 and pkt["Tid"] == 0
    assert signing.mac(key, b"", reply, 3) == reply[14:22]  # the answer is signed anyway
    # Unsigned: refused too (the expected number moved on to 4).
    (reply,) = send(conn, packet(tree_connect("\\\\XPBOX\\IPC$"), uid=uid, mid=4))
    assert status(parse(reply)) == 0xC0000022
    (reply,) = send(conn, _signed(packet(tree_connect("\\\\XPBOX\\IPC$"),
                                         flags2=NT_FLAGS2 | SIGN, uid=uid, mid=5), key, 6))
    assert status(parse(reply)) == 0 and not conn.close_requested


def test_enabled_signing_starts_only_when_the_client_asks():
    for asks, signed in ((True, True), (False, False)):
        _, _, config = make("xp-pro", force_guest=False)
        object.__setattr__(config, "smb1", config.smb1.__class__(
            **{**config.smb1.__dict__, "signing_enabled": True}))
        conn = connection(config)
        assert _security_mode(negotiate(conn)) == 0x07
        final, _, key = _signed_login(conn, NT_FLAGS2 | (SIGN if asks else 0))
        assert status(parse(final)) == 0
        assert bool(final[10] & SIGN) == signed
        assert (signing.mac(key, b"", final, 1) == final[14:22]) == signed


def test_xp_as_shipped_never_signs_even_when_asked():
    _, _, config = make("xp-pro", force_guest=False)
    conn = connection(config)
    assert _security_mode(negotiate(conn)) == 0x03
    final, uid, _ = _signed_login(conn)
    assert status(parse(final)) == 0 and not final[10] & SIGN
    (reply,) = send(conn, packet(tree_connect("\\\\XPBOX\\IPC$"), uid=uid, mid=3))
    assert status(parse(reply)) == 0 and reply[14:22] == bytes(8)


def test_guest_sessions_do_not_start_signing():
    _, _, config = make("xp-pro", signing_required=True)  # ForceGuest on: logons are Guest
    conn = connection(config)
    negotiate(conn)
    final, uid, _ = _signed_login(conn)
    assert status(parse(final)) == 0 and not final[10] & SIGN
    (reply,) = send(conn, packet(tree_connect("\\\\XPBOX\\IPC$"), uid=uid, mid=3))
    assert status(parse(reply)) == 0


def test_non_extended_ntlmv1_signs_with_the_nt_session_key_and_response():
    _, _, config = make("server-2003", signing_required=True)
    conn = connection(config)
    flags2 = i.SMB.FLAGS2_NT_STATUS | i.SMB.FLAGS2_LONG_NAMES | SIGN
    reply = negotiate(conn, flags2=flags2 | i.SMB.FLAGS2_UNICODE)
    cmd = i.SMBCommand(reply["Data"][0])
    challenge = cmd["Data"][:8]
    nt_hash = ntlm.compute_nthash(PASSWORD)
    nt = ntlm.get_ntlmv1_response(nt_hash, challenge)
    lm = ntlm.get_ntlmv1_response(ntlm.compute_lmhash(PASSWORD), challenge)
    (final,) = send(conn, packet(setup_plain("alice", lm, nt), flags2=flags2))
    assert status(parse(final)) == 0
    key = MD4.new(nt_hash).digest()  # NT Session Key: MD4(NTOWFv1) (MS-NLMP 3.3.1)
    assert signing.mac(key, nt, final, 1) == final[14:22]
    uid = parse(final)["Uid"]
    (reply,) = send(conn, signing.sign(key, nt, packet(
        tree_connect("\\\\XPBOX\\IPC$"), flags2=flags2 | i.SMB.FLAGS2_UNICODE, uid=uid,
        mid=3), 2))
    assert status(parse(reply)) == 0 and signing.mac(key, nt, reply, 3) == reply[14:22]
