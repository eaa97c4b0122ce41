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
from typing import Any

from impacket.dcerpc.v5 import srvs
from impacket.dcerpc.v5.dtypes import NULL

from protocols.dcerpc.pipes import (
    RPC_X_BAD_STUB_DATA,
    Caller,
    Fault,
    ServerView,
    Service,
    dword,
    optional_string,
    wire_string,
)

# NET_API_STATUS values (MS-ERREF 2.2, lmerr.h)
NERR_SUCCESS = 0
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_PARAMETER = 87
ERROR_INVALID_LEVEL = 124
NERR_USER_NOT_FOUND = 2221
NERR_NET_NAME_NOT_FOUND = 2310
NERR_CLIENT_NAME_NOT_FOUND = 2312
NERR_FILE_ID_NOT_FOUND = 2314

STYPE_DISKTREE = 0x00000000
STYPE_IPC = 0x00000003
STYPE_SPECIAL = 0x80000000

SESS_GUEST = 0x00000001
PERM_FILE_READ = 0x01
PERM_FILE_WRITE = 0x02
SV_DISC_PARMNUM = 10
MAX_AUTODISCONNECT = 65535  # minutes; 0xFFFFFFFF (-1) turns it off
UNLIMITED = 0xFFFFFFFF

# What a session shows for the transport: SMB over direct TCP on Windows.
TRANSPORT = "\\Device\\NetbiosSmb"

_SESSION_ARMS = {0: "Level0", 1: "Level1", 2: "Level2", 10: "Level10", 502: "Level502"}
_SHARE_ENUM_ARMS = {0: "Level0", 1: "Level1", 2: "Level2", 501: "Level501", 502: "Level502",
                    503: "Level503"}
_SHARE_LEVELS_SERVED = {0, 1, 2, 501, 502, 1005}
_SHARE_ADMIN_LEVELS = {2, 502}
_SERVER_LEVELS_SERVED = {100, 101, 102}


class SrvsvcService(Service):
    name = "srvsvc"
    uuid = srvs.MSRPC_UUID_SRVS[:16]
    version = (3, 0)

    def __init__(self, view: ServerView, caller: Caller) -> None:
        super().__init__(view, caller)
        self.operations = {
            8: (srvs.NetrConnectionEnum, self.connection_enum),
            9: (srvs.NetrFileEnum, self.file_enum),
            11: (srvs.NetrFileClose, self.file_close),
            12: (srvs.NetrSessionEnum, self.session_enum),
            13: (srvs.NetrSessionDel, self.session_del),
            15: (srvs.NetrShareEnum, self.share_enum),
            16: (srvs.NetrShareGetInfo, self.share_get_info),
            21: (srvs.NetrServerGetInfo, self.server_get_info),
            22: (srvs.NetrServerSetInfo, self.server_set_info),
            28: (srvs.NetrRemoteTOD, self.remote_tod),
        }

    # -- sessions ------------------------------------------------------------------------------
    def _sessions(self) -> list[dict[str, Any]]:
        return [s for s in self.view.sessions()
                if s.get("protocol", "smb") == "smb" and s.get("state") in ("active", "idle")]

    def _session_enum_allowed(self, level: int) -> bool:
        if self.caller.anonymous:
            return False
        if self.is_admin:
            return True
        return level in (0, 10) and not self.view.session_enum_needs_admin()

    def session_enum(self, request: Any) -> Any:
        level = request["InfoStruct"]["Level"]
        arm = _SESSION_ARMS.get(level)
        if arm is None:
            raise Fault(RPC_X_BAD_STUB_DATA, f"session level {level}")
        response = srvs.NetrSessionEnumResponse()
        response["InfoStruct"]["Level"] = level
        union = response["InfoStruct"]["SessionInfo"]
        union["tag"] = level
        container = union[arm]
        response["TotalEntries"] = 0
        response["ResumeHandle"] = NULL if _is_null(request, "ResumeHandle") else 0
        response["ErrorCode"] = NERR_SUCCESS
        if not self._session_enum_allowed(level):
            response["ErrorCode"] = ERROR_ACCESS_DENIED
            _entries(container, [])
            return response
        client = _strip_unc(optional_string(request, "ClientName"))
        user = optional_string(request, "UserName") or None
        sessions = self._sessions()
        if client:
            sessions = [s for s in sessions if _client_matches(s, client)]
        if user:
            sessions = [s for s in sessions if s.get("user", "").lower() == user.lower()]
        if not sessions and (client or user):
            response["ErrorCode"] = NERR_CLIENT_NAME_NOT_FOUND if client else NERR_USER_NOT_FOUND
            _entries(container, [])
            return response
        now = self.view.now()
        entries = [_filled(getattr(srvs, f"SESSION_INFO_{level}")(),
                           self._session_fields(level, session, now)) for session in sessions]
        _entries(container, entries)
        response["TotalEntries"] = len(entries)
        return response

    def _session_fields(self, level: int, s: dict[str, Any], now: float) -> dict[str, Any]:
        prefix = f"sesi{level}_"
        fields: dict[str, Any] = {"cname": _cname(s) + "\0"}
        if level == 0:
            return {prefix + k: v for k, v in fields.items()}
        fields["username"] = (s.get("user") or "") + "\0"
        if level != 10:
            fields["num_opens"] = dword(s.get("opens", 0))
        fields["time"] = _age(s, now)
        fields["idle_time"] = dword(s.get("idle_seconds", 0))
        if level != 10:
            fields["user_flags"] = SESS_GUEST if s.get("guest") else 0
        if level in (2, 502):
            fields["cltype_name"] = "\0"
        if level == 502:
            fields["transport"] = TRANSPORT + "\0"
        return {prefix + k: v for k, v in fields.items()}

    def session_del(self, request: Any) -> Any:
        response = srvs.NetrSessionDelResponse()
        client = _strip_unc(optional_string(request, "ClientName"))
        user = optional_string(request, "UserName") or None
        if not self.is_admin:
            response["ErrorCode"] = ERROR_ACCESS_DENIED
        elif not client and not user:
            response["ErrorCode"] = ERROR_INVALID_PARAMETER
        elif self.view.delete_sessions(client, user) == 0:
            response["ErrorCode"] = (NERR_CLIENT_NAME_NOT_FOUND if client
                                     else NERR_USER_NOT_FOUND)
        else:
            response["ErrorCode"] = NERR_SUCCESS
        return response

    # -- open files and connections -------------------------------------------------------------
    def file_enum(self, request: Any) -> Any:
        level = request["InfoStruct"]["Level"]
        if level not in (2, 3):
            raise Fault(RPC_X_BAD_STUB_DATA, f"file level {level}")
        response = srvs.NetrFileEnumResponse()
        response["InfoStruct"]["Level"] = level
        union = response["InfoStruct"]["FileInfo"]
        union["tag"] = level
        container = union[f"Level{level}"]
        response["TotalEntries"] = 0
        response["ResumeHandle"] = NULL if _is_null(request, "ResumeHandle") else 0
        if not self.is_admin:
            response["ErrorCode"] = ERROR_ACCESS_DENIED
            _entries(container, [])
            return response
        base = (optional_string(request, "BasePath") or "").lower()
        user = (optional_string(request, "UserName") or "").lower()
        entries = []
        for session in self._sessions():
            if user and session.get("user", "").lower() != user:
                continue
            for index, path in enumerate(session.get("open_files", [])):
                if base and not path.lower().startswith(base):
                    continue
                entry = getattr(srvs, f"FILE_INFO_{level}")()
                fields: dict[str, Any] = {"fi2_id": file_id(session, index)}
                if level == 3:
                    fields = {"fi3_id": fields["fi2_id"], "fi3_permissions": PERM_FILE_READ,
                              "fi3_num_locks": 0, "fi3_path_name": path + "\0",
                              "fi3_username": (session.get("user") or "") + "\0"}
                entries.append(_filled(entry, fields))
        _entries(container, entries)
        response["TotalEntries"] = len(entries)
        response["ErrorCode"] = NERR_SUCCESS
        return response

    def file_close(self, request: Any) -> Any:
        response = srvs.NetrFileCloseResponse()
        if not self.is_admin:
            response["ErrorCode"] = ERROR_ACCESS_DENIED
        elif self.view.close_file(request["FileId"]):
            response["ErrorCode"] = NERR_SUCCESS
        else:
            response["ErrorCode"] = NERR_FILE_ID_NOT_FOUND
        return response

    def connection_enum(self, request: Any) -> Any:
        """Tree connects, by share (``Qualifier`` = share name) or by computer
        (``\\\\NAME``), from the sessions' optional ``trees``."""
        level = request["InfoStruct"]["Level"]
        if level not in (0, 1):
            raise Fault(RPC_X_BAD_STUB_DATA, f"connection level {level}")
        response = srvs.NetrConnectionEnumResponse()
        response["InfoStruct"]["Level"] = level
        union = response["InfoStruct"]["ConnectInfo"]
        union["tag"] = level
        container = union[f"Level{level}"]
        response["TotalEntries"] = 0
        response["ResumeHandle"] = NULL if _is_null(request, "ResumeHandle") else 0
        qualifier = optional_string(request, "Qualifier") or ""
        if not self.is_admin:
            response["ErrorCode"] = ERROR_ACCESS_DENIED
            _entries(container, [])
            return response
        if not qualifier:
            response["ErrorCode"] = ERROR_INVALID_PARAMETER
            _entries(container, [])
            return response
        shares = {name.lower(): (name, stype) for name, stype, _r, _p in self.view.shares()}
        by_computer = qualifier.startswith("\\\\")
        rows: list[tuple[dict[str, Any], int, str, int]] = []  # session, tree index, share, type
        if by_computer:
            matching = [s for s in self._sessions() if _client_matches(s, _strip_unc(qualifier))]
            if not matching:
                response["ErrorCode"] = NERR_CLIENT_NAME_NOT_FOUND
                _entries(container, [])
                return response
            for s in matching:
                for index, tree in enumerate(s.get("trees", [])):
                    name, stype = shares.get(tree.lower(), (tree, STYPE_DISKTREE))
                    rows.append((s, index, name, stype))
        else:
            if qualifier.lower() not in shares:
                response["ErrorCode"] = NERR_NET_NAME_NOT_FOUND
                _entries(container, [])
                return response
            name, stype = shares[qualifier.lower()]
            for s in self._sessions():
                trees = [t.lower() for t in s.get("trees", [])]
                if name.lower() in trees:
                    rows.append((s, trees.index(name.lower()), name, stype))
        now = self.view.now()
        entries = []
        for s, index, name, stype in rows:
            entry = getattr(srvs, f"CONNECTION_INFO_{level}")()
            connection_id = ((int(s.get("id", 0)) & 0xFFFF) << 16) | (index + 1)
            fields: dict[str, Any] = {"coni0_id": connection_id}
            if level == 1:
                fields = {"coni1_id": connection_id, "coni1_type": stype,
                          "coni1_num_opens": dword(s.get("opens", 0)), "coni1_num_users": 1,
                          "coni1_time": _age(s, now),
                          "coni1_username": (s.get("user") or "") + "\0",
                          "coni1_netname": (name if by_computer else _cname(s)[2:]) + "\0"}
            entries.append(_filled(entry, fields))
        _entries(container, entries)
        response["TotalEntries"] = len(entries)
        response["ErrorCode"] = NERR_SUCCESS
        return response

    # -- shares -----------------------------------------------------------------------------------
    def _current_uses(self, share: str) -> int:
        return sum(share.lower() in [t.lower() for t in s.get("trees", [])]
                   for s in self._sessions())

    def share_enum(self, request: Any) -> Any:
        level = request["InfoStruct"]["Level"]
        arm = _SHARE_ENUM_ARMS.get(level)
        if arm is None:
            raise Fault(RPC_X_BAD_STUB_DATA, f"share level {level}")
        response = srvs.NetrShareEnumResponse()
        response["InfoStruct"]["Level"] = level
        union = response["InfoStruct"]["ShareInfo"]
        union["tag"] = level
        response["TotalEntries"] = 0
        response["ResumeHandle"] = NULL if _is_null(request, "ResumeHandle") else 0
        if level not in _SHARE_LEVELS_SERVED:
            union[arm] = NULL
            response["ErrorCode"] = ERROR_INVALID_LEVEL
            return response
        container = union[arm]
        if level in _SHARE_ADMIN_LEVELS and not self.is_admin:
            response["ErrorCode"] = ERROR_ACCESS_DENIED
            _entries(container, [])
            return response
        entries = [_filled(getattr(srvs, f"SHARE_INFO_{level}")(),
                           self._share_fields(level, share)) for share in self.view.shares()]
        _entries(container, entries)
        response["TotalEntries"] = len(entries)
        response["ErrorCode"] = NERR_SUCCESS
        return response

    def _share_fields(self, level: int, share: tuple[str, int, str, str]) -> dict[str, Any]:
        name, stype, remark, path = share
        p = f"shi{level}_"
        if level == 1005:
            return {"shi1005_flags": 0}
        fields: dict[str, Any] = {p + "netname": name + "\0"}
        if level == 0:
            return fields
        fields[p + "type"] = dword(stype)
        fields[p + "remark"] = remark + "\0"
        if level == 501:
            fields[p + "flags"] = 0
        if level in (2, 502):
            fields.update({p + "permissions": 0, p + "max_uses": UNLIMITED,
                           p + "current_uses": self._current_uses(name),
                           p + "path": path + "\0", p + "passwd": NULL})
        if level == 502:
            fields.update({p + "reserved": 0, p + "security_descriptor": NULL})
        return fields

    def share_get_info(self, request: Any) -> Any:
        level = request["Level"]
        wanted = wire_string(request["NetName"]).lower()
        response = srvs.NetrShareGetInfoResponse()
        info = response["InfoStruct"]
        arm = srvs.SHARE_INFO.union.get(level)
        if arm is None:
            raise Fault(RPC_X_BAD_STUB_DATA, f"share level {level}")
        info["tag"] = level
        arm_name = arm[0]
        share = next((s for s in self.view.shares() if s[0].lower() == wanted), None)
        if level not in _SHARE_LEVELS_SERVED:
            error = ERROR_INVALID_LEVEL
        elif share is None:
            error = NERR_NET_NAME_NOT_FOUND
        elif level in _SHARE_ADMIN_LEVELS and not self.is_admin:
            error = ERROR_ACCESS_DENIED
        else:
            error = NERR_SUCCESS
        if error or share is None:
            info[arm_name] = NULL
        else:
            _fill(info[arm_name], self._share_fields(level, share))
        response["ErrorCode"] = error
        return response

    # -- the server -------------------------------------------------------------------------------
    def server_get_info(self, request: Any) -> Any:
        level = request["Level"]
        response = srvs.NetrServerGetInfoResponse()
        info = response["InfoStruct"]
        arm = srvs.SERVER_INFO.union.get(level)
        if arm is None:
            raise Fault(RPC_X_BAD_STUB_DATA, f"server level {level}")
        info["tag"] = level
        if level not in _SERVER_LEVELS_SERVED:
            info[arm[0]] = NULL
            response["ErrorCode"] = ERROR_INVALID_LEVEL
            return response
        if level == 102 and not self.is_admin:
            info[arm[0]] = NULL
            response["ErrorCode"] = ERROR_ACCESS_DENIED
            return response
        s = self.view.server_info()
        p = f"sv{level}_"
        fields: dict[str, Any] = {p + "platform_id": s.get("platform_id", 500),
                                  p + "name": s.get("name", "") + "\0"}
        if level >= 101:
            fields.update({p + "version_major": s.get("version_major", 10),
                           p + "version_minor": s.get("version_minor", 0),
                           p + "type": dword(s.get("type", 0)),
                           p + "comment": (s.get("comment") or "") + "\0"})
        if level == 102:
            disc = int(s.get("autodisconnect", 15))
            fields.update({p + "users": dword(s.get("users", UNLIMITED)),
                           p + "disc": UNLIMITED if disc < 0 else dword(disc),
                           p + "hidden": 0, p + "announce": 240, p + "anndelta": 3000,
                           p + "licenses": 0, p + "userpath": "c:\\\0"})
        _fill(info[arm[0]], fields)
        response["ErrorCode"] = NERR_SUCCESS
        return response

    def server_set_info(self, request: Any) -> Any:
        # impacket 0.13's request class ends before MS-SRVS's ``[in, out, unique] ParmErr``:
        # it reads a client's trailing ParmErr pointer as surplus, so the answer always
        # carries one (a unique pointer may come back non-NULL).
        level = request["Level"]
        response = srvs.NetrServerSetInfoResponse()
        response["ParmErr"] = 0
        if not self.is_admin:
            response["ErrorCode"] = ERROR_ACCESS_DENIED
            return response
        info = request["InfoStruct"]
        if level != 1010 or info["tag"] != 1010:
            response["ErrorCode"] = ERROR_INVALID_LEVEL
            return response
        if _is_null(info, "ServerInfo1010"):
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
        _fill(response["BufferPtr"], {
            "tod_elapsedt": dword(now), "tod_msecs": int(now * 1000) & 0xFFFFFFFF,
            "tod_hours": t.tm_hour, "tod_mins": t.tm_min, "tod_secs": t.tm_sec,
            "tod_hunds": int(now * 100) % 100,
            "tod_timezone": 0,  # minutes from UTC: the emulator keeps UTC
            "tod_tinterval": 310,  # 0.0001 s units, Windows' clock tick
            "tod_day": t.tm_mday, "tod_month": t.tm_mon, "tod_year": t.tm_year,
            "tod_weekday": (t.tm_wday + 1) % 7,  # 0 = Sunday
        })
        response["ErrorCode"] = NERR_SUCCESS
        return response


# -- helpers --------------------------------------------------------------------------------------

def file_id(session: dict[str, Any], index: int) -> int:
    """The NetrFileEnum id of a session's ``index``-th open (see ``ServerView``)."""
    return ((int(session.get("id", 0)) & 0xFFFF) << 16) | ((index + 1) & 0xFFFF)


def _fill(target: Any, fields: dict[str, Any]) -> None:
    for key, value in fields.items():
        target[key] = value


def _filled(target: Any, fields: dict[str, Any]) -> Any:
    _fill(target, fields)
    return target


def _entries(container: Any, entries: list[Any]) -> None:
    """An info container: its count and its array (a NULL pointer when empty). Call once."""
    container["EntriesRead"] = len(entries)
    if entries:
        for entry in entries:
            container["Buffer"].append(entry)
    else:
        container["Buffer"] = NULL


def _is_null(ndr: Any, key: str) -> bool:
    member = ndr.fields.get(key)
    return getattr(member, "fields", {}).get("ReferentID") == 0


def _strip_unc(name: str | None) -> str | None:
    return name.lstrip("\\") if name else None


def _cname(session: dict[str, Any]) -> str:
    """``\\\\NAME``: the NTLM workstation name, else the address."""
    return "\\\\" + (session.get("client") or session.get("address") or "")


def _client_matches(session: dict[str, Any], wanted: str | None) -> bool:
    wanted = (wanted or "").lower()
    return wanted in ((session.get("client") or "").lower(),
                      (session.get("address") or "").lower())


def _age(session: dict[str, Any], now: float) -> int:
    """Seconds since logon (``logon_time`` is POSIX seconds or ISO 8601)."""
    logon = session.get("logon_time")
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
