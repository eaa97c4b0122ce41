"""The crafted access-denied alert, judged by a real TLS stack (OpenSSL via pyOpenSSL), on
every protocol version and suite an edition serves, with the sequence number and TLS 1.0's
chained IV read off the server's own records by RecordWatcher."""

import pytest
from OpenSSL import SSL

from emulator.core.editions import EDITIONS, TLS_CIPHERS_WIN7, TLS_CIPHERS_WIN10
from protocols.rdp import tls
from protocols.rdp.tls_alert import (
    CIPHERS,
    VERSIONS,
    RecordWatcher,
    access_denied_record,
    suite,
    supported,
)

CERT = tls.generate("EMULATOR")
RSA_SUITES = sorted({c for c in TLS_CIPHERS_WIN7 + TLS_CIPHERS_WIN10 + CIPHERS
                     if "ECDSA" not in c})
PROTOCOLS = {"1.0": SSL.TLS1_VERSION, "1.1": SSL.TLS1_1_VERSION, "1.2": SSL.TLS1_2_VERSION}


class Wire:
    """What the server writes, through the watcher, to a list."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.chunks.append(data)


def pair(cipher, version="1.2", etm_offered=True):
    profile = tls.TLSProfile((version, version), (cipher,))
    server = SSL.Connection(CERT.context_factory(profile).getContext())
    client_ctx = SSL.Context(SSL.TLS_METHOD)
    client_ctx.set_cipher_list(b"ALL:@SECLEVEL=0")
    if not etm_offered:
        client_ctx.set_options(tls.OP_NO_ENCRYPT_THEN_MAC)
    client = SSL.Connection(client_ctx)
    server.set_accept_state()
    client.set_connect_state()
    wire = Wire()
    watcher = RecordWatcher(wire)
    for _ in range(10):
        try:
            client.do_handshake()
        except SSL.WantReadError:
            pass
        flush(client, server)
        try:
            server.do_handshake()
        except SSL.WantReadError:
            pass
        to_client(server, client, watcher)
    return server, client, watcher


def flush(src, dst):
    try:
        dst.bio_write(src.bio_read(1 << 20))
    except SSL.WantReadError:
        pass


def to_client(server, client, watcher):
    try:
        data = server.bio_read(1 << 20)
    except SSL.WantReadError:
        return
    watcher.write(data)
    client.bio_write(data)


def alert(server, watcher):
    return access_denied_record(server.get_cipher_name(), server.master_key(),
                                server.client_random(), server.server_random(),
                                watcher.sequence,
                                version=VERSIONS[server.get_protocol_version_name()],
                                previous_block=watcher.last_block)


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
@pytest.mark.parametrize("cipher", RSA_SUITES)
@pytest.mark.parametrize("records", [0, 2])
def test_a_real_client_reads_the_alert_as_access_denied(cipher, version, records):
    if version != "1.2" and ("GCM" in cipher or cipher.endswith(("SHA256", "SHA384"))):
        pytest.skip("a TLS 1.2-only suite")
    server, client, watcher = pair(cipher, version)
    assert server.get_cipher_name() == cipher
    assert server.get_protocol_version_name() == {"1.0": "TLSv1", "1.1": "TLSv1.1",
                                                  "1.2": "TLSv1.2"}[version]
    for i in range(records):  # what the server sent before failing: the client reads it
        server.send(b"TSRequest %d" % i)
        to_client(server, client, watcher)
        assert client.recv(100) == b"TSRequest %d" % i
    client.bio_write(alert(server, watcher))
    with pytest.raises(SSL.Error, match="access denied"):
        client.recv(100)


def test_a_wrong_sequence_number_is_not_accepted():
    for cipher in ("ECDHE-RSA-AES128-GCM-SHA256", "AES128-SHA"):
        server, client, watcher = pair(cipher)
        record = access_denied_record(cipher, server.master_key(), server.client_random(),
                                      server.server_random(), watcher.sequence + 5)
        client.bio_write(record)
        with pytest.raises(SSL.Error) as err:
            client.recv(100)
        assert "access denied" not in str(err.value)


def test_tls_1_0_needs_the_chained_iv():
    server, client, watcher = pair("AES128-SHA", "1.0")
    server.send(b"x")
    to_client(server, client, watcher)
    client.recv(10)
    record = access_denied_record("AES128-SHA", server.master_key(), server.client_random(),
                                  server.server_random(), watcher.sequence, version=0x0301,
                                  previous_block=b"\x00" * 16)
    client.bio_write(record)
    with pytest.raises(SSL.Error) as err:
        client.recv(100)
    assert "access denied" not in str(err.value)


def test_the_watcher_counts_records_after_change_cipher_spec_across_writes():
    wire = Wire()
    watcher = RecordWatcher(wire)
    hello = b"\x16\x03\x03\x00\x04abcd"
    ccs = b"\x14\x03\x03\x00\x01\x01"
    finished = b"\x16\x03\x03\x00\x20" + bytes(range(32))
    data = b"\x17\x03\x03\x00\x10" + bytes(range(100, 116))
    stream = hello + ccs + finished + data
    for i in range(0, len(stream), 7):  # cut anywhere, as TCP writes are
        watcher.write(stream[i:i + 7])
    assert b"".join(wire.chunks) == stream
    assert watcher.sequence == 2 and watcher.last_block == bytes(range(100, 116))
    watcher.raw_write(b"\x15\x03\x03\x00\x02xx")  # the alert itself is not counted
    assert watcher.sequence == 2


def test_suites_without_an_alert_are_refused():
    for name in ("ECDHE-RSA-CHACHA20-POLY1305", "AES128-CCM", "DES-CBC3-SHA", "RC4-SHA"):
        assert not supported(name)
        with pytest.raises(ValueError):
            suite(name)
        with pytest.raises(ValueError):
            tls.TLSProfile(("1.2", "1.2"), (name,))
    assert suite("ECDHE-RSA-AES256-SHA384").mac == "sha384"
    assert suite("AES128-SHA").mac == "sha1" and suite("AES256-GCM-SHA384").gcm


def test_every_edition_serves_only_suites_the_alert_can_seal():
    for edition in EDITIONS.values():
        assert all(supported(c) for c in edition.rdp_tls_ciphers), edition.name
