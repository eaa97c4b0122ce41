"""The thin Twisted adapter of the NetBIOS name service: a datagram in, the answer back
to its sender."""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import DatagramProtocol

from protocols.nbns.codec import NodeNames, answer


class NameServiceProtocol(DatagramProtocol):
    noisy = False

    def __init__(self, names: NodeNames) -> None:
        self.names = names

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        reply = answer(datagram, self.names)
        transport: Any = self.transport  # IUDPTransport.write(packet, addr)
        if reply is not None and transport is not None:
            transport.write(reply, addr)
