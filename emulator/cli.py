"""The `smbrdp-emu` command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from emulator.config import ConfigError, add_flags, build_config, flag_values, load_toml
from emulator.core.editions import EDITIONS, format_limit


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
        flags = flag_values(args)
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
    from emulator.harness.scenarios import ScenarioError, describe, find_scenarios

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
    from emulator.harness.scenarios import ScenarioError, StepResult, find_scenarios, resolve, \
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
    add_flags(serve)  # one flag per config key, from its declaration
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
