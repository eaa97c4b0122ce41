"""SpnegoAcceptor against real clients (pyspnego, impacket) plus fixed byte vectors."""

from __future__ import annotations

import random

import pytest
import spnego
from impacket import ntlm
from impacket.spnego import SPNEGO_NegTokenInit, SPNEGO_NegTokenResp, TypesMech
from spnego._spnego import (
    ContextFlags,
    NegState,
    NegTokenInit,
    NegTokenResp,
    pack_mech_type_list,
    unpack_token,
)

from protocols.auth.ntlm import (
    STATUS_INVALID_PARAMETER,
    STATUS_LOGON_FAILURE,
    AuthFailure,
    NTLMAcceptor,
)
from protocols.auth.spnego import (
    STATUS_BAD_MECHLISTMIC,
    SpnegoAcceptor,
    _parse_neg_token_resp,
    initial_token,
    neg_token_resp,
)

NTLM_OID = "1.3.6.1.4.1.311.2.2.10"
KRB5_MS_OID = "1.2.840.48018.1.2.2"
USERS = {"alice": "Secret1"}


def lookup(user: str) -> str | None:
    return USERS.get(user.lower())


def new_acceptor(**kwargs) -> SpnegoAcceptor:
    return SpnegoAcceptor(NTLMAcceptor(lookup, now=lambda: 1_700_000_000.0, **kwargs))


# -- byte vectors -------------------------------------------------------------------


def test_initial_token_bytes():
    # The 120-byte hint a Windows server sends (smbprotocol's real-server vector):
    # NEGOEX, MS-KRB5, KRB5, KRB5-U2U, NTLMSSP and the RFC 4178 hint name.
    assert initial_token() == bytes.fromhex(
        "607606062b0601050502a06c306aa03c303a060a2b06010401823702021e06092a864882f71201020206"
        "092a864886f712010202060a2a864886f71201020203060a2b06010401823702020a"
        "a32a3028a0261b246e6f745f646566696e65645f696e5f5246433431373840706c656173655f69676e6f7265"
    )
    parsed = unpack_token(initial_token())  # pyspnego reads it as a NegTokenInit2
    assert parsed.mech_types[-1] == NTLM_OID and len(parsed.mech_types) == 5
    assert parsed.hint_name == b"not_defined_in_RFC4178@please_ignore"
    assert SPNEGO_NegTokenInit(initial_token())["MechTypes"][0] == TypesMech[
        "NEGOEX - SPNEGO Extended Negotiation Security Mechanism"]
    # An NTLMSSP-only list (a Samba-like hint) is still what it was.
    assert initial_token(("NTLMSSP",)) == bytes.fromhex(
        "604806062b0601050502a03e303ca00e300c060a2b06010401823702020a"
        "a32a3028a0261b246e6f745f646566696e65645f696e5f5246433431373840706c656173655f69676e6f7265"
    )



def test_initial_token_built_once_per_mechanism_list():
    # Every NEGOTIATE response carries it: built once per edition's list, not per
    # connection (bench_smb's CPU per handshake), and still right per list.
    assert initial_token(("NTLMSSP",)) is initial_token(("NTLMSSP",))
    assert initial_token() is initial_token()
    assert initial_token(("NTLMSSP",)) != initial_token()

def test_neg_token_resp_bytes():
    oid = TypesMech["NTLMSSP - Microsoft NTLM Security Support Provider"]
    token = neg_token_resp(1, supported_mech=oid, response_token=b"CHAL")
    assert (
        token == bytes.fromhex("a11d301ba0030a0101a10c060a2b06010401823702020aa2060404") + b"CHAL"
    )
    final = neg_token_resp(0, mech_list_mic=b"\x01" * 16)
    assert final == bytes.fromhex("a11b3019a0030a0100a3120410" + "01" * 16)
    parsed = unpack_token(final)
    assert (parsed.neg_state, parsed.mech_list_mic) == (NegState.accept_complete, b"\x01" * 16)


def test_parse_known_neg_token_resp():
    # A client's AUTHENTICATE round: responseToken + mechListMIC, no negState.
    token = bytes.fromhex("a11a3018a2080406" + b"NTLMSS".hex() + "a30c040a" + "aa" * 10)
    assert _parse_neg_token_resp(token) == (b"NTLMSS", b"\xaa" * 10)
    # Long-form lengths as pyspnego writes them for real AUTHENTICATE messages.
    big = b"N" * 300
    packed = NegTokenResp(NegState.accept_incomplete, response_token=big, mech_list_mic=b"m").pack()
    assert _parse_neg_token_resp(packed) == (big, b"m")


# -- pyspnego client (smbprotocol's stack) --------------------------------------------


def run_pyspnego(acceptor, client, first_in=None):
    """Run the exchange; return (last acceptor step, tokens the acceptor produced)."""
    out, seen = client.step(first_in), []
    while True:
        step = acceptor.step(out)
        seen.append(step.token)
        if step.complete:
            client.step(step.token)  # verifies our mechListMIC
            return step, seen
        out = client.step(step.token)


@pytest.mark.parametrize("first_in", [initial_token(), None])
def test_pyspnego_negotiate_end_to_end(first_in):
    acceptor = new_acceptor()
    client = spnego.client("alice", "Secret1", hostname="srv", protocol="negotiate")
    step, seen = run_pyspnego(acceptor, client, first_in)
    assert client.complete
    assert step.result.user == "alice" and not step.result.anonymous
    assert step.result.session_key == client.session_key
    assert unpack_token(seen[0]).supported_mech == NTLM_OID
    final = unpack_token(step.token)
    assert final.neg_state == NegState.accept_complete and final.mech_list_mic
    # RC4 states were reset after the mechListMICs the same way on both sides.
    assert acceptor.ntlm.unwrap(client.wrap(b"pubKeyAuth").data) == b"pubKeyAuth"
    assert client.unwrap(acceptor.ntlm.wrap(b"reply")).data == b"reply"


def test_pyspnego_raw_ntlm():
    acceptor = new_acceptor()
    client = spnego.client("alice", "Secret1", hostname="srv", protocol="ntlm")
    challenge = acceptor.step(client.step())
    assert challenge.token.startswith(b"NTLMSSP\x00\x02") and not challenge.complete
    final = acceptor.step(client.step(challenge.token))
    assert final.complete and final.token == b""
    assert final.result.session_key == client.session_key


def test_pyspnego_wrong_password():
    acceptor = new_acceptor()
    client = spnego.client("alice", "bad", hostname="srv", protocol="negotiate")
    with pytest.raises(AuthFailure) as err:
        run_pyspnego(acceptor, client)
    assert err.value.status == STATUS_LOGON_FAILURE


def test_bad_client_mech_list_mic():
    acceptor = new_acceptor()
    client = spnego.client("alice", "Secret1", hostname="srv", protocol="negotiate")
    auth = client.step(acceptor.step(client.step()).token)
    parsed = unpack_token(auth)
    parsed.mech_list_mic = parsed.mech_list_mic[:-1] + bytes([parsed.mech_list_mic[-1] ^ 1])
    with pytest.raises(AuthFailure) as err:
        acceptor.step(parsed.pack())
    assert err.value.status == STATUS_BAD_MECHLISTMIC == STATUS_INVALID_PARAMETER


# -- NTLMSSP offered but not first ------------------------------------------------------


def test_ntlm_not_first_mech():
    acceptor = new_acceptor()
    mechs = [KRB5_MS_OID, NTLM_OID]
    init = NegTokenInit(mechs, req_flags=ContextFlags.mutual, mech_token=b"\x60\x02kerberos-ish")
    first = unpack_token(acceptor.step(init.pack()).token)
    assert first.neg_state == NegState.request_mic
    assert first.supported_mech == NTLM_OID and first.response_token is None

    client = spnego.client("alice", "Secret1", hostname="srv", protocol="ntlm")
    neg = NegTokenResp(response_token=client.step()).pack()
    second = unpack_token(acceptor.step(neg).token)
    assert second.neg_state == NegState.accept_incomplete and second.supported_mech is None
    authenticate = client.step(second.response_token)

    mech_list = pack_mech_type_list(mechs)
    auth = NegTokenResp(response_token=authenticate, mech_list_mic=client.sign(mech_list))
    step = acceptor.step(auth.pack())
    final = unpack_token(step.token)
    assert step.complete and final.neg_state == NegState.accept_complete
    client.verify(mech_list, final.mech_list_mic)  # raises if wrong


# -- impacket's SMB2 client flow -----------------------------------------------------------


@pytest.mark.parametrize("user,password", [("alice", "Secret1"), ("", "")])
def test_impacket_spnego(user, password):
    acceptor = new_acceptor()
    blob = SPNEGO_NegTokenInit()
    blob["MechTypes"] = [TypesMech["NTLMSSP - Microsoft NTLM Security Support Provider"]]
    type1 = ntlm.getNTLMSSPType1("WS01", "", True)
    blob["MechToken"] = type1.getData()
    first = acceptor.step(blob.getData())
    challenge = SPNEGO_NegTokenResp(first.token)["ResponseToken"]  # impacket's own parser
    type3, key = ntlm.getNTLMSSPType3(type1, challenge, user, password, "")
    resp = SPNEGO_NegTokenResp()
    resp["ResponseToken"] = type3.getData()
    step = acceptor.step(resp.getData())
    assert step.complete and step.result.anonymous == (user == "")
    if user:
        assert step.result.session_key == key
    # No NTLM MIC and no client mechListMIC: no mechListMIC back either.
    assert unpack_token(step.token).mech_list_mic is None


def test_anonymous_refused():
    acceptor = new_acceptor(allow_anonymous=False)
    type1 = ntlm.getNTLMSSPType1("WS01", "")
    challenge = acceptor.step(type1.getData()).token  # raw NTLMSSP in, raw out
    type3, _ = ntlm.getNTLMSSPType3(type1, challenge, "", "", "")
    with pytest.raises(AuthFailure) as err:
        acceptor.step(type3.getData())
    assert err.value.status == STATUS_LOGON_FAILURE


# -- hostile input ------------------------------------------------------------------------------


def expect_invalid(acceptor, token):
    with pytest.raises(AuthFailure) as err:
        acceptor.step(token)
    assert err.value.status == STATUS_INVALID_PARAMETER


def test_garbage_is_invalid_parameter():
    rng = random.Random(3)
    for token in [b"", b"\x00", b"\x60", b"\x60\x80", b"\xa1\x05\x30\x03", b"\xa0\x00"]:
        expect_invalid(new_acceptor(), token)
    for _ in range(200):
        expect_invalid(new_acceptor(), rng.randbytes(rng.randrange(1, 120)))
    no_ntlm = NegTokenInit([KRB5_MS_OID], mech_token=b"x").pack()
    expect_invalid(new_acceptor(), no_ntlm)
    resp_first = NegTokenResp(response_token=b"NTLMSSP\x00\x01\x00\x00\x00").pack()
    expect_invalid(new_acceptor(), resp_first)


def test_truncated_and_mutated_tokens():
    client = spnego.client("alice", "Secret1", hostname="srv", protocol="negotiate")
    init = client.step()
    reference = new_acceptor()
    auth = client.step(reference.step(init).token)
    rng = random.Random(4)

    def mutations(token):
        yield from (token[:n] for n in range(len(token)))
        for _ in range(150):
            data = bytearray(token)
            data[rng.randrange(len(data))] = rng.randrange(256)
            yield bytes(data)

    for bad in mutations(init):
        try:
            new_acceptor().step(bad)
        except AuthFailure as exc:
            assert exc.status == STATUS_INVALID_PARAMETER
    for bad in mutations(auth):
        acceptor = new_acceptor()
        acceptor.step(init)
        try:
            acceptor.step(bad)
        except AuthFailure as exc:
            assert exc.status in (STATUS_INVALID_PARAMETER, STATUS_LOGON_FAILURE)


def test_no_step_after_completion():
    acceptor = new_acceptor()
    client = spnego.client("alice", "Secret1", hostname="srv", protocol="negotiate")
    run_pyspnego(acceptor, client)
    expect_invalid(acceptor, NegTokenResp(response_token=b"NTLMSSP\x00\x03\x00\x00\x00").pack())
