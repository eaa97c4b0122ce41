"""The `smbrdp-emu` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from emulator.config import (
    ConfigError,
    DEFAULT_NETBIOS_PORT,
    DEFAULT_SMB_PORT,
    DEFAULT_USER,
    build_config,
    load_toml,
    parse_pair,
    parse_status,
)
from emulator.editions import DEFAULT_EDITION, EDITIONS, format_limit


def _rdp_rule(edition: Any) -> str:
    if edition.rdp_limit == 0:
        return "no RDP host"
    return {"console": "+ console", "admin": "+ /admin", "none": "-"}[edition.rdp_exempt]


def cmd_editions(args: argparse.Namespace) -> int:
    rows = [("NAME", "WINDOWS PRODUCT", "SMB SESSIONS", "RDP SESSIONS", "CONSOLE/ADMIN",
             "MAX SMB DIALECT")]
    for e in EDITIONS.values():
        rows.append((e.name, e.product, format_limit(e.smb_limit),
                     format_limit(e.rdp_limit) if e.rdp_limit else "-", _rdp_rule(e),
                     e.max_dialect_name))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from twisted.internet import reactor as _reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from emulator.server import EmulatorServer, ListenError

    reactor: Any = _reactor

    try:
        file_values = load_toml(args.config) if args.config else {}
        flags: dict[str, Any] = {
            "edition": args.edition, "host": args.host, "smb_port": args.smb_port,
            "netbios_port": args.netbios_port, "event_log": args.event_log,
            "signing_required": True if args.signing_required else None,
            "encrypt_data": True if args.encrypt_data else None,
            "session_setup_timeout": args.session_setup_timeout, "smb_limit": args.smb_limit,
            "autodisconnect": args.autodisconnect,
            "null_session_timeout": args.null_session_timeout,
            "restrict_anonymous": True if args.restrict_anonymous else None,
            "null_session_pipes": args.null_session_pipe,
            "null_session_shares": args.null_session_share,
            "group_by_client": True if args.group_by_client else None,
            "rdp_idle_limit": args.rdp_idle_limit, "limit_event_id": args.limit_event_id,
            "virtual_clock": True if args.virtual_clock else None,
            "admin_port": args.admin_port, "admin_token": args.admin_token,
            "admin_users": args.admin_user,
            "denial_status": parse_status(args.denial_status) if args.denial_status else None,
            "users": dict(parse_pair(u, ":", "--user") for u in args.user or []) or None,
            "shares": dict(parse_pair(s, "=", "--share") for s in args.share or []) or None,
        }
        config = build_config(file_values, flags)
        server = EmulatorServer(config, reactor)
    except (ConfigError, ValueError, ListenError) as exc:
        print(f"smbrdp-emu: {exc}", file=sys.stderr)
        return 2
    observer: Any = textFileLogObserver(sys.stderr)
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    try:
        server.start()
    except ListenError as exc:
        print(f"smbrdp-emu: {exc}", file=sys.stderr)
        server.close()
        return 2
    for note in server.notes:
        print(f"smbrdp-emu: {note}", file=sys.stderr)
    print(server.ready_line(), flush=True)
    # Connections are dropped during shutdown and log their logoffs; close the log after.
    reactor.addSystemEventTrigger("before", "shutdown", server.stop_listening)
    reactor.addSystemEventTrigger("after", "shutdown", server.close)
    reactor.run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smbrdp-emu",
        description="A Windows host at its edition's connection limit, on the wire.")
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="run the emulator (the default command)")
    serve.add_argument("--config", metavar="FILE", help="TOML file; flags override it")
    serve.add_argument("--edition", help=f"edition name (default {DEFAULT_EDITION}); "
                       "see `smbrdp-emu editions`")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--smb-port", type=int, help=f"direct-TCP SMB port (default "
                       f"{DEFAULT_SMB_PORT}; 0 = any free port; 445 needs root)")
    serve.add_argument("--netbios-port", type=int, help=f"NetBIOS session port (default "
                       f"{DEFAULT_NETBIOS_PORT}; 0 = any free port; 139 needs root)")
    serve.add_argument("--user", action="append", metavar="NAME:PASSWORD",
                       help=f"an account (repeatable; default {':'.join(DEFAULT_USER)})")
    serve.add_argument("--share", action="append", metavar="NAME=DIR",
                       help="a disk share (repeatable; default: public=<a temp dir>)")
    serve.add_argument("--event-log", metavar="FILE",
                       help="append JSON-lines events to FILE ('-' = stdout)")
    serve.add_argument("--denial-status", metavar="STATUS",
                       help="status at the limit: STATUS_REQUEST_NOT_ACCEPTED (default), "
                       "STATUS_REMOTE_SESSION_LIMIT, or a number")
    serve.add_argument("--smb-limit", type=int, metavar="N",
                       help="override the edition's SMB session limit (-1 = unlimited)")
    serve.add_argument("--signing-required", action="store_true",
                       help="require SMB signing (Windows servers do; clients SKUs do not)")
    serve.add_argument("--encrypt-data", action="store_true",
                       help="require SMB3 encryption on every session that can do it")
    serve.add_argument("--session-setup-timeout", type=float, metavar="SECONDS",
                       help="a session setup stalled this long gives its slot back (30)")
    serve.add_argument("--autodisconnect", type=int, metavar="MINUTES",
                       help="drop SMB sessions idle this long with nothing open (15; 0 = "
                       "within seconds; -1 = off)")
    serve.add_argument("--null-session-timeout", type=float, metavar="SECONDS",
                       help="a null session holding no open expires after this (60)")
    serve.add_argument("--restrict-anonymous", action="store_true",
                       help="RestrictNullSessAccess=1: null sessions open only the allowed pipes")
    serve.add_argument("--null-session-pipe", action="append", metavar="NAME",
                       help="NullSessionPipes entry (repeatable)")
    serve.add_argument("--null-session-share", action="append", metavar="NAME",
                       help="NullSessionShares entry (repeatable)")
    serve.add_argument("--group-by-client", action="store_true",
                       help="count all sessions of one workstation name once")
    serve.add_argument("--rdp-idle-limit", type=float, metavar="SECONDS",
                       help="disconnect idle RDP sessions (off by default)")
    serve.add_argument("--limit-event-id", type=int, metavar="ID",
                       help="event id of the SMB limit refusal (2003)")
    serve.add_argument("--virtual-clock", action="store_true",
                       help="time moves only when told (POST /api/clock/advance)")
    serve.add_argument("--admin-port", type=int, metavar="N",
                       help="serve the admin API and web console (0 = any free port)")
    serve.add_argument("--admin-token", metavar="TOKEN",
                       help="bearer token for the admin API (default: generated, on stderr)")
    serve.add_argument("--admin-user", action="append", metavar="NAME",
                       help="an account that is an administrator (repeatable)")
    serve.set_defaults(func=cmd_serve)

    editions = sub.add_parser("editions", help="print the editions table")
    editions.set_defaults(func=cmd_editions)

    from emulator.admin.verbs import add_verb_parsers  # net, qwinsta, rwinsta, ...

    add_verb_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # no arguments at all: serve the documented defaults
        args = parser.parse_args(["serve", *(argv or [])])
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
