"""An impacket ``SMBConnection`` over the NetBIOS session service on any port.

impacket sends the SESSION REQUEST (whose calling name Windows shows as the client in
`net session`) only when the port is 139 (``nmb.NetBIOSSession.__init__``), and offers
port 139 its own dialect list (``SMBConnection.negotiateSession``: NT LM 0.12 and
SMB 2.002, no SMB 2.???). An emulator listens on a port of its own, so this connection
does both itself for whatever port it is given, and leaves the rest (the answer's
dialect, SMB1 or SMB2/3) to impacket.
"""

from __future__ import annotations

from typing import Any

from impacket import nmb, smb
from impacket.smbconnection import SMBConnection

# What impacket's negotiateSession offers a port-139 server.
NETBIOS_DIALECTS = "\x02NT LM 0.12\x00\x02SMB 2.002\x00"


class NetBIOSSMBConnection(SMBConnection):
    """``NetBIOSSMBConnection(host, host, myName=CALLING_NAME, sess_port=port)``."""

    def negotiateSessionWildcard(self, myName: str, remoteName: str, remoteHost: str,
                                 sess_port: int, timeout: Any, extended_security: bool = True,
                                 flags1: int = 0, flags2: int = 0, data: Any = None) -> bytes:
        session = nmb.NetBIOSTCPSession(myName, remoteName, remoteHost, nmb.TYPE_SERVER,
                                        sess_port, timeout)
        self._nmbSession = session
        if sess_port != nmb.NETBIOS_SESSION_PORT:  # (on 139 impacket has sent it)
            session._request_session(nmb.TYPE_SERVER, nmb.TYPE_WORKSTATION, timeout)
        packet = smb.NewSMBPacket()
        packet["Flags1"] = flags1
        packet["Flags2"] = flags2 | smb.SMB.FLAGS2_UNICODE
        if extended_security:
            packet["Flags2"] |= smb.SMB.FLAGS2_EXTENDED_SECURITY
        negotiate = smb.SMBCommand(smb.SMB.SMB_COM_NEGOTIATE)
        negotiate["Data"] = NETBIOS_DIALECTS
        packet.addCommand(negotiate)
        session.send_packet(packet.getData())
        return session.recv_packet(timeout).get_trailer()
