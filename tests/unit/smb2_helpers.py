"""Shared by the unit tests that drive the sans-IO SMB2 connection with a small client:
the unsigned NTLM logon and tree connect they all start with."""

from __future__ import annotations

import struct
from typing import Any, Protocol

from impacket import ntlm
from impacket import smb3structs as s2

from protocols.smb2 import bodies
from protocols.smb2.messages import HEADER_SIZE, Header

STATUS_SUCCESS = 0
STATUS_MORE_PROCESSING_REQUIRED = 0xC0000016


class LogonClient(Protocol):
    """What the logon needs of a test client: ``send`` one request for its response,
    under the client's current ``session_id`` and ``tree_id``."""

    session_id: int
    tree_id: int

    def send(self, command: int, body: bytes) -> tuple[Header, bytes]: ...


def session_setup(client: LogonClient, token: bytes) -> tuple[Header, bytes]:
    return client.send(s2.SMB2_SESSION_SETUP, bodies.SESSION_SETUP.pack(
        SecurityBufferOffset=HEADER_SIZE + bodies.SESSION_SETUP.size,
        SecurityBufferLength=len(token)) + token)


def security_buffer(message: bytes) -> bytes:
    r: Any = bodies.SESSION_SETUP_RESPONSE.parse(message, HEADER_SIZE)
    return message[r.SecurityBufferOffset:r.SecurityBufferOffset + r.SecurityBufferLength]


def logon(client: LogonClient, *, dialect: int, guid: bytes, user: str, password: str,
          share: str) -> None:
    """NEGOTIATE one dialect, NTLM SESSION_SETUP (user "" = anonymous), TREE_CONNECT to
    ``\\\\EMULATOR\\share``; sets the client's session_id and tree_id."""
    h, _ = client.send(s2.SMB2_NEGOTIATE, bodies.NEGOTIATE.pack(
        DialectCount=1, SecurityMode=1, ClientGuid=guid) + struct.pack("<H", dialect))
    assert h.status == STATUS_SUCCESS
    type1 = ntlm.getNTLMSSPType1("WS01", "")
    h, msg = session_setup(client, type1.getData())
    assert h.status == STATUS_MORE_PROCESSING_REQUIRED
    client.session_id = h.session_id
    type3, _ = ntlm.getNTLMSSPType3(type1, security_buffer(msg), user, password, "")
    h, _ = session_setup(client, type3.getData())
    assert h.status == STATUS_SUCCESS
    path = f"\\\\EMULATOR\\{share}".encode("utf-16-le")
    h, _ = client.send(s2.SMB2_TREE_CONNECT, bodies.TREE_CONNECT.pack(
        PathOffset=HEADER_SIZE + 8, PathLength=len(path)) + path)
    assert h.status == STATUS_SUCCESS
    client.tree_id = h.tree_id


def unframe(data: bytes) -> list[bytes]:
    """The messages of a run of direct-TCP frames (4-byte length, then the message), as
    a sans-IO connection's ``data_to_send()`` returns them."""
    messages = []
    while data:
        length = struct.unpack(">I", data[:4])[0]
        messages.append(data[4:4 + length])
        data = data[4 + length:]
    return messages
