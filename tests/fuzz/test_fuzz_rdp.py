"""Fuzzing the RDP side (TPKT/X.224, MCS BER and PER, GCC, the RDP PDUs, CredSSP and the
connection core), seeded from recorded real-client conversations (tests/vectors/rdp: the
decrypted streams of xfreerdp and the project's test client).

The decoders may only raise the core's bad-input errors (connection.BAD_INPUT) or, for
CredSSP, AuthFailure; the core never lets an exception out of receive_data; after
connection_lost() no pending or active session and no timer is left, and a recorded real
logon is still served.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.auth.credssp import CredSSPAcceptor
from protocols.auth.ntlm import AuthFailure
from protocols.rdp import gcc, mcs, pdu
from protocols.rdp import input as rdpinput
from protocols.rdp.connection import BAD_INPUT
from protocols.rdp.x224 import (
    TPKT_FRAME,
    X224_CR,
    FrameDecoder,
    parse_connection_request,
    parse_x224,
)
from tests.fuzz.harness import Host, chunked, examples, mutated, served_again, vectors

RDP = vectors("rdp")
TLS = [v for v in RDP if "nla" not in v.name]
NLA = [v for v in RDP if "nla" in v.name]
REPLAY = next(v for v in RDP if v.name == "xfreerdp-tls-logon")


def _tpdus(stream: bytes) -> list[bytes]:
    decoder, out = FrameDecoder(), []
    decoder.feed(stream)
    while (f := decoder.next_frame()) is not None:
        if f.kind == TPKT_FRAME:
            out.append(f.data)
    return out


STREAMS = [b"".join(v.client) for v in TLS]
CHUNKS = [c for v in TLS for c in v.client]
TPDUS = [t for s in STREAMS for t in _tpdus(s)]
REQUESTS = [t for t in TPDUS if t[1] & 0xF0 == X224_CR]
MCS_PDUS = [parse_x224(t)[1] for t in TPDUS if t not in REQUESTS]
CONNECT_INITIALS = [p for p in MCS_PDUS if p[:2] == b"\x7f\x65"]
DOMAIN_PDUS = [p for p in MCS_PDUS if p[:2] != b"\x7f\x65"]
GCC_REQUESTS = [mcs.parse_connect_initial(p).user_data for p in CONNECT_INITIALS]
# The recorded clients send neither CS_MCS_MSGCHANNEL nor CS_MULTITRANSPORT: one seed that
# does (mstsc's blocks, which Windows 10 answers).
BLOCKS = [gcc.parse_conference_create_request(g) for g in GCC_REQUESTS] + [
    gcc.client_data_blocks(channels=("rdpdr", "drdynvc"), message_channel=True,
                           multitransport_flags=0x305)]
IO_DATA = [d.data for d in map(mcs.parse_domain_pdu, DOMAIN_PDUS)
           if d.kind == mcs.SEND_DATA_REQUEST]
# The Client Info PDU is the one I/O PDU behind a basic security header with SEC_INFO_PKT
# (and nothing else); licence PDUs carry SEC_LICENSE_PKT; the rest are share control PDUs.
INFO = [d[4:] for d in IO_DATA if d[:4] == bytes([pdu.SEC_INFO_PKT, 0, 0, 0])]
SHARE = [d for d in IO_DATA if d[:4] != bytes([pdu.SEC_INFO_PKT, 0, 0, 0])
         and d[:2] != bytes([pdu.SEC_LICENSE_PKT, 0])]
TS_REQUESTS = [c for v in NLA for c in v.client if c[:1] == b"\x30"]


def test_the_seeds_cover_every_layer():
    assert REQUESTS and CONNECT_INITIALS and DOMAIN_PDUS and GCC_REQUESTS and BLOCKS
    assert INFO and SHARE and TS_REQUESTS


def _bad_input_only(fn, data):
    try:
        return fn(data)
    except BAD_INPUT:
        return None


# -- codecs -----------------------------------------------------------------------------

@examples(300)
@given(data=st.one_of(mutated(STREAMS), st.binary(max_size=200)),
       cuts=st.lists(st.integers(0, 1 << 16), max_size=6), credssp=st.booleans())
def test_tpkt_fastpath_and_credssp_framing(data, cuts, credssp):
    decoder = FrameDecoder()
    decoder.credssp = credssp
    try:
        for chunk in chunked(data, cuts):
            decoder.feed(chunk)
            while decoder.next_frame() is not None:
                pass
    except BAD_INPUT:
        return
    assert decoder.buffered <= len(data)


@examples(300)
@given(data=mutated(REQUESTS + TPDUS))
def test_x224_connection_request_and_data_tpdus(data):
    _bad_input_only(parse_connection_request, data)
    _bad_input_only(parse_x224, data)


@examples(300)
@given(data=mutated(CONNECT_INITIALS))
def test_mcs_ber_connect_initial(data):
    _bad_input_only(mcs.parse_connect_initial, data)


@examples(300)
@given(data=mutated(DOMAIN_PDUS))
def test_mcs_per_domain_pdus(data):
    _bad_input_only(mcs.parse_domain_pdu, data)


@examples(300)
@given(data=mutated(GCC_REQUESTS))
def test_gcc_conference_create_request(data):
    _bad_input_only(gcc.parse_conference_create_request, data)


@examples(300)
@given(data=mutated(BLOCKS))
def test_gcc_client_data_blocks(data):
    _bad_input_only(gcc.parse_client_data, data)


# Input PDUs: slow-path event lists and fast-path events, every kind the capability sets
# allow (relative moves and QoE timestamps included).
_EVENTS = [rdpinput.KeyEvent(0x1C), rdpinput.KeyEvent(0x1C, released=True, extended=True),
           rdpinput.UnicodeEvent(0x41), rdpinput.MouseEvent(0x9000, 10, 20),
           rdpinput.MouseEvent(0x8001, 5, 5, extended=True), rdpinput.SyncEvent(2)]
SLOW_INPUT = [rdpinput.encode_slow_path(_EVENTS), rdpinput.encode_slow_path(_EVENTS[:1])]
_RELATIVE = bytes([rdpinput.FASTPATH_INPUT_EVENT_RELPOINTER << 5]) + bytes.fromhex("0008fdff0400")
_QOE = bytes([rdpinput.FASTPATH_INPUT_EVENT_QOE_TIMESTAMP << 5]) + bytes.fromhex("63000000")
FAST_EVENTS = [rdpinput.encode_fast_path_events(_EVENTS) + _RELATIVE + _QOE]


@examples(300)
@given(data=mutated(SLOW_INPUT))
def test_slow_path_input_events(data):
    _bad_input_only(rdpinput.decode_slow_path, data)


@examples(300)
@given(data=mutated(FAST_EVENTS), num=st.integers(0, 12))
def test_fast_path_input_events(data, num):
    _bad_input_only(lambda d: rdpinput.decode_fast_path_events(num, d), data)


@examples(300)
@given(data=mutated(INFO))
def test_client_info_pdu(data):
    _bad_input_only(pdu.parse_client_info, data)


@examples(300)
@given(data=mutated(SHARE))
def test_share_control_data_and_confirm_active(data):
    shares = _bad_input_only(pdu.split_share_control, data) or []
    for share in shares:
        _bad_input_only(pdu.parse_share_data, share.body)
        confirm = _bad_input_only(pdu.parse_confirm_active, share.body)
        if confirm is not None:
            _bad_input_only(pdu.client_fastpath_output, confirm.capabilities)


@examples(150)
@given(tokens=st.lists(st.one_of(mutated(TS_REQUESTS), st.sampled_from(TS_REQUESTS)),
                       min_size=1, max_size=3))
def test_credssp_answers_or_raises_auth_failure(tokens):
    acceptor = CredSSPAcceptor({"alice": "Passw0rd!"}.get, b"\x30\x82" + b"k" * 270,
                               now=lambda: 1.7e9)
    for token in tokens:
        try:
            acceptor.step(token)
        except AuthFailure:
            return


# -- the connection core ------------------------------------------------------------------

def _feed_and_check(host: Host, chunks: list[bytes]) -> None:
    conn = host.rdp_connection()
    for chunk in chunks:
        conn.receive_data(chunk)  # must not raise
        if conn.tls_requested:
            conn.tls_started()
        conn.data_to_send()
        if conn.close_requested:
            break
    conn.connection_lost()
    host.forget_disconnected()  # a logged-on session stays, disconnected, as on Windows
    host.assert_clean()
    served_again(host, rdp=REPLAY)


@st.composite
def mutated_conversation(draw):
    """A real conversation (its recorded chunks) with one chunk mutated and the rest cut
    off at some point after it."""
    chunks = list(draw(st.sampled_from(TLS)).client)
    i = draw(st.integers(0, len(chunks) - 1))
    chunks[i] = draw(mutated(CHUNKS + [chunks[i]] * 4))
    return chunks[:draw(st.integers(i + 1, len(chunks)))]


@examples(300)
@given(chunks=mutated_conversation())
def test_connection_core_survives_one_mutated_chunk_in_a_real_conversation(share_dir, chunks):
    _feed_and_check(Host(share_dir), chunks)


@examples(150)
@given(stream=mutated(STREAMS), cuts=st.lists(st.integers(0, 1 << 16), max_size=4))
def test_connection_core_survives_mutated_streams(share_dir: Path, stream, cuts):
    _feed_and_check(Host(share_dir), chunked(stream, cuts))


@examples(100)
@given(chunks=mutated_conversation(), advance=st.sampled_from([0.0, 4.9, 5.0, 29.9, 30.0]))
def test_timers_fire_or_are_cancelled_after_a_mutated_conversation(share_dir, chunks, advance):
    host = Host(share_dir)
    conn = host.rdp_connection()
    for chunk in chunks:
        conn.receive_data(chunk)
        if conn.tls_requested:
            conn.tls_started()
        if conn.close_requested:
            break
    host.clock.advance(advance)  # the refusal display / pre-logon timeout may fire now
    conn.data_to_send()
    conn.connection_lost()
    host.forget_disconnected()
    host.assert_clean()
    served_again(host, rdp=REPLAY)


@pytest.mark.parametrize("vector", TLS, ids=lambda v: v.name)
def test_every_recorded_tls_logon_is_served(share_dir, vector):
    served_again(Host(share_dir), rdp=vector)
