"""Fuzzing the SMB side (framing, header, compound, bodies, NTLM/SPNEGO, DCE/RPC and the
connection core), seeded from recorded real-client conversations (tests/vectors/).

Every decoder may only answer with its own error type; the connection core may only
answer, ask to close, or wait for more bytes, never let an exception out or log an
"internal error"; after connection_lost() the engine holds no session and the clock no
timer, and a real client's recorded conversation is still served. Short by default;
FUZZ_LONG=1 runs the long profile (README: Fuzzing).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.auth.ntlm import AuthFailure, NTLMAcceptor
from protocols.auth.spnego import SpnegoAcceptor
from protocols.dcerpc.pipes import Association, Caller, PipeService
from protocols.errors import StatusError
from protocols.smb2 import bodies
from protocols.smb2.framing import FrameDecoder, FramingError, frame
from protocols.smb2.messages import HEADER_SIZE, Header, split_compound
from protocols.smb2.state import MAX_CREDITS
from tests.fuzz.harness import (
    Host,
    chunked,
    examples,
    mutated,
    security_buffers,
    served_again,
    smb_frames,
    vectors,
)
from tests.unit.dcerpc_helpers import FakeView

SMB = vectors("smb")
STREAMS = [b"".join(v.client) for v in SMB]
PAYLOADS = [p for s in STREAMS for p in smb_frames(s)]
MESSAGES = [p for p in PAYLOADS if p[:4] == b"\xfeSMB"]
TOKENS = [t for v in SMB for t in security_buffers(v)]
PDUS = [p for v in vectors("dcerpc") for p in v.pdus]
# The conversation replayed after each case: smbclient, SMB 3.1.1, a signed session.
REPLAY = next(v for v in SMB if v.name == "smbclient-ls-smb3-signed")
LAYOUTS = [v for v in vars(bodies).values() if isinstance(v, bodies.Layout)]


# -- framing ------------------------------------------------------------------------------

@examples(300)
@given(data=st.one_of(st.binary(max_size=300), mutated(STREAMS)),
       cuts=st.lists(st.integers(0, 1 << 16), max_size=6), netbios=st.booleans())
def test_framing_yields_frames_or_a_framing_error(data, cuts, netbios):
    decoder = FrameDecoder(netbios=netbios, max_payload=1 << 16)
    got = []
    try:
        for chunk in chunked(data, cuts):
            got += decoder.feed(chunk)
    except FramingError:
        return
    # Whatever was cut out re-frames to the bytes it came from (type 0 frames).
    assert decoder.buffered <= len(data)
    assert all(len(f.payload) <= 1 << 16 for f in got if hasattr(f, "payload"))


@examples(100)
@given(stream=st.sampled_from(STREAMS), cuts=st.lists(st.integers(0, 1 << 20), max_size=20))
def test_a_real_stream_in_any_chunks_gives_the_same_frames(stream, cuts):
    decoder = FrameDecoder(netbios=False, max_payload=1 << 24)
    got = [f.payload for chunk in chunked(stream, cuts) for f in decoder.feed(chunk)]
    assert got == smb_frames(stream)
    assert b"".join(frame(p) for p in got) == stream


# -- header, compound, bodies -----------------------------------------------------------------

@examples(300)
@given(data=mutated(MESSAGES))
def test_header_parses_or_raises_value_error_and_round_trips(data):
    try:
        header = Header.parse(data)
    except ValueError:
        return
    assert header.pack() == data[:HEADER_SIZE]


@examples(300)
@given(data=mutated(MESSAGES))
def test_compound_split_covers_the_input_or_raises_value_error(data):
    try:
        messages = split_compound(data, MAX_CREDITS)
    except ValueError:
        return
    assert b"".join(messages) == data
    assert all(len(m) >= HEADER_SIZE for m in messages)


@examples(300)
@given(layout=st.sampled_from(LAYOUTS), data=st.one_of(
    mutated([m[HEADER_SIZE:] for m in MESSAGES if len(m) > HEADER_SIZE]), st.binary(max_size=120)))
def test_every_body_layout_parses_or_raises_status_error_both_ways(layout, data):
    try:
        parsed = layout.parse(data)
    except StatusError:
        assert len(data) < layout.size
        return
    assert layout.pack(**parsed._asdict()) == data[:layout.size]


# -- NTLM / SPNEGO ------------------------------------------------------------------------

def _acceptor() -> SpnegoAcceptor:
    return SpnegoAcceptor(NTLMAcceptor({"alice": "Passw0rd!"}.get, now=lambda: 1.7e9))


@examples(300)
@given(tokens=st.lists(st.one_of(mutated(TOKENS), st.sampled_from(TOKENS)),
                       min_size=1, max_size=3))
def test_spnego_and_ntlm_answer_or_raise_auth_failure(tokens):
    acceptor = _acceptor()
    for token in tokens:
        try:
            step = acceptor.step(token)
        except AuthFailure as exc:
            assert exc.status & 0xC0000000 == 0xC0000000
            return
        assert isinstance(step.token, bytes)


# -- DCE/RPC ------------------------------------------------------------------------------

def _association() -> Association:
    endpoint = PipeService(FakeView()).open("srvsvc", Caller("alice", False, "PC1", "127.0.0.1"))
    return endpoint.association


@examples(300)
@given(pdus=st.lists(st.one_of(mutated(PDUS), st.sampled_from(PDUS)), min_size=1, max_size=4))
def test_dcerpc_association_answers_pdus_or_faults(pdus):
    assoc = _association()
    for pdu in pdus:
        out = assoc.receive(pdu)
        assert isinstance(out, list) and all(isinstance(p, bytes) for p in out)


# -- the connection core ------------------------------------------------------------------

def _feed_and_check(host: Host, stream: bytes, cuts: list[int]) -> None:
    conn = host.smb_connection()
    for chunk in chunked(stream, cuts):
        conn.receive_data(chunk)  # must not raise
        conn.data_to_send()
        if conn.close_requested:
            break
    assert not host.internal_errors(), host.internal_errors()
    conn.connection_lost()
    host.assert_clean()
    served_again(host, smb=REPLAY)


@examples(200)
@given(stream=mutated(STREAMS), cuts=st.lists(st.integers(0, 1 << 16), max_size=4))
def test_connection_core_survives_mutated_conversations(share_dir: Path, stream, cuts):
    _feed_and_check(Host(share_dir), stream, cuts)


@st.composite
def mutated_frame_stream(draw):
    """A real conversation with one of its frames mutated (the framing kept right, so
    the mutation reaches the SMB2 layers rather than the frame decoder)."""
    frames = list(smb_frames(draw(st.sampled_from(STREAMS))))
    i = draw(st.integers(0, len(frames) - 1))
    frames[i] = draw(mutated([frames[i]]))
    frames = frames[:draw(st.integers(i + 1, len(frames)))]
    return b"".join(struct.pack(">I", len(f)) + f for f in frames)


@examples(200)
@given(stream=mutated_frame_stream())
def test_connection_core_survives_one_mutated_frame_in_a_real_conversation(share_dir, stream):
    _feed_and_check(Host(share_dir), stream, [])


@examples(100)
@given(payloads=st.lists(st.one_of(st.sampled_from(PAYLOADS), mutated(PAYLOADS),
                                   st.binary(min_size=1, max_size=200)), max_size=6))
def test_connection_core_answers_each_frame_or_closes(share_dir, payloads):
    host = Host(share_dir)
    conn = host.smb_connection()
    for payload in payloads:
        conn.receive_data(struct.pack(">I", len(payload)) + payload)
        out = conn.data_to_send()
        if conn.close_requested:
            break
        # Every frame is answered, except a lone CANCEL (MS-SMB2 3.3.5.16: no response).
        is_cancel = payload[:4] == b"\xfeSMB" and len(payload) >= 14 and \
            struct.unpack_from("<H", payload, 12)[0] == 0x0C
        assert out or is_cancel, f"no answer and no close for {payload[:80].hex()}"
    assert not host.internal_errors(), host.internal_errors()
    conn.connection_lost()
    host.assert_clean()
    served_again(host, smb=REPLAY)


@pytest.mark.parametrize("vector", SMB, ids=lambda v: v.name)
def test_every_recorded_conversation_is_served(share_dir, vector):
    """The seeds themselves: each real client's logon replays (the oracle of the fuzz
    tests above works), and leaves nothing behind."""
    served_again(Host(share_dir), smb=vector)
