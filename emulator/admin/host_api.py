"""The admin routes of one host: its sessions, files, events, clock, limits, server info,
shares, rules, accounts and reset.

`HostAPI` answers them for the host it is made for; `AdminAPI` (api.py) has already
authenticated the request and chosen the host (``/api/hosts/NAME/...``, or a lab's only
host for the routes without a name). It counts nothing and ends nothing itself: every
change goes through an engine (or host) method.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import TYPE_CHECKING, Any

from emulator.admin.client import NO_SUCH_CLIENT
from emulator.admin.inputs import (
    ADVANCE, DIRECTORY, LIMIT, NAME, OPTIONAL_TEXT, RULES, SERVER_SETTINGS, SHARE_NAME, TEXT,
    ApiError, changes, field_value, json_object, path_id, query_int, shorten,
)
from emulator.admin.replies import Call, Reply, Router, json_reply
from emulator.core import metrics
from emulator.core.engine import CONSOLE_SESSION_ID, DISCONNECTED, Session, file_id
from emulator.core.events import iso_time, parse_time
from emulator.core.faults import FaultError

if TYPE_CHECKING:
    from emulator.server import Host

host_route = Router()
SESSION_ID = r"(\d+)"  # handlers get the text; `HostAPI._session` reads it (path_id)


class HostAPI:
    routes = host_route

    def __init__(self, host: Host) -> None:
        self.server = host
        self.engine = host.engine

    # -- sessions ---------------------------------------------------------------------------
    def _session(self, session_id: str) -> Session:
        wanted = path_id(session_id)
        if wanted is None:
            raise ApiError(404, f"no session {shorten(session_id)}")
        if wanted == CONSOLE_SESSION_ID:
            # qwinsta shows the console as session 0, whatever id the engine gave it.
            session = next((s for s in self.engine.sessions("rdp") if s.console), None)
        else:
            session = self.engine.get(wanted)
        if session is None:
            raise ApiError(404, f"no session {wanted}")
        return session

    def _session_row(self, session: Session) -> dict[str, Any]:
        return session.to_dict(self.engine.now(), self.engine.rules.idle_after)

    @host_route("GET", r"/api/sessions")
    def list_sessions(self, call: Call) -> Any:
        protocol = call.query.get("protocol") or None
        return [self._session_row(s) for s in self.engine.sessions(protocol)]

    @host_route("GET", rf"/api/sessions/{SESSION_ID}")
    def get_session(self, call: Call, session_id: str) -> Any:
        return self._session_row(self._session(session_id))

    def _end_session(self, session_id: str, reason: str) -> Any:
        session = self._session(session_id)
        self.engine.end(session.id, reason)  # the protocol closes it through its hook
        return {"id": session.id, "ended": reason}

    @host_route("DELETE", rf"/api/sessions/{SESSION_ID}")
    def delete_session(self, call: Call, session_id: str) -> Any:
        return self._end_session(session_id, "admin-delete")

    def _errinfo(self, call: Call, session: Session) -> int | None:
        """An optional {"errinfo": NAME}: what the RDP client is told (MS-RDPBCGR
        2.2.5.1.1 names, or a number)."""
        from protocols.rdp.errinfo import errinfo_code

        value = json_object(call.body).get("errinfo")
        if value is None:
            return None
        if session.protocol != "rdp":
            raise ApiError(400, f"errinfo: session {session.id} is {session.protocol}, "
                           "not Remote Desktop")
        try:
            return errinfo_code(value)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None

    @host_route("POST", rf"/api/sessions/{SESSION_ID}/reset")
    def reset_session(self, call: Call, session_id: str) -> Any:
        session = self._session(session_id)
        errinfo = self._errinfo(call, session)
        if errinfo is None:
            return self._end_session(session_id, "admin-reset")
        self.server.rdp_end(session.id, errinfo, logoff=True)
        return {"id": session.id, "ended": "admin-reset", "errinfo": errinfo}

    @host_route("POST", rf"/api/sessions/{SESSION_ID}/disconnect")
    def disconnect_session(self, call: Call, session_id: str) -> Any:
        session = self._session(session_id)
        if session.protocol != "rdp":
            raise ApiError(409, f"session {session.id} is {session.protocol}: only Remote "
                           "Desktop sessions can be disconnected (delete or reset it instead)")
        errinfo = self._errinfo(call, session)
        # engine.admin_disconnect refuses only a pending session and takes an already
        # disconnected one as done: tell the caller which.
        if session.state == DISCONNECTED:
            raise ApiError(409, f"session {session.id} is already disconnected")
        done = (self.engine.admin_disconnect(session.id) if errinfo is None
                else self.server.rdp_end(session.id, errinfo))
        if not done:
            raise ApiError(409, f"session {session.id} has not finished logging on")
        return {"id": session.id, "state": DISCONNECTED,
                **({} if errinfo is None else {"errinfo": errinfo})}

    @host_route("POST", r"/api/sessions/delete")
    def delete_by_client(self, call: Call) -> Any:
        body = json_object(call.body)
        # No client: every SMB session, as `net session /delete` alone does.
        client = field_value(body, "client", OPTIONAL_TEXT, required=False)
        user = field_value(body, "user", OPTIONAL_TEXT, required=False)
        deleted = self.engine.delete_matching(client=client or None, user=user or None)
        if not deleted:
            raise ApiError(404, NO_SUCH_CLIENT)
        return {"deleted": deleted}

    @host_route("GET", r"/api/files")
    def list_files(self, call: Call) -> Any:
        # The ids are NetrFileEnum's: `net files ID /close` and NetrFileClose agree.
        return [{"id": file_id(s.id, i), "path": path, "user": s.user, "session": s.id,
                 "locks": 0}
                for s in self.engine.sessions() for i, path in enumerate(s.open_files)]

    @host_route("POST", r"/api/files/(\d+)/close")
    def close_file(self, call: Call, open_id: str) -> Any:
        wanted = path_id(open_id)
        if wanted is None or not self.engine.close_file(wanted):
            raise ApiError(404, f"no open file {shorten(open_id)}")
        return {"closed": wanted}

    # -- events, time --------------------------------------------------------------
    @host_route("GET", r"/api/events")
    def list_events(self, call: Call) -> Any:
        since = call.query.get("since") or None
        try:
            since_seconds = parse_time(since) if since else None
        except (ValueError, OverflowError):
            since_seconds = math.nan
        if since_seconds is not None and not math.isfinite(since_seconds):
            raise ApiError(400, "since must be ISO 8601 or POSIX seconds, got "
                           f"{shorten(since or '')!r}")
        last = query_int(call.query, "last", low=1)  # as Get-WinEvent -MaxEvents: 1 or more
        events = self.server.events
        found = events.query(event_id=query_int(call.query, "id"), since=since_seconds,
                             provider=call.query.get("provider") or None)
        # How many records the full log overwrote (the oldest go first): a header, so the
        # body stays the list Get-WinEvent would print.
        return json_reply(200, found[-last:] if last else found,
                          [("X-Events-Dropped", str(events.dropped))])

    @host_route("GET", r"/api/clock")
    def read_clock(self, call: Call) -> Any:
        virtual = self.server.virtual_clock is not None
        return {"now": iso_time(self.engine.now()), "virtual": virtual}

    @host_route("POST", r"/api/clock/advance")
    def advance_clock(self, call: Call) -> Any:
        clock = self.server.virtual_clock
        if clock is None:
            raise ApiError(409, "the clock is real: start the server with serve --virtual-clock "
                           "to move it")
        seconds = field_value(json_object(call.body), "seconds", ADVANCE)
        clock.advance(seconds)  # runs every timer that falls due (autodisconnect, expiry...)
        return {"now": iso_time(self.engine.now()), "advanced": seconds}

    @host_route("GET", r"/api/metrics")
    def prometheus(self, call: Call) -> Reply:
        """This host's part of /metrics (``/api/hosts/NAME/metrics``)."""
        text = metrics.render(self.engine, self.server.name)
        return Reply(200, text.encode(), [("Content-Type", metrics.CONTENT_TYPE)])

    # -- limits, server, shares, rules --------------------------------------------------------
    def _limit_row(self, protocol: str) -> dict[str, Any]:
        return {"protocol": protocol, "limit": self.engine.limit(protocol),
                "used": self.engine.counted(protocol)}

    @host_route("GET", r"/api/limits")
    def list_limits(self, call: Call) -> Any:
        return [self._limit_row(p) for p in self.engine.limits()]

    @host_route("PUT", r"/api/limits/([^/]+)")
    def set_limit(self, call: Call, protocol: str) -> Any:
        known = self.engine.limits()
        if protocol not in known:
            raise ApiError(404, f"no protocol {protocol!r} (known: {', '.join(known)})")
        self.engine.set_limit(protocol, field_value(json_object(call.body), "limit", LIMIT))
        return self._limit_row(protocol)  # a lower limit refuses new sessions, ends none

    @host_route("GET", r"/api/server")
    def server_info(self, call: Call) -> Any:
        config, edition = self.server.config, self.server.edition
        return {"server_name": f"\\\\{config.netbios_name}", "comment": self.server.comment,
                "software_version": edition.product, "edition": edition.name,
                "workgroup": config.workgroup,
                "maximum_logged_on_users": self.engine.limit("smb"),
                "autodisconnect": self.engine.rules.autodisconnect_minutes}

    @host_route("PATCH", r"/api/server")
    def patch_server(self, call: Call) -> Any:
        update = changes(json_object(call.body), SERVER_SETTINGS)
        if "comment" in update:
            self.server.comment = update["comment"]
        if "autodisconnect" in update:
            self.engine.set_autodisconnect(update["autodisconnect"])  # re-plans the timers
        return self.server_info(call)

    @host_route("GET", r"/api/shares")
    def list_shares(self, call: Call) -> Any:
        return [{"name": "IPC$", "type": "ipc", "path": "", "remark": "Remote IPC"},
                *({"name": name, "type": "disk", "path": os.path.abspath(path), "remark": ""}
                  for name, path in self.server.share_dirs.items())]

    @host_route("GET", r"/api/rules")
    def get_rules(self, call: Call) -> Any:
        return dataclasses.asdict(self.engine.rules)

    @host_route("PATCH", r"/api/rules")
    def patch_rules(self, call: Call) -> Any:
        for name, value in changes(json_object(call.body), RULES).items():
            setattr(self.engine.rules, name, value)
        self.engine.rules_changed()  # the timing rules feed one expiry timer: re-plan it
        return self.get_rules(call)

    # -- faults (emulator.core.faults): armed here, fired by the protocols -------------------
    @host_route("GET", r"/api/faults")
    def list_faults(self, call: Call) -> Any:
        return self.server.faults.rows()

    @host_route("POST", r"/api/faults")
    def add_fault(self, call: Call) -> Any:
        try:
            return self.server.faults.add(json_object(call.body)).to_dict()
        except FaultError as exc:
            raise ApiError(400, str(exc)) from None

    @host_route("DELETE", r"/api/faults")
    def clear_faults(self, call: Call) -> Any:
        return {"cleared": self.server.faults.clear()}

    @host_route("DELETE", r"/api/faults/(\d+)")
    def remove_fault(self, call: Call, fault_id: str) -> Any:
        wanted = path_id(fault_id)
        removed = None if wanted is None else self.server.faults.remove(wanted)
        if removed is None:
            raise ApiError(404, f"no fault {shorten(fault_id)}")
        return removed.to_dict()

    # -- session, share, service and machine faults (emulator.service_faults) ----------------
    @host_route("POST", r"/api/sessions/expire")
    def expire_sessions(self, call: Call) -> Any:
        user = field_value(json_object(call.body or b"{}"), "user", OPTIONAL_TEXT,
                           required=False)
        return {"expired": self.server.expire_sessions(user or None)}

    @host_route("DELETE", r"/api/shares/([^/]+)")
    def remove_share(self, call: Call, name: str) -> Any:
        if not self.server.remove_share(name):
            raise ApiError(404, f"no share {shorten(name)}")
        return {"removed": name}

    def _downtime(self, call: Call) -> float:
        body = json_object(call.body or b"{}")
        unknown = sorted(set(body) - {"downtime"})
        if unknown:
            raise ApiError(400, f"unknown field {shorten(unknown[0])!r} (known: downtime)")
        return body.get("downtime", 5)

    @host_route("POST", r"/api/restart")
    def restart(self, call: Call) -> Any:
        try:
            return self.server.restart(self._downtime(call))
        except ValueError as exc:
            raise ApiError(409 if "already" in str(exc) else 400, str(exc)) from None

    @host_route("POST", r"/api/reboot")
    def reboot(self, call: Call) -> Any:
        try:
            return self.server.reboot(self._downtime(call))
        except ValueError as exc:
            raise ApiError(409 if "already" in str(exc) else 400, str(exc)) from None

    # -- test harness: accounts, shares, reset (the pytest plugin's host methods) ----------------
    @host_route("POST", r"/api/users")
    def add_user(self, call: Call) -> Any:
        body = json_object(call.body)
        name = field_value(body, "name", NAME)
        self.server.add_user(name, field_value(body, "password", TEXT))
        return {"name": name}

    @host_route("POST", r"/api/shares")
    def add_share(self, call: Call) -> Any:
        body = json_object(call.body)
        name, path = field_value(body, "name", SHARE_NAME), field_value(body, "path", DIRECTORY)
        self.server.add_share(name, path)
        return {"name": name, "path": os.path.abspath(path)}

    @host_route("POST", r"/api/reset")
    def reset_host(self, call: Call) -> Any:
        """A fresh host for the next test: no sessions, no events, the configured limits,
        rules and (empty) server comment. Console logins stay."""
        self.server.reset()
        return {"reset": True}
