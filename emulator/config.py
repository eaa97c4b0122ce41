"""One Config from defaults, an optional TOML file and command-line flags (flags win)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from typing import Any

from emulator.editions import DEFAULT_EDITION, get_edition
from emulator.engine import STATUS_REMOTE_SESSION_LIMIT, STATUS_REQUEST_NOT_ACCEPTED

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
    denial_status: int = STATUS_REQUEST_NOT_ACCEPTED
    smb_limit: int | None = None  # overrides the edition's limit when set (-1 = unlimited)
    # None: the edition's default (README's persona table); True/False override it.
    signing_required: bool | None = None
    encrypt_data: bool = False
    session_setup_timeout: float = 30.0
    netbios_name: str = "EMULATOR"  # the computer name (NTLM, srvsvc, the NetBIOS name)
    workgroup: str = "WORKGROUP"  # the workgroup (wkssvc langroup, srvsvc domain)
    lm_compatibility_level: int | None = None  # None: the edition's default
    force_guest: bool | None = None  # XP Simple File Sharing; None: the edition's default
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

    def validate(self) -> None:
        get_edition(self.edition)  # raises for an unknown name
        if self.session_setup_timeout <= 0:
            raise ConfigError("session_setup_timeout must be positive")
        if not 1 <= self.null_session_timeout <= 3600:
            raise ConfigError("null_session_timeout must be 1 to 3600 seconds")
        if self.autodisconnect < -1:
            raise ConfigError("autodisconnect is minutes, 0, or -1 (off)")
        if self.refusal_display_seconds < 0:
            raise ConfigError("refusal_display_seconds must not be negative")
        if not 0 <= self.rdp_denial_errinfo <= 0xFFFFFFFF:
            raise ConfigError("rdp_denial_errinfo must be a 32-bit number")
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
            elif key in ("null_session_pipes", "null_session_shares", "admin_users"):
                getattr(config, key).extend(v for v in value if v not in getattr(config, key))
            else:
                setattr(config, key, value)
    config.validate()
    return config
