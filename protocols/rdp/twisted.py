"""The thin Twisted adapter: bytes between a TCP (then TLS) transport and the sans-IO core.

The adapter is the transport's streaming producer: a screen is taken from the core only
while the transport's write buffer is below its mark (Twisted pauses the producer past
64 KiB), so a client that does not read holds that much, not a frame."""

from __future__ import annotations

from typing import Any

from twisted.internet import protocol
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from protocols.rdp.connection import (
    ABORT,
    TLS_ALERT,
    RDPServerConfig,
    RDPServerConnection,
    StartTLS,
)
from protocols.rdp.tls_alert import VERSIONS, RecordWatcher, access_denied_record

log = Logger(namespace="rdp")

CHUNK = 16 * 1024  # screen bytes taken from the core per write


@implementer(IPushProducer)
class RDPProtocol(protocol.Protocol):
    def __init__(self, config: RDPServerConfig, tls_context: Any) -> None:
        self.config = config
        self.tls_context = tls_context
        self.core: RDPServerConnection | None = None
        self._closing = False
        self._paused = False  # the transport's write buffer is full
        self._records: RecordWatcher | None = None  # the server's TLS records, for the alert

    def connectionMade(self) -> None:
        transport: Any = self.transport
        peer = transport.getPeer()
        address = getattr(peer, "host", str(peer))
        self.core = RDPServerConnection(self.config, address=address,
                                        log=lambda line: log.info("{line}", line=line))
        self.core.on_output = self._flush  # timers and the engine's close hook
        transport.registerProducer(self, True)  # startTLS carries it over to the TLS layer

    # -- IPushProducer: the transport says when its write buffer fills and drains ---------------
    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._flush()

    def stopProducing(self) -> None:
        self._paused = True

    def dataReceived(self, data: bytes) -> None:
        assert self.core is not None  # connectionMade comes first
        self.core.receive_data(data)
        self._flush()

    def _flush(self) -> None:
        """Write what the core has; start TLS or close when it asks. Also called from the
        core's ``on_output`` (timers, the engine's close hook), possibly after the close."""
        core = self.core
        transport: Any = self.transport  # ITransport + ITLSTransport: startTLS, abortConnection
        if core is None or transport is None or self._closing:
            return
        self._write(transport, core.data_to_send(CHUNK))
        while core.output_pending and not self._paused and not core.close_requested:
            self._write(transport, core.data_to_send(CHUNK))  # a screen, as the buffer drains
        for event in core.events():
            if isinstance(event, StartTLS):
                if not core.close_requested:
                    self._start_tls(transport, core)
                continue
            self._write(transport, core.data_to_send())  # the ending: a screen is dropped
            self._closing = True
            transport.unregisterProducer()  # loseConnection waits for no producer
            if event.mode == TLS_ALERT:
                self._send_access_denied(transport)
            elif event.mode == ABORT:
                transport.abortConnection()
            else:
                transport.loseConnection()
            return

    def _start_tls(self, transport: Any, core: RDPServerConnection) -> None:
        """startTLS with the edition's context; where the connection may end with the
        alert (CredSSP), a watcher beneath the TLS layer reads the server's records; a bare
        ClientHello that opened the connection is handed to the TLS layer."""
        preface = core.tls_preface
        transport.startTLS(self.tls_context)
        tls_layer = transport.protocol  # TLSMemoryBIOProtocol, between transport and us
        if core.may_end_with_tls_alert:  # else every record written would be parsed for nothing
            self._records = tls_layer.transport = RecordWatcher(tls_layer.transport)
        core.tls_started()
        if preface:
            tls_layer.dataReceived(preface)

    def _write(self, transport: Any, out: bytes) -> None:
        if out:
            transport.write(out)

    def _send_access_denied(self, transport: Any) -> None:
        """The fatal alert SChannel ends a failed CredSSP v2 logon with, written beneath
        the TLS layer (which cannot be asked for it), after the records it has sent."""
        tls = transport.getHandle()  # the pyOpenSSL connection
        records = self._records
        if records is None or records.sequence is None:  # cannot happen: CredSSP ran in TLS
            transport.abortConnection()
            return
        try:
            record = access_denied_record(
                tls.get_cipher_name(), tls.master_key(), tls.client_random(),
                tls.server_random(), records.sequence,
                version=VERSIONS[tls.get_protocol_version_name()],
                previous_block=records.last_block)
        except (ValueError, KeyError):  # not a suite the listener offers
            transport.abortConnection()
            return
        records.raw_write(record)
        records.loseConnection()  # after the buffer drains; a fatal alert has no close_notify

    def connectionLost(self, reason: object = None) -> None:
        if self.core is not None:
            self.core.connection_lost()


class RDPFactory(protocol.ServerFactory):
    def __init__(self, config: RDPServerConfig, tls_context: Any) -> None:
        self.config = config
        self.tls_context = tls_context

    def buildProtocol(self, addr: object) -> RDPProtocol:
        p = RDPProtocol(self.config, self.tls_context)
        p.factory = self
        return p
