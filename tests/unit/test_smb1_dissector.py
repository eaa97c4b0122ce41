"""Wireshark's dissector (tshark) reads what the SMB1 core says in its newer parts: signed
messages, a transaction's interim response and the final one after its secondaries,
NT_TRANSACT answers, QUERY_FILE_ALL_INFO, an OpLock Break Notification, the held
NT_CREATE_ANDX answered after the acknowledgment. The conversations are written from the
connections' own bytes (tests/unit/pcap_tap.py); no packet may be malformed."""

from __future__ import annotations

import struct
import subprocess

from impacket import ntlm
from impacket import smb as i

from protocols.smb1 import signing
from protocols.smb2.fs import DiskShare
from protocols.smb2.leases import LeaseTable
from tests.interop.conftest import require_binary
from tests.unit.pcap_tap import Tap
from tests.unit.smb1_helpers import (
    NT_FLAGS2, PASSWORD, _blob, connection, make, negotiate_request, packet, parse, send,
    setup_extended, status, tree_connect,
)
from tests.unit.test_smb1_oplocks import _ack, _create, _drain, _granted
from tests.unit.test_smb1_secondary import (
    QUERY_PATH_INFORMATION, _query_params, nt_primary, trans2_primary, trans2_secondary,
)

SIGN = i.SMB.FLAGS2_SMB_SECURITY_SIGNATURE


class Conversation:
    """One client connection whose every message in and out goes on the tap."""

    def __init__(self, tap: Tap, stream: int, config, sign: bool) -> None:
        self.tap, self.stream, self.conn = tap, stream, connection(config)
        self.flags2 = NT_FLAGS2 | (SIGN if sign else 0)
        self.key: bytes | None = None
        self.seq = 2

    def send(self, message: bytes) -> list[bytes]:
        if self.key is not None:
            message = signing.sign(self.key, b"", message, self.seq)
            self.seq += 2
        self.tap.request(self.stream, message)
        replies = send(self.conn, message)
        self.tap.responses(self.stream, replies)
        return replies

    def drain(self) -> list[bytes]:
        replies = _drain(self.conn)
        self.tap.responses(self.stream, replies)
        return replies

    def login(self, sign: bool) -> tuple[int, int]:
        self.send(negotiate_request(flags2=self.flags2))
        type1 = ntlm.getNTLMSSPType1("", "", signingRequired=sign)
        (r1,) = self.send(packet(setup_extended(type1.getData()), flags2=self.flags2))
        uid = parse(r1)["Uid"]
        type3, key = ntlm.getNTLMSSPType3(type1, _blob(parse(r1)), "alice", PASSWORD, "",
                                          use_ntlmv2=True)
        (r2,) = self.send(packet(setup_extended(type3.getData()), flags2=self.flags2,
                                 uid=uid, mid=2))
        assert status(parse(r2)) == 0
        if sign:
            self.key = key
        (r3,) = self.send(packet(tree_connect("\\\\XPBOX\\docs"), flags2=self.flags2,
                                 uid=uid, mid=3))
        return uid, parse(r3)["Tid"]


def _tshark() -> str:
    return require_binary("tshark")


def test_tshark_finds_nothing_malformed_in_the_newer_smb1_messages(tmp_path):
    tshark = _tshark()
    share = tmp_path / "share"
    share.mkdir()
    (share / "f.txt").write_bytes(b"x" * 1234)
    _, clock, config = make("xp-pro", force_guest=False, signing_required=True,
                            shares={"docs": DiskShare("docs", share)})
    config = config.__class__(**{**config.__dict__, "leases": LeaseTable(clock)})
    tap = Tap()
    a = Conversation(tap, 1, config, sign=True)
    uid, tid = a.login(sign=True)
    f2 = a.flags2
    (reply,) = a.send(_create(uid, tid, 5, flags2=f2))
    level, fid = _granted(reply)
    assert level == 2  # batch
    params = _query_params()
    ids = dict(uid=uid, tid=tid, mid=6, flags2=f2)
    (interim,) = a.send(trans2_primary(QUERY_PATH_INFORMATION, params[:2], b"", len(params),
                                       0, **ids))
    assert a.send(trans2_secondary(params[2:6], 2, b"", 0, len(params), 0, **ids)) == []
    (final,) = a.send(trans2_secondary(params[6:], 6, b"", 0, len(params), 0, **ids))
    assert status(parse(final)) == 0
    sd = struct.pack("<HHI", fid, 0, 7)
    for mid, max_data in ((7, 4096), (8, 8)):
        a.send(nt_primary(6, b"", sd, b"", len(sd), 0, max_data=max_data, uid=uid, tid=tid,
                          mid=mid, flags2=f2))
    all_info = struct.pack("<HH", fid, 0x107)
    a.send(trans2_primary(0x0007, all_info, b"", len(all_info), 0, uid=uid, tid=tid, mid=9,
                          flags2=f2))
    a.send(nt_primary(4, struct.pack("<IHBB", 0x17, fid, 0, 0), b"", b"", 0, 0, uid=uid,
                      tid=tid, mid=10, flags2=f2))
    # A second client opens the file: A's batch oplock breaks, B's open waits for A's ack.
    b = Conversation(tap, 2, config, sign=True)
    uid_b, tid_b = b.login(sign=True)
    assert b.send(_create(uid_b, tid_b, 5, flags2=b.flags2)) == []
    (notification,) = a.drain()
    assert parse(notification)["Command"] == 0x24
    assert a.send(_ack(uid, tid, fid, 1)) == []  # no response to an acknowledgment
    (held,) = b.drain()
    assert _granted(held)[0] == 3  # Level II
    pcap = tmp_path / "smb1.pcap"
    tap.write(pcap)

    def read(display_filter: str) -> list[str]:
        out = subprocess.run([tshark, "-r", str(pcap), "-n", "-Y", display_filter, "-T",
                              "fields", "-e", "frame.number", "-e", "_ws.col.Info"],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=120, check=True)
        return [line for line in out.stdout.splitlines() if line.strip()]

    everything = read("smb")
    infos = "\n".join(everything)
    for expected in ("Trans2 Secondary Request", "NT Trans Response", "Locking AndX Request",
                     "NT Create AndX Response", "Session Setup AndX Response"):
        assert expected in infos, infos
    assert not read("_ws.malformed || _ws.expert.severity == error"), infos
    assert not read("tcp.analysis.flags && !tcp.analysis.window_update"), "tap TCP wrong"
