"""SESSION_SETUP, LOGOFF and ECHO: where a session asks the engine for its slot, and the
handlers that end it."""

from __future__ import annotations

from protocols.auth.ntlm import AuthFailure, NTLMAcceptor
from protocols.auth.spnego import SpnegoAcceptor
from protocols.errors import StatusError
from protocols.smb2 import bodies, crypto
from protocols.smb2.messages import HEADER_SIZE, Header, buffer_at
from protocols.smb2.state import (
    CAP_MULTI_CHANNEL, SESSION_FLAG_ENCRYPT_DATA, SESSION_FLAG_IS_GUEST, SESSION_FLAG_IS_NULL,
    SESSION_SETUP_FLAG_BINDING, SIGNING_REQUIRED, STATUS_ACCESS_DENIED,
    STATUS_INVALID_PARAMETER, STATUS_MORE_PROCESSING_REQUIRED, STATUS_NOT_SUPPORTED,
    STATUS_REQUEST_NOT_ACCEPTED, STATUS_SUCCESS, STATUS_USER_SESSION_DELETED, ConnectionState,
    Request, SMBSession,
)

GUEST = "Guest"


class SessionSetupHandlers(ConnectionState):
    def _session_setup(self, request: Request, response: Header) -> tuple[int, bytes]:
        req = bodies.SESSION_SETUP.parse(request.message, HEADER_SIZE)
        if self.config.encrypt_data and not self.cipher:
            # EncryptData with RejectUnencryptedAccess (Windows' default): a connection that
            # cannot encrypt (2.x, or 3.x without the client's ENCRYPTION capability or a
            # common cipher) is refused before a session exists (MS-SMB2 3.3.5.5, 1-2).
            raise StatusError(STATUS_ACCESS_DENIED, "EncryptData: the connection cannot encrypt")
        token = buffer_at(request.message, req.SecurityBufferOffset, req.SecurityBufferLength)
        if req.Flags & SESSION_SETUP_FLAG_BINDING:
            self._refuse_binding(request)
        session = self.sessions.get(request.header.session_id)
        if request.header.session_id == 0:
            session = self._new_session()
        elif session is None:
            raise StatusError(STATUS_USER_SESSION_DELETED, "no session in progress")
        elif session.valid:  # re-authentication (an expired session's way back)
            return self._reauthenticate(request, response, session, token)
        request.session = session
        response.session_id = session.id
        if session.preauth is not None:
            session.preauth.update(request.message)
        try:
            step = session.auth.step(token)
        except AuthFailure as failure:
            self._end_session(session, "auth-failed", failure.status)
            raise StatusError(failure.status, "authentication failed") from None
        if not step.complete:
            data = _session_setup_body(0, step.token)
            if session.preauth is not None:
                response.status = STATUS_MORE_PROCESSING_REQUIRED
                session.preauth.update(response.pack() + data)
            return STATUS_MORE_PROCESSING_REQUIRED, data
        result = step.result
        assert result is not None
        session.anonymous = result.anonymous
        user = result.user
        if self.config.force_guest and not result.anonymous:
            # Simple File Sharing: every network logon runs as Guest, which cannot sign.
            session.guest, user = True, GUEST
        session.keys = crypto.derive_session_keys(
            self.dialect or 0, result.session_key,
            session.preauth.value if session.preauth is not None else None,
            self.cipher or crypto.AES_128_CCM)  # the cipher only sizes 3.1.1 keys
        if not session.anonymous and not session.guest:
            session.signing_required = bool(self.config.signing_required
                                            or req.SecurityMode & SIGNING_REQUIRED)
            session.encrypt_data = self.config.encrypt_data and self.cipher != 0
        flags = (SESSION_FLAG_IS_NULL if session.anonymous
                 else SESSION_FLAG_IS_GUEST if session.guest else 0)
        if session.encrypt_data:
            flags |= SESSION_FLAG_ENCRYPT_DATA
        self._logon_fault(request, response, session, user, result.workstation)
        # The session's client is Connection.ClientName (address, or NetBIOS calling name);
        # the NTLM workstation only goes into the logon event (4624).
        refused = self.config.gate.logon(session.slot, user=user, client=self.client_name,
                                         anonymous=result.anonymous,
                                         workstation=result.workstation)
        if refused:  # per-client grouping judged the limit only now; the engine let go
            self._drop_session(session)
            raise StatusError(refused, "session limit reached")
        session.valid = True
        return STATUS_SUCCESS, _session_setup_body(flags, step.token)

    def _logon_fault(self, request: Request, response: Header, session: SMBSession,
                     user: str, workstation: str) -> None:
        """SESSION_SETUP faults fire where the logon is decided, the user known (faults.py)."""
        fault = self._fault_at_logon(session, user, workstation)  # type: ignore[attr-defined]
        if fault is not None:
            self._apply_request_fault(fault, request, response, None)  # type: ignore[attr-defined]

    def _reauthenticate(self, request: Request, response: Header, session: SMBSession,
                        token: bytes) -> tuple[int, bytes]:
        """SESSION_SETUP on a valid (or expired) session's id: a new authentication of it
        (MS-SMB2 3.3.5.5.3). The session, its trees, opens and keys stay (Samba keeps the
        keys on re-authentication, smbd_smb2_reauth_generic_return); success makes an
        expired session valid again; a failure ends the session, as 3.3.5.5.3 says."""
        request.session = session
        response.session_id = session.id
        if session.reauth is None:
            session.reauth = SpnegoAcceptor(self._ntlm_acceptor())
        try:
            step = session.reauth.step(token)
        except AuthFailure as failure:
            session.reauth = None
            self._end_session(session, "auth-failed", failure.status)
            raise StatusError(failure.status, "re-authentication failed") from None
        if not step.complete:
            return STATUS_MORE_PROCESSING_REQUIRED, _session_setup_body(0, step.token)
        session.reauth = None
        session.expired = False
        flags = (SESSION_FLAG_IS_NULL if session.anonymous
                 else SESSION_FLAG_IS_GUEST if session.guest else 0)
        if session.encrypt_data:
            flags |= SESSION_FLAG_ENCRYPT_DATA
        self.log(f"smb {self.address}: session {session.id:#x} re-authenticated")
        return STATUS_SUCCESS, _session_setup_body(flags, step.token)

    def _refuse_binding(self, request: Request) -> None:
        """SESSION_SETUP with the BINDING flag, answered as Windows answers it (MS-SMB2
        3.3.5.5, the order of its checks): this server binds no second channel, so a
        binding that passes them is STATUS_REQUEST_NOT_ACCEPTED."""
        if (self.dialect or 0) < 0x0300 or not self.config.capabilities & CAP_MULTI_CHANNEL:
            raise StatusError(STATUS_REQUEST_NOT_ACCEPTED, "binding: no multichannel")
        found = self.config.session_ids.live.get(request.header.session_id)
        if found is None:
            raise StatusError(STATUS_USER_SESSION_DELETED, "binding: unknown session")
        session, connection = found
        if connection.dialect != self.dialect:
            raise StatusError(STATUS_INVALID_PARAMETER, "binding: another dialect")
        if not request.header.signed:
            raise StatusError(STATUS_INVALID_PARAMETER, "binding: unsigned")
        if connection._client.get("guid") != self._client.get("guid"):
            raise StatusError(STATUS_USER_SESSION_DELETED, "binding: another client")
        if not session.valid:
            raise StatusError(STATUS_REQUEST_NOT_ACCEPTED, "binding: session in progress")
        if session.anonymous or session.guest:
            raise StatusError(STATUS_NOT_SUPPORTED, "binding: anonymous or guest session")
        key = session.keys.signing if session.keys else None
        if key is None or not crypto.verify(self.dialect or 0, key, request.message):
            raise StatusError(STATUS_ACCESS_DENIED, "binding: bad signature")
        raise StatusError(STATUS_REQUEST_NOT_ACCEPTED, "binding: not implemented")

    def _session_setup_key(self, request: Request, status: int) -> bytes | None:
        """The final SESSION_SETUP response is signed: always on 3.1.1, else when signing is
        required (3.3.5.5.3); nothing before it can be."""
        session = request.session
        if status != STATUS_SUCCESS or session is None or session.signing_key is None:
            return None
        if self.dialect == 0x0311 or session.signing_required or request.header.signed:
            return session.signing_key
        return None

    def _new_session(self) -> SMBSession:
        """Ask the engine for a slot: the first round of a new session is where Windows
        refuses at the limit (a session is allocated for SessionId 0, 3.3.5.5.1). The
        engine also bounds the setups in progress per connection and per address."""
        admission = self.config.gate.request_session("smb", self.address, connection=self)
        if not admission.admitted:
            raise StatusError(admission.status, "session limit reached")
        ntlm = self._ntlm_acceptor()
        preauth = self.preauth.copy() if self.preauth is not None else None
        session = SMBSession(0, admission.session, SpnegoAcceptor(ntlm), preauth)
        session.id = self.config.session_ids.allocate((session, self))
        self.sessions[session.id] = session
        admission.session.close_hook = lambda reason: self._ended_by_engine(session)
        admission.session.file_closer = lambda index: self._close_nth_open(session, index)
        return session

    def _ntlm_acceptor(self) -> NTLMAcceptor:
        return NTLMAcceptor(
            self.config.lookup_password, netbios_name=self.config.netbios_name,
            netbios_domain=self.config.netbios_domain, dns_name=self.config.dns_name,
            dns_domain=self.config.dns_domain, now=self.config.now,
            allow_anonymous=self.config.allow_anonymous, version=self.config.ntlm_version,
            accept_ntlmv1=self.config.accept_ntlmv1, accept_lm=self.config.accept_lm)

    def _ended_by_engine(self, session: SMBSession) -> None:
        """Admin delete, autodisconnect, null-session expiry, setup timeout: later requests
        on the session get STATUS_USER_SESSION_DELETED, signed as a signing client expects."""
        if session.signing_key is not None:
            self._deleted_keys[session.id] = session.signing_key
        self._drop_session(session)

    def _logoff(self, request: Request, response: Header) -> tuple[int, bytes]:
        assert request.session is not None
        self._end_session(request.session, "logoff")
        return STATUS_SUCCESS, bodies.EMPTY_RESPONSE

    def _echo(self, request: Request, response: Header) -> tuple[int, bytes]:
        return STATUS_SUCCESS, bodies.EMPTY_RESPONSE


def _session_setup_body(flags: int, token: bytes) -> bytes:
    return bodies.SESSION_SETUP_RESPONSE.pack(
        SessionFlags=flags, SecurityBufferOffset=HEADER_SIZE + bodies.SESSION_SETUP_RESPONSE.size,
        SecurityBufferLength=len(token)) + token
