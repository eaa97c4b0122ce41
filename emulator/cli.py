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


def _write_ready_file(path: str | None, lines: list[str]) -> None:
    """--ready-file: the ready lines as JSON, written whole (then renamed) so a poller
    never reads half of it."""
    if not path:
        return
    import json
    import os

    def parse(line: str) -> dict[str, str]:
        return dict(word.split("=", 1) for word in line.split()[1:] if "=" in word)

    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"ready": lines[-1], **parse(lines[-1]),
                   "hosts": [parse(line) for line in lines[:-1]]}, fh)
        fh.write("\n")
    os.replace(tmp, path)


def _run(lab: Any, reactor: Any, ready: list[str], ready_file: str | None) -> int:
    """Print the ready lines, run until stopped (SIGTERM, Ctrl-C)."""
    _write_ready_file(ready_file, ready)  # first: whoever saw the line finds the file
    for line in ready:
        print(line, flush=True)
    # Connections are dropped during shutdown and log their logoffs; close the logs after.
    reactor.addSystemEventTrigger("before", "shutdown", lab.stop_listening)
    reactor.addSystemEventTrigger("after", "shutdown", lab.close)
    reactor.run()
    return 0


def _begin_logging(reactor: Any) -> None:
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from emulator.logfilter import AcceptErrorThrottle

    # Descriptor exhaustion: one line per interval with a count, not three per refusal.
    observer: Any = AcceptErrorThrottle(textFileLogObserver(sys.stderr), reactor)
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def _start_admin(lab: Any, interface: str) -> None:
    if lab.settings.admin_port is not None:
        from emulator.admin.web import build_admin_site  # twisted.web only when asked

        lab.start_admin(build_admin_site(lab), interface)


def cmd_serve(args: argparse.Namespace) -> int:
    """A lab of one host, whose ready line names its listeners and the admin URL."""
    from twisted.internet import reactor as _reactor

    from emulator.lab import Lab
    from emulator.server import ListenError

    reactor: Any = _reactor
    try:
        file_values = load_toml(args.config) if args.config else {}
        config = build_config(file_values, flag_values(args))
        lab = Lab(reactor, config)
        host = lab.add_unstarted(config)
    except (ConfigError, ValueError, ListenError) as exc:
        print(f"smbrdp-emu: {exc}", file=sys.stderr)
        return 2
    _begin_logging(reactor)
    try:
        host.start()
        _start_admin(lab, config.host)
    except ListenError as exc:
        print(f"smbrdp-emu: {exc}", file=sys.stderr)
        lab.stop_listening()
        lab.close()
        return 2
    for note in [*host.notes, *lab.notes]:
        print(f"smbrdp-emu: {note}", file=sys.stderr)
    admin = f" admin={lab.admin_url}" if lab.admin_url else ""
    return _run(lab, reactor, [f"ready {host.ready_words()}{admin}"], args.ready_file)


def cmd_lab(args: argparse.Namespace) -> int:
    """Every [[host]] of FILE in one process: a ready line each, then `ready lab ...`."""
    from twisted.internet import reactor as _reactor

    from emulator.lab import Lab, load_lab, standard_ports
    from emulator.server import ListenError

    reactor: Any = _reactor
    try:
        process, defaults, tables = load_lab(args.file)
        flags = {"admin_port": args.admin_port, "admin_token": args.admin_token}
        settings = build_config(process, flags)
        lab = Lab(reactor, settings, {**standard_ports(), **defaults})
        configs = [lab.config_for(values) for values in tables]
    except (ConfigError, ValueError) as exc:
        print(f"smbrdp-emu: {exc}", file=sys.stderr)
        return 2
    _begin_logging(reactor)
    try:
        for config in configs:
            lab.add(config)
        _start_admin(lab, settings.host)
    except (ConfigError, ListenError) as exc:
        print(f"smbrdp-emu: {exc}", file=sys.stderr)
        lab.stop_listening()
        lab.close()
        return 2
    for host in lab.hosts.values():
        for note in host.notes:
            print(f"smbrdp-emu: host {host.name}: {note}", file=sys.stderr)
    for note in lab.notes:
        print(f"smbrdp-emu: {note}", file=sys.stderr)
    ready = [lab.host_ready_line(h) for h in lab.hosts.values()] + [lab.ready_line()]
    return _run(lab, reactor, ready, args.ready_file)


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
    serve.add_argument("--ready-file", metavar="FILE",
                       help="also write the ready line to FILE as JSON (for other "
                       "languages' test suites)")
    serve.set_defaults(func=cmd_serve)

    lab = sub.add_parser("lab", help="run many emulated hosts in one process")
    lab.add_argument("file", metavar="FILE.toml", help="[[host]] tables; top-level keys are "
                     "every host's defaults")
    lab.add_argument("--admin-port", type=int, metavar="N",
                     help="serve the lab's admin API (0 = any free port)")
    lab.add_argument("--admin-token", metavar="TOKEN",
                     help="bearer token for the admin API (default: generated, on stderr)")
    lab.add_argument("--ready-file", metavar="FILE",
                     help="also write the ready lines to FILE as JSON")
    lab.set_defaults(func=cmd_lab)

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
