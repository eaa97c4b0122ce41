"""MS-SRVS (the Server service, ``\\PIPE\\srvsvc``): shares, sessions, open files, server info.

Every answer is drawn from the ``ServerView`` (the live session engine). Who may call
what follows Windows (the Win32 NetApi documentation of each call, MS-SRVS 3.1.4):

- NetrShareEnum / NetrShareGetInfo levels 0, 1 (and 501, 1005): anyone, null sessions
  included (``net view``, ``smbclient -L``); levels 2 and 502 (local paths): administrators.
- NetrSessionEnum levels 0 and 10: any authenticated user on XP/7-era editions; levels 1,
  2 and 502: administrators; on Windows 10 1607+ / Server 2016+ every level is for
  administrators (``ServerView.session_enum_needs_admin``). Others get ERROR_ACCESS_DENIED.
- NetrSessionDel, NetrFileEnum, NetrFileClose, NetrConnectionEnum, NetrServerSetInfo,
  NetrServerGetInfo level 102: administrators.
- NetrServerGetInfo 100/101 and NetrRemoteTOD: anyone.

Opnums not listed in ``operations`` get the fault nca_s_op_rng_error.
"""

from __future__ import annotations

import datetime
import time
from collections import Counter
from typing import Any

from impacket.dcerpc.v5 import srvs
from impacket.dcerpc.v5.dtypes import NULL

from protocols.dcerpc.netapi import (
    ERROR_ACCESS_DENIED,
    ERROR_INVALID_LEVEL,
    NERR_SUCCESS,
    EnumAnswer,
    InfoAnswer,
    dword,
    fill,
    is_null,
    string_arg,
)
from protocols.dcerpc.service import Access, Service

# NET_API_STATUS values (MS-ERREF 2.2, lmerr.h) beyond those in ``netapi``
ERROR_INVALID_PARAMETER = 87
NERR_USER_NOT_FOUND = 2221
NERR_NET_NAME_NOT_FOUND = 2310
NERR_CLIENT_NAME_NOT_FOUND = 2312
NERR_FILE_ID_NOT_FOUND = 2314

STYPE_DISKTREE = 0x00000000
SESS_GUEST = 0x00000001
PERM_FILE_READ = 0x01
SV_DISC_PARMNUM = 10
MAX_AUTODISCONNECT = 65535  # minutes; 0xFFFFFFFF (-1) turns it off
UNLIMITED = 0xFFFFFFFF

# What a session shows for the transport: SMB over direct TCP on Windows.
TRANSPORT = "\\Device\\NetbiosSmb"

# The levels served, and who may ask for each (see the module docstring).
_SHARE_LEVELS = {0: Access.ANYONE, 1: Access.ANYONE, 2: Access.ADMINS, 501: Access.ANYONE,
                 502: Access.ADMINS, 1005: Access.ANYONE}
_SESSION_LEVELS = {0: Access.USERS, 10: Access.USERS, 1: Access.ADMINS, 2: Access.ADMINS,
                   502: Access.ADMINS}
_SERVER_LEVELS = {100: Access.ANYONE, 101: Access.ANYONE, 102: Access.ADMINS}


class SrvsvcService(Service):
    name = "srvsvc"
    interface = srvs.MSRPC_UUID_SRVS  # 3.0

    def _smb_sessions(self) -> list[dict[str, Any]]:
        """The logged-on SMB sessions: what ``net session`` lists."""
        return [s for s in self.view.sessions()
                if s["protocol"] == "smb" and s["state"] in ("active", "idle")]

    # -- sessions ------------------------------------------------------------------------------
    def session_enum(self, request: Any) -> Any:
        level = request["InfoStruct"]["Level"]
        answer = EnumAnswer(request, srvs.NetrSessionEnumResponse(), "InfoStruct",
                            "SessionInfo", level, "session")
        access = _SESSION_LEVELS[level]
        if self.view.session_enum_needs_admin():
            access = Access.ADMINS
        if not self.permits(access):
            return answer.error(ERROR_ACCESS_DENIED)
        client = _strip_unc(string_arg(request, "ClientName"))
        user = string_arg(request, "UserName")
        sessions = self._smb_sessions()
        if client:
            sessions = [s for s in sessions if _client_matches(s, client)]
        if user:
            sessions = [s for s in sessions if s["user"].lower() == user.lower()]
        if not sessions and (client or user):
            return answer.error(NERR_CLIENT_NAME_NOT_FOUND if client else NERR_USER_NOT_FOUND)
        now = self.view.now()
        entry_class = getattr(srvs, f"SESSION_INFO_{level}")
        return answer.entries([fill(entry_class(), {
            "cname": _cname(s) + "\0", "username": s["user"] + "\0",
            "num_opens": dword(s["opens"]), "time": _age(s, now),
            "idle_time": dword(s["idle_seconds"]),
            "user_flags": SESS_GUEST if s["user"].lower() == "guest" else 0,  # ForceGuest
            "cltype_name": "\0", "transport": TRANSPORT + "\0",
        }) for s in sessions])

    def session_del(self, request: Any) -> Any:
        response = srvs.NetrSessionDelResponse()
        client = _strip_unc(string_arg(request, "ClientName"))
        user = string_arg(request, "UserName")
        if not self.permits(Access.ADMINS):
            response["ErrorCode"] = ERROR_ACCESS_DENIED
        elif not client and not user:
            response["ErrorCode"] = ERROR_INVALID_PARAMETER
        elif self.view.delete_sessions(client or None, user or None) == 0:
            response["ErrorCode"] = (NERR_CLIENT_NAME_NOT_FOUND if client
                                     else NERR_USER_NOT_FOUND)
        else:
            response["ErrorCode"] = NERR_SUCCESS
        return response

    # -- open files and connections -------------------------------------------------------------
    def file_enum(self, request: Any) -> Any:
        level = request["InfoStruct"]["Level"]
        answer = EnumAnswer(request, srvs.NetrFileEnumResponse(), "InfoStruct", "FileInfo",
                            level, "file")
        if not self.permits(Access.ADMINS):
            return answer.error(ERROR_ACCESS_DENIED)
        base = (string_arg(request, "BasePath") or "").lower()
        user = (string_arg(request, "UserName") or "").lower()
        entry_class = getattr(srvs, f"FILE_INFO_{level}")
        entries = []
        for session in self._smb_sessions():
            if user and session["user"].lower() != user:
                continue
            for index, path in enumerate(session["open_files"]):
                if base and not path.lower().startswith(base):
                    continue
                entries.append(fill(entry_class(), {
                    "id": session["open_file_ids"][index], "permissions": PERM_FILE_READ,
                    "num_locks": 0, "path_name": path + "\0",
                    "username": session["user"] + "\0"}))
        return answer.entries(entries)

    def file_close(self, request: Any) -> Any:
        response = srvs.NetrFileCloseResponse()
        if not self.permits(Access.ADMINS):
            response["ErrorCode"] = ERROR_ACCESS_DENIED
        elif self.view.close_file(request["FileId"]):
            response["ErrorCode"] = NERR_SUCCESS
        else:
            response["ErrorCode"] = NERR_FILE_ID_NOT_FOUND
        return response

    def connection_enum(self, request: Any) -> Any:
        """Tree connects, by share (``Qualifier`` = share name) or by computer
        (``\\\\NAME``), from the sessions' ``trees``."""
        level = request["InfoStruct"]["Level"]
        answer = EnumAnswer(request, srvs.NetrConnectionEnumResponse(), "InfoStruct",
                            "ConnectInfo", level, "connection")
        if not self.permits(Access.ADMINS):
            return answer.error(ERROR_ACCESS_DENIED)
        qualifier = string_arg(request, "Qualifier") or ""
        if not qualifier:
            return answer.error(ERROR_INVALID_PARAMETER)
        shares = {name.lower(): (name, stype) for name, stype, _r, _p in self.view.shares()}
        by_computer = qualifier.startswith("\\\\")
        rows: list[tuple[dict[str, Any], int, str, int]] = []  # session, tree index, share, type
        if by_computer:
            matching = [s for s in self._smb_sessions()
                        if _client_matches(s, _strip_unc(qualifier))]
            if not matching:
                return answer.error(NERR_CLIENT_NAME_NOT_FOUND)
            for s in matching:
                for index, tree in enumerate(s["trees"]):
                    name, stype = shares.get(tree.lower(), (tree, STYPE_DISKTREE))
                    rows.append((s, index, name, stype))
        else:
            if qualifier.lower() not in shares:
                return answer.error(NERR_NET_NAME_NOT_FOUND)
            name, stype = shares[qualifier.lower()]
            for s in self._smb_sessions():
                trees = [t.lower() for t in s["trees"]]
                if name.lower() in trees:
                    rows.append((s, trees.index(name.lower()), name, stype))
        now = self.view.now()
        entry_class = getattr(srvs, f"CONNECTION_INFO_{level}")
        return answer.entries([fill(entry_class(), {
            "id": row_id(s, index), "type": stype, "num_opens": dword(s["opens"]),
            "num_users": 1, "time": _age(s, now), "username": s["user"] + "\0",
            # the other end of the connection: the share for a computer, else the computer
            "netname": (name if by_computer else _cname(s)[2:]) + "\0",
        }) for s, index, name, stype in rows])

    # -- shares -----------------------------------------------------------------------------------
    def share_enum(self, request: Any) -> Any:
        level = request["InfoStruct"]["Level"]
        answer = EnumAnswer(request, srvs.NetrShareEnumResponse(), "InfoStruct", "ShareInfo",
                            level, "share")
        if level not in _SHARE_LEVELS:
            return answer.unserved_level()
        if not self.permits(_SHARE_LEVELS[level]):
            return answer.error(ERROR_ACCESS_DENIED)
        entry_class = getattr(srvs, f"SHARE_INFO_{level}")
        uses = self._share_uses()
        return answer.entries([fill(entry_class(), _share_values(share, uses))
                               for share in self.view.shares()])

    def share_get_info(self, request: Any) -> Any:
        level = request["Level"]
        answer = InfoAnswer(srvs.NetrShareGetInfoResponse(), "InfoStruct", level, "share")
        wanted = (string_arg(request, "NetName") or "").lower()
        share = next((s for s in self.view.shares() if s[0].lower() == wanted), None)
        if level not in _SHARE_LEVELS:
            return answer.error(ERROR_INVALID_LEVEL)
        if share is None:
            return answer.error(NERR_NET_NAME_NOT_FOUND)
        if not self.permits(_SHARE_LEVELS[level]):
            return answer.error(ERROR_ACCESS_DENIED)
        return answer.fields(_share_values(share, self._share_uses()))

    def _share_uses(self) -> Counter[str]:
        """How many SMB sessions are connected to each share (lower-cased name)."""
        uses: Counter[str] = Counter()
        for s in self._smb_sessions():
            uses.update({t.lower() for t in s["trees"]})
        return uses

    # -- the server -------------------------------------------------------------------------------
    def server_get_info(self, request: Any) -> Any:
        level = request["Level"]
        answer = InfoAnswer(srvs.NetrServerGetInfoResponse(), "InfoStruct", level, "server")
        if level not in _SERVER_LEVELS:
            return answer.error(ERROR_INVALID_LEVEL)
        if not self.permits(_SERVER_LEVELS[level]):
            return answer.error(ERROR_ACCESS_DENIED)
        s = self.view.server_info()
        disc = s["autodisconnect"]
        return answer.fields({
            "platform_id": s["platform_id"], "name": s["name"] + "\0",
            "version_major": s["version_major"], "version_minor": s["version_minor"],
            "type": dword(s["type"]), "comment": s["comment"] + "\0",
            "users": dword(s["users"]), "disc": UNLIMITED if disc < 0 else dword(disc),
            "hidden": 0, "announce": 240, "anndelta": 3000, "licenses": 0,
            "userpath": "c:\\\0"})

    def server_set_info(self, request: Any) -> Any:
        # impacket 0.13's request class ends before MS-SRVS's ``[in, out, unique] ParmErr``:
        # it reads a client's trailing ParmErr pointer as surplus, so the answer always
        # carries one (a unique pointer may come back non-NULL).
        level = request["Level"]
        response = srvs.NetrServerSetInfoResponse()
        response["ParmErr"] = 0
        if not self.permits(Access.ADMINS):
            response["ErrorCode"] = ERROR_ACCESS_DENIED
            return response
        info = request["InfoStruct"]
        if level != 1010 or info["tag"] != 1010:
            response["ErrorCode"] = ERROR_INVALID_LEVEL
            return response
        if is_null(info, "ServerInfo1010"):
            response["ErrorCode"] = ERROR_INVALID_PARAMETER
            return response
        minutes = info["ServerInfo1010"]["sv1010_disc"]
        if minutes == UNLIMITED:
            minutes = -1
        elif minutes > MAX_AUTODISCONNECT:
            response["ErrorCode"] = ERROR_INVALID_PARAMETER
            response["ParmErr"] = SV_DISC_PARMNUM
            return response
        self.view.set_autodisconnect(minutes)
        response["ErrorCode"] = NERR_SUCCESS
        return response

    def remote_tod(self, request: Any) -> Any:
        now = self.view.now()
        t = time.gmtime(now)
        response = srvs.NetrRemoteTODResponse()
        fill(response["BufferPtr"], {
            "elapsedt": dword(now), "msecs": int(now * 1000) & 0xFFFFFFFF,
            "hours": t.tm_hour, "mins": t.tm_min, "secs": t.tm_sec,
            "hunds": int(now * 100) % 100,
            "timezone": 0,  # minutes from UTC: the emulator keeps UTC
            "tinterval": 310,  # 0.0001 s units, Windows' clock tick
            "day": t.tm_mday, "month": t.tm_mon, "year": t.tm_year,
            "weekday": (t.tm_wday + 1) % 7,  # 0 = Sunday
        })
        response["ErrorCode"] = NERR_SUCCESS
        return response

    operations = {
        8: (srvs.NetrConnectionEnum, connection_enum),
        9: (srvs.NetrFileEnum, file_enum),
        11: (srvs.NetrFileClose, file_close),
        12: (srvs.NetrSessionEnum, session_enum),
        13: (srvs.NetrSessionDel, session_del),
        15: (srvs.NetrShareEnum, share_enum),
        16: (srvs.NetrShareGetInfo, share_get_info),
        21: (srvs.NetrServerGetInfo, server_get_info),
        22: (srvs.NetrServerSetInfo, server_set_info),
        28: (srvs.NetrRemoteTOD, remote_tod),
    }


# -- helpers --------------------------------------------------------------------------------------

def _share_values(share: tuple[str, int, str, str], uses: Counter[str]) -> dict[str, Any]:
    """Every SHARE_INFO_* field of one share (``fill`` takes its level's)."""
    name, stype, remark, path = share
    return {"netname": name + "\0", "type": dword(stype), "remark": remark + "\0",
            "flags": 0, "permissions": 0, "max_uses": UNLIMITED,
            "current_uses": uses[name.lower()], "path": path + "\0", "passwd": NULL,
            "reserved": 0, "security_descriptor": NULL}


def row_id(session: dict[str, Any], index: int) -> int:
    """The id of a session's ``index``-th tree connect (NetrConnectionEnum), numbered like
    its opens' ids: ``(session id << 16) | (1 + index)`` in 32 bits."""
    return ((session["id"] & 0xFFFF) << 16) | ((index + 1) & 0xFFFF)


def _strip_unc(name: str | None) -> str | None:
    return name.lstrip("\\") if name else None


def _cname(session: dict[str, Any]) -> str:
    """``\\\\NAME``: the session's client as Windows records it (the address over direct
    TCP, the NetBIOS calling name over 139), else the address."""
    return "\\\\" + (session["client"] or session["address"])


def _client_matches(session: dict[str, Any], wanted: str | None) -> bool:
    wanted = (wanted or "").lower()
    return wanted in (session["client"].lower(), session["address"].lower())


def _age(session: dict[str, Any], now: float) -> int:
    """Seconds since logon (``logon_time`` is ISO 8601 or POSIX seconds)."""
    logon = session["logon_time"]
    if isinstance(logon, (int, float)):
        start = float(logon)
    elif isinstance(logon, str) and logon:
        try:
            start = datetime.datetime.fromisoformat(logon.replace("Z", "+00:00")).timestamp()
        except ValueError:
            start = now
    else:
        start = now
    return dword(now - start)
