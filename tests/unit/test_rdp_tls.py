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
