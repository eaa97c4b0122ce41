"""Wires the listeners to one engine: the only module that knows both sides."""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass

from typing import Any

from twisted.internet.error import CannotListenError

from emulator.clock import ClockLike, VirtualClock
from emulator.config import DEFAULT_USER, Config
from emulator.editions import get_edition
from emulator.engine import Rules, SessionEngine
from emulator.events import EventLog
from protocols.smb2.connection import SMBServerConfig
from protocols.smb2.fs import DiskShare
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


class EmulatorServer:
    def __init__(self, config: Config, reactor: Any, clock: ClockLike | None = None) -> None:
        self.config = config
        self.reactor = reactor
        # --virtual-clock: the engine's time moves only when told (POST /api/clock/advance).
        self.virtual_clock = VirtualClock() if config.virtual_clock and clock is None else None
        self.clock: ClockLike = clock or self.virtual_clock or reactor
        self.edition = get_edition(config.edition)
        self.events = EventLog.to_path(self.clock.seconds, config.event_log,
                                       limit_event_id=config.limit_event_id)
        limits = {}
        if config.smb_limit is not None:
            limits["smb"] = None if config.smb_limit < 0 else config.smb_limit
        self.engine = SessionEngine(
            self.edition, self.clock, self.events, denial_status=config.denial_status,
            setup_timeout=config.session_setup_timeout, limits=limits,
            rules=Rules(
                autodisconnect_minutes=config.autodisconnect,
                null_session_timeout=config.null_session_timeout,
                restrict_anonymous=config.restrict_anonymous,
                null_session_pipes=list(config.null_session_pipes),
                null_session_shares=list(config.null_session_shares),
                group_by_client=config.group_by_client,
                rdp_idle_limit=config.rdp_idle_limit))
        self.notes: list[str] = []  # what defaults were filled in, for the operator
        self._temp_dirs: list[str] = []
        self.users = dict(config.users) or dict([DEFAULT_USER])
        if not config.users:
            self.notes.append(f"no user configured: serving {DEFAULT_USER[0]}:{DEFAULT_USER[1]}")
        share_dirs = dict(config.shares)
        if not share_dirs:
            share_dirs["public"] = tempfile.mkdtemp(prefix="smbrdp-emu-public-")
            self._temp_dirs.append(share_dirs["public"])
            self.notes.append(f"no share configured: serving public={share_dirs['public']}")
        for name, path in share_dirs.items():
            if not os.path.isdir(path):
                raise ListenError(f"share {name}: {path} is not a directory")
        self.share_dirs = share_dirs
        self.shares = {name.lower(): DiskShare(name, path) for name, path in share_dirs.items()}
        self.listeners: list[Listener] = []
        self.admin_token = config.admin_token or secrets.token_urlsafe(24)
        if config.admin_port is not None and not config.admin_token:
            self.notes.append(f"admin token: {self.admin_token}")

    def lookup_password(self, user: str) -> str | None:
        wanted = user.lower()
        return next((pw for name, pw in self.users.items() if name.lower() == wanted), None)

    def smb_config(self) -> SMBServerConfig:
        return SMBServerConfig(
            gate=self.engine, lookup_password=self.lookup_password, shares=self.shares,
            now=self.clock.seconds, max_dialect=self.edition.max_dialect,
            signing_required=self.config.signing_required,
            encrypt_data=self.config.encrypt_data, netbios_name=self.config.netbios_name,
            netbios_domain=self.config.workgroup, dns_name=self.config.netbios_name.lower())

    def start(self) -> None:
        smb = self.smb_config()
        self._listen("smb", self.config.smb_port, SMBFactory(smb, netbios=False))
        if self.config.netbios_port is not None:
            self._listen("netbios", self.config.netbios_port, SMBFactory(smb, netbios=True))
        if self.config.admin_port is not None:
            from emulator.admin.api import build_admin_site  # twisted.web only when asked

            self._listen("admin", self.config.admin_port, build_admin_site(self))

    def _listen(self, name: str, port: int, factory: Any) -> None:
        try:
            listening = self.reactor.listenTCP(port, factory, interface=self.config.host)
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

    def ready_line(self) -> str:
        return "ready " + " ".join(
            f"{lst.name}=http://{lst.address}" if lst.name == "admin" else
            f"{lst.name}={lst.address}" for lst in self.listeners)

    def stop_listening(self) -> None:
        for lst in self.listeners:
            lst.port.stopListening()
        self.listeners.clear()

    def close(self) -> None:
        """After the connections are gone (their logoff events are written), close the log."""
        self.stop_listening()
        self.events.close()
        for path in self._temp_dirs:
            shutil.rmtree(path, ignore_errors=True)
