"""Fuzzing the SMB1 core (AndX chains, WordCount/ByteCount, transactions, the security
forms) through the real connection and engine on a task.Clock, seeded from well-formed
requests built with impacket's structures. The core may only answer, ask to close, or
wait; never log an internal error; after connection_lost() the engine holds no session
and the clock no timer; a real login still works afterwards (no slot leaked)."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from impacket import ntlm
from impacket import smb as i

from protocols.smb2.framing import frame
from protocols.smb2.connection import SMB2ServerConnection
from tests.fuzz.harness import chunked, examples, mutated
from tests.unit.smb1_helpers import (
    NT_FLAGS2, login_extended, make, negotiate, negotiate_request, packet, setup_extended,
    setup_plain, tree_connect,
)
from tests.unit.test_smb1_secondary import (
    nt_primary, nt_secondary, trans2_primary, trans2_secondary,
)


def _trans2(sub: int, params: bytes) -> i.SMBCommand:
    cmd = i.SMBCommand(i.SMB.SMB_COM_TRANSACTION2)
    p = i.SMBTransaction2_Parameters()
    offset = 32 + 1 + 30 + 2
    for k, v in dict(TotalParameterCount=len(params), TotalDataCount=0,
                     ParameterCount=len(params), ParameterOffset=offset, DataCount=0,
                     DataOffset=offset + len(params), Setup=struct.pack("<H", sub)).items():
        p[k] = v
    cmd["Parameters"], cmd["Data"] = p, params
    return cmd


def _create_oplock() -> bytes:
    from tests.unit.test_smb1_oplocks import _create
    return _create(0x800, 1, 12, name="\\f.txt", disposition=3)


def _locking(fid: int, lock_type: int, level: int) -> i.SMBCommand:
    cmd = i.SMBCommand(i.SMB.SMB_COM_LOCKING_ANDX)
    cmd["Parameters"] = b"\xff\0\0\0" + struct.pack("<HBBIHH", fid, lock_type, level, 0, 0, 1)
    cmd["Data"] = struct.pack("<HII", 1, 0, 10)
    return cmd


def _seeds() -> list[bytes]:
    type1 = ntlm.getNTLMSSPType1("", "").getData()
    find = struct.pack("<HHHHI", 0x16, 100, 6, 0x104, 0) + "\\*".encode("utf-16-le") + b"\0\0"
    return [
        negotiate_request(),
        negotiate_request((b"NT LM 0.12", b"SMB 2.002")),
        packet(setup_extended(type1)),
        packet(setup_extended(type1), more=[tree_connect("\\\\X\\IPC$")]),
        packet(setup_plain("alice", b"\0" * 24, b"\1" * 24), flags2=0x4001),
        packet(tree_connect("\\\\X\\docs"), uid=0x800, tid=1),
        packet(_trans2(1, find), uid=0x800, tid=1),
        packet(_trans2(3, struct.pack("<H", 0x105)), uid=0x800, tid=1),
        # Transactions over secondaries (MID 9): a primary short of its totals, the
        # fragments that complete it, NT_TRANSACT's primary and secondary.
        trans2_primary(5, find[:4], b"", len(find), 0, uid=0x800, tid=1, mid=9),
        trans2_secondary(find[4:], 4, b"", 0, len(find), 0, uid=0x800, tid=1, mid=9),
        nt_primary(6, b"", b"\0" * 4, b"", 8, 0, uid=0x800, tid=1, mid=9),
        nt_secondary(b"\7\0\0\0", 4, b"", 0, 8, 0, uid=0x800, tid=1, mid=9),
        nt_primary(3, b"", b"\0" * 8, b"\1" * 10, 8, 40, uid=0x800, tid=1, mid=9),
        # A batch oplock asked for, and an oplock release (FID 0x4000, the first given).
        _create_oplock(),
        packet(_locking(0x4000, 0x02, 1), uid=0x800, tid=1),
    ]


SEEDS = _seeds()


def _connection(config, logs):
    return SMB2ServerConnection(config, address="127.0.0.1", log=logs.append)


@examples(300)
@given(messages=st.lists(st.one_of(st.sampled_from(SEEDS), mutated(SEEDS)), min_size=1,
                         max_size=5),
       cuts=st.lists(st.integers(0, 1 << 12), max_size=4),
       state=st.sampled_from(["fresh", "negotiated", "logged-in"]))
def test_smb1_core_never_crashes_nor_leaks(tmp_path_factory, messages, cuts, state):
    from protocols.smb2.fs import DiskShare

    share_dir = tmp_path_factory.mktemp("smb1fuzz")
    from protocols.smb2.leases import LeaseTable

    engine, clock, config = make("xp-pro", force_guest=False,
                                 shares={"docs": DiskShare("docs", str(share_dir))})
    config = config.__class__(**{**config.__dict__, "leases": LeaseTable(clock)})
    logs: list[str] = []
    conn = _connection(config, logs)
    if state != "fresh":
        negotiate(conn, flags2=NT_FLAGS2)
    if state == "logged-in":  # UID 0x800 and TID 1, as the seeds name them
        _, uid = login_extended(conn)
        conn.receive_data(frame(packet(tree_connect("\\\\X\\docs"), uid=uid, mid=3)))
        conn.data_to_send()
        assert uid == 0x800
    stream = b"".join(frame(m) for m in messages)
    for chunk in chunked(stream, cuts):
        conn.receive_data(chunk)
        conn.data_to_send()
        if conn.close_requested:
            break
    assert not [line for line in logs if "internal error" in line], logs
    conn.connection_lost()
    assert engine.counted("smb") == 0
    assert not [s for s in engine.sessions() if s.protocol == "smb"]
    assert not clock.getDelayedCalls(), clock.getDelayedCalls()
    assert not config.leases.files  # no open or oplock of the lost connection stays
    # The host still serves a real login.
    fresh = _connection(config, logs)
    negotiate(fresh)
    reply, _ = login_extended(fresh)
    assert reply["ErrorCode"] == 0 and reply["ErrorClass"] == 0
    fresh.connection_lost()


@examples(300)
@given(total_params=st.integers(0, 120), total_data=st.integers(0, 120),
       first=st.integers(0, 120),
       fragments=st.lists(st.tuples(st.integers(0, 130), st.integers(0, 60),
                                    st.integers(0, 130), st.integers(0, 60),
                                    st.integers(0, 130), st.integers(0, 130),
                                    st.booleans()), max_size=10))
def test_secondary_fragments_in_any_shape(tmp_path_factory, total_params, total_data, first,
                                          fragments):
    """Displacements, counts and totals at random: every answer is the interim, nothing
    (more to come), an error ending the transaction, or its final response; what is
    buffered never exceeds the totals; nothing is left pending after an error."""
    from protocols.smb2.fs import DiskShare

    share_dir = tmp_path_factory.mktemp("smb1sec")
    engine, _, config = make("xp-pro", force_guest=False,
                             shares={"docs": DiskShare("docs", str(share_dir))})
    logs: list[str] = []
    conn = _connection(config, logs)
    negotiate(conn)
    _, uid = login_extended(conn)
    conn.receive_data(frame(packet(tree_connect("\\\\X\\docs"), uid=uid, mid=3)))
    conn.data_to_send()
    ids = dict(uid=uid, tid=1, mid=9)
    first_params = bytes(min(first, total_params))
    conn.receive_data(frame(trans2_primary(5, first_params, b"", total_params, total_data,
                                           **ids)))
    conn.data_to_send()
    for p_disp, p_len, d_disp, d_len, new_tp, new_td, nt in fragments:
        make_fragment = nt_secondary if nt else trans2_secondary
        conn.receive_data(frame(make_fragment(b"\1" * p_len, p_disp, b"\2" * d_len, d_disp,
                                              new_tp, new_td, **ids)))
        conn.data_to_send()
        for assembly in conn.smb1._transactions.values():
            for part in (assembly.params, assembly.data):
                assert part.received <= part.total == len(part.buffer) <= 65 * 1024
        assert not conn.close_requested
    assert len(conn.smb1._transactions) <= 1
    assert not [line for line in logs if "internal error" in line], logs
    conn.connection_lost()
    assert engine.counted("smb") == 0
