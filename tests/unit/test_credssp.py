"""CredSSPAcceptor against real clients (pyspnego's CredSSP, impacket's rdp_check.py).

pyspnego's client runs its own TLS in memory, so it is paired with an
in-memory TLS server (ssl.MemoryBIO) holding a self-signed certificate: the
records it produces are unwrapped, the TSRequests inside go to the acceptor,
and the answers are wrapped back. rdp_check.py is run unmodified (its
``__main__``) against a socket server in a thread that does the X.224
negotiation and TLS, its connect helper pointed at that server.
"""

from __future__ import annotations

import datetime
import importlib.machinery
import importlib.util
import logging
import os
import random
import runpy
import shutil
import socket
import ssl
import struct
import sys
import sysconfig
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import spnego
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from spnego._credssp_structures import (
    NegoData,
    TSCredentials,
    TSCspDataDetail,
    TSPasswordCreds,
    TSSmartCardCreds,
)
from spnego._credssp_structures import TSRequest as PyspnegoTSRequest
from spnego.exceptions import InvalidCredentialError, SpnegoError
from spnego.tls import get_certificate_public_key

from protocols.auth.credssp import (
    CredSSPAcceptor,
    TSRequest,
    decode_ts_credentials,
    encode_ts_credentials,
    error_ts_request,
    subject_public_key,
    ts_request_length,
)
from protocols.auth.ntlm import (
    STATUS_INVALID_PARAMETER,
    STATUS_LOGON_FAILURE,
    AuthFailure,
)
from emulator.harness.rdp_client import read_tpkt

USERS = {"alice": "Secret1", "bob": "Hunter2", "carol": "Secret1"}
FIXED_NOW = 1_700_000_000.0
FIXED_CHALLENGE = bytes.fromhex("0123456789abcdef")


def lookup(user: str) -> str | None:
    return USERS.get(user.lower())


# -- certificates and in-memory TLS -----------------------------------------------------


@dataclass
class Cert:
    der: bytes
    certfile: str
    keyfile: str
    public_key: bytes  # SubjectPublicKey, what CredSSP binds to


def _make_cert(directory: Path, name: str, key=None) -> Cert:
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / f"{name}.crt", directory / f"{name}.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    return Cert(der, str(certfile), str(keyfile), subject_public_key(der))


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> Cert:
    return _make_cert(tmp_path_factory.mktemp("certs"), "EMULATOR")


@pytest.fixture(scope="module")
def other_cert(tmp_path_factory) -> Cert:
    return _make_cert(tmp_path_factory.mktemp("certs"), "MITM")


def server_context(cert: Cert) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert.certfile, cert.keyfile)
    return ctx


class MemoryTLSServer:
    """Server half of the TLS that pyspnego's CredSSP client runs in memory."""

    def __init__(self, cert: Cert) -> None:
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = server_context(cert).wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.handshake_done = False

    def receive(self, records: bytes) -> bytes:
        """Feed client records; return the application data they carried."""
        self.incoming.write(records)
        if not self.handshake_done:
            try:
                self.tls.do_handshake()
                self.handshake_done = True
            except ssl.SSLWantReadError:
                return b""
        data = b""
        while True:
            try:
                chunk = self.tls.read()
            except ssl.SSLWantReadError:
                return data
            if not chunk:
                return data
            data += chunk

    def send(self, data: bytes) -> None:
        self.tls.write(data)

    def pending(self) -> bytes:
        return self.outgoing.read()


@dataclass
class Exchange:
    steps: list = field(default_factory=list)  # CredSSPStep per client TSRequest
    requests: list[bytes] = field(default_factory=list)  # plaintext client TSRequests
    replies: list[bytes] = field(default_factory=list)  # plaintext acceptor tokens


def run_pyspnego(client, acceptor, cert, mutate=None) -> Exchange:
    """Drive pyspnego's CredSSP client against ``acceptor`` through in-memory TLS.

    ``mutate(index, request_bytes) -> request_bytes`` may alter the n-th
    plaintext TSRequest before the acceptor sees it. An AuthFailure from the
    acceptor propagates (with ``exchange`` attached to it).
    """
    tls, ex, buf = MemoryTLSServer(cert), Exchange(), b""
    in_token = None
    for _ in range(20):
        out = client.step(in_token)
        buf += tls.receive(out or b"")
        while (size := ts_request_length(buf)) is not None and size <= len(buf):
            request, buf = buf[:size], buf[size:]
            if mutate:
                request = mutate(len(ex.requests), request)
            ex.requests.append(request)
            try:
                step = acceptor.step(request)
            except AuthFailure as err:
                err.exchange = ex  # type: ignore[attr-defined]
                err.tls = tls  # type: ignore[attr-defined]
                raise
            ex.steps.append(step)
            ex.replies.append(step.token)
            if step.token:
                tls.send(step.token)
        if ex.steps and ex.steps[-1].complete:
            assert client.complete
            return ex
        in_token = tls.pending()
    raise AssertionError("exchange did not finish")


def new_acceptor(cert: Cert, **kwargs) -> CredSSPAcceptor:
    kwargs.setdefault("now", lambda: FIXED_NOW)
    return CredSSPAcceptor(lookup, cert.public_key, **kwargs)


def new_client(user="alice", password="Secret1"):
    return spnego.client(user, password, hostname="emulator", protocol="credssp")


# -- byte vectors -------------------------------------------------------------------------


def test_subject_public_key_is_the_bit_string_contents(cert, tmp_path):
    # RSA: the SubjectPublicKey is the PKCS#1 RSAPublicKey, as pyspnego computes it.
    assert cert.public_key == get_certificate_public_key(cert.der)
    assert cert.public_key[:4] == b"\x30\x82\x01\x0a"  # RSAPublicKey of a 2048-bit key
    pem = Path(cert.certfile).read_bytes()
    assert subject_public_key(pem) == cert.public_key
    # EC: the uncompressed point (04 || X || Y), not a DER structure.
    ec_cert = _make_cert(tmp_path, "EC", key=ec.generate_private_key(ec.SECP256R1()))
    assert len(ec_cert.public_key) == 65 and ec_cert.public_key[0] == 4


NEGO_V2 = bytes.fromhex("3012a003020102a10b30093007a0050403") + b"abc"
NONCE = bytes(range(32))
PUBKEY_V6 = bytes.fromhex(
    "303d"  # SEQUENCE
    "a003020106"  # [0] version 6
    "a10a30083006a00404024e54"  # [1] negoTokens ['NT']
    "a306040401020304"  # [3] pubKeyAuth 01020304
    "a5220420" + NONCE.hex()  # [5] clientNonce
)
ERROR_V6 = bytes.fromhex("300da003020106a4060204c000006d")
CREDS = bytes.fromhex("301da003020101a11604143012a00404024400a10404027500a20404027000")


def test_ts_request_encode_vectors():
    assert TSRequest(2, [b"abc"]).encode() == NEGO_V2
    assert TSRequest(6, [b"NT"], pub_key_auth=b"\x01\x02\x03\x04", client_nonce=NONCE).encode() == (
        PUBKEY_V6
    )
    assert error_ts_request(6, 0xC000006D) == ERROR_V6
    assert error_ts_request(3, 0xC000006D) == bytes.fromhex("300da003020103a4060204c000006d")
    assert error_ts_request(4, 0xC0000022) == bytes.fromhex("300da003020104a4060204c0000022")
    assert error_ts_request(2, 0xC000006D) == b""  # v2 and v5 have no errorCode: close
    assert error_ts_request(5, 0xC000006D) == b""
    assert TSRequest(6, auth_info=b"").encode() == bytes.fromhex("3009a003020106a2020400")
    assert encode_ts_credentials("D", "u", "p") == CREDS


def test_ts_request_decode_vectors():
    assert TSRequest.decode(NEGO_V2) == TSRequest(2, [b"abc"])
    assert TSRequest.decode(PUBKEY_V6) == TSRequest(
        6, [b"NT"], pub_key_auth=b"\x01\x02\x03\x04", client_nonce=NONCE
    )
    assert TSRequest.decode(ERROR_V6).error_code == 0xC000006D
    # A positive (5-byte) errorCode reads the same.
    assert TSRequest.decode(bytes.fromhex("300ea003020106a407020500c000006d")).error_code == (
        0xC000006D
    )
    # Two NegoData items, long-form lengths.
    big = b"x" * 200
    two = TSRequest(3, [big, b"y"])
    assert TSRequest.decode(two.encode()) == two
    assert decode_ts_credentials(CREDS) == ("D", "u", "p")


def test_codec_matches_pyspnego_both_ways():
    ours = TSRequest(6, [b"token"], pub_key_auth=b"pk", client_nonce=NONCE)
    theirs = PyspnegoTSRequest(
        6, nego_tokens=NegoData(b"token"), pub_key_auth=b"pk", client_nonce=NONCE
    )
    assert ours.encode() == theirs.pack()
    back = PyspnegoTSRequest.unpack(ours.encode())
    assert (back.version, back.nego_tokens[0].nego_token, back.pub_key_auth) == (6, b"token", b"pk")
    err = PyspnegoTSRequest.unpack(error_ts_request(6, 0xC000006D))
    assert err.error_code & 0xFFFFFFFF == 0xC000006D
    creds = TSCredentials(TSPasswordCreds("EMU", "alice", "Pässwörd")).pack()
    assert decode_ts_credentials(creds) == ("EMU", "alice", "Pässwörd")
    assert encode_ts_credentials("EMU", "alice", "Pässwörd") == creds


def test_smart_card_credentials_refused():
    card = TSSmartCardCreds("1234", TSCspDataDetail(1, "card", "reader", "cont", "csp"))
    with pytest.raises(AuthFailure) as err:
        decode_ts_credentials(TSCredentials(card).pack())
    assert err.value.status == STATUS_LOGON_FAILURE


def test_ts_request_length():
    whole = TSRequest(6, [b"z" * 300]).encode()
    assert whole[:2] == b"\x30\x82"
    assert ts_request_length(b"") is None
    assert ts_request_length(whole[:1]) is None
    assert ts_request_length(whole[:3]) is None  # long form, length bytes incomplete
    assert ts_request_length(whole[:4]) == len(whole)
    assert ts_request_length(whole + b"next") == len(whole)
    assert ts_request_length(NEGO_V2) == len(NEGO_V2)
    for bad in (b"\x31\x00", b"\x30\x80", b"\x30\x85\x00\x00\x00\x00\x01"):
        with pytest.raises(AuthFailure):
            ts_request_length(bad)
    with pytest.raises(AuthFailure):
        ts_request_length(b"\x30\x84\x7f\xff\xff\xff")  # 2 GB: refused before buffering
    with pytest.raises(AuthFailure):
        ts_request_length(whole, limit=100)


# -- pyspnego's CredSSP client ------------------------------------------------------------


@pytest.mark.parametrize("version", [2, 3, 4, 5, 6])
def test_pyspnego_every_version(cert, version):
    acceptor = new_acceptor(cert, max_version=version)
    client = new_client()
    ex = run_pyspnego(client, acceptor, cert)
    final = ex.steps[-1]
    assert final.complete and acceptor.complete
    assert final.result.user == "alice" and not final.result.anonymous
    assert final.credentials == ("", "alice", "Secret1")
    # The client settled on the version we announced; the binding method follows it.
    assert client.get_extra_info("protocol_version") == version == acceptor.version
    pubkey_request = TSRequest.decode(ex.requests[-2])
    assert pubkey_request.pub_key_auth and pubkey_request.nego_tokens  # with the AUTHENTICATE
    assert (pubkey_request.client_nonce is not None) == (version >= 5)
    pubkey_reply = TSRequest.decode(ex.replies[-2])
    assert pubkey_reply.version == version and pubkey_reply.pub_key_auth
    assert pubkey_reply.nego_tokens  # SPNEGO's final negTokenResp with our mechListMIC
    assert final.token == b"" and ex.replies[0] and TSRequest.decode(ex.replies[0]).nego_tokens


# nmap's rdp-ntlm-info: version 0x60 (96) and a raw NTLM NEGOTIATE; it reads the
# CHALLENGE's target info out of our reply.
NMAP_NEGOTIATE = bytes.fromhex(
    "30 37 A0 03 02 01 60 A1 30 30 2E 30 2C A0 2A 04 28"
    "4e 54 4c 4d 53 53 50 00 01 00 00 00 B7 82 08 E2 00 00 00 00 00 00 00 00"
    "00 00 00 00 00 00 00 00 0A 00 63 45 00 00 00 0F"
)


def test_nmap_rdp_ntlm_info_probe(cert):
    acceptor = new_acceptor(cert, netbios_name="HOMESERVER", netbios_domain="WORKGROUP")
    step = acceptor.step(NMAP_NEGOTIATE)
    assert acceptor.client_version == 96 and acceptor.version == 6
    reply = TSRequest.decode(step.token)
    assert reply.version == 6 and len(reply.nego_tokens) == 1
    challenge = reply.nego_tokens[0]
    assert challenge.startswith(b"NTLMSSP\x00\x02\x00\x00\x00")  # raw, as asked
    assert "HOMESERVER".encode("utf-16le") in challenge


def test_pyspnego_domain_user(cert):
    acceptor = new_acceptor(cert)
    ex = run_pyspnego(new_client("EMU\\Bob", "Hunter2"), acceptor, cert)
    assert ex.steps[-1].credentials == ("EMU", "Bob", "Hunter2")
    assert (ex.steps[-1].result.user, ex.steps[-1].result.domain) == ("Bob", "EMU")


@pytest.mark.parametrize("version", [3, 6])
def test_pyspnego_wrong_password_gets_error_code(cert, version):
    acceptor = new_acceptor(cert, max_version=version)
    client = new_client("alice", "wrong")
    with pytest.raises(AuthFailure) as err:
        run_pyspnego(client, acceptor, cert)
    assert err.value.status == STATUS_LOGON_FAILURE
    assert len(err.value.exchange.steps) == 1  # failed on the AUTHENTICATE round
    assert acceptor.result is None and acceptor.attempted_user == "alice"
    # The errorCode TSRequest is what the client reads as the logon failure.
    tls = err.value.tls
    tls.send(acceptor.error_reply(err.value.status))
    # pyspnego maps errorCode -1073741715 (the signed form of 0xC000006D) to this class;
    # a 5-byte positive INTEGER would not map (nor would FreeRDP 2.x read it).
    with pytest.raises(InvalidCredentialError):
        client.step(tls.pending())
    with pytest.raises(AuthFailure):  # the acceptor stays failed
        acceptor.step(err.value.exchange.requests[-1])


@pytest.mark.parametrize("version", [2, 5])
def test_wrong_password_without_error_code(cert, version):
    acceptor = new_acceptor(cert, max_version=version)
    with pytest.raises(AuthFailure) as err:
        run_pyspnego(new_client("alice", "wrong"), acceptor, cert)
    assert err.value.status == STATUS_LOGON_FAILURE
    assert acceptor.error_reply(err.value.status) == b""  # just close


def test_unknown_user(cert):
    with pytest.raises(AuthFailure) as err:
        run_pyspnego(new_client("mallory", "Secret1"), new_acceptor(cert), cert)
    assert err.value.status == STATUS_LOGON_FAILURE


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def _tamper_request(index: int, field_name: str, offset: int):
    def mutate(n: int, request: bytes) -> bytes:
        if n != index:
            return request
        req = TSRequest.decode(request)
        setattr(req, field_name, _flip(getattr(req, field_name), offset))
        return req.encode()

    return mutate


@pytest.mark.parametrize("version", [2, 6])
@pytest.mark.parametrize("offset", [0, 15, 16, 40])  # signature, then sealed key/hash
def test_tampered_pub_key_auth(cert, version, offset):
    acceptor = new_acceptor(cert, max_version=version)
    with pytest.raises(AuthFailure) as err:
        run_pyspnego(
            new_client(), acceptor, cert, mutate=_tamper_request(1, "pub_key_auth", offset)
        )
    assert err.value.status == STATUS_LOGON_FAILURE
    assert err.value.exchange.steps[0].complete is False and len(err.value.exchange.steps) == 1


def test_tampered_client_nonce(cert):
    with pytest.raises(AuthFailure) as err:
        run_pyspnego(
            new_client(), new_acceptor(cert), cert, mutate=_tamper_request(1, "client_nonce", 3)
        )
    assert err.value.status == STATUS_LOGON_FAILURE
    assert "does not match" in err.value.detail


def test_missing_client_nonce_on_v6(cert):
    def drop_nonce(n: int, request: bytes) -> bytes:
        if n == 1:
            req = TSRequest.decode(request)
            req.client_nonce = None
            return req.encode()
        return request

    with pytest.raises(AuthFailure) as err:
        run_pyspnego(new_client(), new_acceptor(cert), cert, mutate=drop_nonce)
    assert err.value.status == STATUS_INVALID_PARAMETER


@pytest.mark.parametrize("version", [2, 6])
def test_client_bound_to_another_certificate(cert, other_cert, version):
    # A man in the middle: the client's TLS ended at other_cert, ours is cert.
    acceptor = CredSSPAcceptor(lookup, cert.public_key, max_version=version)
    with pytest.raises(AuthFailure) as err:
        run_pyspnego(new_client(), acceptor, other_cert)
    assert err.value.status == STATUS_LOGON_FAILURE
    assert "does not match the server key" in err.value.detail


def test_client_rejects_a_wrong_server_answer(cert):
    # The other direction: a reply bound to the wrong key makes the client refuse.
    acceptor = new_acceptor(cert, max_version=2)
    tls = MemoryTLSServer(cert)
    client = new_client()
    in_token, buf = None, b""
    for _ in range(10):
        buf += tls.receive(client.step(in_token) or b"")
        if buf:
            step = acceptor.step(buf)
            buf = b""
            token = step.token
            if step.result is not None:  # the pubKeyAuth reply: corrupt the echoed key
                req = TSRequest.decode(token)
                req.pub_key_auth = _flip(req.pub_key_auth, 20)
                token = req.encode()
            tls.send(token)
            if step.result is not None:
                with pytest.raises(SpnegoError):
                    client.step(tls.pending())
                return
        in_token = tls.pending()
    raise AssertionError("never reached the pubKeyAuth reply")


def _replace_credentials(client, domain, user, password):
    client._ts_credential = TSCredentials(TSPasswordCreds(domain, user, password))  # noqa: SLF001


@pytest.mark.parametrize(
    "creds",
    [
        ("", "alice", "Secret2"),  # another password
        ("", "bob", "Hunter2"),  # another user, with that user's password
        ("", "carol", "Secret1"),  # another user whose password is the same
        ("", "", ""),  # restricted-admin style empty credentials
        ("", "alice", ""),
    ],
)
def test_ts_credentials_must_match_the_ntlm_logon(cert, creds):
    client = new_client()
    _replace_credentials(client, *creds)
    with pytest.raises(AuthFailure) as err:
        run_pyspnego(client, new_acceptor(cert), cert)
    assert err.value.status == STATUS_LOGON_FAILURE
    assert len(err.value.exchange.steps) == 2  # NTLM and pubKeyAuth were fine


def test_ts_credentials_user_forms(cert):
    client = new_client()
    _replace_credentials(client, "EMU", "ALICE", "Secret1")  # case differs: same account
    ex = run_pyspnego(client, new_acceptor(cert), cert)
    assert ex.steps[-1].credentials == ("EMU", "ALICE", "Secret1")


def _record(cert) -> list[bytes]:
    """Plaintext TSRequests of a successful exchange against a deterministic acceptor."""
    acceptor = new_acceptor(cert, challenge=FIXED_CHALLENGE)
    return run_pyspnego(new_client(), acceptor, cert).requests


def _replayed(cert, requests: list[bytes]) -> CredSSPAcceptor:
    acceptor = new_acceptor(cert, challenge=FIXED_CHALLENGE)
    for request in requests:
        acceptor.step(request)
    return acceptor


def test_replay_against_same_challenge_is_deterministic(cert):
    requests = _record(cert)
    assert len(requests) == 3
    assert _replayed(cert, requests).complete


def test_pub_key_auth_in_its_own_request(cert):
    # Tolerated: AUTHENTICATE alone, then pubKeyAuth (MS-CSSP wants them together).
    first, auth, creds = _record(cert)
    req = TSRequest.decode(auth)
    acceptor = new_acceptor(cert, challenge=FIXED_CHALLENGE)
    acceptor.step(first)
    mid = acceptor.step(TSRequest(6, req.nego_tokens).encode())
    assert mid.result is not None and not mid.complete
    assert (
        TSRequest.decode(mid.token).nego_tokens and TSRequest.decode(mid.token).pub_key_auth is None
    )
    reply = acceptor.step(
        TSRequest(6, pub_key_auth=req.pub_key_auth, client_nonce=req.client_nonce).encode()
    )
    assert (
        TSRequest.decode(reply.token).pub_key_auth and not TSRequest.decode(reply.token).nego_tokens
    )
    assert acceptor.step(creds).complete


def test_out_of_order_and_after_completion(cert):
    first, auth, creds = _record(cert)
    acceptor = _replayed(cert, [first, auth, creds])
    with pytest.raises(AuthFailure):
        acceptor.step(creds)
    for sequence in ([creds], [first, creds], [first, first], [auth]):
        with pytest.raises(AuthFailure):
            _replayed(cert, sequence)
    # authInfo alongside the pubKeyAuth, and a client errorCode, are refused.
    req = TSRequest.decode(auth)
    req.auth_info = b"x" * 40
    with pytest.raises(AuthFailure):
        _replayed(cert, [first, req.encode()])
    with pytest.raises(AuthFailure) as err:
        _replayed(cert, [first, TSRequest(6, error_code=0xC0000022).encode()])
    assert err.value.status == 0xC0000022


def test_garbage_is_auth_failure_only(cert):
    first, auth, creds = _record(cert)
    rng = random.Random(4)
    samples = [b"", b"\x30", b"\x30\x00", b"\x30\x80\x00\x00", b"\x02\x01\x06", b"\xff" * 64]
    samples += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(300)]
    samples += [first[:n] for n in range(len(first))]
    samples += [_flip(first, i) for i in range(len(first))]
    samples += [first + b"\x00", TSRequest(-1, [b"x"]).encode(), TSRequest(6).encode()]
    for sample in samples:
        try:
            new_acceptor(cert, challenge=FIXED_CHALLENGE).step(sample)
        except AuthFailure:
            pass
    # Mutations of the later rounds, each into an acceptor that got the earlier ones.
    for index, message in ((1, auth), (2, creds)):
        earlier = [first, auth][:index]
        variants = [message[:n] for n in range(0, len(message), 7)]
        variants += [_flip(message, i) for i in range(len(message))]
        accepted = 0
        for variant in variants:
            acceptor = _replayed(cert, earlier)
            try:
                acceptor.step(variant)
                accepted += 1
            except AuthFailure:
                pass
        # Everything sealed or MIC-covered is checked. What passes: the TSRequest
        # version byte (read from the first request only) and the client's
        # negState in SPNEGO, which nothing authenticates (as on Windows).
        assert accepted <= 8, (index, accepted)


# -- impacket's rdp_check.py ---------------------------------------------------------------


def _rdp_check_path() -> Path | None:
    """impacket's examples/rdp_check.py as installed by pip: beside this interpreter, beside
    the interpreter impacket was installed for (a venv over system packages), or on PATH.
    Only a Python file will do: pyenv's shims of the same name are shell scripts."""
    import impacket

    # PREFIX/lib/pythonX.Y/site-packages/impacket/__init__.py -> PREFIX
    impacket_prefix = Path(impacket.__file__).resolve().parents[4]
    candidates = [Path(d) / "rdp_check.py" for d in (
        sysconfig.get_path("scripts"), os.path.dirname(sys.executable), impacket_prefix / "bin")]
    candidates += [Path(p) for p in map(shutil.which, ("rdp_check.py", "impacket-rdp_check"))
                   if p]
    for path in candidates:
        if path.is_file() and b"python" in path.read_bytes()[:200].split(b"\n")[0]:
            return path
    return None


RDP_CHECK = _rdp_check_path()
needs_rdp_check = pytest.mark.skipif(
    RDP_CHECK is None, reason="impacket's rdp_check.py not installed"
)


@pytest.fixture(scope="module")
def rdp_check_module():
    """rdp_check.py's module-level TSRequest/TSCredentials classes (its main is not run)."""
    assert RDP_CHECK is not None
    loader = importlib.machinery.SourceFileLoader("impacket_rdp_check", str(RDP_CHECK))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@needs_rdp_check
def test_rdp_check_structures_both_ways(rdp_check_module):
    m = rdp_check_module
    theirs = m.TSRequest()
    theirs["NegoData"] = b"NTLMSSP\x00\x01"
    theirs["pubKeyAuth"] = b"P" * 300
    ours = TSRequest(2, [b"NTLMSSP\x00\x01"], pub_key_auth=b"P" * 300)
    assert theirs.getData() == ours.encode()
    assert TSRequest.decode(theirs.getData()) == ours
    # rdp_check's parser reads negoTokens or pubKeyAuth, not both in one reply (it
    # loses its place after negoTokens); raw NTLM gets them in separate replies.
    challenge = m.TSRequest(TSRequest(6, [b"C" * 200]).encode())
    assert (challenge["Version"], challenge["NegoData"]) == (6, b"C" * 200)
    pubkey = m.TSRequest(TSRequest(6, pub_key_auth=b"K" * 300).encode())
    assert pubkey["pubKeyAuth"] == b"K" * 300
    pw = m.TSPasswordCreds()
    pw["domainName"], pw["userName"], pw["password"] = "D", "u", "p"
    tsc = m.TSCredentials()
    tsc["credType"], tsc["credentials"] = 1, pw.getData()
    assert tsc.getData() == CREDS == encode_ts_credentials("D", "u", "p")


X224_CONFIRM_HYBRID = bytes.fromhex("030000130ed000001234000200080002000000")


def _serve_once(listener: socket.socket, cert: Cert, acceptor: CredSSPAcceptor, outcome: dict):
    conn, _ = listener.accept()
    conn.settimeout(10)
    sock: socket.socket = conn
    try:
        request = read_tpkt(conn)  # X.224 Connection Request with RDP_NEG_REQ
        outcome["requested_protocols"] = struct.unpack("<I", request[-4:])[0]
        conn.sendall(X224_CONFIRM_HYBRID)
        sock = tls = server_context(cert).wrap_socket(conn, server_side=True)
        buf = b""
        while not acceptor.complete:
            data = tls.recv(65536)
            if not data:
                break
            buf += data
            while (size := ts_request_length(buf)) is not None and size <= len(buf):
                request, buf = buf[:size], buf[size:]
                step = acceptor.step(request)
                outcome.setdefault("steps", []).append(step)
                if step.token:
                    tls.sendall(step.token)
    except AuthFailure as err:
        # Version 2 has no errorCode: Windows closes (the RDP layer decides; here we close).
        outcome["failure"] = err
    except Exception as err:  # pragma: no cover - reported by the test
        outcome["error"] = err
    finally:
        sock.close()


def run_rdp_check(monkeypatch, caplog, cert, target: str, acceptor: CredSSPAcceptor) -> dict:
    import impacket.examples.utils as impacket_utils

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    port = listener.getsockname()[1]
    outcome: dict = {}
    server = threading.Thread(target=_serve_once, args=(listener, cert, acceptor, outcome))
    server.start()

    def connect(host, _port, ipv6=False):  # rdp_check always dials 3389
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.settimeout(None)  # pyOpenSSL wants a blocking socket...
        timeout = struct.pack("ll", 10, 0)  # ...but never one that hangs the test run
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeout)
        return sock

    monkeypatch.setattr(impacket_utils, "get_connected_socket", connect)
    monkeypatch.setattr(sys, "argv", ["rdp_check.py", target])
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with caplog.at_level(logging.INFO):
            runpy.run_path(str(RDP_CHECK), run_name="__main__")
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
        server.join(15)
        listener.close()
    assert "error" not in outcome, outcome.get("error")
    outcome["messages"] = [r.getMessage() for r in caplog.records]
    return outcome


@needs_rdp_check
@pytest.mark.parametrize("max_version", [2, 6])
def test_rdp_check_access_granted(monkeypatch, caplog, cert, max_version):
    acceptor = new_acceptor(cert, max_version=max_version)
    outcome = run_rdp_check(monkeypatch, caplog, cert, "alice:Secret1@127.0.0.1", acceptor)
    assert outcome["requested_protocols"] == 3  # PROTOCOL_SSL | PROTOCOL_HYBRID
    assert "Access Granted" in outcome["messages"]
    final = outcome["steps"][-1]
    assert final.complete and final.result.user == "alice"
    assert final.credentials == ("", "alice", "Secret1")
    assert acceptor.client_version == 2 and acceptor.version == 2  # rdp_check speaks v2 only
    assert len(outcome["steps"]) == 3


@needs_rdp_check
def test_rdp_check_with_domain(monkeypatch, caplog, cert):
    acceptor = new_acceptor(cert)
    outcome = run_rdp_check(monkeypatch, caplog, cert, "EMU/bob:Hunter2@127.0.0.1", acceptor)
    assert "Access Granted" in outcome["messages"]
    assert outcome["steps"][-1].credentials == ("EMU", "bob", "Hunter2")


@needs_rdp_check
def test_rdp_check_wrong_password(monkeypatch, caplog, cert):
    acceptor = new_acceptor(cert)
    outcome = run_rdp_check(monkeypatch, caplog, cert, "alice:Wrong1@127.0.0.1", acceptor)
    assert outcome["failure"].status == STATUS_LOGON_FAILURE
    assert len(outcome["steps"]) == 1  # the CHALLENGE round only
    assert "Access Granted" not in outcome["messages"]


@needs_rdp_check
def test_rdp_check_against_another_certificate(monkeypatch, caplog, cert, other_cert):
    # rdp_check seals the key of the certificate it saw; the acceptor expects another.
    acceptor = CredSSPAcceptor(lookup, other_cert.public_key)
    outcome = run_rdp_check(monkeypatch, caplog, cert, "alice:Secret1@127.0.0.1", acceptor)
    assert outcome["failure"].status == STATUS_LOGON_FAILURE
    assert "does not match the server key" in outcome["failure"].detail
    assert "Access Granted" not in outcome["messages"]
