"""NTLMAcceptor against real client code (impacket, pyspnego) and MS-NLMP vectors."""

from __future__ import annotations

import random
import struct

import pytest
import spnego
from impacket import ntlm
from spnego._ntlm_raw.messages import AvId, Challenge, NegotiateFlags

from protocols.auth import ntlm as ntlm_mod
from protocols.auth.ntlm import (
    STATUS_INVALID_PARAMETER,
    STATUS_LOGON_FAILURE,
    AuthFailure,
    NTLMAcceptor,
)

USERS = {"alice": "Secret1", "bob": ""}
NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
SERVER_CHALLENGE = bytes.fromhex("0123456789abcdef")


def lookup(user: str) -> str | None:
    return USERS.get(user.lower())


def acceptor(**kwargs) -> NTLMAcceptor:
    kwargs.setdefault("challenge", SERVER_CHALLENGE)
    return NTLMAcceptor(lookup, now=lambda: NOW, **kwargs)


def impacket_login(user, password, domain, *, signing=True, acc=None, **type3_kwargs):
    acc = acc or acceptor()
    type1 = ntlm.getNTLMSSPType1("WS01", "", signingRequired=signing)
    challenge = acc.process_negotiate(type1.getData())
    type3, key = ntlm.getNTLMSSPType3(type1, challenge, user, password, domain, **type3_kwargs)
    return acc, type3, key


# -- CHALLENGE ---------------------------------------------------------------


def test_challenge_matches_vector():
    # NEGOTIATE with UNICODE|REQUEST_TARGET|SIGN|NTLM|ESS|TARGET_INFO|VERSION|128|KEY_EXCH|56;
    # the CHALLENGE echoes them and adds TARGET_TYPE_DOMAIN (0xe2898215).
    negotiate = bytes.fromhex("4e544c4d5353500001000000158288e2" + "00" * 16 + "0a00614a0000000f")
    acc = NTLMAcceptor(
        lookup, netbios_name="HOST1", netbios_domain="WORKGROUP", dns_name="host1", now=lambda: NOW,
        challenge=SERVER_CHALLENGE,
    )  # fmt: skip
    expected = bytes.fromhex(
        "4e544c4d53535000020000001200120038000000158289e20123456789abcdef"
        "0000000000000000500050004a0000000a00654a0000000f"  # Version 10.0.19045
        "57004f0052004b00470052004f0055005000"  # target name WORKGROUP
        "02001200" "57004f0052004b00470052004f0055005000"  # MsvAvNbDomainName
        "01000a00" "48004f00530054003100"  # MsvAvNbComputerName HOST1
        "04000a00" "68006f00730074003100"  # MsvAvDnsDomainName (host's own name)
        "03000a00" "68006f00730074003100"  # MsvAvDnsComputerName host1
        "07000800" "00006dc64717da01"  # MsvAvTimestamp
        "00000000"
    )  # fmt: skip
    assert acc.process_negotiate(negotiate) == expected


def test_challenge_parsed_by_pyspnego():
    acc = acceptor(
        netbios_name="SRV", netbios_domain="SRV", dns_name="srv.example", dns_domain="example"
    )
    neg = spnego.client("alice", "Secret1", protocol="ntlm").step()
    chal = Challenge.unpack(acc.process_negotiate(neg))
    for flag in ("extended_session_security", "sign", "seal", "key_exch", "unicode", "ntlm",
                 "target_info", "version", "key_128", "key_56", "target_type_server"):  # fmt: skip
        assert chal.flags & getattr(NegotiateFlags, flag), flag
    assert chal.server_challenge == SERVER_CHALLENGE
    assert chal.target_name == "SRV"
    assert (chal.version.major, chal.version.minor, chal.version.build) == (10, 0, 19045)
    assert chal.version.revision == 15
    info = chal.target_info
    assert info[AvId.nb_domain_name] == "SRV"
    assert info[AvId.nb_computer_name] == "SRV"
    assert info[AvId.dns_domain_name] == "example"
    assert info[AvId.dns_computer_name] == "srv.example"
    assert info[AvId.timestamp].timestamp() == NOW


def test_challenge_only_echoes_what_was_asked():
    type1 = ntlm.getNTLMSSPType1("", "", signingRequired=False)
    raw = acceptor(netbios_name="DESKTOP-ABC123").process_negotiate(type1.getData())
    chal = ntlm.NTLMAuthChallenge(raw)
    flags = chal["flags"]
    assert flags & ntlm.NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY
    assert not flags & (ntlm.NTLMSSP_NEGOTIATE_SIGN | ntlm.NTLMSSP_NEGOTIATE_KEY_EXCH)
    # Windows sends its Version even when the client did not ask for it, and a
    # workgroup host names itself everywhere, with target type server.
    assert flags & ntlm.NTLMSSP_NEGOTIATE_VERSION
    assert flags & ntlm.NTLMSSP_TARGET_TYPE_SERVER and not flags & ntlm.NTLMSSP_TARGET_TYPE_DOMAIN
    assert chal["domain_offset"] == 56  # after the 8-byte Version
    assert chal["Version"] == bytes.fromhex("0a00654a0000000f")  # 10.0.19045 rev 15
    assert chal["domain_name"] == "DESKTOP-ABC123".encode("utf-16le")
    av = ntlm.AV_PAIRS(chal["TargetInfoFields"])
    for av_id in (ntlm.NTLMSSP_AV_DOMAINNAME, ntlm.NTLMSSP_AV_HOSTNAME,
                  ntlm.NTLMSSP_AV_DNS_DOMAINNAME, ntlm.NTLMSSP_AV_DNS_HOSTNAME):
        assert av[av_id][1] == "DESKTOP-ABC123".encode("utf-16le"), av_id


def test_challenge_version_is_the_hosts():
    type1 = ntlm.getNTLMSSPType1("", "", signingRequired=False)
    acc = acceptor(version=ntlm_mod.version_field(6, 1, 7601))
    chal = ntlm.NTLMAuthChallenge(acc.process_negotiate(type1.getData()))
    assert chal["Version"] == struct.pack("<BBH3xB", 6, 1, 7601, 15)


def test_random_challenge():
    a, b = NTLMAcceptor(lookup), NTLMAcceptor(lookup)
    assert len(a.server_challenge) == 8 and a.server_challenge != b.server_challenge


# -- AUTHENTICATE with impacket's client ----------------------------------------


@pytest.mark.parametrize("signing", [True, False])
@pytest.mark.parametrize("domain", ["CORP", "", "WORKGROUP"])
def test_impacket_right_password(signing, domain):
    acc, type3, key = impacket_login("Alice", "Secret1", domain, signing=signing)
    result = acc.process_authenticate(type3.getData())
    assert (result.user, result.domain, result.workstation) == ("Alice", domain, "WS01")
    assert not result.anonymous
    assert result.session_key == key and len(key) == 16
    assert result.negotiate_flags == type3["flags"]
    assert not acc.mic_present  # impacket sends no MIC


def test_empty_password_account():
    acc, type3, key = impacket_login("bob", "", "")
    assert acc.process_authenticate(type3.getData()).session_key == key


def test_domain_falls_back_to_empty():
    # Response keyed with domain '' but the message names another domain.
    acc, type3, _ = impacket_login("alice", "Secret1", "")
    type3["domain_name"] = "ELSEWHERE".encode("utf-16le")
    assert acc.process_authenticate(type3.getData()).domain == "ELSEWHERE"


@pytest.mark.parametrize("user,password", [("alice", "wrong"), ("mallory", "Secret1")])
def test_impacket_bad_credentials(user, password):
    acc, type3, _ = impacket_login(user, password, "CORP")
    with pytest.raises(AuthFailure) as err:
        acc.process_authenticate(type3.getData())
    assert err.value.status == STATUS_LOGON_FAILURE == 0xC000006D


def test_ntlmv1_refused():
    acc, type3, _ = impacket_login("alice", "Secret1", "", use_ntlmv2=False)
    assert len(type3["ntlm"]) == 24
    with pytest.raises(AuthFailure) as err:
        acc.process_authenticate(type3.getData())
    assert err.value.status == STATUS_LOGON_FAILURE


@pytest.mark.parametrize("signing", [True, False])
def test_ntlmv1_accepted_where_the_level_allows(signing):
    # impacket's NTLMv1 with NTLM2 session security (ESS) against our ESS CHALLENGE.
    acc = acceptor(accept_ntlmv1=True)
    acc, type3, key = impacket_login("alice", "Secret1", "", signing=signing, acc=acc,
                                     use_ntlmv2=False)
    assert len(type3["ntlm"]) == 24
    result = acc.process_authenticate(type3.getData())
    assert result.user == "alice" and result.session_key == key


def test_ntlmv1_wrong_password():
    acc = acceptor(accept_ntlmv1=True)
    acc, type3, _ = impacket_login("alice", "nope", "", acc=acc, use_ntlmv2=False)
    with pytest.raises(AuthFailure) as err:
        acc.process_authenticate(type3.getData())
    assert err.value.status == STATUS_LOGON_FAILURE


def _v1_authenticate(user, nt, lm, flags):
    msg = ntlm.NTLMAuthChallengeResponse()
    msg["flags"] = flags
    msg["user_name"] = user.encode("utf-16le")
    msg["domain_name"] = b""
    msg["host_name"] = "WS01".encode("utf-16le")
    msg["lanman"], msg["ntlm"] = lm, nt
    msg["session_key"] = b""
    return msg.getData()


def test_plain_ntlmv1_and_lm_only():
    # Without ESS: NT = DES(NT hash, challenge); LM-only: LM = DES(LM hash, challenge).
    flags = ntlm.NTLMSSP_NEGOTIATE_UNICODE | ntlm.NTLMSSP_NEGOTIATE_NTLM
    nt = ntlm.get_ntlmv1_response(ntlm.compute_nthash("Secret1"), SERVER_CHALLENGE)
    lm = ntlm.get_ntlmv1_response(ntlm.compute_lmhash("Secret1"), SERVER_CHALLENGE)
    for nt_resp, lm_resp, allowed in ((nt, lm, dict(accept_ntlmv1=True)),
                                      (b"", lm, dict(accept_lm=True))):
        acc = acceptor(**allowed)
        acc.process_negotiate(ntlm.getNTLMSSPType1("", "", signingRequired=False).getData())
        result = acc.process_authenticate(_v1_authenticate("alice", nt_resp, lm_resp, flags))
        assert result.user == "alice" and len(result.session_key) == 16
    # LM-only where only NTLMv1 is accepted (level 4): refused.
    acc = acceptor(accept_ntlmv1=True)
    acc.process_negotiate(ntlm.getNTLMSSPType1("", "", signingRequired=False).getData())
    with pytest.raises(AuthFailure):
        acc.process_authenticate(_v1_authenticate("alice", b"", lm, flags))


def test_impacket_anonymous():
    acc, type3, _ = impacket_login("", "", "")
    result = acc.process_authenticate(type3.getData())
    assert result.anonymous and result.user == ""
    assert result.workstation == "WS01"
    assert result.session_key == b"\x00" * 16


def test_anonymous_refused_when_disabled():
    acc, type3, _ = impacket_login("", "", "", acc=acceptor(allow_anonymous=False))
    with pytest.raises(AuthFailure) as err:
        acc.process_authenticate(type3.getData())
    assert err.value.status == STATUS_LOGON_FAILURE


# -- pyspnego's client: MIC, keys, message security ---------------------------


def pyspnego_login(password="Secret1"):
    client = spnego.client("CORP\\alice", password, hostname="srv", protocol="ntlm")
    acc = acceptor()
    authenticate = client.step(acc.process_negotiate(client.step()))
    return client, acc, authenticate


def test_pyspnego_mic_and_session_key():
    client, acc, authenticate = pyspnego_login()
    result = acc.process_authenticate(authenticate)
    assert acc.mic_present
    assert (result.user, result.domain) == ("alice", "CORP")
    assert result.session_key == client.session_key


def test_pyspnego_bad_mic():
    _, acc, authenticate = pyspnego_login()
    tampered = authenticate[:72] + bytes([authenticate[72] ^ 1]) + authenticate[73:]
    with pytest.raises(AuthFailure) as err:
        acc.process_authenticate(tampered)
    assert err.value.status == STATUS_LOGON_FAILURE


def test_pyspnego_wrong_password():
    _, acc, authenticate = pyspnego_login("nope")
    with pytest.raises(AuthFailure) as err:
        acc.process_authenticate(authenticate)
    assert err.value.status == STATUS_LOGON_FAILURE


def test_sign_verify_wrap_unwrap_with_pyspnego():
    client, acc, authenticate = pyspnego_login()
    acc.process_authenticate(authenticate)
    for i in range(3):  # sequence numbers and RC4 streams advance together
        msg = b"message %d" % i
        assert acc.verify(msg, client.sign(msg))
        client.verify(msg, acc.sign(msg))  # raises if wrong
        assert acc.unwrap(client.wrap(msg).data) == msg
        assert client.unwrap(acc.wrap(msg)).data == msg
    assert not acc.verify(b"x", b"\x01" + b"\x00" * 15)
    with pytest.raises(AuthFailure):
        acc.unwrap(b"\x00" * 20)


# -- MS-NLMP 4.2.4 NTLMv2 vector ------------------------------------------------


def security_buffers(header: bytes, fields: list[bytes], flags: int) -> bytes:
    payload, out, offset = b"", header, 64 + 8 + 16
    for field in fields:
        out += struct.pack("<HHI", len(field), len(field), offset + len(payload))
        payload += field
    return out + struct.pack("<I", flags) + b"\x00" * 24 + payload


def test_ms_nlmp_ntlmv2_vector():
    # MS-NLMP 4.2.4: User/Domain/Password, client challenge aa*8, time 0,
    # RandomSessionKey 55*16 -> EncryptedRandomSessionKey c5dad254...
    flags = 0xE28A8233  # the spec's flags (KEY_EXCH, ESS, SIGN, SEAL, ...)
    acc = NTLMAcceptor({"User": "Password"}.get, challenge=SERVER_CHALLENGE)
    acc.process_negotiate(b"NTLMSSP\x00\x01\x00\x00\x00" + struct.pack("<I", flags) + b"\x00" * 16)
    av = (
        b"\x02\x00\x0c\x00" + "Domain".encode("utf-16le")
        + b"\x01\x00\x0c\x00" + "Server".encode("utf-16le") + b"\x00" * 4
    )  # fmt: skip
    blob = b"\x01\x01" + b"\x00" * 14 + b"\xaa" * 8 + b"\x00" * 4 + av + b"\x00" * 4
    nt = bytes.fromhex("68cd0ab851e51c96aabc927bebef6a1c") + blob
    fields = [
        bytes.fromhex("86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa"),
        nt,
        "Domain".encode("utf-16le"),
        "User".encode("utf-16le"),
        "COMPUTER".encode("utf-16le"),
        bytes.fromhex("c5dad2544fc9799094ce1ce90bc9d03e"),
    ]
    result = acc.process_authenticate(
        security_buffers(b"NTLMSSP\x00\x03\x00\x00\x00", fields, flags)
    )
    assert result.session_key == b"\x55" * 16
    assert (result.user, result.domain, result.workstation) == ("User", "Domain", "COMPUTER")


# -- hostile input ----------------------------------------------------------------


def test_out_of_sequence():
    acc = acceptor()
    with pytest.raises(AuthFailure) as err:
        acc.process_authenticate(b"NTLMSSP\x00\x03\x00\x00\x00" + b"\x00" * 60)
    assert err.value.status == STATUS_INVALID_PARAMETER
    _, acc, authenticate = pyspnego_login()
    acc.process_authenticate(authenticate)
    with pytest.raises(AuthFailure):
        acc.process_authenticate(authenticate)  # one attempt per acceptor
    with pytest.raises(AuthFailure):
        acc.process_negotiate(ntlm.getNTLMSSPType1().getData())


def test_garbage_negotiate():
    rng = random.Random(1)
    tokens = [
        b"",
        b"NTLMSSP",
        b"NTLMSSP\x00\x01\x00\x00\x00",
        b"NTLMSSP\x00\x02\x00\x00\x00" + b"\x00" * 40,
    ]
    tokens += [rng.randbytes(rng.randrange(64)) for _ in range(50)]
    for token in tokens:
        with pytest.raises(AuthFailure) as err:
            acceptor().process_negotiate(token)
        assert err.value.status == STATUS_INVALID_PARAMETER


def test_truncated_and_mutated_authenticate():
    _, _, authenticate = pyspnego_login()
    rng = random.Random(2)
    candidates = [authenticate[:n] for n in range(len(authenticate))]
    for _ in range(300):
        data = bytearray(authenticate)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(8, len(data))] = rng.randrange(256)
        candidates.append(bytes(data))
    candidates += [
        b"NTLMSSP\x00\x03\x00\x00\x00" + rng.randbytes(rng.randrange(200)) for _ in range(100)
    ]
    for token in candidates:
        acc = acceptor()
        acc.process_negotiate(ntlm.getNTLMSSPType1().getData())
        try:
            acc.process_authenticate(token)
        except AuthFailure as exc:
            assert exc.status in (STATUS_INVALID_PARAMETER, STATUS_LOGON_FAILURE)
