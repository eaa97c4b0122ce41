"""One Config from defaults, an optional TOML file and command-line flags (flags win)."""

from __future__ import annotations

import argparse
import ipaddress
import tomllib
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, get_args, get_origin, get_type_hints

from emulator.core.editions import DEFAULT_EDITION, NLA_MODES, get_edition
from emulator.core.engine import (
    DEFAULT_PENDING_PER_ADDRESS, DEFAULT_PENDING_PER_CONNECTION, STATUS_REMOTE_SESSION_LIMIT,
    STATUS_REQUEST_NOT_ACCEPTED,
)
from emulator.core.events import DEFAULT_MAX_KB, MIN_MAX_KB
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


def key(default: Any, help: str, *, flag: str | None = None, metavar: str | None = None,
        parse: Callable[[str], Any] | None = None, scope: str = "host",
        rule: str | None = None) -> Any:
    """One config key: its default and help, and how its flag is spelled and read.

    The field's name is the TOML key; ``--name-with-dashes`` the flag unless ``flag`` says
    otherwise (``""``: no flag). ``scope="process"`` keys belong to the process (the admin
    listener), not to a host: a lab's ``[[host]]`` table refuses them. ``rule`` names the
    `emulator.core.engine.Rules` field the key starts."""
    meta = {"help": help, "flag": flag, "metavar": metavar, "parse": parse, "scope": scope,
            "rule": rule}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Config:
    """Every config key, declared once: argparse flags (`add_flags`), the TOML loader
    (`load_toml`), a lab's ``[[host]]`` tables, the admin API's host creation and the
    README's key table (`key_table`) are all made from these fields."""

    edition: str = key(DEFAULT_EDITION, "edition name; see `smbrdp-emu editions`")
    host: str = key("127.0.0.1", "address to listen on")
    smb_port: int = key(DEFAULT_SMB_PORT, "direct-TCP SMB port (0 = any free port; 445 "
                        "needs root)")
    netbios_port: int | None = key(DEFAULT_NETBIOS_PORT, "NetBIOS session port (0 = any free "
                                   "port; 139 needs root)")
    rdp_port: int | None = key(DEFAULT_RDP_PORT, "Remote Desktop port (0 = any free port; "
                               "none on editions without an RDP host)")
    nbns_port: int | None = key(None, "NetBIOS name service UDP port (unset: 137 when it "
                                "can be bound, else none; 0 = any free port; -1 = none)",
                                metavar="N")
    tls_cert: str | None = key(None, "RDP TLS certificate, PEM (default: self-signed, "
                               "generated on first run)", metavar="PEM")
    tls_key: str | None = key(None, "its private key (default: in the tls_cert file)",
                              metavar="PEM")
    refusal_display_seconds: float = key(30.0, "how long the RDP refusal message stays on "
                                         "screen", metavar="SECONDS")
    rdp_denial_errinfo: int = key(0x7, "Set Error Info code sent with the refusal (0x7 "
                                  "SERVER_DENIED_CONNECTION)", metavar="CODE",
                                  parse=lambda v: int(v, 0))
    rdp_takeover_other_user: bool = key(False, "single-session editions: another user's "
                                        "logon ends the session in use instead of being "
                                        "refused")
    rdp_nla: str | None = key(None, "Network Level Authentication: required (a client "
                              "without CredSSP gets HYBRID_REQUIRED_BY_SERVER), offered, or "
                              "off (unset: as the edition ships; see README)",
                              metavar="|".join(NLA_MODES), parse=lambda v: _nla_mode(v))
    users: dict[str, str] = key({}, f"an account (repeatable; default "
                                f"{':'.join(DEFAULT_USER)})", flag="--user",
                                metavar="NAME:PASSWORD",
                                parse=lambda v: parse_pair(v, ":", "--user"))
    shares: dict[str, str] = key({}, "a disk share (repeatable; default: public=<a temp "
                                 "dir>)", flag="--share", metavar="NAME=DIR",
                                 parse=lambda v: parse_pair(v, "=", "--share"))
    system_drive: str | None = key(None, "the directory behind C$ (default: a fresh "
                                   "temporary one)", metavar="DIR")
    event_log: str | None = key(None, "append JSON-lines events to FILE ('-' = stdout)",
                                metavar="FILE")
    event_log_max_kb: int = key(DEFAULT_MAX_KB, "the event log's maximum size; the oldest "
                                "records are then overwritten (Windows' Security log "
                                "default)", metavar="KB")
    denial_status: int = key(STATUS_REQUEST_NOT_ACCEPTED, "status at the limit: "
                             "STATUS_REQUEST_NOT_ACCEPTED, STATUS_REMOTE_SESSION_LIMIT, or a "
                             "number", metavar="STATUS", parse=lambda v: parse_status(v))
    smb_limit: int | None = key(None, "override the edition's SMB session limit (-1 = "
                                "unlimited)", metavar="N")
    # None: the edition's default (README's persona table); True/False override it.
    signing_required: bool | None = key(None, "require SMB signing (default: the edition's; "
                                        "11 24H2 does)")
    encrypt_data: bool = key(False, "EncryptData: require SMB3 encryption on every session; "
                             "a client that cannot encrypt gets STATUS_ACCESS_DENIED at "
                             "SESSION_SETUP")
    encrypt_shares: list[str] = key([], "EncryptData on one share: TREE_CONNECT of a client "
                                    "that cannot encrypt gets STATUS_ACCESS_DENIED "
                                    "(repeatable)", flag="--encrypt-share", metavar="NAME")
    session_setup_timeout: float = key(30.0, "a session setup stalled this long gives its "
                                       "slot back, and an SMB connection with no session by "
                                       "then is closed", metavar="SECONDS")
    # Resource limits against unauthenticated clients (README "Resource limits").
    smb_pending_per_connection: int = key(DEFAULT_PENDING_PER_CONNECTION, "SMB session "
                                          "setups in progress one connection may hold",
                                          metavar="N")
    smb_pending_per_address: int = key(DEFAULT_PENDING_PER_ADDRESS, "SMB session setups in "
                                       "progress one client address may hold", metavar="N")
    smb_preauth_buffer_budget: int = key(32 * 1024 * 1024, "bytes all SMB connections "
                                         "without a session may buffer together; over it "
                                         "the newest is closed", metavar="BYTES")
    netbios_name: str = key("EMULATOR", "the computer name: NTLM, srvsvc, NetBIOS",
                            metavar="NAME")
    workgroup: str = key("WORKGROUP", "the workgroup wkssvc and srvsvc report",
                         metavar="NAME")
    machine_sid: str | None = key(None, "the account domain's SID, S-1-5-21-A-B-C (default: "
                                  "generated once per computer name and kept in the state "
                                  "directory)", metavar="SID")
    restrict_anonymous_sam: bool | None = key(None, "RestrictAnonymousSAM: null sessions may "
                                              "not enumerate accounts over samr (default: "
                                              "the edition's; XP and later ship it on)")
    lm_compatibility_level: int | None = key(None, "LAN Manager authentication level: 4 "
                                             "refuses LM, 5 also NTLMv1 (default: the "
                                             "edition's)", metavar="0-5")
    force_guest: bool | None = key(None, "XP Simple File Sharing: network logons become Guest "
                                   "(default: the edition's; on for XP)")
    smb1: bool | None = key(None, 'SMB1 ("NT LM 0.12"; default: the edition\'s: on for XP, '
                            "2003, WHS, Vista, 7, 2008 R2)")
    # Counting rules (emulator.core.engine.Rules), changeable at runtime (admin API).
    autodisconnect: int = key(15, "drop SMB sessions idle this long with nothing open "
                              "(minutes; 0 = within seconds; -1 = off)", metavar="MINUTES",
                              rule="autodisconnect_minutes")
    null_session_timeout: float = key(60.0, "a null session holding no open expires after "
                                      "this (30 to 90 s on Windows)", metavar="SECONDS",
                                      rule="null_session_timeout")
    restrict_anonymous: bool | None = key(None, "RestrictNullSessAccess=1: null sessions "
                                          "open only the allowed pipes (default: the "
                                          "edition's; Vista and later restrict)",
                                          rule="restrict_anonymous")
    null_session_pipes: list[str] = key([], "NullSessionPipes entry (repeatable)",
                                        flag="--null-session-pipe", metavar="NAME",
                                        rule="null_session_pipes")
    null_session_shares: list[str] = key([], "NullSessionShares entry (repeatable)",
                                         flag="--null-session-share", metavar="NAME",
                                         rule="null_session_shares")
    group_by_client: bool = key(False, "count all sessions of one workstation name once",
                                rule="group_by_client")
    rdp_idle_limit: float | None = key(None, "disconnect idle RDP sessions (off by default)",
                                       metavar="SECONDS", rule="rdp_idle_limit")
    limit_event_id: int = key(2003, "event id of the SMB limit refusal", metavar="ID")
    # Time and administration.
    virtual_clock: bool = key(False, "time moves only when told (POST /api/clock/advance)")
    admin_port: int | None = key(None, "serve the admin API and web console (0 = any free "
                                 "port)", metavar="N", scope="process")
    admin_token: str | None = key(None, "bearer token for the admin API (default: generated, "
                                  "on stderr)", metavar="TOKEN", scope="process")
    admin_users: list[str] = key([], "an account that is an administrator (repeatable)",
                                 flag="--admin-user", metavar="NAME")
    admin_hosts: list[str] = key([], "a Host name the admin API answers to besides its "
                                 "listen address (and localhost on loopback); repeatable",
                                 flag="--admin-host", metavar="NAME", scope="process")
    admin_max_body: int = key(1024 * 1024, "largest admin request body; larger is refused "
                              "with 413", metavar="BYTES", scope="process")
    admin_auth_free_failures: int = key(5, "wrong admin tokens per client address before "
                                        "back-off", metavar="N", scope="process")
    admin_auth_backoff: float = key(1.0, "first back-off after those, doubling per failure",
                                    metavar="SECONDS", scope="process")
    admin_auth_backoff_max: float = key(60.0, "longest back-off", metavar="SECONDS",
                                        scope="process")
    allow_insecure_exposure: bool = key(False, "on a non-loopback host, serve the built-in "
                                        "account and a generated admin token anyway")

    def validate(self) -> None:
        edition = get_edition(self.edition)  # raises for an unknown name
        if self.rdp_nla is not None:
            if self.rdp_nla not in NLA_MODES:
                raise ConfigError(f"rdp_nla must be one of {', '.join(NLA_MODES)}")
            if self.rdp_nla != "off" and not edition.rdp_nla:
                raise ConfigError(f"{edition.product} has no NLA (CredSSP): rdp_nla = off")
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
        if self.tls_key and not self.tls_cert:
            raise ConfigError("tls_key needs tls_cert")
        for port in (self.smb_port, self.netbios_port, self.admin_port, self.rdp_port):
            if port is not None and not 0 <= port <= 65535:
                raise ConfigError(f"port {port} out of range")
        if self.machine_sid is not None and not valid_machine_sid(self.machine_sid):
            raise ConfigError("machine_sid must look like S-1-5-21-A-B-C (32-bit numbers)")
        if self.lm_compatibility_level is not None and not 0 <= self.lm_compatibility_level <= 5:
            raise ConfigError("lm_compatibility_level must be 0 to 5")
        if not _valid_computer_name(self.netbios_name):
            raise ConfigError("netbios_name must be 1 to 15 characters, no \\/:*?\"<>| "
                              "or spaces")
        if self.nbns_port is not None and not -1 <= self.nbns_port <= 65535:
            raise ConfigError(f"nbns_port {self.nbns_port} out of range")
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


def _nla_mode(value: str) -> str:
    if value not in NLA_MODES:
        raise ValueError(f"rdp_nla must be one of {', '.join(NLA_MODES)}, got {value!r}")
    return value


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


@dataclass(frozen=True)
class Key:
    """What the declaration says of one key, read once from `Config`'s fields."""

    name: str
    kind: type  # bool, int, float, str, list (of str) or dict (str -> str)
    optional: bool  # None is a value: the key may be left unset
    default: Any
    help: str
    flag: str  # "" when it has none
    metavar: str | None
    parse: Callable[[str], Any] | None
    scope: str
    rule: str | None


def _declared_keys() -> dict[str, Key]:
    hints = get_type_hints(Config)
    keys = {}
    for f in fields(Config):
        hint = hints[f.name]
        args = [a for a in get_args(hint) if a is not type(None)]
        optional = type(None) in get_args(hint)
        kind = get_origin(hint) or hint
        if optional:
            kind = args[0]
        meta = f.metadata
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc,operator]
        flag = meta["flag"] if meta["flag"] is not None else "--" + f.name.replace("_", "-")
        keys[f.name] = Key(f.name, kind, optional, default, meta["help"], flag,
                           meta["metavar"], meta["parse"], meta["scope"], meta["rule"])
    return keys


KEYS: dict[str, Key] = _declared_keys()
HOST_KEYS = frozenset(k for k, spec in KEYS.items() if spec.scope == "host")


def _check_type(spec: Key, value: Any, where: str) -> Any:
    """A value from TOML or JSON, as its key's type wants it (or a ConfigError)."""
    if value is None and spec.optional:
        return None
    if spec.parse is not None and isinstance(value, str) and spec.kind is int:
        return spec.parse(value)  # denial_status = "STATUS_...", rdp_denial_errinfo = "0x7"
    ok = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str),
          list: lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
          dict: lambda v: isinstance(v, dict) and all(
              isinstance(k, str) and isinstance(x, str) for k, x in v.items())}[spec.kind]
    if not ok(value):
        wanted_kinds: dict[type, str] = {list: "a list of strings", dict: "a table of strings"}
        wanted = wanted_kinds.get(spec.kind, spec.kind.__name__)
        raise ConfigError(f"{where}{spec.name}: expected {wanted}, got {value!r}")
    return float(value) if spec.kind is float else value


def check_values(raw: dict[str, Any], where: str = "", allowed: frozenset[str] | None = None,
                 ) -> dict[str, Any]:
    """Keys (dashes or underscores) and values from a TOML table or a JSON object, checked
    against the declaration: an unknown key, or one of the wrong type, is a ConfigError
    that names it (``where`` says which table: "host pc1: ")."""
    allowed = frozenset(KEYS) if allowed is None else allowed
    data = {str(k).replace("-", "_"): v for k, v in raw.items()}
    unknown = sorted(set(data) - allowed)
    if unknown:
        kind = "unknown config key" + ("s" if len(unknown) > 1 else "")
        raise ConfigError(f"{where}{kind}: {', '.join(unknown)}")
    return {k: _check_type(KEYS[k], v, where) for k, v in data.items()}


def read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None


def load_toml(path: str) -> dict[str, Any]:
    return check_values(read_toml(path))


def build_config(file_values: dict[str, Any], flag_values: dict[str, Any]) -> Config:
    """Flags given on the command line (not None) override the file; users/shares and the
    lists merge."""
    config = Config()
    for source in (file_values, flag_values):
        for name, value in source.items():
            if value is None:
                continue
            kind = KEYS[name].kind
            if kind is dict:
                getattr(config, name).update(value)
            elif kind is list:
                getattr(config, name).extend(v for v in value if v not in getattr(config, name))
            else:
                setattr(config, name, value)
    config.validate()
    return config


def initial_rules(config: Config) -> dict[str, Any]:
    """The `Rules` fields the config starts (keys declared with ``rule=``)."""
    return {spec.rule: (list(getattr(config, name)) if spec.kind is list
                        else getattr(config, name))
            for name, spec in KEYS.items() if spec.rule}


# -- the command line and the README, from the same declaration ----------------------------
def add_flags(parser: argparse.ArgumentParser, scopes: tuple[str, ...] = ("host", "process"),
              ) -> None:
    for spec in KEYS.values():
        if not spec.flag or spec.scope not in scopes:
            continue
        dest, metavar = spec.name, spec.metavar or spec.name.upper()
        if spec.kind is bool:  # unset (None) = the edition's: --x / --no-x
            action = argparse.BooleanOptionalAction if spec.optional else "store_true"
            parser.add_argument(spec.flag, dest=dest, action=action, default=None,
                                help=spec.help)
        elif spec.kind in (list, dict):
            parser.add_argument(spec.flag, dest=dest, action="append", metavar=metavar,
                                type=_flag_type(spec.parse or str), help=spec.help)
        else:
            default = "" if spec.default is None else f" ({_show(spec.default)})"
            parser.add_argument(spec.flag, dest=dest, metavar=metavar,
                                type=_flag_type(spec.parse or spec.kind),
                                help=spec.help + default)


def _flag_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def read(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:  # argparse prints it: "argument --user: ..."
            raise argparse.ArgumentTypeError(
                f"not a number: {text!r}" if parse in (int, float) else str(exc)) from None
    read.__name__ = getattr(parse, "__name__", "value")
    return read


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The keys given on the command line (the rest None), as `build_config` takes them."""
    values: dict[str, Any] = {}
    for name, spec in KEYS.items():
        value = getattr(args, name, None)
        if value is not None and spec.kind is dict:
            value = dict(value)
        values[name] = value
    return values


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "unset"
    if isinstance(value, (list, dict)):
        return "[]" if isinstance(value, list) else "{}"
    return repr(value)


def key_table() -> str:
    """The README's table of keys (tests/test_readme.py holds the README to it)."""
    rows = ["| key | type | default | flag | what it does |", "|---|---|---|---|---|"]
    for spec in KEYS.values():
        kinds: dict[type, str] = {list: "list of strings", dict: "table"}
        kind = kinds.get(spec.kind, spec.kind.__name__)
        if spec.name == "denial_status":
            kind = "int or name"
        default = ("STATUS_REQUEST_NOT_ACCEPTED" if spec.name == "denial_status"
                   else _show(spec.default))
        flag = f"`{spec.flag}`" if spec.flag else ""
        where = " Process-wide: not in a lab's `[[host]]`." if spec.scope == "process" else ""
        rows.append(f"| `{spec.name}` | {kind} | {default} | {flag} | "
                    f"{spec.help.replace('|', '/')}.{where} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # python -m emulator.config: print the README's key table
    print(key_table(), end="")
