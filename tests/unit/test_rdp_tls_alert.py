"""The crafted access-denied alert, judged by a real TLS stack (OpenSSL via pyOpenSSL)."""

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL

from protocols.rdp import tls
from protocols.rdp.tls_alert import CIPHERS, access_denied_record, records_in

CERT = tls.generate("EMULATOR")


def pair(cipher):
    server_ctx = SSL.Context(SSL.TLS_METHOD)
    server_ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
    server_ctx.set_cipher_list(cipher.encode())
    server_ctx.use_privatekey(serialization.load_pem_private_key(CERT.key_pem, None))
    server_ctx.use_certificate(x509.load_pem_x509_certificate(CERT.cert_pem))
    client_ctx = SSL.Context(SSL.TLS_METHOD)
    client_ctx.set_cipher_list(b"ALL:@SECLEVEL=0")
    server, client = SSL.Connection(server_ctx), SSL.Connection(client_ctx)
    server.set_accept_state()
    client.set_connect_state()
    for _ in range(10):
        for a, b in ((client, server), (server, client)):
            try:
                a.do_handshake()
            except SSL.WantReadError:
                pass
            try:
                b.bio_write(a.bio_read(65536))
            except SSL.WantReadError:
                pass
    return server, client


def flush(src, dst):
    try:
        dst.bio_write(src.bio_read(1 << 20))
    except SSL.WantReadError:
        pass


@pytest.mark.parametrize("cipher", CIPHERS)
@pytest.mark.parametrize("records", [0, 1, 3])
def test_a_real_client_reads_the_alert_as_access_denied(cipher, records):
    server, client = pair(cipher)
    assert server.get_cipher_name() == cipher
    for i in range(records):  # what the server sent before failing: the client reads it
        server.send(b"TSRequest %d" % i)
        flush(server, client)
        assert client.recv(100) == b"TSRequest %d" % i
    record = access_denied_record(cipher, server.master_key(), server.client_random(),
                                  server.server_random(), 1 + records)
    client.bio_write(record)
    with pytest.raises(SSL.Error, match="access denied"):
        client.recv(100)


def test_a_wrong_sequence_number_is_not_accepted():
    cipher = CIPHERS[0]
    server, client = pair(cipher)
    record = access_denied_record(cipher, server.master_key(), server.client_random(),
                                  server.server_random(), 7)
    client.bio_write(record)
    with pytest.raises(SSL.Error) as err:
        client.recv(100)
    assert "access denied" not in str(err.value)


def test_other_ciphers_are_refused_and_records_are_counted():
    with pytest.raises(ValueError):
        access_denied_record("AES128-SHA", b"", b"", b"", 1)
    assert [records_in(n) for n in (0, 1, 16384, 16385, 40000)] == [1, 1, 1, 2, 3]
