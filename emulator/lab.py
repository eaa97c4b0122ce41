"""A lab: any number of emulated hosts in one process and one reactor, one admin API.

`serve` is a lab of one host. `smbrdp-emu lab FILE.toml` reads ``[[host]]`` tables (every
host key of a serve config, plus ``address`` and ``name``; ``[host.users]`` and
``[host.shares]`` sub-tables); the file's top-level keys are defaults for every host, and
the process-wide ones (the admin listener's) belong only there. Hosts are added and
removed while the reactor runs (`Lab.add`, `Lab.remove`); a removed host's connections
are dropped, its slots freed and its timers cancelled (`Host.shutdown`).
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from typing import Any

from twisted.internet import defer

from emulator.config import (
    DEFAULT_NETBIOS_PORT, DEFAULT_SMB_PORT, HOST_KEYS, KEYS, Config, ConfigError, build_config,
    check_values, read_toml,
)
from emulator.server import Host, ListenError, _format_address

# NetBIOS names: 1 to 15 characters, none of \ / : * ? " < > | , = or a space.
NETBIOS_NAME = re.compile(r"[^\\/:*?\"<>|,=\s]{1,15}\Z")
# Keys a [[host]] table spells its own way.
TABLE_KEYS = {"address": "host", "name": "netbios_name"}
PROCESS_KEYS = frozenset(KEYS) - HOST_KEYS


def in_own_network_namespace() -> bool:
    """True inside a network namespace other than the first process's (one made for a
    test with `unshare -n` or `ip netns`): there any address is the lab's own."""
    try:
        return os.stat("/proc/self/ns/net").st_ino != os.stat("/proc/1/ns/net").st_ino
    except OSError:
        return False


def check_address(address: Any, where: str) -> str:
    try:
        ip = ipaddress.ip_address(str(address).strip("[]"))
    except ValueError:
        raise ConfigError(f"{where}address: {address!r} is not an IP address") from None
    if not ip.is_loopback and not in_own_network_namespace():
        raise ConfigError(f"{where}address: {address} is outside 127.0.0.0/8 and ::1 (and "
                          "this lab runs in no network namespace of its own)")
    return str(ip)


def standard_ports() -> dict[str, int]:
    """As root a lab's hosts listen on Windows' own ports; otherwise serve's defaults."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return {"smb_port": 445, "netbios_port": 139}
    return {"smb_port": DEFAULT_SMB_PORT, "netbios_port": DEFAULT_NETBIOS_PORT}


def host_values(table: dict[str, Any], where: str, *, need_address: bool = True,
                ) -> dict[str, Any]:
    """A ``[[host]]`` table (or a POST /api/hosts body) as config keys, checked."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}expected a table of keys")
    table = {str(k).replace("-", "_"): v for k, v in table.items()}
    for own, key in TABLE_KEYS.items():
        if key in table:
            raise ConfigError(f"{where}{key}: a host table says {own} instead")
    misplaced = sorted(set(table) & PROCESS_KEYS)
    if misplaced:
        raise ConfigError(f"{where}{', '.join(misplaced)}: belongs to the whole lab, at the "
                          "top of the file (one admin API serves every host)")
    name = table.pop("name", None)
    if not isinstance(name, str) or not NETBIOS_NAME.match(name):
        raise ConfigError(f"{where}name: {name!r} is not a NetBIOS name (1 to 15 "
                          "characters, none of \\/:*?\"<>|,= or a space)")
    address = table.pop("address", None)
    if address is None and need_address:
        raise ConfigError(f"{where}address: missing (an address in 127.0.0.0/8, or ::1)")
    values = check_values(table, where, allowed=HOST_KEYS)
    values["netbios_name"] = name.upper()
    if address is not None:
        values["host"] = check_address(address, where)
    return values


def load_lab(path: str) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(process-wide keys, host defaults, each host's keys) of a lab file, every host
    checked against the others: a duplicate name or address is an error naming both."""
    raw = read_toml(path)
    tables = raw.pop("host", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError("the lab's top level: host: give each host a [[host]] table "
                          "with its address")
    top = check_values(raw, "the lab's top level: ")
    process = {k: v for k, v in top.items() if k in PROCESS_KEYS}
    defaults = {k: v for k, v in top.items() if k in HOST_KEYS}
    hosts: list[dict[str, Any]] = []
    names: dict[str, int] = {}
    addresses: dict[str, int] = {}
    for number, table in enumerate(tables, 1):
        label = table.get("name") if isinstance(table.get("name"), str) else f"#{number}"
        where = f"host {label}: "
        values = host_values(table, where)
        key = values["netbios_name"]
        if key in names:
            raise ConfigError(f"{where}name: {key} is already host #{names[key]}'s name")
        if values["host"] in addresses:
            raise ConfigError(f"{where}address: {values['host']} is already host "
                              f"#{addresses[values['host']]}'s address")
        names[key], addresses[values["host"]] = number, number
        hosts.append(values)
    return process, defaults, hosts


class Lab:
    """The hosts of one process, by name, and the one admin API that drives them."""

    def __init__(self, reactor: Any, settings: Config | None = None,
                 defaults: dict[str, Any] | None = None) -> None:
        self.reactor = reactor
        self.settings = settings or Config()  # its process-wide keys: the admin listener
        self.defaults = dict(defaults or {})  # host keys every added host starts from
        self.hosts: dict[str, Host] = {}  # by upper-case NetBIOS name
        self.admin_token = self.settings.admin_token or secrets.token_urlsafe(24)
        self.admin_listener: Any = None
        self.notes: list[str] = []
        if self.settings.admin_port is not None and not self.settings.admin_token:
            self.notes.append(f"admin token: {self.admin_token}")
        self.closing: set[defer.Deferred[Any]] = set()
        self.certificates: dict[Any, Any] = {}  # RDP certificates, loaded once (Host)

    # -- the hosts ----------------------------------------------------------------------
    def config_for(self, values: dict[str, Any]) -> Config:
        """A host's Config: serve's defaults, the lab's defaults, then its own keys (lists
        and tables of both merge)."""
        return build_config(self.defaults, values)

    def add(self, config: Config) -> Host:
        """Build and start a host; a name already in the lab, or a listener that cannot
        bind, is refused (ConfigError, ListenError) and leaves nothing behind."""
        host = self.add_unstarted(config)
        try:
            host.start()
        except BaseException:
            del self.hosts[host.name.upper()]
            host.close()
            raise
        return host

    def add_unstarted(self, config: Config) -> Host:
        """A host in the lab whose listeners the caller starts (`serve` logs first)."""
        name = config.netbios_name.upper()
        if name in self.hosts:
            raise ConfigError(f"host {name}: name: already in this lab")
        log = config.event_log
        if log not in (None, "-") and any(h.config.event_log == log
                                          for h in self.hosts.values()):
            raise ConfigError(f"host {name}: event_log: {log} is another host's log")
        host = Host(config, self.reactor, certificates=self.certificates)
        self.hosts[name] = host
        return host

    def add_table(self, table: dict[str, Any], *, need_address: bool = True) -> Host:
        """A host from the keys of a ``[[host]]`` table (POST /api/hosts)."""
        where = f"host {table.get('name', '?')}: " if isinstance(table, dict) else ""
        return self.add(self.config_for(host_values(table, where, need_address=need_address)))

    def get(self, name: str) -> Host | None:
        return self.hosts.get(name.upper())

    def only(self) -> Host | None:
        """The host of a lab of one (today's /api/... routes act on it)."""
        return next(iter(self.hosts.values())) if len(self.hosts) == 1 else None

    def remove(self, name: str) -> defer.Deferred[Any]:
        """Take a host out at once (its name is free again); the Deferred fires once its
        connections are gone and its timers cancelled."""
        host = self.hosts.pop(name.upper())
        done = host.shutdown()
        self.closing.add(done)

        def forget(result: Any) -> Any:
            self.closing.discard(done)
            return result

        done.addBoth(forget)
        return done

    # -- the admin listener and the ready lines --------------------------------------------
    def start_admin(self, site: Any, interface: str) -> None:
        """Listen with the admin API's site (`emulator.admin.web.build_admin_site(lab)`:
        the administration is the lab's client, the lab does not know it)."""
        if self.settings.admin_port is None:
            return
        try:
            self.admin_listener = self.reactor.listenTCP(
                self.settings.admin_port, site, interface=interface)
        except Exception as exc:  # CannotListenError
            raise ListenError(f"cannot bind admin port {self.settings.admin_port} on "
                              f"{interface}: {getattr(exc, 'socketError', None) or exc}"
                              ) from None

    @property
    def admin_url(self) -> str | None:
        if self.admin_listener is None:
            return None
        addr = self.admin_listener.getHost()
        return f"http://{_format_address(addr.host, addr.port)}"

    def host_ready_line(self, host: Host) -> str:
        return f"ready host={host.name} {host.ready_words()}"

    def ready_line(self) -> str:
        admin = f" admin={self.admin_url}" if self.admin_url else ""
        return f"ready lab hosts={len(self.hosts)}{admin}"

    def stop_listening(self) -> None:
        if self.admin_listener is not None:
            self.admin_listener.stopListening()
            self.admin_listener = None
        for host in self.hosts.values():
            host.stop_listening()

    def close(self) -> None:
        for host in self.hosts.values():
            host.close()
