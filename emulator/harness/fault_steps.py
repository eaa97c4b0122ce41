"""Scenario steps for faults on demand (issue 13): arm and clear faults, expire sessions,
remove a share, restart the Server service or reboot the host, and the client work they
interrupt (a copy that runs in the background, a monitoring script's listing).

    [[steps]]
    do = "fault"
    command = "WRITE"        # protocol = "smb" unless given; every POST /api/faults field
    action = "delay"
    delay = 60
    expect = "armed"

Each step returns what it observed, as the steps of `scenarios.py` do.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

from impacket import nmb
from impacket.smbconnection import SessionError

if TYPE_CHECKING:
    from emulator.harness.scenarios import Run

FAULT_FIELDS = ("protocol", "command", "action", "status", "delay", "credits", "errinfo",
                "count", "after", "user", "client", "share", "path")


def _status(err: SessionError) -> str:
    from emulator.harness.scenarios import status_name

    return status_name(err.getErrorCode())


def client_error(exc: BaseException) -> str:
    """A client's failure as a scenario names it: the NT status, or what the TCP connection
    did (refused: nothing listens; lost: reset or closed under the client)."""
    if isinstance(exc, SessionError):
        return _status(exc)
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return "connection refused"
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, (OSError, nmb.NetBIOSError, nmb.NetBIOSTimeout)):
        return "connection lost"
    return f"error: {type(exc).__name__}: {exc}"


def _fault(run: Run, step: dict[str, Any]) -> str:
    spec = {k: step[k] for k in FAULT_FIELDS if k in step}
    spec.setdefault("protocol", "smb")
    run.host.inject(spec.pop("protocol"), spec.pop("command", "*"), **spec)
    return "armed"


def _clear_faults(run: Run, step: dict[str, Any]) -> str:
    run.host.clear_faults()
    return "done"


def _fault_hits(run: Run, step: dict[str, Any]) -> str:
    """How many times the armed faults fired, polled until the expectation is met (the
    client works in the background meanwhile)."""
    wanted = str(step.get("expect", ""))

    def hits() -> str | None:
        found = f"{sum(f['hits'] for f in run.host.faults())} hits"
        return found if found == wanted else None

    return run.wait(hits)


def _expire_sessions(run: Run, step: dict[str, Any]) -> str:
    return f"{len(run.host.expire_sessions(step.get('user')))} expired"


def _remove_share(run: Run, step: dict[str, Any]) -> str:
    run.host.remove_share(step["share"])
    return "done"


def _restart(run: Run, step: dict[str, Any]) -> str:
    run.host.restart(step.get("downtime", 5))
    return "done"


def _reboot(run: Run, step: dict[str, Any]) -> str:
    run.host.reboot(step.get("downtime", 30))
    return "done"


def _smb_list(run: Run, step: dict[str, Any]) -> str:
    """What a monitoring script does: list a share on the client's held connection."""
    conn = run.smb[step["client"]]
    try:
        conn.listPath(step.get("share", "public"), "*")
    except Exception as exc:
        return client_error(exc)
    return "listed"


def _copy(run: Run, step: dict[str, Any]) -> str:
    conn = run.smb[step["client"]]
    data = os.urandom(int(step.get("size", 256 * 1024)))
    chunks = iter([data])
    try:
        conn.putFile(step.get("share", "public"), step.get("file", "copy.bin"),
                     lambda size: next(chunks, b""))
    except Exception as exc:
        return client_error(exc)
    return "copied"


def _smb_copy(run: Run, step: dict[str, Any]) -> str:
    """Copy a file to the share through the client's connection, and wait for it."""
    return _copy(run, step)


def _smb_copy_start(run: Run, step: dict[str, Any]) -> str:
    """Start a copy in the background (a user dragging a file); `smb_copy_result` waits."""
    outcome: dict[str, str] = {}

    def copy() -> None:
        outcome["result"] = _copy(run, step)

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    run.copies[step["client"]] = (thread, outcome)
    return "started"


def _smb_copy_result(run: Run, step: dict[str, Any]) -> str:
    thread, outcome = run.copies.pop(step["client"])
    thread.join(float(step.get("timeout", 30)))
    return outcome.get("result", "still copying")


# -- RDP auto-reconnect (protocols/rdp/autoreconnect.py) ----------------------------------------
def _rdp_client(run: Run, user: str, password: str, extra: bytes = b"") -> Any:
    from emulator.harness.rdp_client import RDPTestClient

    port = run.host.rdp_port
    if port is None:
        raise ValueError("no RDP host")
    client = RDPTestClient(run.host.host, port)
    client.negotiate()
    client.logon(user, password, info_extra=extra)
    client.read_until_drawn()
    return client


def _rdp_logon_arc(run: Run, step: dict[str, Any]) -> str:
    """A Remote Desktop logon by a client that supports auto-reconnect (the project's test
    client, as FreeRDP's /auto-reconnect): it keeps the cookie the server sends."""
    user = step["user"]
    client = _rdp_client(run, user, step.get("password", run.users.get(user, "")))
    deadline = time.monotonic() + 15  # the Save Session Info PDU follows the drawing
    while client.report.arc_cookie is None and time.monotonic() < deadline:
        client._read_one()
    run.arc[user] = {"client": client, "cookie": client.report.arc_cookie,
                     "session": client.report.arc_cookie.logon_id
                     if client.report.arc_cookie else None}
    return "admitted" if client.report.arc_cookie is not None else "no cookie"


def _rdp_drop(run: Run, step: dict[str, Any]) -> str:
    """The network goes (Wi-Fi, a VPN): the TCP connection is lost, the cookie kept."""
    user = step["user"]
    run.arc[user]["client"].close()

    def disconnected() -> str | None:
        states = [s["state"] for s in run.host.sessions("rdp") if s["user"] == user]
        return "disconnected" if "disconnected" in states else None

    return run.wait(disconnected)


def _rdp_auto_reconnect(run: Run, step: dict[str, Any]) -> str:
    """The client reconnects with the ARC_CS cookie answering its last ARC_SC: the same
    session back ("same session"), or another one ("new session N")."""
    from protocols.rdp import autoreconnect

    user = step["user"]
    held = run.arc[user]
    cookie = autoreconnect.ClientCookie.answering(held["cookie"])
    client = _rdp_client(run, user, step.get("password", run.users.get(user, "")),
                         autoreconnect.extended_info(cookie))
    held["client"] = client

    def back() -> str | None:
        mine = [s for s in run.host.sessions("rdp") if s["user"] == user
                and s["state"] in ("active", "idle")]
        if not mine:
            return None
        found = mine[0]["id"]
        return "same session" if found == held["session"] else f"new session {found}"

    return run.wait(back)


def _set_password(run: Run, step: dict[str, Any]) -> str:
    run.host.add_user(step["user"], step["password"])
    return "done"


FAULT_ACTIONS = {
    "rdp_logon_arc": _rdp_logon_arc,
    "rdp_drop": _rdp_drop,
    "rdp_auto_reconnect": _rdp_auto_reconnect,
    "set_password": _set_password,
    "fault": _fault,
    "clear_faults": _clear_faults,
    "fault_hits": _fault_hits,
    "expire_sessions": _expire_sessions,
    "remove_share": _remove_share,
    "restart": _restart,
    "reboot": _reboot,
    "smb_list": _smb_list,
    "smb_copy": _smb_copy,
    "smb_copy_start": _smb_copy_start,
    "smb_copy_result": _smb_copy_result,
}
