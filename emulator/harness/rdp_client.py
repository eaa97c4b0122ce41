"""A minimal blocking RDP client over TLS or Standard RDP Security (no NLA), for tests and
the benchmark.

It runs the connection sequence of a FreeRDP-like client and reports what the server
did: the selected protocol, the Demand Active, bitmap rectangles, Save Session Info
logon errors, Set Error Info codes, Deactivate All and the Disconnect Provider
Ultimatum. Not a user-facing client.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import warnings
from dataclasses import dataclass, field
from typing import Any

from protocols.rdp import autoreconnect, gcc, mcs, pdu, security
from protocols.rdp.proprietary_cert import parse_proprietary_certificate
from protocols.rdp.rdpsec import MAC_SIZE, RC4_METHODS_ALL, SecurityContext
from protocols.rdp.x224 import (
    NO_NEGOTIATION,
    PROTOCOL_RDP,
    PROTOCOL_SSL,
    TYPE_RDP_NEG_RSP,
    X224_DATA_HEADER,
    connection_request,
    parse_connection_confirm,
    parse_x224,
    x224_data,
)


class ClientSecurity:
    """The client side of Standard RDP Security: the Security Exchange PDU, then every PDU
    sent encrypted (salted MACs, as FreeRDP sends them) and every server frame decrypted
    back into what a TLS client would have read."""

    def __init__(self, server: gcc.ServerSecurity, *, salted: bool = True,
                 license_encrypt: bool = True) -> None:
        key = parse_proprietary_certificate(server.certificate)  # the signature verified
        self.client_random = os.urandom(32)
        self.exchange_flags = security.SEC_EXCHANGE_PKT | (
            security.SEC_LICENSE_ENCRYPT_SC if license_encrypt else 0)
        self.encrypted_random = key.encrypt_client_random(self.client_random)
        self.context = SecurityContext.for_client(self.client_random, server.server_random,
                                                  server.method)
        self.salted = salted
        self.method = server.method
        self.license_flags: int | None = None  # the server's licensing PDU's, as received

    def security_exchange(self) -> bytes:
        return (struct.pack("<HHI", self.exchange_flags, 0, len(self.encrypted_random))
                + self.encrypted_random)

    def wrap(self, payload: bytes, flags: int = 0) -> bytes:
        """A payload without a security header (a Client Info carries SEC_INFO_PKT in
        ``flags``) -> the encrypted PDU."""
        flags |= security.SEC_ENCRYPT | (security.SEC_SECURE_CHECKSUM if self.salted else 0)
        signature, data = self.context.encrypt(payload, self.salted)
        return security.header(flags) + signature + data

    def fastpath(self, events: bytes, count: int = 1) -> bytes:
        enc = security.FASTPATH_ENCRYPTED | (security.FASTPATH_SECURE_CHECKSUM
                                             if self.salted else 0)
        signature, data = self.context.encrypt(events, self.salted)
        return (bytes([(count << 2) | enc << 6])
                + struct.pack(">H", 0x8000 | (3 + MAC_SIZE + len(data))) + signature + data)

    def unseal(self, frame: bytes) -> bytes:
        """A server frame (TPKT payload or fast-path PDU) -> as it would come under TLS."""
        if frame[0] != X224_DATA_HEADER[0]:  # fast-path output
            enc = frame[0] >> 6
            if not enc & security.FASTPATH_ENCRYPTED:
                return frame
            start = 3 if frame[1] & 0x80 else 2
            plain = self.context.decrypt(frame[start:start + MAC_SIZE],
                                         frame[start + MAC_SIZE:],
                                         bool(enc & security.FASTPATH_SECURE_CHECKSUM))
            return (bytes([frame[0] & 0x3F]) + struct.pack(">H", 0x8000 | (3 + len(plain)))
                    + plain)
        if frame[:3] != X224_DATA_HEADER or frame[3] >> 2 != mcs.SEND_DATA_INDICATION:
            return frame
        channel, payload = mcs.parse_send_data_indication(frame[3:])
        (flags,) = struct.unpack_from("<H", payload)
        body = payload[4:]
        if flags & security.SEC_ENCRYPT:
            body = self.context.decrypt(body[:MAC_SIZE], body[MAC_SIZE:],
                                        bool(flags & security.SEC_SECURE_CHECKSUM))
        if flags & security.SEC_LICENSE_PKT:
            self.license_flags = flags
            body = pdu.security_header(pdu.SEC_LICENSE_PKT) + body
        return X224_DATA_HEADER + mcs.send_data_indication(channel, body)


@dataclass
class ServerReport:
    selected_protocol: int | None = None
    negotiated: bool = True  # False: a Connection Confirm without rdpNegData
    encryption: gcc.ServerSecurity | None = None  # Standard RDP Security: what the server chose
    failure_code: int | None = None
    session_id: int | None = None
    licensed: bool = False
    license_request: bytes | None = None  # a Server License Request not yet answered
    activated: bool = False  # Font Map received
    rects: list[pdu.BitmapRect] = field(default_factory=list)
    logon_errors: list[tuple[int, int]] = field(default_factory=list)
    errinfo: list[int] = field(default_factory=list)
    deactivated: bool = False
    dpum_reason: int | None = None
    closed: bool = False
    shutdown_denied: bool = False
    arc_cookie: Any = None  # the last auto-reconnect cookie (autoreconnect.ServerCookie)

    def session_id_seen(self) -> bool:
        return self.session_id is not None


def _recv_exact(sock: socket.socket | ssl.SSLSocket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("server closed the connection")
        buf += chunk
    return buf


def read_tpkt(sock: socket.socket | ssl.SSLSocket) -> bytes:
    header = _recv_exact(sock, 4)
    (length,) = struct.unpack(">H", header[2:])
    return _recv_exact(sock, length - 4)


def read_frame(sock: socket.socket | ssl.SSLSocket) -> bytes:
    """One server frame: a TPKT payload (X.224 TPDU), or a whole fast-path PDU."""
    first = _recv_exact(sock, 2)
    if first[0] == 3:
        (length,) = struct.unpack(">H", _recv_exact(sock, 2))
        return _recv_exact(sock, length - 4)
    if first[1] & 0x80:
        third = _recv_exact(sock, 1)
        length = ((first[1] & 0x7F) << 8) | third[0]
        return first + third + _recv_exact(sock, length - 3)
    return first + _recv_exact(sock, first[1] - 2)


class RDPTestClient:
    def __init__(self, host: str, port: int, *, timeout: float = 10.0) -> None:
        self.report = ServerReport()
        self.raw = socket.create_connection((host, port), timeout=timeout)
        self.sock: socket.socket | ssl.SSLSocket = self.raw
        self.security: ClientSecurity | None = None

    def close(self) -> None:
        self.sock.close()

    # -- the sequence ----------------------------------------------------------------------
    def negotiate(self, requested: int | None = PROTOCOL_SSL, cookie: bytes = b"") -> bool:
        self.sock.sendall(connection_request(requested, cookie))
        kind, value = parse_connection_confirm(read_tpkt(self.sock))
        if kind not in (TYPE_RDP_NEG_RSP, NO_NEGOTIATION):
            self.report.failure_code = value
            return False
        self.report.selected_protocol = value
        self.report.negotiated = kind == TYPE_RDP_NEG_RSP
        if value == PROTOCOL_RDP:
            return True  # Standard RDP Security: set up after the MCS connect
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        # 7-era and 2003-era editions speak TLS 1.0 with SHA-1, as those Windows did.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1
            ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        self.sock = ctx.wrap_socket(self.raw)
        return True

    def logon(self, user: str, password: str, *, console: bool = False, bpp: int = 16,
              width: int = 1024, height: int = 768, channels: tuple[str, ...] = ("cliprdr",),
              client_name: str = "pytest", autologon: bool = True,
              encryption_methods: int = RC4_METHODS_ALL, salted_mac: bool = True,
              info_extra: bytes = b"") -> None:
        """MCS connect, domain, Client Info; then read up to the Demand Active, answer it and
        finalize. `autologon=False` leaves INFO_AUTOLOGON out of the Client Info, so a server
        that has its own logon screen (xrdp) draws that. Under Standard RDP Security
        `salted_mac` sends salted MACs (SEC_SECURE_CHECKSUM) as FreeRDP does; xrdp 0.9
        checks only plain ones."""
        self.user_name, self.client_name = user, client_name
        blocks = gcc.client_data_blocks(
            width=width, height=height, name=client_name, bpp=bpp, channels=channels,
            selected_protocol=self.report.selected_protocol or 0,
            cluster_flags=0x0F if console else 0x0D,
            encryption_methods=encryption_methods if self.report.selected_protocol == 0 else 0)
        self.sock.sendall(x224_data(mcs.connect_initial(gcc.conference_create_request(blocks))))
        _, payload = parse_x224(read_tpkt(self.sock))
        result, user_data = mcs.parse_connect_response(payload)
        if result != 0:
            raise AssertionError(f"MCS connect result {result}")
        server = gcc.parse_server_data(gcc.parse_conference_create_response(user_data))
        encryption = gcc.parse_server_security(server[gcc.SC_SECURITY])
        if encryption.method:
            self.report.encryption = encryption
            self.security = ClientSecurity(encryption, salted=salted_mac)
        self.sock.sendall(x224_data(mcs.erect_domain_request()))
        self.sock.sendall(x224_data(mcs.attach_user_request()))
        _, confirm = parse_x224(read_tpkt(self.sock))
        (initiator,) = struct.unpack_from(">H", confirm, 2)
        self.user_id = initiator + mcs.BASE_CHANNEL
        ids = [self.user_id, mcs.IO_CHANNEL, *range(mcs.IO_CHANNEL + 1,
                                                    mcs.IO_CHANNEL + 1 + len(channels))]
        for channel in ids:
            self.sock.sendall(x224_data(mcs.channel_join_request(self.user_id, channel)))
            read_tpkt(self.sock)
        # info_extra: a TS_EXTENDED_INFO_PACKET (autoreconnect.extended_info, its cookie).
        info = pdu.client_info(user, password, autologon=autologon, extra=info_extra)
        if self.security is not None:
            self.sock.sendall(x224_data(mcs.send_data_request(
                self.user_id, mcs.IO_CHANNEL, self.security.security_exchange())))
            info = self.security.wrap(info[4:], pdu.SEC_INFO_PKT)
            self.sock.sendall(x224_data(mcs.send_data_request(self.user_id, mcs.IO_CHANNEL,
                                                              info)))
        else:
            self.send_io(info)
        while not self.report.session_id_seen():
            self._read_one()
        caps = pdu.server_capabilities(width, height, bpp)  # shapes a client accepts too
        self.send_io(pdu.confirm_active(caps, source=self.user_id))
        for message in (pdu.synchronize(), pdu.control(pdu.CTRLACTION_COOPERATE),
                        pdu.control(pdu.CTRLACTION_REQUEST_CONTROL), pdu.font_list()):
            self.send_io(message)

    def send_io(self, payload: bytes) -> None:
        if self.security is not None:
            payload = self.security.wrap(payload)
        self.sock.sendall(x224_data(mcs.send_data_request(self.user_id, mcs.IO_CHANNEL, payload)))

    def send_input(self, events: list[Any], *, fast_path: bool = False) -> None:
        """Keyboard and mouse events (``protocols.rdp.input``: KeyEvent, MouseEvent, ...) to
        what the session shows: an Input Event PDU, or (``fast_path``) a fast-path input
        PDU, encrypted under Standard RDP Security (at most 15 events then)."""
        from protocols.rdp import input as rdpinput

        if not fast_path:
            self.send_io(pdu.share_data(pdu.PDUTYPE2_INPUT, rdpinput.encode_slow_path(events)))
        elif self.security is not None:
            if not 0 < len(events) < 16:
                raise ValueError("1 to 15 events in an encrypted fast-path PDU")
            self.sock.sendall(self.security.fastpath(rdpinput.encode_fast_path_events(events),
                                                     len(events)))
        else:
            self.sock.sendall(rdpinput.encode_fast_path(events))

    def read_until_closed(self) -> ServerReport:
        try:
            while True:
                self._read_one()
        except (EOFError, OSError, ssl.SSLError):
            self.report.closed = True
        return self.report

    def read_until_drawn(self, min_rects: int = 1) -> ServerReport:
        while not (self.report.activated and len(self.report.rects) >= min_rects):
            self._read_one()
        return self.report

    # -- server output -----------------------------------------------------------------------
    def _read_one(self) -> None:
        frame = read_frame(self.sock)
        if self.security is not None:
            frame = self.security.unseal(frame)
        if not absorb(self.report, frame):
            raise EOFError("disconnect provider ultimatum")
        if self.report.license_request is not None:
            request, self.report.license_request = self.report.license_request, None
            reply = pdu.client_new_license_request(
                request, self.user_name or "user", self.client_name,
                os.urandom(32), os.urandom(48))  # with its basic security header
            self.sock.sendall(x224_data(mcs.send_data_request(self.user_id, mcs.IO_CHANNEL,
                                                              reply)))


def absorb(report: ServerReport, frame_payload: bytes) -> bool:
    """Record one server frame (a TPKT payload or a fast-path PDU); False once the server
    sent its DPUM."""
    if frame_payload[0] == pdu.FASTPATH_OUTPUT_ACTION_FASTPATH:  # X.224 TPDUs start with LI
        for code, data in pdu.parse_fastpath_output(frame_payload):
            if code == pdu.FASTPATH_UPDATETYPE_BITMAP:
                report.rects += pdu.parse_bitmap_update(data)
        return True
    _, payload = parse_x224(frame_payload)
    kind = payload[0] >> 2
    if kind == mcs.DISCONNECT_PROVIDER_ULTIMATUM:
        report.dpum_reason = mcs.parse_domain_pdu(payload).reason
        return False
    if kind != mcs.SEND_DATA_INDICATION:
        return True  # connect response, attach user / channel join confirms
    _, data = mcs.parse_send_data_indication(payload)
    if not report.licensed:
        flags, body = pdu.parse_security_header(data)
        if flags & pdu.SEC_LICENSE_PKT:
            if pdu.license_message_type(body) == pdu.LICENSE_REQUEST:
                report.license_request = body  # xrdp: the client must answer first
            else:
                report.licensed = True
            return True
        # Not a licensing PDU: one out of sequence (a Set Error Info ending the licensing),
        # read as FreeRDP does (license_recv -> rdp_recv_out_of_sequence_pdu).
    for share in pdu.split_share_control(data):
        if share.pdu_type == pdu.PDUTYPE_DEMANDACTIVEPDU:
            (report.session_id,) = struct.unpack_from("<I", share.body, len(share.body) - 4)
        elif share.pdu_type == pdu.PDUTYPE_DEACTIVATEALLPDU:
            report.deactivated = True
        elif share.pdu_type == pdu.PDUTYPE_DATAPDU:
            _absorb_data(report, pdu.parse_share_data(share.body))
    return True


def _absorb_data(report: ServerReport, data: pdu.ShareData) -> None:
    if data.pdu_type2 == pdu.PDUTYPE2_FONTMAP:
        report.activated = True
    elif data.pdu_type2 == pdu.PDUTYPE2_UPDATE:
        report.rects += pdu.parse_bitmap_update(data.payload)
    elif data.pdu_type2 == pdu.PDUTYPE2_SET_ERROR_INFO_PDU:
        report.errinfo.append(struct.unpack("<I", data.payload)[0])
    elif data.pdu_type2 == pdu.PDUTYPE2_SAVE_SESSION_INFO:
        info_type, _length, fields, _cb, kind, value = struct.unpack_from("<IHIIII",
                                                                          data.payload)
        cookie = autoreconnect.parse_save_session_info(data.payload)
        if cookie is not None:
            report.arc_cookie = cookie
        elif info_type == pdu.INFOTYPE_LOGON_EXTENDED_INFO and \
                fields & pdu.LOGON_EX_LOGONERRORS:
            report.logon_errors.append((kind, value))
    elif data.pdu_type2 == pdu.PDUTYPE2_SHUTDOWN_DENIED:
        report.shutdown_denied = True
