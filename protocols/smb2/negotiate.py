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
from protocols.smb2.state import (
    CAP_DFS, CAP_ENCRYPTION, CAP_LARGE_MTU, CIPHER_PREFERENCE, DIALECT_WILDCARD, DIALECTS,
    SHA_512, SIGNING_ENABLED, SIGNING_REQUIRED, STATUS_INVALID_PARAMETER, STATUS_NOT_SUPPORTED,
    STATUS_SUCCESS, ConnectionState, Disconnect, Request,
)
from protocols.wintime import filetime_from_seconds


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
        common = [d for d in DIALECTS if d in offered and d <= self.config.max_dialect]
        if not common:
            self.close_requested = True  # Windows answers, then drops the connection
            raise StatusError(STATUS_NOT_SUPPORTED, "no common dialect")
        dialect = max(common)
        contexts: list[tuple[int, bytes]] = []
        if dialect == 0x0311:
            contexts = self._negotiate_contexts(request)
            self.preauth = crypto.PreauthHash()
            self.preauth.update(request.message)
        elif dialect in (0x0300, 0x0302) and req.Capabilities & CAP_ENCRYPTION:
            self.cipher = crypto.AES_128_CCM  # the only cipher before 3.1.1
        self.dialect = dialect
        self._client = {"capabilities": req.Capabilities, "guid": req.ClientGuid,
                        "security_mode": req.SecurityMode, "dialects": offered}
        body = self._negotiate_body(dialect, contexts)
        if self.preauth is not None:
            self.preauth.update(response.pack() + body)
        return STATUS_SUCCESS, body

    def _negotiate_contexts(self, request: Request) -> list[tuple[int, bytes]]:
        offset, count = struct.unpack_from("<IH", request.body, 28)
        pos, seen_preauth, ciphers = offset, False, None
        for _ in range(count):
            pos += -pos % 8
            ctx_type, length = struct.unpack_from("<HH", buffer_at(request.message, pos, 8))
            data = buffer_at(request.message, pos + 8, length)
            if ctx_type == s2.SMB2_PREAUTH_INTEGRITY_CAPABILITIES:
                algs_count = struct.unpack_from("<H", data)[0]
                algs = struct.unpack_from(f"<{algs_count}H", data, 4)
                seen_preauth = SHA_512 in algs
            elif ctx_type == s2.SMB2_ENCRYPTION_CAPABILITIES:
                n = struct.unpack_from("<H", data)[0]
                ciphers = struct.unpack_from(f"<{n}H", data, 2)
            pos += 8 + length
        if not seen_preauth:
            raise StatusError(STATUS_INVALID_PARAMETER, "3.1.1 without SHA-512 preauth")
        salt = os.urandom(32)
        out = [(s2.SMB2_PREAUTH_INTEGRITY_CAPABILITIES,
                struct.pack("<HHH", 1, len(salt), SHA_512) + salt)]
        if ciphers is not None:
            self.cipher = next((c for c in CIPHER_PREFERENCE if c in ciphers), 0)
            out.append((s2.SMB2_ENCRYPTION_CAPABILITIES, struct.pack("<HH", 1, self.cipher)))
        return out

    def _capabilities(self, dialect: int) -> int:
        caps = CAP_DFS
        if dialect != 0x0202:
            caps |= CAP_LARGE_MTU
        if dialect in (0x0300, 0x0302):
            caps |= CAP_ENCRYPTION
        if dialect in (0x0210, 0x0300, 0x0302, 0x0311) and self.config.leases is not None:
            caps |= s2.SMB2_GLOBAL_CAP_LEASING  # Windows 7 and later lease on 2.1+
        return caps

    def _security_mode(self) -> int:
        return SIGNING_ENABLED | (SIGNING_REQUIRED if self.config.signing_required else 0)

    def _negotiate_body(self, dialect: int, contexts: list[tuple[int, bytes]]) -> bytes:
        token = initial_token()
        size = 65536 if dialect in (0x0202, DIALECT_WILDCARD) else self.config.max_transact
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
