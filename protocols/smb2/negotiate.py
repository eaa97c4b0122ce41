"""NEGOTIATE: the SMB1 multi-protocol upgrade, dialect choice, capabilities, contexts,
and FSCTL_VALIDATE_NEGOTIATE_INFO's check of them."""

from __future__ import annotations

import os
import struct

from impacket import smb3structs as s2

from protocols.auth.spnego import initial_token
from protocols.errors import StatusError
from protocols.smb2 import bodies, crypto
from protocols.smb2.messages import FLAGS_SERVER_TO_REDIR, HEADER_SIZE, Header, buffer_at
from protocols.wintime import filetime_from_seconds
from protocols.smb2.state import (
    CAP_DFS, CAP_DIRECTORY_LEASING, CAP_ENCRYPTION, CAP_LARGE_MTU, CAP_LEASING,
    CAP_MULTI_CHANNEL, CIPHER_PREFERENCE, DIALECT_WILDCARD, DIALECTS, NETBIOS_MAX_IO, SHA_512,
    SIGNING_ENABLED, SIGNING_REQUIRED, STATUS_INVALID_PARAMETER, STATUS_NOT_SUPPORTED,
    STATUS_SUCCESS, ConnectionState, Disconnect, Request,
)

SMB2_SIGNING_CAPABILITIES = 0x0008
AES_CMAC = 0x0001  # the 3.1.1 signing this server implements (HMAC-SHA256 is 2.x's)
# Optional capabilities granted only to a client that set the same bit (MS-SMB2 3.3.5.4).
_ECHOED_CAPS = CAP_MULTI_CHANNEL | CAP_DIRECTORY_LEASING | CAP_ENCRYPTION


class NegotiateHandlers(ConnectionState):
    # -- SMB1 multi-protocol negotiate ---------------------------------------------------------
    def _smb1_negotiate(self, payload: bytes) -> bytes:
        """Answer an SMB1 NEGOTIATE that offers SMB2 with an SMB2 NEGOTIATE response (3.3.5.3)."""
        if self.dialect is not None or len(payload) < 35 or payload[4] != 0x72:
            raise Disconnect("SMB1 is not spoken here")
        byte_count = struct.unpack_from("<H", payload, 33)[0]
        names = payload[35:35 + byte_count].split(b"\x02")
        offered = {n.rstrip(b"\0") for n in names if n}
        if b"SMB 2.???" in offered and self.config.max_dialect > 0x0202:
            dialect = DIALECT_WILDCARD
        elif b"SMB 2.002" in offered or b"SMB 2.???" in offered:
            dialect = 0x0202
        else:
            raise Disconnect("SMB1-only client")
        if dialect == 0x0202:
            self.dialect = dialect
        self._client = {"capabilities": 0, "guid": b"\0" * 16, "security_mode": 0,
                        "dialects": [dialect]}
        header = Header(s2.SMB2_NEGOTIATE, credits=1, flags=FLAGS_SERVER_TO_REDIR)
        return header.pack() + self._negotiate_body(dialect, [])

    # -- command handlers: each returns (status, body) or raises StatusError -------------------
    def _negotiate(self, request: Request, response: Header) -> tuple[int, bytes]:
        req = bodies.NEGOTIATE.parse(request.message, HEADER_SIZE)
        dialects_end = bodies.NEGOTIATE.size + 2 * req.DialectCount
        if not req.DialectCount or len(request.body) < dialects_end:
            raise StatusError(STATUS_INVALID_PARAMETER, "no dialects")
        offered = list(struct.unpack(f"<{req.DialectCount}H",
                                     request.body[bodies.NEGOTIATE.size:dialects_end]))
        # 3.1.1 is not carried over NetBIOS (MS-SMB2 2.1).
        cap = min(self.config.max_dialect, 0x0302) if self.netbios else self.config.max_dialect
        common = [d for d in DIALECTS if d in offered and d <= cap]
        if not common:
            self.close_requested = True  # Windows answers, then drops the connection
            raise StatusError(STATUS_NOT_SUPPORTED, "no common dialect")
        dialect = max(common)
        contexts: list[tuple[int, bytes]] = []
        self._client = {"capabilities": req.Capabilities, "guid": req.ClientGuid,
                        "security_mode": req.SecurityMode, "dialects": offered}
        if dialect == 0x0311:
            try:
                contexts = self._negotiate_contexts(request)
            except struct.error:
                raise StatusError(STATUS_INVALID_PARAMETER, "short negotiate context") from None
            self.preauth = crypto.PreauthHash()
            self.preauth.update(request.message)
        elif dialect in (0x0300, 0x0302) and self._capabilities(dialect) & CAP_ENCRYPTION:
            self.cipher = crypto.AES_128_CCM  # the only cipher before 3.1.1
        self.dialect = dialect
        body = self._negotiate_body(dialect, contexts)
        if self.preauth is not None:
            self.preauth.update(response.pack() + body)
        return STATUS_SUCCESS, body

    def _negotiate_contexts(self, request: Request) -> list[tuple[int, bytes]]:
        """The 3.1.1 contexts (MS-SMB2 3.3.5.4): a malformed or repeated PREAUTH, ENCRYPTION
        or SIGNING context, or one with no algorithms, is STATUS_INVALID_PARAMETER."""
        offset, count = struct.unpack_from("<IH", request.body, 28)
        pos, preauth_algs, ciphers, signing = offset, None, None, None
        for _ in range(count):
            pos += -pos % 8
            ctx_type, length = struct.unpack_from("<HH", buffer_at(request.message, pos, 8))
            data = buffer_at(request.message, pos + 8, length)
            if ctx_type == s2.SMB2_PREAUTH_INTEGRITY_CAPABILITIES:
                n = struct.unpack_from("<H", data)[0]
                if preauth_algs is not None or not n:
                    raise StatusError(STATUS_INVALID_PARAMETER, "bad PREAUTH context")
                preauth_algs = struct.unpack_from(f"<{n}H", data, 4)
            elif ctx_type == s2.SMB2_ENCRYPTION_CAPABILITIES:
                n = struct.unpack_from("<H", data)[0]
                if ciphers is not None or not n:
                    raise StatusError(STATUS_INVALID_PARAMETER, "bad ENCRYPTION context")
                ciphers = struct.unpack_from(f"<{n}H", data, 2)
            elif ctx_type == SMB2_SIGNING_CAPABILITIES:
                n = struct.unpack_from("<H", data)[0]
                if signing is not None or not n:
                    raise StatusError(STATUS_INVALID_PARAMETER, "bad SIGNING context")
                signing = struct.unpack_from(f"<{n}H", data, 2)
            pos += 8 + length
        if preauth_algs is None or SHA_512 not in preauth_algs:
            raise StatusError(STATUS_INVALID_PARAMETER, "3.1.1 without SHA-512 preauth")
        salt = os.urandom(32)
        out = [(s2.SMB2_PREAUTH_INTEGRITY_CAPABILITIES,
                struct.pack("<HHH", 1, len(salt), SHA_512) + salt)]
        if ciphers is not None:
            allowed = [c for c in CIPHER_PREFERENCE if self.config.aes_256
                       or c in (crypto.AES_128_GCM, crypto.AES_128_CCM)]
            self.cipher = next((c for c in allowed if c in ciphers), 0)
            out.append((s2.SMB2_ENCRYPTION_CAPABILITIES, struct.pack("<HH", 1, self.cipher)))
        if signing is not None and self.config.signing_capabilities and AES_CMAC in signing:
            # AES-GMAC is not implemented, so AES-CMAC is the one offered back.
            out.append((SMB2_SIGNING_CAPABILITIES, struct.pack("<HH", 1, AES_CMAC)))
        return out

    def _capabilities(self, dialect: int) -> int:
        """DFS; on 2.1+ LEASING and (direct TCP only: multi-credit) LARGE_MTU; on 3.x the
        edition's MULTI_CHANNEL / DIRECTORY_LEASING / ENCRYPTION (3.0 and 3.0.2 only) when
        the client set the same bit (MS-SMB2 3.3.5.4)."""
        caps = CAP_DFS
        if dialect == 0x0202:
            return caps
        caps |= CAP_LEASING
        if not self.netbios:
            caps |= CAP_LARGE_MTU
        if dialect >= 0x0300 and dialect != DIALECT_WILDCARD:
            wanted = self._client.get("capabilities", 0) & self.config.capabilities
            caps |= wanted & _ECHOED_CAPS
            if dialect == 0x0311:
                caps &= ~CAP_ENCRYPTION  # 3.1.1 negotiates ciphers in a context
        return caps

    def _security_mode(self) -> int:
        return SIGNING_ENABLED | (SIGNING_REQUIRED if self.config.signing_required else 0)

    def _negotiate_body(self, dialect: int, contexts: list[tuple[int, bytes]]) -> bytes:
        token = initial_token(self.config.spnego_mechs)
        # 64 KiB for 2.0.2 (no multi-credit) and over NetBIOS; else the edition's size
        # (1 MiB on 7 / 2008 R2, 8 MiB on later Windows: MS-SMB2 product note <254>).
        size = (NETBIOS_MAX_IO if dialect == 0x0202 or self.netbios
                else self.config.max_transact)
        token_offset = HEADER_SIZE + bodies.NEGOTIATE_RESPONSE.size
        padding = b"\0" * (-(token_offset + len(token)) % 8) if contexts else b""
        packed = []
        for i, (ctx_type, data) in enumerate(contexts):
            ctx = struct.pack("<HHI", ctx_type, len(data), 0) + data
            if i < len(contexts) - 1:  # contexts start 8-byte aligned; the last is not padded
                ctx += b"\0" * (-len(ctx) % 8)
            packed.append(ctx)
        fixed = bodies.NEGOTIATE_RESPONSE.pack(
            SecurityMode=self._security_mode(), DialectRevision=dialect,
            NegotiateContextCount=len(contexts), ServerGuid=self.config.server_guid,
            Capabilities=self._capabilities(dialect), MaxTransactSize=size, MaxReadSize=size,
            MaxWriteSize=size, SystemTime=filetime_from_seconds(self.config.now()),
            ServerStartTime=(filetime_from_seconds(self.config.start_time)
                             if self.config.start_time else 0),
            SecurityBufferOffset=token_offset, SecurityBufferLength=len(token),
            NegotiateContextOffset=token_offset + len(token) + len(padding) if contexts else 0)
        return fixed + token + padding + b"".join(packed)

    def _validate_negotiate(self, data: bytes) -> bytes:
        """FSCTL_VALIDATE_NEGOTIATE_INFO (3.3.5.15.12): a mismatch means tampering: disconnect."""
        try:
            caps, guid, mode, count = struct.unpack_from("<I16sHH", data)
            dialects = list(struct.unpack_from(f"<{count}H", data, 24))
        except struct.error:
            raise Disconnect("short VALIDATE_NEGOTIATE_INFO") from None
        client = self._client
        if (caps, guid, mode, dialects) != (client["capabilities"], client["guid"],
                                             client["security_mode"], client["dialects"]):
            raise Disconnect("VALIDATE_NEGOTIATE_INFO does not match the NEGOTIATE")
        return struct.pack("<I16sHH", self._capabilities(self.dialect or 0),
                           self.config.server_guid, self._security_mode(), self.dialect)
