"""The RDP server certificate: generated once and kept, or given; CredSSP's public key."""

from __future__ import annotations


import pytest
from cryptography import x509

from protocols.auth.credssp import subject_public_key
from protocols.rdp import tls


def test_generated_on_first_run_then_reused(tmp_path):
    first = tls.load_or_create(None, None, "EMULATOR", tmp_path)
    assert (tmp_path / "rdp-tls.pem").stat().st_mode & 0o777 == 0o600
    again = tls.load_or_create(None, None, "EMULATOR", tmp_path)
    assert again == first
    cert = first.certificate
    assert cert.subject.rfc4514_string() == "CN=EMULATOR" and cert.issuer == cert.subject
    # CredSSP binds to the SubjectPublicKey: the same bytes the CredSSP module derives.
    assert first.public_key_bytes() == subject_public_key(first.cert_pem)


def test_given_files_win_and_the_key_may_sit_in_the_certificate_file(tmp_path):
    made = tls.generate("HOST")
    (tmp_path / "c.pem").write_bytes(made.cert_pem)
    (tmp_path / "k.pem").write_bytes(made.key_pem)
    (tmp_path / "both.pem").write_bytes(made.key_pem + made.cert_pem)
    assert tls.load_or_create(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"), "X") == made
    assert tls.load_or_create(str(tmp_path / "both.pem"), None, "X") == made
    with pytest.raises(ValueError):
        tls.load_or_create(str(tmp_path / "c.pem"), None, "X")  # no key anywhere
    assert isinstance(made.certificate, x509.Certificate)


def test_an_unwritable_directory_still_gets_a_certificate(tmp_path):
    # A file where the directory should be fails for root too (a chmod would not).
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    made = tls.load_or_create(None, None, "EMULATOR", blocker / "sub")
    assert made.certificate.subject.rfc4514_string() == "CN=EMULATOR"


# -- the certificate follows the computer name; 7-era hosts sign with SHA-1 -------------------

def test_a_new_computer_name_gets_its_own_certificate_over_the_same_key(tmp_path):
    first = tls.load_or_create(None, None, "EMULATOR", tmp_path)
    on_disk = (tmp_path / "rdp-tls.pem").read_bytes()
    renamed = tls.load_or_create(None, None, "DESKTOP-ABC123", tmp_path)
    assert renamed != first
    assert renamed.certificate.subject.rfc4514_string() == "CN=DESKTOP-ABC123"
    assert renamed.certificate.serial_number != first.certificate.serial_number
    # One key for the run (a lab's hosts share it); the file is not rewritten per name.
    assert renamed.key_pem == first.key_pem
    assert (tmp_path / "rdp-tls.pem").read_bytes() == on_disk
    # The same bytes every time: a client that trusted it keeps trusting it.
    assert tls.load_or_create(None, None, "DESKTOP-ABC123", tmp_path) == renamed
    assert tls.for_name(first, "DESKTOP-ABC123") == renamed
    assert tls.for_name(first, "EMULATOR") is first
    assert renamed.certificate.not_valid_after_utc == first.certificate.not_valid_after_utc


def test_a_renamed_certificate_serves_tls(tmp_path):
    from OpenSSL import SSL

    renamed = tls.for_name(tls.generate("BASE"), "LABHOST7", "sha1")
    assert renamed.certificate.signature_hash_algorithm.name == "sha1"
    ctx = renamed.context_factory().getContext()  # checks the key matches the certificate
    assert isinstance(ctx, SSL.Context)


def test_sha1_certificates_for_7_era_editions_are_kept_beside_the_sha256_one(tmp_path):
    sha1 = tls.load_or_create(None, None, "EMULATOR", tmp_path, hash_name="sha1")
    assert sha1.certificate.signature_hash_algorithm.name == "sha1"
    sha256 = tls.load_or_create(None, None, "EMULATOR", tmp_path)
    assert sha256.certificate.signature_hash_algorithm.name == "sha256"
    assert tls.load_or_create(None, None, "EMULATOR", tmp_path, hash_name="sha1") == sha1
    assert sha1.public_key_bytes() == subject_public_key(sha1.cert_pem)
    with pytest.raises(ValueError):
        tls.generate("X", "md5")


# -- the TLS context per edition ----------------------------------------------------------------

def _handshake(profile, *, client_versions=("1.0", "1.2"), client_ciphers=b"ALL:@SECLEVEL=0"):
    from OpenSSL import SSL

    versions = {"1.0": SSL.TLS1_VERSION, "1.1": SSL.TLS1_1_VERSION, "1.2": SSL.TLS1_2_VERSION}
    server = SSL.Connection(CERT.context_factory(profile).getContext())
    server.set_accept_state()
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(versions[client_versions[0]])
    ctx.set_max_proto_version(versions[client_versions[1]])
    ctx.set_cipher_list(client_ciphers)
    client = SSL.Connection(ctx)
    client.set_connect_state()
    hello = None
    for _ in range(8):
        for a, b in ((client, server), (server, client)):
            try:
                a.do_handshake()
            except SSL.WantReadError:
                pass
            try:
                data = a.bio_read(65536)
            except SSL.WantReadError:
                continue
            if a is server and hello is None:
                hello = data
            b.bio_write(data)
    return server, client, hello


CERT = tls.generate("EMULATOR")


def _profile(edition):
    from emulator.core.editions import get_edition

    ed = get_edition(edition)
    return tls.TLSProfile(ed.rdp_tls_versions, ed.rdp_tls_ciphers, ed.rdp_tls_curves)


def test_win7_serves_tls_1_0_only():
    from OpenSSL import SSL

    server, _, _ = _handshake(_profile("win7"))
    assert server.get_protocol_version_name() == "TLSv1"
    with pytest.raises(SSL.Error):
        _handshake(_profile("win7"), client_versions=("1.2", "1.2"))


def test_win10_serves_tls_1_0_to_1_2_no_1_3():
    for low, high, name in (("1.0", "1.0", "TLSv1"), ("1.1", "1.1", "TLSv1.1"),
                            ("1.0", "1.2", "TLSv1.2")):
        server, _, _ = _handshake(_profile("win10"), client_versions=(low, high))
        assert server.get_protocol_version_name() == name


def test_the_server_order_wins_and_the_session_id_has_32_bytes():
    # The client prefers AES128-SHA; SChannel's order puts ECDHE-RSA-AES256-SHA first.
    server, _, hello = _handshake(_profile("win7"),
                                  client_ciphers=b"AES128-SHA:ECDHE-RSA-AES256-SHA:@SECLEVEL=0")
    assert server.get_cipher_name() == "ECDHE-RSA-AES256-SHA"
    # ServerHello: record(5) handshake type(1) length(3) version(2) random(32), id length.
    assert hello[0] == 0x16 and hello[5] == 0x02 and hello[43] == 32


def test_7_era_curves_are_the_nist_ones_and_dhe_still_works():
    server, _, _ = _handshake(_profile("win7"), client_ciphers=b"ECDHE-RSA-AES128-SHA:@SECLEVEL=0")
    assert server.get_group_name() == "secp256r1"
    server, _, _ = _handshake(_profile("win7"), client_ciphers=b"DHE-RSA-AES128-SHA:@SECLEVEL=0")
    assert server.get_cipher_name() == "DHE-RSA-AES128-SHA"
    with pytest.raises(ValueError):
        tls.TLSProfile(("1.0", "1.2"), ("AES128-SHA",), ("X9000",))
    with pytest.raises(ValueError):
        tls.TLSProfile(("1.2", "1.0"), ("AES128-SHA",))
