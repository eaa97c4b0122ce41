"""Which core owns a connection: decided by its first NEGOTIATE and the persona.

An SMB1 NEGOTIATE goes to SMB2 (the multi-protocol upgrade, MS-SMB2 3.3.5.3.1) when the
host speaks SMB2 and the client offers an SMB 2.x dialect; else to the SMB1 core when
the host speaks SMB1; else nowhere (the caller drops the connection, as an SMB2-only
Windows does to an SMB1-only client)."""

from __future__ import annotations

from typing import Any

from impacket import smb as i

from protocols.smb1.core import SMB1Core
from protocols.smb1.messages import HEADER_SIZE, read_block
from protocols.smb1.negotiate import offered_dialects

SMB2_DIALECT_NAMES = (b"SMB 2.002", b"SMB 2.???")


def smb1_core_for(conn: Any, message: bytes) -> SMB1Core | None:
    """The SMB1 core that will own ``conn``, or None to leave the frame to SMB2."""
    config = conn.config
    if config.smb1 is None or conn.dialect is not None or len(message) <= HEADER_SIZE:
        return None
    if message[4] != i.SMB.SMB_COM_NEGOTIATE:
        return None
    try:
        dialects = offered_dialects(read_block(message, message[4], HEADER_SIZE).data)
    except ValueError:
        return None
    if config.smb2 and any(name in dialects for name in SMB2_DIALECT_NAMES):
        return None
    return SMB1Core(conn, config.smb1)
