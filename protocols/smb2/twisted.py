"""The thin Twisted adapter: moves bytes between a TCP transport and the sans-IO core."""

from __future__ import annotations

from typing import Any

from twisted.internet import protocol
from twisted.logger import Logger

from protocols.smb2.connection import SMB2ServerConnection, SMBServerConfig

log = Logger(namespace="smb")


class SMBProtocol(protocol.Protocol):
    def __init__(self, config: SMBServerConfig, netbios: bool) -> None:
        self.config = config
        self.netbios = netbios
        self.core: SMB2ServerConnection | None = None
        self._closing = False

    def connectionMade(self) -> None:
        transport: Any = self.transport
        peer = transport.getPeer()
        address = getattr(peer, "host", str(peer))
        self.core = SMB2ServerConnection(self.config, address=address, netbios=self.netbios,
                                         log=lambda line: log.info("{line}", line=line))
        self.core.on_output = self._flush  # timers, the budget, break notifications

    def dataReceived(self, data: bytes) -> None:
        assert self.core is not None
        self.core.receive_data(data)
        self._flush()

    def _flush(self) -> None:
        """Write what the core has and close when it asks; also called from the core's
        ``on_output`` (a timer, the budget, a break notification or a CREATE that waited),
        possibly after the transport closed."""
        transport: Any = self.transport
        if self.core is None or transport is None or self._closing:
            return
        out = self.core.data_to_send()
        if out:
            transport.write(out)
        if self.core.close_requested:
            self._closing = True
            if self.core.abort_requested:  # a reset fault: TCP RST, nothing flushed
                transport.abortConnection()
            else:
                transport.loseConnection()

    def connectionLost(self, reason: object = None) -> None:
        self._closing = True
        if self.core is not None:
            self.core.connection_lost()


class SMBFactory(protocol.ServerFactory):
    def __init__(self, config: SMBServerConfig, *, netbios: bool) -> None:
        self.config = config
        self.netbios = netbios

    def buildProtocol(self, addr: object) -> SMBProtocol:
        p = SMBProtocol(self.config, self.netbios)
        p.factory = self
        return p
