"""Admin verbs for the command line, shaped after the Windows tools admins already know:
`net session|files|share|config server`, `qwinsta`, `rwinsta`, `tsdiscon`, plus `limit`,
`events` and `clock`. Each talks to the admin API (`--admin URL --token TOKEN`, or
SMBRDP_EMU_ADMIN / SMBRDP_EMU_TOKEN) and prints a table, or `--json`: a JSON list of
objects as the API returns them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from emulator.admin.client import ADMIN_ENV, NO_SUCH_CLIENT, TOKEN_ENV, AdminClient, AdminError

# What a verb returns: the objects for --json, and the text for a human.
Output = tuple[list[Any], str]
Verb = Callable[[AdminClient, argparse.Namespace], Output]

DONE = "The command completed successfully."
NO_ENTRIES = "There are no entries in the list."
RULE = "-" * 79  # net.exe's separator line

# qwinsta's words for the engine's states (an idle session is still "Active" there).
QWINSTA_STATES = {"active": "Active", "idle": "Active", "disconnected": "Disc",
                  "pending": "ConnQ", "connected": "Conn"}
# The console when nobody is on it: qwinsta still lists it, as session 0.
EMPTY_CONSOLE = {"protocol": "rdp", "user": "", "client": "", "address": "",
                 "state": "connected", "console": True, "anonymous": False, "opens": 0,
                 "open_files": [], "trees": [], "idle_seconds": 0, "logon_time": None}


# -- output: one table renderer for every verb ------------------------------------------------
def table(rows: Iterable[Sequence[Any]], headers: Sequence[str] | None = None,
          right: Iterable[int] = ()) -> list[str]:
    """Columns as wide as their widest cell, two spaces apart; `right` = right-aligned."""
    cells = [[str(c) for c in row] for row in ([headers] if headers else []) + list(rows)]
    if not cells:
        return []
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    aligned = set(right)
    return ["  ".join(c.rjust(w) if i in aligned else c.ljust(w)
                      for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in cells]


def net_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
              right: Iterable[int] = ()) -> str:
    """net.exe's layout: blank line, header, blank line, rule, rows, completion line."""
    if not rows:
        return NO_ENTRIES
    header, *body = table(rows, headers, right)
    return "\n".join(["", header, "", RULE, *body, DONE])


def hms(seconds: int) -> str:
    return f"{seconds // 3600:02}:{seconds // 60 % 60:02}:{seconds % 60:02}"


def _integer(text: str, what: str) -> int:
    """A number from the command line, or the one-line error `what` explains."""
    try:
        return int(text)
    except ValueError:
        raise AdminError(f"{what}, not {text!r}") from None


def _bare_computer(name: str) -> str:
    """`\\\\PC01` -> `pc01`, compared as the engine compares it (name or address)."""
    return name.lstrip("\\").lower()


# -- net ---------------------------------------------------------------------------------
def net_session(client: AdminClient, args: argparse.Namespace) -> Output:
    computer, delete = None, False
    for word in args.words:
        if len(word) >= 3 and "/delete".startswith(word.lower()):  # /del, /delete (net.exe
            delete = True                                           # takes any unique prefix)
        elif word.startswith("\\\\"):
            computer = word
        else:
            raise AdminError(f"net session: unexpected {word!r} "
                             "(usage: net session [\\\\COMPUTER] [/delete])")
    if delete:
        return [client.call("POST", "/api/sessions/delete", {"client": computer})], DONE
    sessions = [s for s in client.call("GET", "/api/sessions?protocol=smb")
                if s["state"] != "pending"
                and (computer is None or _bare_computer(computer) in (s["client"].lower(),
                                                                         s["address"].lower()))]
    if computer is not None and not sessions:
        raise AdminError(NO_SUCH_CLIENT)
    # Client Type stays empty, as Windows shows it for SMB2/3 clients.
    rows = [(f"\\\\{s['client'] or s['address']}", s["user"], "", s["opens"],
             hms(s["idle_seconds"])) for s in sessions]
    return sessions, net_table(("Computer", "User name", "Client Type", "Opens", "Idle time"),
                               rows, right=[3])


def net_files(client: AdminClient, args: argparse.Namespace) -> Output:
    """`net files`, or `net files ID /close` (the ids are NetrFileEnum's)."""
    if args.words:
        if len(args.words) != 2 or not "/close".startswith(args.words[1].lower()) \
                or len(args.words[1]) < 3:
            raise AdminError("net files: usage: net files [ID /close]")
        open_id = _integer(args.words[0], "net files: ID is a number")
        return [client.call("POST", f"/api/files/{open_id}/close", {})], DONE
    files = client.call("GET", "/api/files")
    rows = [(f["id"], f["path"], f["user"], f["locks"]) for f in files]
    return files, net_table(("ID", "Path", "User name", "# Locks"), rows, right=[3])


def net_share(client: AdminClient, args: argparse.Namespace) -> Output:
    shares = client.call("GET", "/api/shares")
    rows = [(s["name"], s["path"], s["remark"]) for s in shares]
    return shares, net_table(("Share name", "Resource", "Remark"), rows)


def net_config(client: AdminClient, args: argparse.Namespace) -> Output:
    if args.service.lower() != "server":
        raise AdminError("only `net config server` is emulated")
    changes: dict[str, Any] = {}
    for option in args.options:
        name, _, value = option.partition(":")
        if name.lower() == "/autodisconnect":
            changes["autodisconnect"] = _integer(value, "/autodisconnect takes minutes")
        elif name.lower() == "/srvcomment":
            changes["comment"] = value
        else:
            raise AdminError(f"net config server: unknown option {option!r} "
                             "(known: /autodisconnect:MINUTES, /srvcomment:TEXT)")
    if changes:
        return [client.call("PATCH", "/api/server", changes)], DONE
    info = client.call("GET", "/api/server")
    limit = info["maximum_logged_on_users"]
    rows = [("Server Name", info["server_name"]), ("Server Comment", info["comment"]),
            ("", ""), ("Software version", info["software_version"]), ("", ""),
            ("Server hidden", "No"),
            ("Maximum Logged On Users", "Unlimited" if limit is None else limit),
            ("", ""), ("Idle session time (min)", info["autodisconnect"])]
    return [info], "\n".join(["", *table(rows), DONE])


# -- limits, Remote Desktop sessions, events, time --------------------------------------------
def _limit_value(text: str) -> int | None:
    if text.lower() in ("unlimited", "none", "-1"):
        return None
    return _integer(text, "a limit is a number or 'unlimited'")


def limit(client: AdminClient, args: argparse.Namespace) -> Output:
    if args.value is not None:
        rows = [client.call("PUT", f"/api/limits/{quote(args.protocol, safe='')}",
                            {"limit": _limit_value(args.value)})]
    else:
        rows = [r for r in client.call("GET", "/api/limits")
                if args.protocol in (None, r["protocol"])]
        if not rows:
            raise AdminError(f"no protocol {args.protocol!r}")
    text = table([(r["protocol"], "unlimited" if r["limit"] is None else r["limit"], r["used"])
                  for r in rows], ("PROTOCOL", "LIMIT", "IN USE"), right=[1, 2])
    return rows, "\n".join(text)


def qwinsta(client: AdminClient, args: argparse.Namespace) -> Output:
    sessions = client.call("GET", "/api/sessions?protocol=rdp")
    console = next((s for s in sessions if s["console"]), None)
    # The console is session 0, occupied or not; the API takes 0 to mean it.
    rows = [{**(console or EMPTY_CONSOLE), "id": 0, "sessionname": "console"}]
    rows += [{**s, "sessionname": "" if s["state"] == "disconnected" else f"rdp-tcp#{s['id']}"}
             for s in sessions if s is not console]
    text = table([(" " + r["sessionname"], r["user"], r["id"],
                   QWINSTA_STATES.get(r["state"], r["state"])) for r in rows],
                 (" SESSIONNAME", "USERNAME", "ID", "STATE"), right=[2])
    return rows, "\n".join(text)


def _session_action(action: str) -> Verb:
    """rwinsta (`reset`) and tsdiscon (`disconnect`): one POST, silent on success."""
    def run(client: AdminClient, args: argparse.Namespace) -> Output:
        return [client.call("POST", f"/api/sessions/{args.id}/{action}")], ""
    return run


rwinsta = _session_action("reset")
tsdiscon = _session_action("disconnect")


def events(client: AdminClient, args: argparse.Namespace) -> Output:
    query = {k: v for k, v in (("id", args.id), ("since", args.since),
                               ("provider", args.provider), ("last", args.last)) if v is not None}
    found = client.call("GET", "/api/events" + (f"?{urlencode(query)}" if query else ""))
    rows = [(e["time"], e["provider"], e["id"], e["level"], e["message"]) for e in found]
    return found, "\n".join(table(rows, ("TimeCreated", "ProviderName", "Id", "LevelDisplayName",
                                         "Message"), right=[2]))


def clock(client: AdminClient, args: argparse.Namespace) -> Output:
    if args.action == "advance":
        if args.seconds is None:
            raise AdminError("usage: clock advance SECONDS")
        result = client.call("POST", "/api/clock/advance", {"seconds": args.seconds})
        return [result], f"advanced {args.seconds:g} s; the clock now reads {result['now']}"
    result = client.call("GET", "/api/clock")
    return [result], f"{result['now']} ({'virtual' if result['virtual'] else 'real'} clock)"


# -- faults (issue 13) ------------------------------------------------------------------
FAULT_FIELDS = ("action", "status", "delay", "credits", "errinfo", "count", "after", "user",
                "client", "share", "path")


def _fault_rows(faults: list[dict[str, Any]]) -> str:
    if not faults:
        return "No fault is armed."
    rows = [(f["id"], f["protocol"], f["command"], f.get("status", f["action"]),
             "-" if f.get("count") is None else f["count"], f.get("after", 0), f["hits"],
             " ".join(f"{k}={f[k]}" for k in ("user", "client", "share", "path", "delay",
                                              "credits", "errinfo") if f.get(k)))
            for f in faults]
    return "\n".join(table(rows, ("Id", "Protocol", "Command", "Does", "Count", "After", "Hits",
                                  "Matching"), right=[0, 4, 5, 6]))


def fault(client: AdminClient, args: argparse.Namespace) -> Output:
    """`fault list`, `fault add PROTOCOL COMMAND --status NAME ...`, `fault clear [ID]`."""
    if args.action == "add":
        if args.protocol is None:
            raise AdminError("usage: fault add PROTOCOL [COMMAND] --status NAME | --action ...")
        spec: dict[str, Any] = {"protocol": args.protocol, "command": args.fault_command or "*"}
        for name in FAULT_FIELDS:
            value = getattr(args, "action_" if name == "action" else name)
            if value is not None:
                spec[name] = value
        if args.always:
            spec["count"] = None
        row = client.call("POST", "/api/faults", spec)
        return [row], f"fault {row['id']} armed\n" + _fault_rows([row])
    if args.action == "clear":
        if args.protocol is not None:  # `fault clear ID`
            wanted = _integer(args.protocol, "fault clear takes a fault id")
            return [client.call("DELETE", f"/api/faults/{wanted}")], DONE
        return [client.call("DELETE", "/api/faults")], DONE
    found = client.call("GET", "/api/faults")
    return found, _fault_rows(found)


# -- argparse wiring ---------------------------------------------------------------------
def _runner(verb: Verb) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            data, text = verb(AdminClient(args.admin, args.token, host=args.host), args)
        except AdminError as err:
            print(f"smbrdp-emu: {err}", file=sys.stderr)
            return err.exit_code
        if args.json:
            print(json.dumps(data, indent=2))
        elif text:
            print(text)
        return 0
    return run


def add_verb_parsers(sub: Any) -> None:  # argparse's _SubParsersAction
    """Register the Windows-shaped admin verbs on the `smbrdp-emu` parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--admin", metavar="URL",
                        help=f"admin API, e.g. http://127.0.0.1:8080 (default ${ADMIN_ENV})")
    common.add_argument("--token", help=f"admin token (default ${TOKEN_ENV})")
    common.add_argument("--host", metavar="NAME",
                        help="the host of a lab to act on (`smbrdp-emu lab`; a lab of one "
                        "needs none)")
    common.add_argument("--json", action="store_true", help="print a JSON list of objects")

    def verb(parent: Any, name: str, fn: Verb, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = parent.add_parser(name, parents=[common], help=help_text,
                                                            description=help_text)
        parser.set_defaults(func=_runner(fn))
        return parser

    net = sub.add_parser("net", help="net session / files / share / config server").add_subparsers(
        dest="net_command", required=True, metavar="{session,files,share,config}")
    p = verb(net, "session", net_session, "list SMB sessions; \\\\COMPUTER /delete ends them")
    p.add_argument("words", nargs="*", metavar="\\\\COMPUTER | /delete")
    p = verb(net, "files", net_files, "files open through SMB sessions; ID /close closes one")
    p.add_argument("words", nargs="*", metavar="ID /close")
    verb(net, "share", net_share, "the shares, IPC$ included")
    p = verb(net, "config", net_config, "net config server [/autodisconnect:MINUTES] "
             "[/srvcomment:TEXT]")
    p.add_argument("service", metavar="server")
    p.add_argument("options", nargs="*", metavar="/autodisconnect:N")

    p = verb(sub, "limit", limit, "show a protocol's session limit, or set it while running")
    p.add_argument("protocol", nargs="?", help="smb or rdp")
    p.add_argument("value", nargs="?", metavar="N|unlimited")
    verb(sub, "qwinsta", qwinsta, "Remote Desktop sessions (the console is session 0)")
    for name, fn, what in (("rwinsta", rwinsta, "reset a session: log it off, free its slot"),
                           ("tsdiscon", tsdiscon, "disconnect a Remote Desktop session "
                            "(it stays, and still counts)")):
        verb(sub, name, fn, what).add_argument("id", type=int, metavar="ID")
    p = verb(sub, "events", events, "the event log, filtered like Get-WinEvent")
    p.add_argument("--id", type=int, help="event id, e.g. 2003")
    p.add_argument("--since", metavar="TIME", help="ISO 8601 time or POSIX seconds")
    p.add_argument("--provider", help="e.g. Srv, Microsoft-Windows-Security-Auditing")
    p.add_argument("--last", type=int, metavar="N", help="only the N latest")
    p = verb(sub, "fault", fault, "list, arm (add) or clear injected faults")
    p.add_argument("action", nargs="?", choices=["list", "add", "clear"], default="list")
    p.add_argument("protocol", nargs="?", help="add: smb or rdp; clear: a fault id")
    p.add_argument("fault_command", nargs="?", metavar="COMMAND",  # "command" is the verb's
                   help="add: READ, CREATE, SESSION_SETUP, ... (* = any)")
    p.add_argument("--action", dest="action_", metavar="ACTION",
                   help="status, drop, reset, truncate, stall, delay, pending, credits, ...")
    p.add_argument("--status", help="an NT status name or number")
    p.add_argument("--delay", type=float, metavar="SECONDS")
    p.add_argument("--credits", type=int, metavar="N")
    p.add_argument("--errinfo", metavar="NAME")
    p.add_argument("--count", type=int, metavar="N", help="fire N times (default 1)")
    p.add_argument("--always", action="store_true", help="fire every time")
    p.add_argument("--after", type=int, metavar="N", help="let the first N matches through")
    for name in ("user", "client", "share", "path"):
        p.add_argument(f"--{name}", help=f"only requests of this {name}")
    p = verb(sub, "clock", clock, "read the clock, or move a --virtual-clock server's time")
    p.add_argument("action", nargs="?", choices=["now", "advance"], default="now")
    p.add_argument("seconds", nargs="?", type=float)
