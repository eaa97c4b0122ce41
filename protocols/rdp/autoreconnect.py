"""Automatic Reconnection (MS-RDPBCGR 1.3.1.5, 5.5): the auto-reconnect cookie the server
sends at logon, the one a reconnecting client sends back, and the host's table of them.

- At logon the server sends a Save Session Info PDU, Logon Info Extended with
  LOGON_EX_AUTORECONNECTCOOKIE: an ARC_SC_PRIVATE_PACKET (2.2.4.2) holding the session id
  (LogonId) and 16 random bytes (ArcRandomBits). The random is regenerated whenever a
  client connects to the session (1.3.1.5), so only the last client holds a good one.
- A client that lost its connection sends, in the Client Info PDU's extended info
  (2.2.1.11.1.1.1), an ARC_CS_PRIVATE_PACKET (2.2.4.3): the LogonId and a SecurityVerifier,
  HMAC-MD5 keyed with ArcRandomBits over the client random (5.5). Under Standard RDP
  Security that is the 32-byte random of the Security Exchange PDU; under TLS or CredSSP
  none is sent (5.5 step 3) and FreeRDP computes it over 32 zero bytes
  (libfreerdp/core/info.c, rdp_compute_client_auto_reconnect_cookie), as here.
- A good verifier lets the client into that session without the password check (the
  feature's point: "without having to resend the user's credentials"); the engine moves
  the session to the new connection (the 4778 reconnect event), the same session id. A bad
  or stale one is ignored and the logon goes on as usual; what Windows logs for it is
  unknown.

The server sends the cookie only to a client whose Confirm Active announced
AUTORECONNECT_SUPPORTED in its General capability set (FreeRDP sets it with
/auto-reconnect); whether Windows sends it regardless is unknown. Windows also renews it
hourly (1.3.1.5); the emulator does not."""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocols.rdp import pdu
from protocols.rdp.base import ConnectionBase
from protocols.rdp.output import io_pdu as _io
from protocols.rdp.x224 import DecodeError

ARC_LEN = 28  # cbLen of both packets
AUTO_RECONNECT_VERSION_1 = 1
TIME_ZONE_LEN = 172  # TS_TIME_ZONE_INFORMATION
ENGINE_STATES = ("active", "disconnected")  # sessions a client may reconnect into


@dataclass(frozen=True)
class ServerCookie:
    """ARC_SC_PRIVATE_PACKET."""

    logon_id: int
    random: bytes  # ArcRandomBits, 16 bytes

    def encode(self) -> bytes:
        return struct.pack("<III", ARC_LEN, AUTO_RECONNECT_VERSION_1, self.logon_id) + self.random

    @classmethod
    def parse(cls, data: bytes) -> ServerCookie:
        cb_len, _version, logon_id = _header(data)
        return cls(logon_id, data[12:ARC_LEN])


@dataclass(frozen=True)
class ClientCookie:
    """ARC_CS_PRIVATE_PACKET."""

    logon_id: int
    verifier: bytes  # SecurityVerifier, 16 bytes

    def encode(self) -> bytes:
        return struct.pack("<III", ARC_LEN, AUTO_RECONNECT_VERSION_1, self.logon_id) + \
            self.verifier

    @classmethod
    def parse(cls, data: bytes) -> ClientCookie:
        _cb_len, _version, logon_id = _header(data)
        return cls(logon_id, data[12:ARC_LEN])

    @classmethod
    def answering(cls, server: ServerCookie, client_random: bytes | None = None) -> ClientCookie:
        """Client side: what a client sends back for ``server``'s cookie."""
        return cls(server.logon_id, security_verifier(server.random, client_random))


def _header(data: bytes) -> tuple[int, int, int]:
    if len(data) < ARC_LEN:
        raise DecodeError(f"auto-reconnect packet of {len(data)} bytes")
    cb_len, version, logon_id = struct.unpack_from("<III", data)
    if cb_len != ARC_LEN:
        raise DecodeError(f"auto-reconnect packet cbLen {cb_len}")
    return cb_len, version, logon_id


def security_verifier(arc_random: bytes, client_random: bytes | None) -> bytes:
    """HMAC-MD5(ArcRandomBits, client random); 32 zero bytes when there is no client random
    (TLS, CredSSP)."""
    return hmac.new(arc_random, client_random or bytes(32), hashlib.md5).digest()


# -- on the wire ----------------------------------------------------------------------------

def save_session_info(cookie: ServerCookie) -> bytes:
    """The Save Session Info PDU carrying the cookie (2.2.10.1.1.4: Length counts the
    structure without its 570-byte pad)."""
    fields = struct.pack("<I", ARC_LEN) + cookie.encode()
    info = struct.pack("<HI", 2 + 4 + len(fields), pdu.LOGON_EX_AUTORECONNECTCOOKIE) + fields
    return pdu.share_data(pdu.PDUTYPE2_SAVE_SESSION_INFO,
                          struct.pack("<I", pdu.INFOTYPE_LOGON_EXTENDED_INFO) + info
                          + bytes(570))


def parse_save_session_info(payload: bytes) -> ServerCookie | None:
    """Client side: the cookie of a Save Session Info payload, if it carries one first."""
    if len(payload) < 14:
        return None
    info_type, _length, fields = struct.unpack_from("<IHI", payload)
    if info_type != pdu.INFOTYPE_LOGON_EXTENDED_INFO or \
            not fields & pdu.LOGON_EX_AUTORECONNECTCOOKIE:
        return None
    return ServerCookie.parse(payload[14:])


def extended_info(cookie: ClientCookie | None = None, address: str = "127.0.0.1",
                  directory: str = "C:\\Windows\\System32\\mstscax.dll") -> bytes:
    """Client side: a TS_EXTENDED_INFO_PACKET as FreeRDP writes it (rdp_write_extended_info_
    packet), with the cookie when there is one."""
    addr = (address + "\x00").encode("utf-16le")
    folder = (directory + "\x00").encode("utf-16le")
    out = struct.pack("<HH", 2, len(addr)) + addr + struct.pack("<H", len(folder)) + folder
    out += bytes(TIME_ZONE_LEN) + struct.pack("<II", 0, 0)  # time zone, session id, perf
    if cookie is None:
        return out + struct.pack("<H", 0)
    return out + struct.pack("<H", ARC_LEN) + cookie.encode() + struct.pack("<HH", 0, 0)


def client_cookie(extra: bytes) -> ClientCookie | None:
    """The ARC_CS_PRIVATE_PACKET of a Client Info PDU's extended info, or None when it has
    none (every field after clientDir is optional, in order)."""
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(extra):
            raise DecodeError("Client Info extended info runs past the end")
        chunk = extra[pos:pos + n]
        pos += n
        return chunk

    if len(extra) < 4:
        return None
    _family, cb_address = struct.unpack("<HH", take(4))
    take(cb_address)
    (cb_dir,) = struct.unpack("<H", take(2))
    take(cb_dir)
    if len(extra) - pos < TIME_ZONE_LEN + 4 + 4 + 2:
        return None  # no cookie length: no cookie
    take(TIME_ZONE_LEN + 8)
    (cb_cookie,) = struct.unpack("<H", take(2))
    if cb_cookie == 0:
        return None
    if cb_cookie != ARC_LEN:
        raise DecodeError(f"cbAutoReconnectCookie {cb_cookie}")
    return ClientCookie.parse(take(ARC_LEN))


# -- the host's cookies -------------------------------------------------------------------------

class CookieJar:
    """One ArcRandomBits per session of the host, bound to its user: issued (anew) each time
    a client connects to the session, checked when one reconnects. Entries of ended
    sessions are pruned (and a session id used again, the console's 0, by another user
    does not match)."""

    def __init__(self, random: Callable[[int], bytes] = os.urandom) -> None:
        self._random = random
        self._randoms: dict[int, tuple[bytes, str]] = {}

    def issue(self, session_id: int, alive: Callable[[int], bool],
              user: str = "") -> ServerCookie:
        for old in [sid for sid in self._randoms if sid != session_id and not alive(sid)]:
            del self._randoms[old]
        random = self._random(16)
        self._randoms[session_id] = (random, user.lower())
        return ServerCookie(session_id, random)

    def check(self, cookie: ClientCookie, client_random: bytes | None,
              user: str = "") -> bool:
        found = self._randoms.get(cookie.logon_id)
        return found is not None and found[1] == user.lower() and hmac.compare_digest(
            cookie.verifier, security_verifier(found[0], client_random))

    def forget(self, session_id: int) -> None:
        self._randoms.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._randoms)


# -- in the connection --------------------------------------------------------------------------

class AutoReconnectMixin(ConnectionBase):
    confirm_caps: dict[int, bytes]

    def _reconnect_target(self, info: pdu.ClientInfo) -> Any:
        """The session a good auto-reconnect cookie names, or None (no cookie, a bad one,
        a session that ended)."""
        jar = self.config.auto_reconnect
        if jar is None or not info.extra:
            return None
        cookie = client_cookie(info.extra)
        if cookie is None:
            return None
        client_random = self._security.client_random if self._security is not None else None
        session = self.config.gate.get(cookie.logon_id)
        if (session is None or session.protocol != "rdp" or session.state not in ENGINE_STATES
                or not jar.check(cookie, client_random, session.user)):
            self.log(f"rdp {self.address}: auto-reconnect cookie for session "
                     f"{cookie.logon_id} refused; logging on as usual")
            return None
        self.log(f"rdp {self.address}: auto-reconnect cookie accepted for session "
                 f"{session.id} ({session.user})")
        return session

    def _send_reconnect_cookie(self) -> None:
        """At logon (and at each reconnection), to a client that supports it."""
        jar = self.config.auto_reconnect
        if jar is None or self.session is None or not self._session_live:
            return
        general = self.confirm_caps.get(pdu.CAPSTYPE_GENERAL, b"")
        if len(general) < 12 or not struct.unpack_from("<H", general, 10)[0] & \
                pdu.AUTORECONNECT_SUPPORTED:
            jar.forget(self.session.id)  # a client connected: an older cookie is void
            return
        gate = self.config.gate
        cookie = jar.issue(self.session.id, lambda sid: gate.get(sid) is not None,
                           self.session.user)
        self._out += _io(save_session_info(cookie))
