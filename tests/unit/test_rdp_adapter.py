"""The Twisted adapter on a task.Clock: a connection that stalls before logon (no X.224,
mid-TLS, after X.224) is closed at the pre-logon timeout and leaves nothing behind; a
screen is written only as fast as the transport drains (the adapter is its producer)."""

from __future__ import annotations

from typing import Any

from twisted.internet.testing import StringTransport

from protocols.rdp import gcc, mcs, pdu
from protocols.rdp.tls_alert import RecordWatcher
from protocols.rdp.twisted import RDPFactory
from protocols.rdp.x224 import PROTOCOL_HYBRID, PROTOCOL_SSL, connection_request, x224_data
from tests.unit.test_rdp_connection import TIMEOUT, USERS, Host

BUFFER = 64 * 1024  # Twisted's FileDescriptor.bufferSize: a producer is paused past it


class TLSLayer:
    """Twisted's TLS protocol between the transport and the adapter: the adapter may feed
    it bytes that came before TLS started, and puts a record watcher beneath it."""

    def __init__(self, transport: Transport) -> None:
        self.transport: Any = transport
        self.received = b""

    def dataReceived(self, data: bytes) -> None:  # noqa: N802 (Twisted's name)
        self.received += data


class Transport(StringTransport):
    """A TCP transport as the adapter sees it: startTLS, abortConnection, and a streaming
    producer paused when more than BUFFER bytes wait (as FileDescriptor.write does)."""

    def __init__(self) -> None:
        super().__init__()
        self.tls_started = False
        self.aborted = False

    def startTLS(self, context: Any) -> None:
        self.tls_started = True  # what follows is the decrypted stream
        self.protocol = TLSLayer(self)  # as Twisted's startTLS puts TLSMemoryBIOProtocol

    def abortConnection(self) -> None:
        self.aborted = True
        self.disconnecting = True

    def write(self, data: bytes) -> None:
        super().write(data)
        if self.producer is not None and self.streaming and len(self.value()) > BUFFER:
            self.producer.pauseProducing()

    def drain(self) -> bytes:
        """The peer reads everything: the buffer empties and the producer resumes."""
        data = self.value()
        self.clear()
        if self.producer is not None:
            self.producer.resumeProducing()
        return data


def connect(host: Host) -> tuple[Any, Transport]:
    protocol = RDPFactory(host.config, tls_context=object()).buildProtocol(None)
    transport = Transport()
    protocol.makeConnection(transport)
    return protocol, transport


def lose(protocol: Any) -> None:
    protocol.connectionLost(None)


def assert_nothing_left(host: Host, protocol: Any) -> None:
    assert host.clock.getDelayedCalls() == []
    assert host.engine.sessions() == [] and host.events.query() == []
    assert protocol.core.close_requested and not protocol.core.output_pending


def test_a_client_that_sends_nothing_is_cut_at_the_timeout():
    host = Host("whs")
    protocol, transport = connect(host)
    assert transport.producer is protocol
    host.clock.advance(TIMEOUT - 0.1)
    assert not transport.aborted
    host.clock.advance(0.1)
    assert transport.aborted and transport.producer is None
    lose(protocol)
    assert_nothing_left(host, protocol)
    assert host.engine.counters["connections:rdp"] == 1  # counted as a connection, no more


def test_a_tls_handshake_that_never_completes_is_cut_at_the_timeout():
    """After the Connection Confirm the adapter starts TLS; the client's ClientHello (or
    the rest of it) never comes, so the TLS layer hands the core nothing."""
    host = Host("server-2022", credssp=lambda: object())  # NLA edition: CredSSP selected
    protocol, transport = connect(host)
    protocol.dataReceived(connection_request(PROTOCOL_SSL, b"Cookie: mstshash=x"))
    assert transport.tls_started and transport.value()  # the Connection Confirm went first
    host.clock.advance(TIMEOUT)
    assert transport.aborted and transport.producer is None
    lose(protocol)
    assert_nothing_left(host, protocol)


def test_a_client_silent_after_x224_and_tls_is_cut_at_the_timeout():
    host = Host("whs")
    protocol, transport = connect(host)
    protocol.dataReceived(connection_request(PROTOCOL_SSL, b"Cookie: mstshash=x"))
    protocol.dataReceived(x224_data(mcs.connect_initial(gcc.conference_create_request(
        gcc.client_data_blocks()))))  # then nothing: no Erect Domain, no Client Info
    host.clock.advance(TIMEOUT)
    assert transport.aborted
    lose(protocol)
    assert_nothing_left(host, protocol)


def logon(protocol: Any, user: str, width: int, height: int, bpp: int) -> None:
    send = protocol.dataReceived
    send(connection_request(PROTOCOL_SSL, b"Cookie: mstshash=x"))
    blocks = gcc.client_data_blocks(width=width, height=height, bpp=bpp, early_flags=1,
                                    name="WS1")
    send(x224_data(mcs.connect_initial(gcc.conference_create_request(blocks))))
    send(x224_data(mcs.erect_domain_request()) + x224_data(mcs.attach_user_request()))
    user_id = mcs.IO_CHANNEL + 1  # no static channels: the user channel follows I/O
    for channel in (user_id, mcs.IO_CHANNEL):
        send(x224_data(mcs.channel_join_request(user_id, channel)))

    def io(payload: bytes) -> None:
        send(x224_data(mcs.send_data_request(user_id, mcs.IO_CHANNEL, payload)))

    io(pdu.client_info(user, USERS[user]))
    io(pdu.confirm_active(pdu.server_capabilities(width, height, bpp), source=user_id))
    for message in (pdu.synchronize(), pdu.control(pdu.CTRLACTION_COOPERATE),
                    pdu.control(pdu.CTRLACTION_REQUEST_CONTROL), pdu.font_list()):
        io(message)


def test_a_screen_is_written_only_as_the_transport_drains():
    """2048 x 2048 at 32 bpp: 16 MiB of bitmaps, never more than a buffer's worth queued."""
    host = Host("whs")
    protocol, transport = connect(host)
    logon(protocol, "alice", 2048, 2048, 32)
    assert host.engine.sessions()[0].state == "active"
    total, most = 0, 0
    while True:
        most = max(most, len(transport.value()))
        pending = protocol.core.output_pending
        chunk = transport.drain()
        total += len(chunk)
        if not pending:
            break
    assert most < BUFFER + 64 * 1024  # the mark plus at most one CHUNK of PDUs
    assert total > 2048 * 2048 * 4  # the whole desktop went out in the end
    # A client leaving while paused: the rest of the screen is dropped, the close is clean.
    protocol.dataReceived(x224_data(mcs.disconnect_provider_ultimatum()))
    assert transport.producer is None and transport.disconnecting
    lose(protocol)
    assert host.clock.getDelayedCalls() == []


def test_leaving_mid_screen_unregisters_and_drops_the_rest():
    host = Host("whs")
    protocol, transport = connect(host)
    logon(protocol, "alice", 8192, 8192, 32)  # 256 MiB of bitmaps
    assert protocol.core.output_pending and len(transport.value()) < BUFFER + 64 * 1024
    protocol.dataReceived(x224_data(mcs.disconnect_provider_ultimatum()))
    assert transport.producer is None and transport.disconnecting and not transport.aborted
    assert not protocol.core.output_pending
    lose(protocol)
    (session,) = host.engine.sessions("rdp")
    assert session.state == "disconnected"  # a logged-on session outlives its connection


def test_a_bare_client_hello_is_handed_to_the_tls_layer():
    host = Host("win10")
    protocol, transport = connect(host)
    hello = bytes.fromhex("16030100310100002d0301") + b"\x00" * 40
    protocol.dataReceived(hello)
    assert transport.tls_started and transport.value() == b""  # no X.224 answer
    assert transport.protocol.received == hello
    assert not transport.disconnecting
    lose(protocol)


def test_the_tls_records_are_watched_only_where_the_alert_may_be_sent():
    """The access_denied alert ends only a failed CredSSP logon: a TLS-only connection
    writes its records straight to the transport (nothing parses each screen's records);
    CredSSP selected, or TLS begun by a bare ClientHello, gets the watcher."""
    nla = dict(credssp=lambda: object())
    for edition, kw, opening, watched in [
            ("whs", {}, connection_request(PROTOCOL_SSL, b"Cookie: mstshash=x"), False),
            ("server-2022", nla, connection_request(PROTOCOL_SSL, b"Cookie: mstshash=x"),
             False),
            ("server-2022", nla,
             connection_request(PROTOCOL_SSL | PROTOCOL_HYBRID, b"Cookie: mstshash=x"), True),
            ("win10", nla, bytes.fromhex("16030100310100002d0301") + b"\x00" * 40, True)]:
        host = Host(edition, **kw)
        protocol, transport = connect(host)
        protocol.dataReceived(opening)
        assert transport.tls_started
        below_tls = transport.protocol.transport
        assert isinstance(below_tls, RecordWatcher) is watched, (edition, opening[:4])
        assert (protocol._records is not None) is watched
        lose(protocol)
