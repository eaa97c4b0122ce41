"""One Config from defaults, an optional TOML file and command-line flags (flags win)."""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field, fields
from typing import Any

from emulator.editions import DEFAULT_EDITION, get_edition
from emulator.engine import (
    DEFAULT_PENDING_PER_ADDRESS, DEFAULT_PENDING_PER_CONNECTION, STATUS_REMOTE_SESSION_LIMIT,
    STATUS_REQUEST_NOT_ACCEPTED,
)
from emulator.events import DEFAULT_MAX_KB, MIN_MAX_KB
from protocols.dcerpc.accounts import valid_machine_sid

# Served when neither flags nor a config file name a user: documented in the README.
DEFAULT_USER = ("user", "password")
DEFAULT_SMB_PORT = 4445  # 445 needs root
DEFAULT_NETBIOS_PORT = 1139  # 139 needs root
DEFAULT_RDP_PORT = 3389

DENIAL_STATUSES = {
    "STATUS_REQUEST_NOT_ACCEPTED": STATUS_REQUEST_NOT_ACCEPTED,
    "STATUS_REMOTE_SESSION_LIMIT": STATUS_REMOTE_SESSION_LIMIT,
}


class ConfigError(ValueError):
    pass


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or a localhost name: reachable from this machine only. Anything
    else (a wildcard such as 0.0.0.0, "" or ::, another address, a host name) is exposed."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass
class Config:
    edition: str = DEFAULT_EDITION
    host: str = "127.0.0.1"
    smb_port: int = DEFAULT_SMB_PORT
    netbios_port: int | None = DEFAULT_NETBIOS_PORT  # None: no NetBIOS listener
    rdp_port: int | None = DEFAULT_RDP_PORT  # None: no RDP listener (nor on xp-home)
    tls_cert: str | None = None  # PEM; None: self-signed, generated on first run
    tls_key: str | None = None  # PEM; None: the key is in tls_cert (or generated)
    refusal_display_seconds: float = 30.0  # the RDP refusal stays on screen this long
    rdp_denial_errinfo: int = 0x7  # ERRINFO_SERVER_DENIED_CONNECTION
    rdp_takeover_other_user: bool = False  # single-session hosts: a new user takes over
    users: dict[str, str] = field(default_factory=dict)
    shares: dict[str, str] = field(default_factory=dict)
    system_drive: str | None = None  # the directory behind C$ (None: a fresh temporary one)
    event_log: str | None = None  # a path, or "-" for stdout after the ready line
    event_log_max_kb: int = DEFAULT_MAX_KB  # then the oldest records are overwritten
    denial_status: int = STATUS_REQUEST_NOT_ACCEPTED
    smb_limit: int | None = None  # overrides the edition's limit when set (-1 = unlimited)
    # None: the edition's default (README's persona table); True/False override it.
    signing_required: bool | None = None
    encrypt_data: bool = False
    encrypt_shares: list[str] = field(default_factory=list)  # shares with EncryptData
    session_setup_timeout: float = 30.0  # also: an SMB connection with no session by then
    # Resource limits against unauthenticated clients (README "Resource limits").
    smb_pending_per_connection: int = DEFAULT_PENDING_PER_CONNECTION
    smb_pending_per_address: int = DEFAULT_PENDING_PER_ADDRESS
    smb_preauth_buffer_budget: int = 32 * 1024 * 1024  # bytes, all such connections together
    netbios_name: str = "EMULATOR"  # the computer name (NTLM, srvsvc, the NetBIOS name)
    workgroup: str = "WORKGROUP"  # the workgroup (wkssvc langroup, srvsvc domain)
    machine_sid: str | None = None  # S-1-5-21-a-b-c; None: generated once, kept per host
    restrict_anonymous_sam: bool | None = None  # RestrictAnonymousSAM; None: the edition's
    lm_compatibility_level: int | None = None  # None: the edition's default
    force_guest: bool | None = None  # XP Simple File Sharing; None: the edition's default
    smb1: bool | None = None  # SMB1 ("NT LM 0.12"); None: the edition's default
    # Counting rules (emulator.engine.Rules), changeable at runtime through the admin API.
    autodisconnect: int = 15  # minutes; 0 = within seconds; -1 = off
    null_session_timeout: float = 60.0  # seconds, 30 to 90 on Windows
    restrict_anonymous: bool | None = None  # RestrictNullSessAccess; None: the edition's
    null_session_pipes: list[str] = field(default_factory=list)
    null_session_shares: list[str] = field(default_factory=list)
    group_by_client: bool = False
    rdp_idle_limit: float | None = None  # seconds
    limit_event_id: int = 2003
    # Time and administration.
    virtual_clock: bool = False
    admin_port: int | None = None  # None: no admin listener
    admin_token: str | None = None  # None: generated and printed on stderr
    admin_users: list[str] = field(default_factory=list)
    admin_hosts: list[str] = field(default_factory=list)  # Host names the API answers to
    admin_max_body: int = 1024 * 1024  # bytes of request body (authenticated requests)
    admin_auth_free_failures: int = 5  # wrong tokens per client address before back-off
    admin_auth_backoff: float = 1.0  # seconds of the first back-off; doubles each failure
    admin_auth_backoff_max: float = 60.0  # the longest back-off
    # Serve the built-in account or a generated admin token on a non-loopback address.
    allow_insecure_exposure: bool = False

    def validate(self) -> None:
        get_edition(self.edition)  # raises for an unknown name
        if self.session_setup_timeout <= 0:
            raise ConfigError("session_setup_timeout must be positive")
        if self.smb_pending_per_connection < 1 or self.smb_pending_per_address < 1:
            raise ConfigError("smb_pending_per_connection/_per_address must be at least 1")
        if self.smb_preauth_buffer_budget < 0:
            raise ConfigError("smb_preauth_buffer_budget must not be negative")
        if not 1 <= self.null_session_timeout <= 3600:
            raise ConfigError("null_session_timeout must be 1 to 3600 seconds")
        if self.autodisconnect < -1:
            raise ConfigError("autodisconnect is minutes, 0, or -1 (off)")
        if self.event_log_max_kb < MIN_MAX_KB:
            raise ConfigError(f"event_log_max_kb must be at least {MIN_MAX_KB}")
        if self.refusal_display_seconds < 0:
            raise ConfigError("refusal_display_seconds must not be negative")
        if not 0 <= self.rdp_denial_errinfo <= 0xFFFFFFFF:
            raise ConfigError("rdp_denial_errinfo must be a 32-bit number")
        if self.machine_sid is not None and not valid_machine_sid(self.machine_sid):
            raise ConfigError("machine_sid must look like S-1-5-21-A-B-C (32-bit numbers)")
        if self.lm_compatibility_level is not None and not 0 <= self.lm_compatibility_level <= 5:
            raise ConfigError("lm_compatibility_level must be 0 to 5")
        if not _valid_computer_name(self.netbios_name):
            raise ConfigError("netbios_name must be 1 to 15 characters, no \\/:*?\"<>| "
                              "or spaces")
        if self.tls_key and not self.tls_cert:
            raise ConfigError("tls_key needs tls_cert")
        for port in (self.smb_port, self.netbios_port, self.admin_port, self.rdp_port):
            if port is not None and not 0 <= port <= 65535:
                raise ConfigError(f"port {port} out of range")
        if self.admin_max_body < 1:
            raise ConfigError("admin_max_body must be at least 1 byte")
        if self.admin_auth_free_failures < 0:
            raise ConfigError("admin_auth_free_failures must not be negative")
        if not 0 < self.admin_auth_backoff <= self.admin_auth_backoff_max:
            raise ConfigError("admin_auth_backoff must be positive and at most "
                              "admin_auth_backoff_max")
        self.check_exposure()

    def check_exposure(self) -> None:
        """On a non-loopback address, refuse what anyone could guess or read off a log."""
        if is_loopback(self.host) or self.allow_insecure_exposure:
            return
        where = f"{self.host or '*'} is not a loopback address"
        if not self.users:
            raise ConfigError(f"refusing to serve the built-in account {':'.join(DEFAULT_USER)} "
                              f"({where}): add --user NAME:PASSWORD, or pass "
                              "--allow-insecure-exposure")
        if self.admin_port is not None and not self.admin_token:
            raise ConfigError(f"refusing a generated admin token on plain HTTP ({where}): "
                              "set --admin-token, or pass --allow-insecure-exposure")


def _valid_computer_name(name: str) -> bool:
    """A NetBIOS computer name as Windows accepts one: 1-15 characters, none of the
    reserved ones (MS-NBTE 2.2.1 leaves 15 for the name and one for the suffix)."""
    return (1 <= len(name) <= 15 and name.isprintable()
            and not any(c in name for c in '\\/:*?"<>| .'))


def parse_status(value: str | int) -> int:
    if isinstance(value, int):
        return value
    if value.upper() in DENIAL_STATUSES:
        return DENIAL_STATUSES[value.upper()]
    try:
        return int(value, 0)
    except ValueError:
        raise ConfigError(f"bad denial status {value!r}") from None


def parse_pair(text: str, sep: str, what: str) -> tuple[str, str]:
    name, found, value = text.partition(sep)
    if not found or not name:
        raise ConfigError(f"{what} must look like NAME{sep}VALUE, got {text!r}")
    return name, value


_KNOWN = {f.name for f in fields(Config)}


def load_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    data = {key.replace("-", "_"): value for key, value in raw.items()}
    unknown = set(data) - _KNOWN
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(sorted(unknown))}")
    if "denial_status" in data:
        data["denial_status"] = parse_status(data["denial_status"])
    return data


def build_config(file_values: dict[str, Any], flag_values: dict[str, Any]) -> Config:
    """Flags given on the command line (not None) override the file; users/shares merge."""
    config = Config()
    for source in (file_values, flag_values):
        for key, value in source.items():
            if value is None:
                continue
            if key in ("users", "shares"):
                getattr(config, key).update(value)
            elif key in ("null_session_pipes", "null_session_shares", "admin_users",
                         "admin_hosts", "encrypt_shares"):
                getattr(config, key).extend(v for v in value if v not in getattr(config, key))
            else:
                setattr(config, key, value)
    config.validate()
    return config
