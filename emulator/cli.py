"""The `smbrdp-emu` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from emulator.config import (
    ConfigError,
    DEFAULT_NETBIOS_PORT,
    DEFAULT_RDP_PORT,
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
            "event_log_max_kb": args.event_log_max_kb,
            "rdp_port": args.rdp_port, "tls_cert": args.tls_cert, "tls_key": args.tls_key,
            "refusal_display_seconds": args.refusal_display_seconds,
            "rdp_denial_errinfo": args.rdp_denial_errinfo,
            "rdp_takeover_other_user": True if args.rdp_takeover_other_user else None,
            "signing_required": args.signing_required,
            "encrypt_data": True if args.encrypt_data else None,
            "session_setup_timeout": args.session_setup_timeout, "smb_limit": args.smb_limit,
            "smb_pending_per_connection": args.smb_pending_per_connection,
            "smb_pending_per_address": args.smb_pending_per_address,
            "smb_preauth_buffer_budget": args.smb_preauth_buffer_budget,
            "encrypt_shares": args.encrypt_share,
            "autodisconnect": args.autodisconnect,
            "null_session_timeout": args.null_session_timeout,
            "restrict_anonymous": args.restrict_anonymous,
            "force_guest": args.force_guest, "smb1": args.smb1, "netbios_name": args.netbios_name,
            "workgroup": args.workgroup, "system_drive": args.system_drive,
            "lm_compatibility_level": args.lm_compatibility_level,
            "restrict_anonymous_sam": args.restrict_anonymous_sam,
            "machine_sid": args.machine_sid,
            "null_session_pipes": args.null_session_pipe,
            "null_session_shares": args.null_session_share,
            "group_by_client": True if args.group_by_client else None,
            "rdp_idle_limit": args.rdp_idle_limit, "limit_event_id": args.limit_event_id,
            "virtual_clock": True if args.virtual_clock else None,
            "admin_port": args.admin_port, "admin_token": args.admin_token,
            "admin_users": args.admin_user, "admin_hosts": args.admin_host,
            "admin_max_body": args.admin_max_body,
            "admin_auth_free_failures": args.admin_auth_free_failures,
            "admin_auth_backoff": args.admin_auth_backoff,
            "admin_auth_backoff_max": args.admin_auth_backoff_max,
            "allow_insecure_exposure": True if args.allow_insecure_exposure else None,
            "denial_status": parse_status(args.denial_status) if args.denial_status else None,
            "users": dict(parse_pair(u, ":", "--user") for u in args.user or []) or None,
            "shares": dict(parse_pair(s, "=", "--share") for s in args.share or []) or None,
        }
        config = build_config(file_values, flags)
        server = EmulatorServer(config, reactor)
    except (ConfigError, ValueError, ListenError) as exc:
        print(f"smbrdp-emu: {exc}", file=sys.stderr)
        return 2
    from emulator.logfilter import AcceptErrorThrottle

    # Descriptor exhaustion: one line per interval with a count, not three per refusal.
    observer: Any = AcceptErrorThrottle(textFileLogObserver(sys.stderr), reactor)
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


def cmd_scenario_list(args: argparse.Namespace) -> int:
    from emulator.scenarios import ScenarioError, describe, find_scenarios

    try:
        scenarios = find_scenarios()
    except ScenarioError as exc:
        print(f"smbrdp-emu: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(describe(scenarios))
    else:
        for sc in scenarios:
            print(f"{sc.name:22} {sc.edition:12} {sc.title}")
    return 0


def cmd_scenario_run(args: argparse.Namespace) -> int:
    from emulator.scenarios import ScenarioError, StepResult, find_scenarios, resolve, \
        run_scenario

    try:
        scenarios = find_scenarios() if args.all else [resolve(n) for n in args.names]
    except ScenarioError as exc:
        print(f"smbrdp-emu: {exc}", file=sys.stderr)
        return 2
    if not scenarios:
        print("smbrdp-emu: name a scenario, a .toml file, or --all", file=sys.stderr)
        return 2

    def show(r: StepResult) -> None:
        verdict = "pass" if r.passed else "FAIL"
        print(f"  {r.number:>3}  {r.say[:52]:52}  {r.expected[:30]:30}  {r.observed[:44]:44}"
              f"  {verdict}", flush=True)

    failed = 0
    for sc in scenarios:
        print(f"{sc.name}: {sc.title} [{sc.edition}]")
        print(f"  {'#':>3}  {'step':52}  {'expected':30}  {'observed':44}  result")
        try:
            results = run_scenario(sc, show)
        except ScenarioError as exc:
            print(f"smbrdp-emu: {exc}", file=sys.stderr)
            return 2
        bad = sum(not r.passed for r in results)
        failed += bad
        print(f"  {'FAILED' if bad else 'passed'}: {len(results) - bad} of {len(results)} "
              f"steps as expected\n")
    return 1 if failed else 0


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
    serve.add_argument("--rdp-port", type=int, help=f"Remote Desktop port (default "
                       f"{DEFAULT_RDP_PORT}; 0 = any free port; none on editions without "
                       "an RDP host)")
    serve.add_argument("--tls-cert", metavar="PEM", help="RDP TLS certificate (default: "
                       "self-signed, generated on first run)")
    serve.add_argument("--tls-key", metavar="PEM",
                       help="its private key (default: in the --tls-cert file)")
    serve.add_argument("--refusal-display-seconds", type=float, metavar="SECONDS",
                       help="how long the RDP refusal message stays on screen (30)")
    serve.add_argument("--rdp-denial-errinfo", type=lambda v: int(v, 0), metavar="CODE",
                       help="Set Error Info code sent with the refusal (0x7 "
                       "SERVER_DENIED_CONNECTION)")
    serve.add_argument("--rdp-takeover-other-user", action="store_true",
                       help="single-session editions: another user's logon ends the session "
                       "in use instead of being refused")
    serve.add_argument("--user", action="append", metavar="NAME:PASSWORD",
                       help=f"an account (repeatable; default {':'.join(DEFAULT_USER)})")
    serve.add_argument("--share", action="append", metavar="NAME=DIR",
                       help="a disk share (repeatable; default: public=<a temp dir>)")
    serve.add_argument("--event-log", metavar="FILE",
                       help="append JSON-lines events to FILE ('-' = stdout)")
    serve.add_argument("--event-log-max-kb", type=int, metavar="KB",
                       help="the event log's maximum size; the oldest records are then "
                       "overwritten (20480, Windows' Security log default)")
    serve.add_argument("--denial-status", metavar="STATUS",
                       help="status at the limit: STATUS_REQUEST_NOT_ACCEPTED (default), "
                       "STATUS_REMOTE_SESSION_LIMIT, or a number")
    serve.add_argument("--smb-limit", type=int, metavar="N",
                       help="override the edition's SMB session limit (-1 = unlimited)")
    serve.add_argument("--signing-required", action=argparse.BooleanOptionalAction,
                       help="require SMB signing (default: the edition's; 11 24H2 does)")
    serve.add_argument("--encrypt-data", action="store_true",
                       help="EncryptData: require SMB3 encryption on every session; a client "
                       "that cannot encrypt gets STATUS_ACCESS_DENIED at SESSION_SETUP")
    serve.add_argument("--encrypt-share", action="append", metavar="NAME",
                       help="EncryptData on one share: TREE_CONNECT of a client that cannot "
                       "encrypt gets STATUS_ACCESS_DENIED (repeatable)")
    serve.add_argument("--session-setup-timeout", type=float, metavar="SECONDS",
                       help="a session setup stalled this long gives its slot back, and an "
                       "SMB connection with no session by then is closed (30)")
    serve.add_argument("--smb-pending-per-connection", type=int, metavar="N",
                       help="SMB session setups in progress one connection may hold (2)")
    serve.add_argument("--smb-pending-per-address", type=int, metavar="N",
                       help="SMB session setups in progress one client address may hold (8)")
    serve.add_argument("--smb-preauth-buffer-budget", type=int, metavar="BYTES",
                       help="bytes all SMB connections without a session may buffer together; "
                       "over it the newest is closed (32 MiB)")
    serve.add_argument("--autodisconnect", type=int, metavar="MINUTES",
                       help="drop SMB sessions idle this long with nothing open (15; 0 = "
                       "within seconds; -1 = off)")
    serve.add_argument("--null-session-timeout", type=float, metavar="SECONDS",
                       help="a null session holding no open expires after this (60)")
    serve.add_argument("--restrict-anonymous", action=argparse.BooleanOptionalAction,
                       help="RestrictNullSessAccess=1: null sessions open only the allowed "
                       "pipes (default: the edition's; Vista and later restrict)")
    serve.add_argument("--netbios-name", metavar="NAME",
                       help="the computer name (default EMULATOR): NTLM, srvsvc, NetBIOS")
    serve.add_argument("--workgroup", metavar="NAME",
                       help="the workgroup wkssvc and srvsvc report (default WORKGROUP)")
    serve.add_argument("--system-drive", metavar="DIR",
                       help="the directory behind C$ (default: a fresh temporary one)")
    serve.add_argument("--force-guest", action=argparse.BooleanOptionalAction,
                       help="XP Simple File Sharing: network logons become Guest "
                       "(default: the edition's; on for XP)")
    serve.add_argument("--smb1", action=argparse.BooleanOptionalAction,
                       help='SMB1 ("NT LM 0.12"; default: the edition\'s: on for XP, 2003, '
                       "WHS, Vista, 7, 2008 R2)")
    serve.add_argument("--lm-compatibility-level", type=int, metavar="0-5",
                       help="LAN Manager authentication level: 4 refuses LM, 5 also NTLMv1 "
                       "(default: the edition's)")
    serve.add_argument("--restrict-anonymous-sam", action=argparse.BooleanOptionalAction,
                       help="RestrictAnonymousSAM: null sessions may not enumerate accounts "
                       "over samr (default: the edition's; XP and later ship it on)")
    serve.add_argument("--machine-sid", metavar="SID",
                       help="the account domain's SID, S-1-5-21-A-B-C (default: generated "
                       "once per computer name and kept in the state directory)")
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
    serve.add_argument("--admin-host", action="append", metavar="NAME",
                       help="a Host name the admin API answers to besides its listen address "
                       "(and localhost on loopback); repeatable")
    serve.add_argument("--admin-max-body", type=int, metavar="BYTES",
                       help="largest admin request body (1048576); larger is refused with 413")
    serve.add_argument("--admin-auth-free-failures", type=int, metavar="N",
                       help="wrong admin tokens per client address before back-off (5)")
    serve.add_argument("--admin-auth-backoff", type=float, metavar="SECONDS",
                       help="first back-off after those, doubling per failure (1)")
    serve.add_argument("--admin-auth-backoff-max", type=float, metavar="SECONDS",
                       help="longest back-off (60)")
    serve.add_argument("--allow-insecure-exposure", action="store_true",
                       help="on a non-loopback --host, serve the built-in account and a "
                       "generated admin token anyway")
    serve.set_defaults(func=cmd_serve)

    editions = sub.add_parser("editions", help="print the editions table")
    editions.set_defaults(func=cmd_editions)

    scenario = sub.add_parser("scenario", help="list or run the scenarios in scenarios/")
    scenario_sub = scenario.add_subparsers(dest="scenario_command", required=True)
    listing = scenario_sub.add_parser("list", help="list the scenarios")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=cmd_scenario_list)
    running = scenario_sub.add_parser("run", help="run scenarios; exit 1 on any failure")
    running.add_argument("names", nargs="*", metavar="NAME|FILE")
    running.add_argument("--all", action="store_true", help="run every scenario")
    running.set_defaults(func=cmd_scenario_run)

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
