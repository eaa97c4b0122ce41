"""Building SMB1 requests with impacket's structures and reading the server's answers
with them: every test that uses these checks our layouts against impacket's."""

from __future__ import annotations


from impacket import ntlm
from impacket import smb as i
from twisted.internet.task import Clock

from emulator.core.editions import get_edition
from emulator.core.engine import SessionEngine
from emulator.core.events import EventLog
from protocols.smb1.negotiate import SMB1Persona
from protocols.smb2.connection import SMB2ServerConnection, SMBServerConfig
from protocols.smb2.framing import frame
from tests.unit.smb2_helpers import unframe

PASSWORD = "pw"
NT_FLAGS2 = (i.SMB.FLAGS2_UNICODE | i.SMB.FLAGS2_NT_STATUS | i.SMB.FLAGS2_LONG_NAMES
             | i.SMB.FLAGS2_EXTENDED_SECURITY)


def persona(edition: str) -> SMB1Persona:
    e = get_edition(edition)
    return SMB1Persona(max_mpx=e.smb1_max_mpx, max_buffer=e.smb1_max_buffer,
                       capabilities=e.smb1_capabilities, native_os=e.native_os,
                       native_lanman=e.native_lanman, negotiate_blob=e.smb1_negotiate_blob,
                       workgroup="WORKGROUP", signing_enabled=e.smb1_signing_enabled)


def make(edition="xp-home", setup_timeout=30.0, shares=None, **fields):
    clock = Clock()
    clock.advance(1_700_000_000)
    e = get_edition(edition)
    engine = SessionEngine(e, clock, EventLog(clock.seconds), setup_timeout=setup_timeout)
    values = dict(gate=engine, lookup_password={"alice": PASSWORD}.get, shares=shares or {},
                  now=clock.seconds, max_dialect=e.max_dialect, smb1=persona(edition),
                  smb2=e.smb2, netbios_name="XPBOX", accept_ntlmv1=e.accepts_ntlmv1,
                  accept_lm=e.accepts_lm, clock=clock, max_transact=64 * 1024,
                  force_guest=e.force_guest)
    values.update(fields)
    return engine, clock, SMBServerConfig(**values)


def connection(config):
    return SMB2ServerConnection(config, address="127.0.0.1")


def packet(command: i.SMBCommand, *, flags2=NT_FLAGS2, uid=0, tid=0, mid=1,
           more: list[i.SMBCommand] = ()) -> bytes:
    pkt = i.NewSMBPacket()
    pkt["Flags2"] = flags2
    pkt["Uid"], pkt["Tid"], pkt["Mid"] = uid, tid, mid
    pkt.addCommand(command)
    for c in more:
        pkt.addCommand(c)
    return pkt.getData()


def send(conn, message: bytes) -> list[bytes]:
    conn.receive_data(frame(message))
    messages = unframe(conn.data_to_send())
    return messages


def parse(message: bytes) -> i.NewSMBPacket:
    return i.NewSMBPacket(data=message)


def status(pkt: i.NewSMBPacket) -> int:
    return pkt["ErrorCode"] << 16 | pkt["_reserved"] << 8 | pkt["ErrorClass"]


def negotiate_request(dialects=(b"NT LM 0.12",), flags2=NT_FLAGS2) -> bytes:
    cmd = i.SMBCommand(i.SMB.SMB_COM_NEGOTIATE)
    cmd["Parameters"] = b""
    cmd["Data"] = b"".join(b"\x02" + d + b"\0" for d in dialects)
    return packet(cmd, flags2=flags2)


def negotiate(conn, flags2=NT_FLAGS2, dialects=(b"NT LM 0.12",)) -> i.NewSMBPacket:
    (reply,) = send(conn, negotiate_request(dialects, flags2))
    return parse(reply)


def setup_extended(blob: bytes) -> i.SMBCommand:
    cmd = i.SMBCommand(i.SMB.SMB_COM_SESSION_SETUP_ANDX)
    params = i.SMBSessionSetupAndX_Extended_Parameters()
    params["MaxBufferSize"], params["MaxMpxCount"], params["VcNumber"] = 4356, 10, 1
    params["SessionKey"], params["SecurityBlobLength"] = 0, len(blob)
    params["Capabilities"] = 0x800000D4
    cmd["Parameters"] = params
    data = i.SMBSessionSetupAndX_Extended_Data()
    data["SecurityBlobLength"] = len(blob)
    data["SecurityBlob"] = blob
    data["NativeOS"] = "Unix"
    data["NativeLanMan"] = "test"
    cmd["Data"] = data
    return cmd


def setup_plain(user: str, lm: bytes, nt: bytes, domain="WORKGROUP") -> i.SMBCommand:
    cmd = i.SMBCommand(i.SMB.SMB_COM_SESSION_SETUP_ANDX)
    params = i.SMBSessionSetupAndX_Parameters()
    params["MaxBuffer"], params["MaxMpxCount"], params["VCNumber"] = 4356, 10, 1
    params["SessionKey"], params["AnsiPwdLength"], params["UnicodePwdLength"] = 0, len(lm), len(nt)
    params["Capabilities"] = 0xD4
    cmd["Parameters"] = params
    data = i.SMBSessionSetupAndX_Data()  # ASCII strings: the client clears Unicode for it
    data["AnsiPwdLength"], data["UnicodePwdLength"] = len(lm), len(nt)
    data["AnsiPwd"], data["UnicodePwd"] = lm, nt
    data["Account"], data["PrimaryDomain"] = user, domain
    data["NativeOS"], data["NativeLanMan"] = "Unix", "test"
    cmd["Data"] = data
    return cmd


def login_extended(conn, flags2=NT_FLAGS2) -> tuple[i.NewSMBPacket, int]:
    """Raw NTLMSSP NTLMv2 login as alice; (the final reply, the UID)."""
    type1 = ntlm.getNTLMSSPType1("", "")
    (r1,) = send(conn, packet(setup_extended(type1.getData()), flags2=flags2))
    p1 = parse(r1)
    assert status(p1) == 0xC0000016, hex(status(p1))
    blob = _blob(p1)
    type3, _ = ntlm.getNTLMSSPType3(type1, blob, "alice", PASSWORD, "", use_ntlmv2=True)
    (r2,) = send(conn, packet(setup_extended(type3.getData()), flags2=flags2, uid=p1["Uid"],
                              mid=2))
    return parse(r2), p1["Uid"]


def _blob(pkt: i.NewSMBPacket) -> bytes:
    cmd = i.SMBCommand(pkt["Data"][0])
    params = i.SMBSessionSetupAndX_Extended_Response_Parameters(cmd["Parameters"])
    return cmd["Data"][:params["SecurityBlobLength"]]


def tree_connect(path: str, unicode=True) -> i.SMBCommand:
    cmd = i.SMBCommand(i.SMB.SMB_COM_TREE_CONNECT_ANDX)
    params = i.SMBTreeConnectAndX_Parameters()
    params["PasswordLength"] = 1
    cmd["Parameters"] = params
    data = i.SMBTreeConnectAndX_Data(flags=i.SMB.FLAGS2_UNICODE if unicode else 0)
    data["Password"] = b"\0"
    data["Path"] = path.encode("utf-16-le") if unicode else path
    data["Service"] = "?????"
    cmd["Data"] = data
    return cmd
