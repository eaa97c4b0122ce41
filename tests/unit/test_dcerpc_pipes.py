"""DCE/RPC connection-oriented framing on a pipe: byte vectors, impacket both ways, bad input.

Client PDUs are built with impacket's client-side structures (rpcrt.MSRPCBind, CtxItem,
MSRPCRequestHeader) or taken from a real client's bytes (pysmb's literal bind); server
PDUs are parsed with impacket's (MSRPCBindAck, MSRPCRespHeader, MSRPCBindNak).
"""

from __future__ import annotations

import itertools
import random
import struct

import pytest
from impacket.dcerpc.v5 import rpcrt, rprn, srvs, wkst
from impacket.dcerpc.v5.dtypes import NULL
from impacket.uuid import uuidtup_to_bin

from protocols.dcerpc import pipes
from protocols.dcerpc.pipes import (
    MAX_PARTIAL_CALLS,
    MAX_REQUEST_STUB,
    MIN_FRAG,
    NCA_S_FAULT_CONTEXT_MISMATCH,
    NCA_S_OP_RNG_ERROR,
    NCA_S_PROTO_ERROR,
    NCA_S_UNK_IF,
    NDR64_SYNTAX,
    RPC_X_BAD_STUB_DATA,
    Caller,
    known_pipe,
    open_pipe,
    pack_fault,
    pack_response,
    parse_bind,
)

from .dcerpc_helpers import (
    ADMIN,
    ALICE,
    ANONYMOUS,
    NDR,
    FakeView,
    bind_pdu,
    enum_call,
    fault_status,
    open_printer,
    ptype,
    read_all,
    reassemble,
    request_pdu,
    share_enum,
)

SRVSVC = srvs.MSRPC_UUID_SRVS
INTERFACES = {"srvsvc": SRVSVC, "wkssvc": wkst.MSRPC_UUID_WKST, "spoolss": rprn.MSRPC_UUID_RPRN}


@pytest.fixture(autouse=True)
def fixed_assoc_group(monkeypatch):
    monkeypatch.setattr(pipes, "_assoc_groups", itertools.count(0x1234))


def endpoint(name="srvsvc", view=None, caller=ALICE, logs=None):
    ep = open_pipe(name, view or FakeView(), caller,
                   log=logs.append if logs is not None else lambda line: None)
    assert ep is not None
    return ep


def bound(name="srvsvc", abstract=SRVSVC, **kwargs):
    ep = endpoint(name, **kwargs)
    ep.write(bind_pdu(abstract))
    assert ptype(ep.read(4280)) == rpcrt.MSRPC_BINDACK
    return ep


# -- pipe names --------------------------------------------------------------------------------


@pytest.mark.parametrize("name,key", [
    ("srvsvc", "srvsvc"), ("\\srvsvc", "srvsvc"), ("\\PIPE\\srvsvc", "srvsvc"),
    ("PIPE\\WKSSVC", "wkssvc"), ("SpoolSS", "spoolss"), ("\\pipe\\spoolss", "spoolss"),
    ("samr", "samr"), ("\\PIPE\\LSARPC", "lsarpc"), ("netlogon", None), ("", None),
    ("srvsvc\\x", None), ("..\\srvsvc", None),
])
def test_pipe_names(name, key):
    assert known_pipe(name) == key
    assert (open_pipe(name, FakeView(), ALICE) is None) == (key is None)


# -- bind: byte vectors ---------------------------------------------------------------------------

# pysmb 1.2's listShares bind, verbatim: srvsvc 3.0 with NDR, then the same interface with
# the bind-time-feature-negotiation syntax 6cb71c2c-9812-4540-0300-... (features 0x3).
PYSMB_BIND = bytes.fromhex(
    "05000b03100000007400000007000000"
    "b810b810000000000200000000000100"
    "c84f324b7016d30112785a47bf6ee188"
    "03000000045d888aeb1cc9119fe80800"
    "2b10486002000000010001 00c84f324b"
    "7016d30112785a47bf6ee18803000000"
    "2c1cb76c129840450300000000000000"
    "01000000")

# What Windows answers to it (same layout): sizes 4280, a new association group, the
# secondary address \PIPE\srvsvc, NDR accepted, the feature context negotiate_ack (3)
# with the honoured feature bits in the reason field.
BIND_ACK = bytes.fromhex(
    "05000c03100000005c00000007000000"
    "b810b810341200000d005c504950455c"
    "73727673766300 00"
    "02000000"
    "00000000" "045d888aeb1cc9119fe808002b10486002000000"
    "03000300" + "00" * 20)


def test_bind_vector_from_pysmb():
    ep = endpoint()
    ep.write(PYSMB_BIND)
    assert ep.read(1024) == BIND_ACK
    assert not ep.overflow and ep.read(1024) == b""


def test_our_parser_reads_impacket_binds():
    pdu = bind_pdu(SRVSVC, call_id=9, context_id=4, max_frag=5840)
    bind = parse_bind(pdu, len(pdu))
    assert (bind.max_xmit_frag, bind.max_recv_frag, bind.assoc_group) == (5840, 5840, 0)
    (ctx,) = bind.contexts
    assert (ctx.context_id, ctx.abstract_syntax, ctx.transfer_syntaxes) == (4, SRVSVC, [NDR])


def test_impacket_reads_our_bind_ack():
    ep = endpoint()
    ep.write(bind_pdu(SRVSVC, call_id=9, max_frag=5840))
    ack = rpcrt.MSRPCBindAck(ep.read(4280))
    assert (ack["type"], ack["call_id"], ack["flags"]) == (rpcrt.MSRPC_BINDACK, 9, 3)
    assert ack["frag_len"] == len(ack.getData())
    assert ack["max_tfrag"] == 4280  # never above what Windows sends on a pipe
    assert ack["SecondaryAddr"] == "\\PIPE\\srvsvc"
    item = ack.getCtxItem(1)
    assert (item["Result"], item["Reason"], item["TransferSyntax"]) == (0, 0, NDR)


def test_fault_vector_and_impacket_reads_it():
    fault = pack_fault(0x11, NCA_S_OP_RNG_ERROR, context_id=2)
    assert fault == bytes.fromhex("05000323100000002000000011000000"
                                  "00000000020000000200011c00000000")
    header = rpcrt.MSRPCRespHeader(fault)
    assert header["type"] == rpcrt.MSRPC_FAULT and header["ctx_id"] == 2
    assert struct.unpack("<L", header["pduData"][:4])[0] == NCA_S_OP_RNG_ERROR


def test_response_fragments_vector():
    stub = bytes(range(40))
    (pdu,) = pack_response(5, 0, stub, 4280)
    assert pdu == bytes.fromhex("05000203100000004000000005000000" "28000000" "0000" "0000") + stub
    # A small fragment size: every fragment but the last carries a multiple of 8 bytes,
    # alloc_hint counts what remains.
    pdus = pack_response(5, 1, stub, 24 + 20)
    assert [len(p) - 24 for p in pdus] == [16, 16, 8]
    assert [struct.unpack_from("<I", p, 16)[0] for p in pdus] == [40, 24, 8]
    assert reassemble(pdus) == stub


def test_multiple_contexts_each_get_a_result():
    bind = rpcrt.MSRPCBind()
    for i, (abstract, transfer) in enumerate([
            (SRVSVC, NDR64_SYNTAX),  # NDR64 alone: transfer syntaxes not supported
            (uuidtup_to_bin(("12345778-1234-ABCD-EF00-0123456789AC", "1.0")), NDR),  # samr
            (SRVSVC, NDR)]):
        item = rpcrt.CtxItem()
        item["ContextID"], item["TransItems"] = i, 1
        item["AbstractSyntax"], item["TransferSyntax"] = abstract, transfer
        bind.addCtxItem(item)
    header = rpcrt.MSRPCHeader()
    header["type"] = rpcrt.MSRPC_BIND
    header["pduData"] = bind.getData()
    ep = endpoint()
    ep.write(header.get_packet())
    ack = rpcrt.MSRPCBindAck(ep.read(4280))
    results = [(ack.getCtxItem(i)["Result"], ack.getCtxItem(i)["Reason"]) for i in (1, 2, 3)]
    assert results == [(2, 2), (2, 1), (0, 0)]
    # Only context 2 can carry calls.
    ep.write(request_pdu(share_enum(), context_id=0))
    assert fault_status(ep.read(4280)) == NCA_S_UNK_IF
    ep.write(request_pdu(share_enum(), context_id=2))
    assert srvs.NetrShareEnumResponse(reassemble(read_all(ep)))["ErrorCode"] == 0


def test_a_context_may_offer_several_transfer_syntaxes():
    abstract = SRVSVC
    body = struct.pack("<HHIB3x", 4280, 4280, 0, 1)
    body += struct.pack("<HBx", 0, 2) + abstract + NDR64_SYNTAX + NDR
    pdu = struct.pack("<BBBBIHHI", 5, 0, 11, 3, 0x10, 16 + len(body), 0, 1) + body
    ep = endpoint()
    ep.write(pdu)
    ack = rpcrt.MSRPCBindAck(ep.read(4280))
    item = ack.getCtxItem(1)
    assert (item["Result"], item["TransferSyntax"]) == (0, NDR)


def test_bind_to_an_unknown_interface_is_a_provider_rejection():
    ep = endpoint("wkssvc")
    ep.write(bind_pdu(SRVSVC))  # srvsvc is not served on \PIPE\wkssvc
    ack = rpcrt.MSRPCBindAck(ep.read(4280))
    assert ack["type"] == rpcrt.MSRPC_BINDACK
    item = ack.getCtxItem(1)
    assert (item["Result"], item["Reason"]) == (rpcrt.MSRPC_CONT_RESULT_PROV_REJECT, 1)
    assert item["TransferSyntax"] == b"\0" * 20
    ep.write(request_pdu(share_enum()))
    assert fault_status(ep.read(4280)) == NCA_S_UNK_IF


def test_wrong_major_version_is_rejected_a_lower_minor_is_not():
    ep = endpoint()
    ep.write(bind_pdu(uuidtup_to_bin(("4B324FC8-1670-01D3-1278-5A47BF6EE188", "2.0"))))
    assert rpcrt.MSRPCBindAck(ep.read(4280)).getCtxItem(1)["Result"] == 2
    ep.write(bind_pdu(uuidtup_to_bin(("4B324FC8-1670-01D3-1278-5A47BF6EE188", "3.0"))))
    assert rpcrt.MSRPCBindAck(ep.read(4280)).getCtxItem(1)["Result"] == 0


def test_alter_context_adds_a_context_and_names_no_address():
    ep = bound()
    ep.write(bind_pdu(SRVSVC, ptype=rpcrt.MSRPC_ALTERCTX, call_id=5, context_id=1))
    resp = ep.read(4280)
    assert ptype(resp) == rpcrt.MSRPC_ALTERCTX_R
    # secondary address length 0 and no bytes: the results start at offset 28
    assert struct.unpack_from("<H", resp, 24)[0] == 0
    assert resp[28] == 1 and struct.unpack_from("<HH", resp, 32) == (0, 0)
    ep.write(request_pdu(share_enum(), context_id=1))
    assert ptype(ep.read(4280)) == rpcrt.MSRPC_RESPONSE


@pytest.mark.parametrize("patch,reason", [
    (lambda p: p[:10] + b"\x08\x00" + p[12:], 8),  # auth_length: DCE/RPC auth not offered
    (lambda p: b"\x05\x01" + p[2:], 0),  # 5.1 is fine ...
    (lambda p: b"\x05\x02" + p[2:], 4),  # ... but 5.2 is not
    (lambda p: p[:4] + b"\x00" + p[5:], 0),  # big-endian data representation
])
def test_bind_nak(patch, reason):
    pdu = bind_pdu(SRVSVC)
    if reason == 8:  # give the bind an 8-byte trailer and 8 bytes of "auth" data
        pdu = pdu[:8] + struct.pack("<H", len(pdu) + 16) + pdu[10:] + b"\0" * 16
    pdu = patch(pdu)
    ep = endpoint()
    ep.write(pdu)
    resp = ep.read(4280)
    if pdu[1] == 1 and reason == 0:
        assert ptype(resp) == rpcrt.MSRPC_BINDACK
        return
    assert ptype(resp) == rpcrt.MSRPC_BINDNAK
    header = rpcrt.MSRPCHeader(resp)
    assert rpcrt.MSRPCBindNak(header["pduData"])["RejectedReason"] == reason
    assert len(resp) % 4 == 0


def test_truncated_bind_gets_a_bind_nak():
    pdu = bind_pdu(SRVSVC)
    short = pdu[:30]
    short = short[:8] + struct.pack("<H", len(short)) + short[10:]
    ep = endpoint()
    ep.write(short)
    assert ptype(ep.read(4280)) == rpcrt.MSRPC_BINDNAK


# -- requests, fragments, faults ------------------------------------------------------------------


def test_request_before_bind_is_a_fault():
    ep = endpoint()
    ep.write(request_pdu(share_enum()))
    fault = ep.read(4280)
    assert fault_status(fault) == NCA_S_UNK_IF
    assert fault[3] & rpcrt.PFC_DID_NOT_EXECUTE


@pytest.mark.parametrize("opnum", [0, 14, 57, 58, 200, 0xFFFF])
def test_unknown_opnum_is_nca_s_op_rng_error(opnum):
    ep = bound()
    ep.write(request_pdu(share_enum(), opnum=opnum, call_id=77))
    fault = ep.read(4280)
    header = rpcrt.MSRPCRespHeader(fault)
    assert header["call_id"] == 77
    assert header["flags"] == 0x23  # first, last, did not execute
    assert fault_status(fault) == NCA_S_OP_RNG_ERROR


def test_fragmented_request_is_reassembled():
    stub = share_enum().getData()
    ep = bound()
    ep.write(request_pdu(share_enum(), stub=stub[:8], flags=rpcrt.PFC_FIRST_FRAG, call_id=3))
    assert ep.read(4280) == b""
    ep.write(request_pdu(share_enum(), stub=stub[8:16], flags=0, call_id=3))
    assert ep.read(4280) == b""
    ep.write(request_pdu(share_enum(), stub=stub[16:], flags=rpcrt.PFC_LAST_FRAG, call_id=3))
    response = srvs.NetrShareEnumResponse(reassemble(read_all(ep)))
    assert response["TotalEntries"] == 2


def test_a_middle_fragment_without_a_first_is_a_fault():
    ep = bound()
    ep.write(request_pdu(share_enum(), flags=rpcrt.PFC_LAST_FRAG, call_id=8))
    assert fault_status(ep.read(4280)) == NCA_S_PROTO_ERROR


def test_a_pdu_in_pieces_and_two_pdus_in_one_write():
    ep = endpoint()
    pdu = bind_pdu(SRVSVC) + request_pdu(share_enum())
    for i in range(len(pdu)):  # a byte at a time
        ep.write(pdu[i:i + 1])
    assert ptype(ep.read(4280)) == rpcrt.MSRPC_BINDACK
    assert ptype(ep.read(4280)) == rpcrt.MSRPC_RESPONSE
    ep2 = endpoint()
    ep2.write(pdu)  # both at once: two messages, read one at a time
    assert [ptype(m) for m in read_all(ep2)] == [rpcrt.MSRPC_BINDACK, rpcrt.MSRPC_RESPONSE]


def test_message_mode_reads_and_overflow():
    view = FakeView(share_list=[(f"share{i:03}", 0, "x" * 40, "") for i in range(200)])
    ep = endpoint(view=view)
    ep.write(bind_pdu(SRVSVC, max_frag=2048))
    ep.read(4280)
    ep.write(request_pdu(share_enum()))
    assert ep.pending > 2048
    # The first message is one fragment of at most the client's 2048 bytes ...
    first = ep.read(100)
    assert len(first) == 100 and ep.overflow
    rest = ep.read(65536)
    assert not ep.overflow and len(first + rest) <= 2048
    fragments = [first + rest, *read_all(ep)]
    assert len(fragments) > 2 and all(len(f) <= 2048 for f in fragments)
    response = srvs.NetrShareEnumResponse(reassemble(fragments))
    assert response["TotalEntries"] == 200


def test_transceive_returns_one_message_and_flags_overflow():
    ep = bound()
    out = ep.transceive(request_pdu(share_enum()), 30)
    assert len(out) == 30 and ep.overflow
    out += ep.read(4280)
    assert not ep.overflow
    assert srvs.NetrShareEnumResponse(reassemble([out]))["ErrorCode"] == 0


@pytest.mark.parametrize("cut", [0, 4, 8, 12, 20, 28, 31])
def test_truncated_stub_is_bad_stub_data(cut):
    ep = bound()
    stub = share_enum().getData()[:cut]
    ep.write(request_pdu(share_enum(), stub=stub))
    assert fault_status(ep.read(4280)) == RPC_X_BAD_STUB_DATA


def test_lying_conformant_array_is_bad_stub_data():
    stub = share_enum().getData()
    # Level 1 container whose Buffer pointer is non-NULL and claims 2**32-1 entries.
    lie = stub[:16] + struct.pack("<III", 0x20000, 0xFFFFFFFF, 0x20004) + struct.pack(
        "<I", 0xFFFFFFFF) + b"\x01" * 64
    ep = bound()
    ep.write(request_pdu(share_enum(), stub=lie))
    assert fault_status(ep.read(4280)) == RPC_X_BAD_STUB_DATA


def test_oversized_request_is_refused_before_parsing():
    ep = bound()
    first = request_pdu(share_enum(), stub=b"\0" * 8000, flags=rpcrt.PFC_FIRST_FRAG)
    ep.write(first)
    assert ep.read(4280) == b""
    for _ in range(MAX_REQUEST_STUB // 8000):
        ep.write(request_pdu(share_enum(), stub=b"\0" * 8000, flags=0))
    assert fault_status(ep.read(4280)) == RPC_X_BAD_STUB_DATA
    ep.write(request_pdu(share_enum()))  # the association still works
    assert ptype(ep.read(4280)) == rpcrt.MSRPC_RESPONSE


def test_abandoned_partial_calls_are_bounded():
    """A client that starts calls and never finishes them holds at most MAX_PARTIAL_CALLS
    partial stubs; the oldest is dropped (its last fragment is then a protocol error)."""
    logs: list[str] = []
    ep = bound(logs=logs)
    stub = share_enum().getData()
    for call_id in range(100, 100 + 3 * MAX_PARTIAL_CALLS):
        ep.write(request_pdu(share_enum(), stub=stub[:8], flags=rpcrt.PFC_FIRST_FRAG,
                             call_id=call_id))
    assert ep.read(4280) == b""
    assert len(ep.association._calls) == MAX_PARTIAL_CALLS
    assert sum("abandoned" in line for line in logs) == 2 * MAX_PARTIAL_CALLS
    newest = 100 + 3 * MAX_PARTIAL_CALLS - 1
    ep.write(request_pdu(share_enum(), stub=stub[8:], flags=rpcrt.PFC_LAST_FRAG, call_id=newest))
    assert srvs.NetrShareEnumResponse(reassemble(read_all(ep)))["TotalEntries"] == 2
    ep.write(request_pdu(share_enum(), stub=stub[8:], flags=rpcrt.PFC_LAST_FRAG, call_id=100))
    assert fault_status(ep.read(4280)) == NCA_S_PROTO_ERROR


def test_a_reply_that_does_not_fit_is_dropped_whole(monkeypatch):
    """A client that writes and never reads: its replies stop at MAX_PENDING_OUTPUT, and
    what it can still read is whole replies, never the first fragments of one."""
    monkeypatch.setattr(pipes, "MAX_PENDING_OUTPUT", 12_000)  # one reply (8.6 KB) and a part
    logs: list[str] = []
    view = FakeView(share_list=[(f"share{i:03}", 0, "x" * 40, "") for i in range(60)])
    ep = endpoint(view=view, logs=logs)
    ep.write(bind_pdu(SRVSVC, max_frag=MIN_FRAG))
    ep.read(4280)
    for _ in range(5):
        ep.write(request_pdu(share_enum()))
    assert ep.pending <= 12_000 and any("reply dropped" in line for line in logs)
    fragments = read_all(ep)
    replies: list[list[bytes]] = []
    for fragment in fragments:
        if fragment[3] & rpcrt.PFC_FIRST_FRAG:
            replies.append([])
        replies[-1].append(fragment)
    assert len(replies) >= 1 and all(len(r) > 1 for r in replies)
    for reply in replies:
        assert srvs.NetrShareEnumResponse(reassemble(reply))["TotalEntries"] == 60


@pytest.mark.parametrize("pdu", [
    b"", b"\x05\x00", bind_pdu(SRVSVC)[:20],  # shorter than a header / than frag_length
    bind_pdu(SRVSVC) + b"\0" * 4,  # longer than frag_length
])
def test_the_association_takes_only_whole_pdus(pdu):
    """``Association.receive`` is given whole PDUs by the endpoint; anything else is a
    protocol error, not an internal one."""
    logs: list[str] = []
    association = endpoint(logs=logs).association
    (answer,) = association.receive(pdu)
    assert fault_status(answer) == NCA_S_PROTO_ERROR
    assert not any("internal error" in line for line in logs)


def test_incomplete_pdu_waits_and_a_read_finds_nothing():
    ep = bound()
    pdu = request_pdu(share_enum())
    ep.write(pdu[:-1])
    assert ep.read(4280) == b"" and not ep.overflow
    ep.write(pdu[-1:])
    assert ptype(ep.read(4280)) == rpcrt.MSRPC_RESPONSE


@pytest.mark.parametrize("garbage", [
    b"GET / HTTP/1.1\r\n\r\n" + b"x" * 16,
    b"\x05\x00\x0b\x03\x10\x00\x00\x00\x04\x00\x00\x00\x01\x00\x00\x00",  # frag_length 4
    b"\x05\x00\x00\x03\x10\x00\x00\x00\x18\x00\xff\xff\x01\x00\x00\x00" + b"\0" * 8,  # auth
    b"\x05\x00\x02\x03\x10\x00\x00\x00\x18\x00\x00\x00\x01\x00\x00\x00" + b"\0" * 8,  # resp
    b"\x05\x00\x00\x03\x10\x00\x00\x00\x12\x00\x00\x00\x01\x00\x00\x00" + b"\0" * 2,  # short
    b"\x05\x00\x00\x83\x10\x00\x00\x00\x18\x00\x00\x00\x01\x00\x00\x00" + b"\0" * 8,  # uuid
])
def test_garbage_gets_a_fault_and_the_pipe_goes_on(garbage):
    logs: list[str] = []
    ep = bound(logs=logs)
    ep.write(garbage)
    answer = ep.read(4280)
    assert ptype(answer) in (rpcrt.MSRPC_FAULT, rpcrt.MSRPC_BINDNAK), answer.hex()
    assert ep.read(4280) == b""
    ep.write(request_pdu(share_enum()))
    assert ptype(ep.read(4280)) == rpcrt.MSRPC_RESPONSE
    assert not any("internal error" in line for line in logs)


@pytest.mark.parametrize("ptype_byte", [rpcrt.MSRPC_AUTH3, rpcrt.MSRPC_SHUTDOWN,
                                        rpcrt.MSRPC_CO_CANCEL, rpcrt.MSRPC_ORPHANED])
def test_pdus_without_an_answer(ptype_byte):
    ep = bound()
    ep.write(struct.pack("<BBBBIHHI", 5, 0, ptype_byte, 3, 0x10, 16, 0, 9))
    assert ep.read(4280) == b""


def test_non_little_endian_request_is_a_fault():
    ep = bound()
    pdu = request_pdu(share_enum())
    ep.write(pdu[:4] + b"\x00" + pdu[5:])
    assert fault_status(ep.read(4280)) == NCA_S_PROTO_ERROR


def test_fuzz_never_raises_never_hangs():
    """Random mutations of valid PDUs: every answer is a well-formed PDU of a known type."""
    rng = random.Random(5)
    valid = [bind_pdu(SRVSVC), request_pdu(share_enum()), request_pdu(share_enum(2)),
             bind_pdu(SRVSVC, ptype=rpcrt.MSRPC_ALTERCTX)]
    logs: list[str] = []
    for _ in range(400):
        ep = bound(logs=logs)
        pdu = bytearray(rng.choice(valid))
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(len(pdu))
            pdu[pos] = rng.randrange(256)
        if rng.random() < 0.3:
            pdu = pdu[:rng.randrange(len(pdu))]
        ep.write(bytes(pdu))
        for message in read_all(ep):
            assert len(message) >= 16 and message[0] == 5
            assert struct.unpack_from("<H", message, 8)[0] == len(message)
            assert message[2] in (rpcrt.MSRPC_BINDACK, rpcrt.MSRPC_BINDNAK,
                                  rpcrt.MSRPC_ALTERCTX_R, rpcrt.MSRPC_RESPONSE,
                                  rpcrt.MSRPC_FAULT)
    assert not any("internal error" in line for line in logs)


def served_calls():
    """One valid request for every operation each pipe serves (impacket's client classes)."""

    def call_with(cls, **args):
        call = cls()
        for key, value in {"ServerName": NULL, **args}.items():
            call[key] = value
        return call

    set_info = call_with(srvs.NetrServerSetInfo, Level=1010)
    set_info["InfoStruct"]["tag"] = 1010
    set_info["InfoStruct"]["ServerInfo1010"]["sv1010_disc"] = 30
    close_printer = rprn.RpcClosePrinter()
    close_printer["phPrinter"] = b"\0" * 20
    return {
        "srvsvc": (SRVSVC, [
            *(enum_call(srvs.NetrSessionEnum(), level, "SessionInfo", ServerName=NULL,
                        ClientName="\\\\PC1\0", UserName="alice\0")
              for level in (0, 1, 2, 10, 502)),
            *(enum_call(srvs.NetrFileEnum(), level, "FileInfo", ServerName=NULL,
                        BasePath="\\docs\0", UserName=NULL) for level in (2, 3)),
            *(enum_call(srvs.NetrConnectionEnum(), level, "ConnectInfo", ServerName=NULL,
                        Qualifier=qualifier)
              for level in (0, 1) for qualifier in ("docs\0", "\\\\PC1\0")),
            *(share_enum(level, resume=0) for level in (0, 1, 2, 501, 502, 503)),
            *(call_with(srvs.NetrShareGetInfo, NetName="docs\0", Level=level)
              for level in (0, 1, 2, 501, 502, 1005)),
            *(call_with(srvs.NetrServerGetInfo, Level=level) for level in (100, 101, 102)),
            set_info,
            call_with(srvs.NetrSessionDel, ClientName="\\\\PC1\0", UserName=NULL),
            call_with(srvs.NetrFileClose, FileId=(3 << 16) | 1),
            call_with(srvs.NetrRemoteTOD),
        ]),
        "wkssvc": (INTERFACES["wkssvc"], [
            *(call_with(wkst.NetrWkstaGetInfo, Level=level) for level in (100, 101)),
            *(enum_call(wkst.NetrWkstaUserEnum(), level, "WkstaUserInfo", info="UserInfo",
                        ServerName="\0") for level in (0, 1)),
        ]),
        "spoolss": (INTERFACES["spoolss"], [open_printer(), open_printer(ex=True),
                                            close_printer]),
    }


def test_every_operation_answers_mutated_stubs_with_a_response_or_a_fault():
    """Truncated and lying NDR for every served operation, as administrator, user and null
    session: a response or a fault each time, never a handler failure (a lone UTF-16
    surrogate in a name once was one)."""
    rng = random.Random(11)
    callers = [ADMIN, ALICE, ANONYMOUS]
    lies = [0, 1, 2, 3, 10, 100, 101, 102, 502, 1005, 1010, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF]
    logs: list[str] = []
    for pipe, (abstract, calls) in served_calls().items():
        for call in calls:
            stub = call.getData()
            for caller in callers:  # unmutated first: every call is served
                ep = bound(pipe, abstract, caller=caller, logs=logs)
                ep.write(request_pdu(call))
                (answer,) = read_all(ep)
                assert ptype(answer) == rpcrt.MSRPC_RESPONSE or (  # but closing a handle
                    fault_status(answer) == NCA_S_FAULT_CONTEXT_MISMATCH)  # never opened
            for _ in range(60):
                mutated = bytearray(stub)
                for _ in range(rng.randint(1, 3)):
                    pos = rng.randrange(len(mutated))
                    if rng.random() < 0.5:
                        mutated[pos] = rng.randrange(256)
                    elif rng.random() < 0.7:
                        mutated[pos:pos + 4] = struct.pack("<I", rng.choice(lies))
                    else:
                        mutated[pos:pos + 2] = b"\x00\xd8"  # a lone surrogate
                if rng.random() < 0.2:
                    mutated = mutated[:rng.randrange(len(mutated))]
                ep = bound(pipe, abstract, caller=rng.choice(callers), logs=logs)
                ep.write(request_pdu(call, stub=bytes(mutated)))
                (answer,) = read_all(ep)
                assert ptype(answer) in (rpcrt.MSRPC_RESPONSE, rpcrt.MSRPC_FAULT)
    failures = [line for line in logs if "failed" in line or "internal error" in line]
    assert not failures, failures[:3]


@pytest.mark.parametrize("pipe,opnums", [
    ("srvsvc", [0, 7, 10, 14, 17, 20, 23, 27, 29, 0xFFFF]),
    ("wkssvc", [1, 3, 5, 30, 0xFFFF]),
    ("spoolss", [0, 2, 28, 30, 68, 70, 0xFFFF]),
])
def test_opnums_not_served_fault_on_every_pipe(pipe, opnums):
    ep = bound(pipe, INTERFACES[pipe])
    for opnum in opnums:
        ep.write(request_pdu(share_enum(), opnum=opnum))
        fault = ep.read(4280)
        assert fault_status(fault) == NCA_S_OP_RNG_ERROR and fault[3] & rpcrt.PFC_DID_NOT_EXECUTE


@pytest.mark.parametrize("ptype_byte", [rpcrt.MSRPC_BIND, rpcrt.MSRPC_ALTERCTX])
@pytest.mark.parametrize("pipe", ["srvsvc", "wkssvc", "spoolss"])
def test_unknown_interfaces_are_rejected_on_every_pipe(pipe, ptype_byte):
    """samr (served nowhere): a provider rejection in the bind_ack (as Windows answers, and
    impacket reports abstract_syntax_not_supported) or alter_context_resp, and a call on
    that context is a fault."""
    samr = uuidtup_to_bin(("12345778-1234-ABCD-EF00-0123456789AC", "1.0"))
    ep = endpoint(pipe)
    if ptype_byte == rpcrt.MSRPC_ALTERCTX:  # the pipe's own interface first, on context 7
        ep.write(bind_pdu(INTERFACES[pipe], context_id=7))
        assert ptype(ep.read(4280)) == rpcrt.MSRPC_BINDACK
    ep.write(bind_pdu(samr, ptype=ptype_byte))
    answer = ep.read(4280)
    assert ptype(answer) in (rpcrt.MSRPC_BINDACK, rpcrt.MSRPC_ALTERCTX_R)
    if ptype_byte == rpcrt.MSRPC_BIND:
        item = rpcrt.MSRPCBindAck(answer).getCtxItem(1)
        assert (item["Result"], item["Reason"]) == (rpcrt.MSRPC_CONT_RESULT_PROV_REJECT, 1)
    else:
        assert struct.unpack_from("<HH", answer, 32) == (rpcrt.MSRPC_CONT_RESULT_PROV_REJECT, 1)
    ep.write(request_pdu(share_enum()))
    assert fault_status(ep.read(4280)) == NCA_S_UNK_IF


def test_closed_pipe_takes_nothing():
    ep = bound()
    ep.close()
    ep.write(request_pdu(share_enum()))
    assert ep.read(4280) == b"" and ep.closed


def test_a_handler_bug_costs_one_call_not_the_pipe():
    class Broken(FakeView):
        def shares(self):
            raise RuntimeError("boom")

    logs: list[str] = []
    ep = bound(view=Broken(), logs=logs)
    ep.write(request_pdu(share_enum()))
    fault = ep.read(4280)
    assert fault_status(fault) == pipes.NCA_S_FAULT_UNSPEC
    assert not fault[3] & rpcrt.PFC_DID_NOT_EXECUTE
    assert any("boom" in line for line in logs)


def test_callers_are_frozen():
    with pytest.raises(AttributeError):
        ALICE.user = "mallory"  # type: ignore[misc]
    assert Caller("a", False, "b", "c") == Caller("a", False, "b", "c")


def test_ndr_syntax_is_impacket_s():
    from impacket.dcerpc.v5.rpcrt import MSRPC_STANDARD_NDR_SYNTAX
    from impacket.uuid import uuidtup_to_bin

    from protocols.dcerpc.pipes import NDR_SYNTAX

    assert NDR_SYNTAX == uuidtup_to_bin(MSRPC_STANDARD_NDR_SYNTAX)
