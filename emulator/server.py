"""One emulated host: its engine, rules, users, shares, clock, event log, persona and
listeners, wired to the protocols (the only module that knows both sides).

A `Host` is a value a `emulator.lab.Lab` holds; nothing in it is shared with another host.
`shutdown` takes it apart while the reactor runs: listeners closed, live connections
dropped (their sessions end and log), every timer it scheduled cancelled.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

from typing import Any

from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory

from emulator.config import DEFAULT_USER, Config, initial_rules, is_loopback
from emulator.core.clock import ClockLike, OwnedClock, VirtualClock
from emulator.core.editions import get_edition
from emulator.core.engine import Rules, SessionEngine
from emulator.core.events import EMULATOR_PROVIDER, FAULT_EVENT_ID, LEVEL_WARNING, EventLog
from emulator.core.faults import Fault, FaultTable, status_name
from emulator.rpcview import EngineServerView
from emulator.core.hoststate import server_guid
from protocols.auth.ntlm import version_field
from protocols.dcerpc.pipes import PipeService
from protocols.nbns.codec import NodeNames
from protocols.rdp.autoreconnect import CookieJar
from protocols.rdp.connection import RDPServerConfig
from protocols.rdp.security import StandardSecurityConfig
from protocols.smb1.negotiate import SMB1Persona
from protocols.smb2.budget import PreauthBudget
from protocols.smb2.connection import SMBServerConfig
from protocols.smb2.fs import DiskShare
from protocols.smb2.leases import LeaseTable
from protocols.smb2.twisted import SMBFactory


class ListenError(Exception):
    pass


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class Listener:
    name: str
    port: Any  # IListeningPort

    @property
    def address(self) -> str:
        addr = self.port.getHost()
        return _format_address(addr.host, addr.port)


class TrackingFactory(Factory):
    """A listener's factory around the protocol's own: it knows the live connections, so
    a host being removed can drop them."""

    noisy = False

    def __init__(self, inner: Any, name: str = "") -> None:
        self.inner = inner
        self.name = name  # the listener's: "smb", "netbios", "rdp"
        self.live: set[Any] = set()
        self._empty: list[defer.Deferred[None]] = []

    def logPrefix(self) -> str:
        return str(self.inner.logPrefix())

    def doStart(self) -> None:
        self.inner.doStart()

    def doStop(self) -> None:
        self.inner.doStop()

    def buildProtocol(self, addr: Any) -> Any:
        proto = self.inner.buildProtocol(addr)
        if proto is None:
            return None
        live, lost = self.live, proto.connectionLost

        def connection_lost(reason: Any) -> None:
            live.discard(proto)
            try:
                lost(reason)
            finally:
                if not live:
                    waiting, self._empty = self._empty, []
                    for d in waiting:
                        d.callback(None)

        proto.connectionLost = connection_lost
        live.add(proto)
        return proto

    def drop_all(self) -> defer.Deferred[None]:
        """Abort every live connection; fires once the last one is gone."""
        d: defer.Deferred[None] = defer.Deferred()
        if not self.live:
            d.callback(None)
            return d
        self._empty.append(d)
        for proto in list(self.live):
            transport = getattr(proto, "transport", None)
            if transport is not None:
                transport.abortConnection()
        return d


class Host:
    def __init__(self, config: Config, reactor: Any, clock: ClockLike | None = None, *,
                 certificates: dict[Any, Any] | None = None) -> None:
        self.config = config
        # The RDP keys loaded so far, by (tls_cert, tls_key, hash): immutable, so a lab's
        # hosts share them (a few entries, whatever the number of hosts).
        self.certificates = {} if certificates is None else certificates
        self.reactor = reactor
        self.name = config.netbios_name
        # --virtual-clock: the engine's time moves only when told (POST /api/clock/advance).
        self.virtual_clock = VirtualClock() if config.virtual_clock and clock is None else None
        base = clock or self.virtual_clock or reactor
        # Every timer of this host goes through its own clock: removing it cancels them all.
        if base is None:
            raise ValueError("a host needs a reactor or a clock")
        self.clock = OwnedClock(base)
        self.edition = get_edition(config.edition)
        self.started = self.clock.seconds()  # the emulated host's boot (ServerStartTime)
        self.events = EventLog.to_path(self.clock.seconds, config.event_log,
                                       max_bytes=config.event_log_max_kb * 1024,
                                       limit_event_id=config.limit_event_id)
        self.engine = SessionEngine(
            self.edition, self.clock, self.events, denial_status=config.denial_status,
            setup_timeout=config.session_setup_timeout, limits=self.initial_limits(),
            rules=self.initial_rules(), pending_per_connection=config.smb_pending_per_connection,
            pending_per_address=config.smb_pending_per_address)
        # Faults armed through the admin API (emulator.core.faults): the protocols ask it.
        self.faults = FaultTable(self.fault_commands(), on_fire=self._fault_fired,
                                 checks=self.fault_checks())
        # The errinfo an admin ending names, by session id, while the engine ends it
        # (RDPServerConfig.ending_errinfo: the connection's close hook reads it).
        self.rdp_endings: dict[int, int] = {}
        self.notes: list[str] = []  # what defaults were filled in, for the operator
        self._temp_dirs: list[str] = []
        self.users = dict(config.users) or dict([DEFAULT_USER])
        if not config.users:
            self.notes.append(f"no user configured: serving {DEFAULT_USER[0]}:{DEFAULT_USER[1]}")
        # C$ is a directory of the host's own: `system_drive`, else a fresh one holding
        # Windows\ (ADMIN$) and Users\Public (the default share when none is configured).
        self.system_drive = config.system_drive or tempfile.mkdtemp(prefix="smbrdp-emu-c-")
        if not config.system_drive:
            self._temp_dirs.append(self.system_drive)
            for sub in ("Windows", os.path.join("Users", "Public")):
                os.makedirs(os.path.join(self.system_drive, sub), exist_ok=True)
        elif not os.path.isdir(config.system_drive):
            raise ListenError(f"system_drive: {config.system_drive} is not a directory")
        windows_dir = os.path.join(self.system_drive, "Windows")
        self.admin_shares = {
            "admin$": DiskShare("ADMIN$", windows_dir if os.path.isdir(windows_dir)
                                else self.system_drive),
            "c$": DiskShare("C$", self.system_drive)}
        share_dirs = dict(config.shares)
        if not share_dirs:
            share_dirs["public"] = os.path.join(self.system_drive, "Users", "Public")
            os.makedirs(share_dirs["public"], exist_ok=True)
            self.notes.append(f"no share configured: serving public={share_dirs['public']}")
        for name, path in share_dirs.items():
            if not os.path.isdir(path):
                raise ListenError(f"share {name}: {path} is not a directory")
        self.share_dirs = share_dirs
        self.shares = {name.lower(): DiskShare(name, path) for name, path in share_dirs.items()}
        self.leases = LeaseTable(self.clock)  # one object store: every SMB connection shares it
        self.listeners: list[Listener] = []
        self.factories: list[TrackingFactory] = []
        self.smb: SMBServerConfig | None = None  # what the SMB listeners serve (start())
        self.restarting: Any = None  # the timer that brings a restarted service back
        self.back_up: Any = None  # ... and what it runs (reset() runs it at once)
        self.comment = ""  # `net config server /srvcomment`; srvsvc's sv101_comment
        self._machine_sid: str | None = None
        # Served by the lab's admin listener (`emulator.lab`); kept here for a lone host.
        self.admin_token = config.admin_token or secrets.token_urlsafe(24)
        if not is_loopback(config.host):
            self.notes.append(self.exposure_warning())

    def exposure_warning(self) -> str:
        """One line for stderr: what other machines can reach on a non-loopback address."""
        c = self.config
        exposed = ["SMB", *(["NetBIOS"] if c.netbios_port is not None else []),
                   *(["RDP"] if self.serves_rdp() else []),
                   *(["the admin API (plain HTTP, no TLS)"] if c.admin_port is not None else [])]
        if not c.users:
            exposed.append(f"the built-in account {':'.join(DEFAULT_USER)}")
        if c.admin_port is not None and not c.admin_token:
            exposed.append("a generated admin token")
        return (f"warning: {c.host or '*'} is not a loopback address: other machines can "
                f"reach {', '.join(exposed)}")

    def initial_limits(self) -> dict[str, int | None]:
        limits = {"smb": self.edition.smb_limit, "rdp": self.edition.rdp_limit}
        if self.config.smb_limit is not None:
            limits["smb"] = None if self.config.smb_limit < 0 else self.config.smb_limit
        return limits

    def initial_rules(self) -> Rules:
        rules = initial_rules(self.config)
        rules["restrict_anonymous"] = self.persona("restrict_anonymous",
                                                   "restrict_null_sessions")
        return Rules(**rules)

    def persona(self, key: str, edition_field: str) -> Any:
        """A config value that defaults to the edition's (None in the config = unset)."""
        value = getattr(self.config, key)
        return getattr(self.edition, edition_field) if value is None else value

    def add_user(self, name: str, password: str) -> None:
        """Add or re-password an account (names are case-insensitive, as on Windows)."""
        for existing in [n for n in self.users if n.lower() == name.lower()]:
            del self.users[existing]
        self.users[name] = password

    def add_share(self, name: str, path: str) -> None:
        """Add or re-point a share (names are case-insensitive)."""
        for existing in [n for n in self.share_dirs if n.lower() == name.lower()]:
            del self.share_dirs[existing]
        self.share_dirs[name] = path
        # The SMB config holds this same dict: new tree connects see the share at once.
        self.shares[name.lower()] = DiskShare(name, path)

    def reset(self) -> None:
        """End every session, restore the configured limits and rules and the empty server
        comment, forget past events and faults; a host down for a restart comes back."""
        from emulator import service_faults

        service_faults.come_back(self)
        self.engine.reset(self.initial_limits(), self.initial_rules())
        self.faults.clear()
        self.events.clear()
        self.comment = ""

    def serves_rdp(self) -> bool:
        return self.config.rdp_port is not None and self.edition.rdp_limit != 0

    def fault_commands(self) -> dict[str, tuple[str, ...]]:
        """What a fault may name per protocol this host serves: SMB commands (one name
        for both dialect families), RDP connection-sequence points."""
        from protocols.rdp.state import FAULT_POINTS
        from protocols.smb2.messages import COMMAND_NAMES

        served = {"smb": tuple(COMMAND_NAMES.values())}
        if self.serves_rdp():
            served["rdp"] = FAULT_POINTS
        return served

    def fault_checks(self) -> dict[str, Any]:
        """A protocol's own checks of a fault request (RDP: actions, points, errinfo)."""
        from protocols.rdp.errinfo import check_fault

        return {"rdp": check_fault}

    def _fault_fired(self, fault: Fault, command: str, context: Mapping[str, str | None]) -> None:
        self.engine.counters[f"fault:{fault.action}"] += 1
        about = ", ".join(f"{k}={v}" for k, v in context.items() if v)
        what = (status_name(fault.status) if fault.status is not None
                else fault.errinfo or fault.action)
        self.events.record(provider=EMULATOR_PROVIDER, event_id=FAULT_EVENT_ID,
                           level=LEVEL_WARNING,
                           message=f"Fault {fault.id} fired: {fault.protocol} {command} -> "
                                   f"{what}" + (f" ({about})" if about else ""))

    def machine_sid(self) -> str:
        """The account domain's SID (``emulator.core.identity``), fixed on first use."""
        if self._machine_sid is None:
            from emulator.core import identity

            self._machine_sid = identity.machine_sid(self.config.netbios_name,
                                                     self.config.machine_sid)
        return self._machine_sid

    def lookup_password(self, user: str) -> str | None:
        wanted = user.lower()
        return next((pw for name, pw in self.users.items() if name.lower() == wanted), None)

    def ntlm_settings(self) -> dict[str, Any]:
        """What NTLM (SMB and CredSSP) says about the host and which responses it takes."""
        e = self.edition
        level = self.persona("lm_compatibility_level", "lm_compatibility_level")
        return dict(netbios_name=self.config.netbios_name,
                    version=version_field(*e.version, e.build, e.ntlm_revision),
                    accept_ntlmv1=level < 5 and not e.ntlmv1_removed,
                    accept_lm=level < 4 and not e.ntlmv1_removed, now=self.clock.seconds)

    def smb_config(self) -> SMBServerConfig:
        e, ntlm = self.edition, self.ntlm_settings()
        return SMBServerConfig(
            gate=self.engine, lookup_password=self.lookup_password, shares=self.shares,
            now=self.clock.seconds, max_dialect=e.max_dialect,
            server_guid=server_guid(self.config.netbios_name),
            signing_required=self.persona("signing_required", "smb_signing_required"),
            encrypt_data=self.config.encrypt_data, netbios_name=self.config.netbios_name,
            pipes=PipeService(EngineServerView(self)), clock=self.clock,
            preauth_timeout=self.config.session_setup_timeout,
            preauth_budget=PreauthBudget(self.config.smb_preauth_buffer_budget),
            encrypt_shares=frozenset(n.lower() for n in self.config.encrypt_shares),
            leases=self.leases,
            max_transact=e.max_io_size, capabilities=e.smb_capabilities,
            signing_capabilities=e.smb_signing_capabilities, aes_256=e.aes_256,
            start_time=self.started if e.server_start_time else 0.0,
            spnego_mechs=e.spnego_mechs, ntlm_version=ntlm["version"],
            accept_ntlmv1=ntlm["accept_ntlmv1"], accept_lm=ntlm["accept_lm"],
            force_guest=self.persona("force_guest", "force_guest"),
            is_admin=self.is_admin, admin_shares=self.admin_shares,
            smb1=self.smb1_persona(), smb2=e.smb2 or not self.persona("smb1", "smb1"),
            faults=self.faults)

    def smb1_persona(self) -> SMB1Persona | None:
        """SMB1's NEGOTIATE and SESSION_SETUP values, or None when SMB1 is off."""
        e = self.edition
        if not self.persona("smb1", "smb1"):
            return None
        return SMB1Persona(max_mpx=e.smb1_max_mpx, max_buffer=e.smb1_max_buffer,
                           capabilities=e.smb1_capabilities, native_os=e.native_os,
                           native_lanman=e.native_lanman,
                           negotiate_blob=e.smb1_negotiate_blob,
                           workgroup=self.config.workgroup,
                           signing_enabled=e.smb1_signing_enabled)

    def windows_path(self, path: str) -> str:
        """How a share's directory shows in NetrShareGetInfo 2/502: ``C:\\...`` for one
        inside the system drive, else ``C:\\Shares\\<dir name>`` (the host has one disk)."""
        full, root = os.path.realpath(path), os.path.realpath(self.system_drive)
        if full == root or full.startswith(root + os.sep):
            rel = os.path.relpath(full, root)
            return "C:\\" + ("" if rel == "." else rel.replace(os.sep, "\\"))
        return "C:\\Shares\\" + os.path.basename(full.rstrip(os.sep))

    def is_admin(self, user: str) -> bool:
        return user.lower() in {name.lower() for name in self.config.admin_users}

    @property
    def rdp_tls(self) -> Any:
        """The edition's TLS on the RDP port (protocols.rdp.tls.TLSProfile)."""
        from protocols.rdp import tls

        return tls.TLSProfile(self.edition.rdp_tls_versions, self.edition.rdp_tls_ciphers,
                              self.edition.rdp_tls_curves)

    def rdp_config(self) -> RDPServerConfig:
        from protocols.auth.credssp import CredSSPAcceptor
        from protocols.rdp import tls

        e = self.edition
        # The key is loaded (or made) once per run and signature hash, and a lab's hosts
        # share it; the certificate follows the host's computer name (a given certificate
        # file is served as it is), the context its edition's TLS. Both are this host's,
        # made on its first RDP connection, gone when it is removed.
        where = (self.config.tls_cert, self.config.tls_key, e.rdp_cert_hash)
        base = self.certificates.get(where)
        if base is None:
            try:
                base = self.certificates[where] = tls.load_or_create(
                    self.config.tls_cert, self.config.tls_key, self.config.netbios_name,
                    hash_name=e.rdp_cert_hash)
            except (OSError, ValueError) as exc:
                raise ListenError(f"rdp: cannot load or create the TLS certificate: {exc}"
                                  ) from None
        shared, name = base, self.config.netbios_name
        self.rdp_context = tls.ContextFactory(
            (lambda: shared) if self.config.tls_cert
            else (lambda: tls.for_name(shared, name, e.rdp_cert_hash)), self.rdp_tls)
        context = self.rdp_context
        ntlm = self.ntlm_settings()
        return RDPServerConfig(
            gate=self.engine, lookup_password=self.lookup_password, clock=self.clock,
            refusal_text=self.edition.rdp_refusal_text, nla=self.edition.rdp_nla,
            nla_mode=self.config.rdp_nla or self.edition.rdp_nla_default,
            early_user_auth=self.edition.rdp_early_user_auth,
            neg_flags=self.edition.rdp_neg_flags, server_version=self.edition.rdp_server_version,
            server_early_flags=self.edition.rdp_early_capability_flags,
            multitransport=self.edition.rdp_multitransport,
            direct_tls=self.edition.rdp_direct_tls,
            refusal_logon_error=self.edition.rdp_logon_error,
            denial_errinfo=self.config.rdp_denial_errinfo,
            refusal_display_seconds=self.config.refusal_display_seconds,
            handshake_timeout=self.config.session_setup_timeout,
            takeover_other_user=self.config.rdp_takeover_other_user,
            takeover=self.edition.rdp_takeover,
            refusal_ok_errinfo=self.edition.rdp_refusal_ok_errinfo,
            fastpath_input_flag=self.edition.rdp_fastpath_input_flag,
            capability_sets=self.edition.rdp_capability_sets,
            computer_name=self.config.netbios_name,
            credssp=lambda: CredSSPAcceptor(self.lookup_password,
                                            context.public_key, **ntlm),
            on_failed_logon=self._rdp_failed_logon,
            security_layers=self.edition.rdp_security_layers,
            answers_negotiation=self.edition.rdp_negotiation,
            standard_security=self._standard_security(), faults=self.faults,
            ending_errinfo=self.rdp_endings, auto_reconnect=CookieJar())

    def rdp_end(self, session_id: int, errinfo: int, *, logoff: bool = False) -> bool:
        """End a Remote Desktop session's connection telling the client ``errinfo``: the
        session stays disconnected (tsdiscon), or with ``logoff`` ends (rwinsta). False
        when the engine refuses (no such session, or not logged on yet)."""
        self.rdp_endings[session_id] = errinfo
        try:
            if logoff:
                return self.engine.end(session_id, "admin-reset")
            return self.engine.admin_disconnect(session_id)
        finally:
            self.rdp_endings.pop(session_id, None)

    def _standard_security(self) -> StandardSecurityConfig | None:
        """The host's RSA key (512 bits, its own, made on its first RDP Security
        connection) and proprietary certificate, when the edition speaks Standard RDP
        Security."""
        if "rdp" not in self.edition.rdp_security_layers:
            return None
        return StandardSecurityConfig(encryption_level=self.edition.rdp_encryption_level,
                                      encryption_methods=self.edition.rdp_encryption_methods)

    def _rdp_failed_logon(self, address: str, user: str, client: str, status: int) -> None:
        """A wrong password (or failed NLA) before any session exists: an event, no slot."""
        self.engine.failed_logon("rdp", address, user, client, status)

    def start(self, ports: Mapping[str, int] | None = None) -> None:
        """Listen on the configured ports (or, after a reboot, on those it had)."""
        ports = ports or {}
        self.listen_smb(ports.get("smb"), ports.get("netbios"))
        rdp_port = ports.get("rdp") or self.config.rdp_port
        if rdp_port is not None and self.serves_rdp():
            from protocols.rdp.twisted import RDPFactory  # xp-home has no RDP host

            rdp = self.rdp_config()
            self._listen("rdp", rdp_port, RDPFactory(rdp, self.rdp_context))
        self._listen_name_service()

    def listen_smb(self, smb_port: int | None = None, netbios_port: int | None = None) -> None:
        """The Server service's listeners, on a fresh SMB config (ServerStartTime from
        ``started``; the ServerGuid follows the computer name, so it stays)."""
        self.smb = smb = self.smb_config()
        self._listen("smb", smb_port or self.config.smb_port, SMBFactory(smb, netbios=False))
        if self.config.netbios_port is not None:
            self._listen("netbios", netbios_port or self.config.netbios_port,
                         SMBFactory(smb, netbios=True))

    # -- faults of the service and the machine (emulator.service_faults) --------------------
    def restart(self, downtime: float) -> dict[str, Any]:
        """The Server service restarts: SMB connections reset, ports closed for downtime s."""
        from emulator import service_faults

        return service_faults.restart(self, service_faults.check_downtime(downtime))

    def reboot(self, downtime: float) -> dict[str, Any]:
        """The machine restarts: every session gone, every port closed for downtime s."""
        from emulator import service_faults

        return service_faults.reboot(self, service_faults.check_downtime(downtime))

    def expire_sessions(self, user: str | None = None) -> list[int]:
        """SMB2 sessions (of ``user``) answer STATUS_NETWORK_SESSION_EXPIRED until the
        client re-authenticates them."""
        from emulator import service_faults

        return service_faults.expire_sessions(self, user)

    def remove_share(self, name: str) -> bool:
        """Delete a share; its connected trees get STATUS_NETWORK_NAME_DELETED."""
        from emulator import service_faults

        return service_faults.remove_share(self, name)

    def node_names(self) -> NodeNames:
        """What the NetBIOS name service answers: Windows' names for this computer and
        workgroup, and a MAC address made from the name (locally administered, stable)."""
        digest = hashlib.sha256(self.config.netbios_name.upper().encode()).digest()
        return NodeNames(self.config.netbios_name, self.config.workgroup,
                         self.config.host, b"\x02" + digest[:5])

    def _listen_name_service(self) -> None:
        """UDP 137 on the host's address when it can be bound (root, free), else none and a
        note; `nbns_port` picks a port (then failing to bind it is an error), -1 none."""
        port, address = self.config.nbns_port, self.config.host
        if port == -1 or ":" in address:  # NetBIOS name service is IPv4 only
            return
        from protocols.nbns.twisted import NameServiceProtocol

        try:
            listening = self.reactor.listenUDP(137 if port is None else port,
                                               NameServiceProtocol(self.node_names()),
                                               interface=address)
        except CannotListenError as exc:
            reason = getattr(exc, "socketError", None) or exc
            if port is not None:
                raise ListenError(f"cannot bind nbns port {port} on {address}: {reason}"
                                  ) from None
            self.notes.append(f"no NetBIOS name service: UDP 137 on {address}: {reason} "
                              "(set nbns_port to use another port)")
            return
        self.listeners.append(Listener("nbns", listening))

    def _listen(self, name: str, port: int, factory: Any) -> None:
        tracked = TrackingFactory(factory, name)
        try:
            listening = self.reactor.listenTCP(port, tracked, interface=self.config.host)
        except CannotListenError as exc:
            sock_err = getattr(exc, "socketError", None)
            if port < 1024 and getattr(sock_err, "errno", None) == errno.EACCES:
                raise ListenError(
                    f"cannot bind {name} port {port} on {self.config.host}: ports below 1024 "
                    f"need root (or CAP_NET_BIND_SERVICE); run as root or pick a port >= 1024"
                ) from None
            raise ListenError(f"cannot bind {name} port {port} on {self.config.host}: "
                              f"{sock_err or exc}") from None
        self.listeners.append(Listener(name, listening))
        self.factories.append(tracked)

    def addresses(self) -> dict[str, str]:
        """Where each listener is: {"smb": "127.0.0.2:445", ...}."""
        return {lst.name: lst.address for lst in self.listeners}

    def ready_words(self) -> str:
        return " ".join(f"{name}={address}" for name, address in self.addresses().items())

    @property
    def connections(self) -> int:
        return sum(len(f.live) for f in self.factories)

    def stop_listening(self) -> defer.Deferred[Any]:
        stopped = [defer.maybeDeferred(lst.port.stopListening) for lst in self.listeners]
        self.listeners.clear()
        return defer.gatherResults(stopped)

    def shutdown(self) -> defer.Deferred[Any]:
        """Take the host apart while the reactor runs: no more listeners, every live
        connection dropped (each session ends and is logged), then every timer it still
        has cancelled, the log closed and its temporary shares removed."""
        stopped = self.stop_listening()
        dropped = [f.drop_all() for f in self.factories]
        done = defer.gatherResults([stopped, *dropped])
        done.addBoth(lambda _: self.close())
        return done

    def close(self) -> None:
        """After the connections are gone (their logoff events are written), close the log
        and cancel what timers are left."""
        self.stop_listening()
        self.factories.clear()
        self.clock.cancel_all()
        self.events.close()
        for path in self._temp_dirs:
            shutil.rmtree(path, ignore_errors=True)


EmulatorServer = Host  # the name before labs held many hosts
