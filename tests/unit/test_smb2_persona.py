"""The SMB side of an edition's persona, byte-level on the sans-IO connection: NEGOTIATE
capabilities, sizes and contexts, NetBIOS rules, session ids and names, session binding,
ADMIN$/C$ and the 3.1.1 signed TREE_CONNECT rule. Real clients check the same against
the running server in tests/interop."""

from __future__ import annotations

import struct

import pytest
from impacket import ntlm
from impacket import smb3structs as s2
from twisted.internet.task import Clock

from emulator.core.editions import EDITIONS, get_edition
from emulator.core.engine import SessionEngine
from emulator.core.events import EventLog
from emulator.core.hoststate import server_guid
from protocols.smb2 import bodies
from protocols.smb2.connection import SMB2ServerConnection, SMBServerConfig
from protocols.smb2.framing import NEGATIVE_RESPONSE, POSITIVE_RESPONSE, encode_netbios_name, frame
from protocols.smb2.messages import HEADER_SIZE, Header
from protocols.smb2.state import CAP_DFS, CAP_DIRECTORY_LEASING, CAP_ENCRYPTION, CAP_LARGE_MTU
from protocols.smb2.state import CAP_LEASING, CAP_MULTI_CHANNEL
from tests.unit.smb2_helpers import unframe

MORE = 0xC0000016
ALL_CAPS = 0x7F


def make(edition="win10", **overrides):
    clock = Clock()
    clock.advance(1_700_000_000)
    e = get_edition(edition)
    engine = SessionEngine(e, clock, EventLog(clock.seconds))
    settings = dict(gate=engine, lookup_password={"alice": "pw", "admin": "pw"}.get, shares={},
                    now=clock.seconds, max_dialect=e.max_dialect, max_transact=e.max_io_size,
                    capabilities=e.smb_capabilities, aes_256=e.aes_256,
                    signing_capabilities=e.smb_signing_capabilities,
                    is_admin=lambda user: user.lower() == "admin",
                    admin_shares={"c$": object(), "admin$": object()})
    settings.update(overrides)
    return engine, SMBServerConfig(**settings)


def responses(conn):
    messages = unframe(conn.data_to_send())
    return messages


def send(conn, command, body, *, session_id=0, message_id=0, signed=False, tree_id=0):
    h = Header(command, credits=1, message_id=message_id, session_id=session_id,
               tree_id=tree_id)
    if signed:
        h.flags |= 0x8
    conn.receive_data(frame(h.pack() + body))
    return responses(conn)


def negotiate_body(dialects, caps=ALL_CAPS, contexts=()):
    """An SMB2 NEGOTIATE body with ``contexts`` [(type, data)] when 3.1.1 is offered."""
    fixed = 36 + 2 * len(dialects)
    pad = -(HEADER_SIZE + fixed) % 8
    ctx_offset = HEADER_SIZE + fixed + pad if contexts else 0
    body = struct.pack("<HHHHI16sIHH", 36, len(dialects), 1, 0, caps, b"c" * 16, ctx_offset,
                       len(contexts), 0) + struct.pack(f"<{len(dialects)}H", *dialects)
    if contexts:
        body += b"\0" * pad
        for i, (ctype, data) in enumerate(contexts):
            item = struct.pack("<HHI", ctype, len(data), 0) + data
            if i < len(contexts) - 1:
                item += b"\0" * (-len(item) % 8)
            body += item
    return body


PREAUTH = (1, struct.pack("<HHH", 1, 32, 1) + b"s" * 32)


def enc(*ciphers):
    return (2, struct.pack("<H", len(ciphers)) + struct.pack(f"<{len(ciphers)}H", *ciphers))


def sig(*algs):
    return (8, struct.pack("<H", len(algs)) + struct.pack(f"<{len(algs)}H", *algs))


def negotiate(conn, dialects=(0x0311,), caps=ALL_CAPS, contexts=(PREAUTH,)):
    (msg,) = send(conn, s2.SMB2_NEGOTIATE, negotiate_body(dialects, caps, contexts))
    h = Header.parse(msg)
    if h.status:
        return h, None, []
    resp = bodies.NEGOTIATE_RESPONSE.parse(msg, HEADER_SIZE)
    found = []
    pos = resp.NegotiateContextOffset
    for _ in range(resp.NegotiateContextCount):
        pos += -pos % 8
        ctype, length = struct.unpack_from("<HH", msg, pos)
        found.append((ctype, msg[pos + 8:pos + 8 + length]))
        pos += 8 + length
    return h, resp, found


# -- NEGOTIATE --------------------------------------------------------------------------------

@pytest.mark.parametrize("dialects,client_caps,expected", [
    ((0x0202,), ALL_CAPS, CAP_DFS),
    ((0x0210,), ALL_CAPS, CAP_DFS | CAP_LEASING | CAP_LARGE_MTU),
    # 3.0/3.0.2: the optional bits only when the client set them (nmap sends 0).
    ((0x0300,), 0, CAP_DFS | CAP_LEASING | CAP_LARGE_MTU),
    ((0x0302,), ALL_CAPS, 0x6F),  # + MULTI_CHANNEL, DIRECTORY_LEASING, ENCRYPTION (0x67 +8)
    ((0x0302,), CAP_ENCRYPTION, CAP_DFS | CAP_LEASING | CAP_LARGE_MTU | CAP_ENCRYPTION),
    # 3.1.1: encryption is a context, not a capability (runZero: 0x2f from a 0x7f client).
    ((0x0311,), ALL_CAPS, 0x2F),
])
def test_capabilities_per_dialect_and_client_bits(dialects, client_caps, expected):
    _, config = make("win10")
    conn = SMB2ServerConnection(config, address="10.0.0.1")
    contexts = (PREAUTH,) if 0x0311 in dialects else ()
    _, resp, _ = negotiate(conn, dialects, client_caps, contexts)
    assert resp.Capabilities == expected
    assert resp.MaxReadSize == resp.MaxWriteSize == resp.MaxTransactSize == (
        65536 if dialects == (0x0202,) else 8 * 1024 * 1024)


def test_an_edition_without_multichannel_does_not_grant_it():
    _, config = make("win7")
    conn = SMB2ServerConnection(config, address="10.0.0.1")
    _, resp, _ = negotiate(conn, (0x0202, 0x0210), ALL_CAPS, ())
    assert resp.DialectRevision == 0x0210
    assert resp.Capabilities == CAP_DFS | CAP_LEASING | CAP_LARGE_MTU
    assert resp.MaxTransactSize == 1024 * 1024  # Windows 7: 1 MiB (MS-SMB2 <254>)
    assert not resp.Capabilities & (CAP_MULTI_CHANNEL | CAP_DIRECTORY_LEASING)


def _netbios_connection(config, calling="WS139"):
    conn = SMB2ServerConnection(config, address="10.0.0.9", netbios=True)
    names = encode_netbios_name("*SMBSERVER") + encode_netbios_name(calling, 0)
    conn.receive_data(b"\x81\0\0" + bytes([len(names)]) + names)
    assert conn.data_to_send() == POSITIVE_RESPONSE
    return conn


def test_netbios_caps_3_0_2_and_64k():
    _, config = make("win10")
    conn = _netbios_connection(config)
    _, resp, contexts = negotiate(conn, (0x0202, 0x0210, 0x0300, 0x0302, 0x0311), ALL_CAPS,
                                  (PREAUTH,))
    assert resp.DialectRevision == 0x0302 and contexts == []  # 3.1.1 not over NetBIOS
    assert resp.MaxTransactSize == resp.MaxReadSize == 65536
    assert not resp.Capabilities & CAP_LARGE_MTU  # no multi-credit over NetBIOS
    assert conn.client_name == "WS139"


def test_netbios_message_before_session_request_gets_a_negative_response():
    _, config = make("win10")
    conn = SMB2ServerConnection(config, address="10.0.0.9", netbios=True)
    conn.receive_data(frame(b"\xfeSMB" + b"\0" * 60))
    assert conn.data_to_send() == NEGATIVE_RESPONSE and conn.close_requested


def test_odd_session_request_is_refused_and_closed():
    engine, config = make("win10")
    conn = SMB2ServerConnection(config, address="10.0.0.9", netbios=True)
    conn.receive_data(b"\x81\0\0\x05\x20ABCD")
    assert conn.data_to_send() == NEGATIVE_RESPONSE and conn.close_requested
    assert engine.counted("smb") == 0


def test_contexts_win11_and_win10():
    # Windows 11: AES-256 when it is all the client offers; SIGNING_CAPABILITIES answered
    # with AES-CMAC (AES-GMAC is not implemented, so not chosen even when preferred).
    _, config = make("win11")
    _, _, ctx = negotiate(SMB2ServerConnection(config, address="a"), contexts=(
        PREAUTH, enc(4), sig(2, 1, 0)))
    assert [c[0] for c in ctx] == [1, 2, 8]
    assert ctx[1][1] == struct.pack("<HH", 1, 4) and ctx[2][1] == struct.pack("<HH", 1, 1)
    # Windows 10: no AES-256 (cipher 0: none in common), no signing context.
    _, config = make("win10")
    _, _, ctx = negotiate(SMB2ServerConnection(config, address="a"), contexts=(
        PREAUTH, enc(4), sig(2, 1)))
    assert [c[0] for c in ctx] == [1, 2] and ctx[1][1] == struct.pack("<HH", 1, 0)


@pytest.mark.parametrize("contexts", [
    (PREAUTH, PREAUTH),  # repeated
    (PREAUTH, enc()),  # no cipher
    (PREAUTH, sig()),  # no signing algorithm
    (PREAUTH, (2, b"\x05")),  # short
    ((1, struct.pack("<HHH", 0, 0, 0)),),  # a preauth context with no algorithm
])
def test_bogus_contexts_are_invalid_parameter(contexts):
    engine, config = make("win11")
    conn = SMB2ServerConnection(config, address="a")
    h, _, _ = negotiate(conn, contexts=contexts)
    assert h.status == 0xC000000D and engine.counted("smb") == 0
    assert not conn.close_requested


def test_server_start_time_and_guid(tmp_path):
    _, config = make("win7", start_time=1_600_000_000.0)
    _, resp, _ = negotiate(SMB2ServerConnection(config, address="a"), (0x0210,), 0, ())
    assert resp.ServerStartTime == (1_600_000_000 + 11644473600) * 10_000_000
    _, config = make("win10")
    _, resp, _ = negotiate(SMB2ServerConnection(config, address="a"), (0x0210,), 0, ())
    assert resp.ServerStartTime == 0
    # The GUID stays with the host: same name, same state directory -> same GUID.
    a, b = server_guid("DESKTOP-1", tmp_path), server_guid("desktop-1", tmp_path)
    assert a == b and len(a) == 16 and server_guid("OTHER", tmp_path) != a
    assert server_guid("DESKTOP-1", tmp_path / "elsewhere") != a


def test_every_edition_is_complete_data():
    for e in EDITIONS.values():
        assert e.build and e.version and e.max_io_size in (65536, 1024 * 1024, 8 * 1024 * 1024)
        assert e.spnego_mechs[-1] == "NTLMSSP"
    assert EDITIONS["win11"].smb_signing_required and not EDITIONS["win10"].smb_signing_required
    assert EDITIONS["win10-home"].rdp_limit == 0 and EDITIONS["win11-home"].rdp_limit == 0
    assert EDITIONS["vista"].smb_limit == 10 and EDITIONS["win81"].smb_limit == 20
    assert [e.accepts_ntlmv1 for e in map(get_edition, ("xp-pro", "win10", "win11",
                                                        "server-2025"))] == [
        True, True, False, False]


# -- sessions ---------------------------------------------------------------------------------

def _setup(conn, token, session_id=0, message_id=1, flags=0, signed=False):
    body = s2.SMB2SessionSetup()
    body["Flags"] = flags
    body["SecurityBufferLength"] = len(token)
    body["Buffer"] = token
    (msg,) = send(conn, s2.SMB2_SESSION_SETUP, body.getData(), session_id=session_id,
                  message_id=message_id, signed=signed)
    h = Header.parse(msg)
    fixed = bodies.SESSION_SETUP_RESPONSE.parse(msg, HEADER_SIZE)
    token = msg[fixed.SecurityBufferOffset:fixed.SecurityBufferOffset
                + fixed.SecurityBufferLength]
    return h, fixed, token


def logon(conn, user="alice", password="pw"):
    type1 = ntlm.getNTLMSSPType1("WS01", "", signingRequired=False)
    h, _, challenge = _setup(conn, type1.getData())
    assert h.status == MORE
    type3, key = ntlm.getNTLMSSPType3(type1, challenge, user, password, "")
    h, fixed, _ = _setup(conn, type3.getData(), session_id=h.session_id, message_id=2)
    assert h.status == 0
    return h.session_id, fixed, key


def test_session_ids_look_like_windows_and_names_follow_the_client():
    engine, config = make("win10")
    ids = []
    for _ in range(3):
        conn = SMB2ServerConnection(config, address="10.1.2.3")
        negotiate(conn, (0x0210,), 0, ())
        sid, _, _ = logon(conn)
        ids.append(sid)
    assert all(sid & 0x80000000 and sid >> 32 for sid in ids)  # 0x00002c32_8000002d-like
    assert len(set(ids)) == 3 and sorted(ids) != [ids[0], ids[0] + 1, ids[0] + 2]
    (slot, *_) = engine.sessions("smb")
    # `net session` shows the address; the NTLM workstation is the logon event's.
    assert (slot.client, slot.workstation) == ("10.1.2.3", "WS01")
    admitted = [r for r in engine.events.records if r.get("outcome") == "admitted"]
    assert admitted[0]["workstation"] == "WS01"
    assert engine.delete_matching(client="\\\\10.1.2.3") and not engine.sessions("smb")


def test_netbios_session_shows_the_calling_name():
    engine, config = make("win7")
    conn = _netbios_connection(config, "LAPTOP7")
    negotiate(conn, (0x0210,), 0, ())
    logon(conn)
    (slot,) = engine.sessions("smb")
    assert slot.client == "LAPTOP7"


def test_ipv6_client_name_is_bracketed():
    _, config = make("win10")
    assert SMB2ServerConnection(config, address="fe80::1").client_name == "[fe80::1]"


def test_binding_errors():
    _, config = make("win10")
    conn = SMB2ServerConnection(config, address="a")
    negotiate(conn, (0x0302,), ALL_CAPS, ())
    sid, _, _ = logon(conn)
    other = SMB2ServerConnection(config, address="a")
    negotiate(other, (0x0302,), ALL_CAPS, ())
    token = ntlm.getNTLMSSPType1("", "").getData()
    assert _setup(other, token, session_id=0x1234, flags=1, signed=True)[0].status == 0xC0000203
    assert _setup(other, token, session_id=sid, flags=1)[0].status == 0xC000000D  # unsigned
    assert _setup(other, token, session_id=sid, flags=1, signed=True)[0].status == 0xC0000022
    # 2.1 has no binding at all.
    old = SMB2ServerConnection(config, address="a")
    negotiate(old, (0x0210,), 0, ())
    assert _setup(old, token, session_id=sid, flags=1, signed=True)[0].status == 0xC00000D0


def _tree_connect(conn, sid, name, signed=False, key=None):
    path = f"\\\\HOST\\{name}".encode("utf-16le")
    body = struct.pack("<HHHH", 9, 0, HEADER_SIZE + 8, len(path)) + path
    h = Header(s2.SMB2_TREE_CONNECT, credits=1, message_id=5, session_id=sid)
    msg = h.pack() + body
    if signed:
        from protocols.smb2 import crypto
        msg = crypto.sign(conn.dialect, key, msg)
    conn.receive_data(frame(msg))
    out = responses(conn)
    return Header.parse(out[0]).status if out else None


def _signing_key(conn, sid):
    return conn.sessions[sid].keys.signing


@pytest.mark.parametrize("user,expected", [("admin", 0), ("alice", 0xC0000022)])
def test_admin_shares_for_administrators_only(user, expected):
    _, config = make("win10")
    conn = SMB2ServerConnection(config, address="a")
    negotiate(conn, (0x0210,), 0, ())
    sid, _, _ = logon(conn, user)
    for name in ("C$", "ADMIN$"):
        assert _tree_connect(conn, sid, name) == expected


def test_unsigned_tree_connect_on_3_1_1_disconnects():
    _, config = make("win10")
    conn = SMB2ServerConnection(config, address="a")
    negotiate(conn)
    sid, _, _ = logon(conn, "admin")
    assert _tree_connect(conn, sid, "IPC$", signed=True, key=_signing_key(conn, sid)) == 0
    assert _tree_connect(conn, sid, "IPC$") is None and conn.close_requested
