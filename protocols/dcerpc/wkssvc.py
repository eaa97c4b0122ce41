"""MS-WKST (the Workstation service, ``\\PIPE\\wkssvc``).

- NetrWkstaGetInfo (0) levels 100 and 101, with the edition's product version (5.1 for
  XP, 6.1 for Windows 7, 10.0 for Windows 10/11...). Level 100 answers anyone; level 101
  (it adds the LAN root) authenticated callers; other levels ERROR_INVALID_LEVEL.
- NetrWkstaUserEnum (2) levels 0 and 1, administrators only: the accounts logged on
  interactively, i.e. the host's RDP sessions (what impacket's netview.py asks).
"""

from __future__ import annotations

from typing import Any

from impacket.dcerpc.v5 import wkst
from impacket.dcerpc.v5.dtypes import LPULONG, NULL, ULONG
from impacket.dcerpc.v5.ndr import NDRCALL

from protocols.dcerpc.pipes import RPC_X_BAD_STUB_DATA, Caller, Fault, ServerView, Service

NERR_SUCCESS = 0
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_LEVEL = 124
PLATFORM_ID_NT = 500


class NetrWkstaUserEnumResponse(NDRCALL):
    """As MS-WKST 3.2.4.3 declares it: ResumeHandle is ``[in, out, unique] unsigned long*``
    (impacket 0.13's response class has a bare ULONG there)."""

    structure = (
        ("UserInfo", wkst.WKSTA_USER_ENUM_STRUCT),
        ("TotalEntries", ULONG),
        ("ResumeHandle", LPULONG),
        ("ErrorCode", ULONG),
    )


class WkssvcService(Service):
    name = "wkssvc"
    uuid = wkst.MSRPC_UUID_WKST[:16]
    version = (1, 0)

    def __init__(self, view: ServerView, caller: Caller) -> None:
        super().__init__(view, caller)
        self.operations = {
            0: (wkst.NetrWkstaGetInfo, self.wksta_get_info),
            2: (wkst.NetrWkstaUserEnum, self.wksta_user_enum),
        }

    def wksta_get_info(self, request: Any) -> Any:
        level = request["Level"]
        arm = wkst.WKSTA_INFO.union.get(level)
        if arm is None:
            raise Fault(RPC_X_BAD_STUB_DATA, f"workstation level {level}")
        response = wkst.NetrWkstaGetInfoResponse()
        info = response["WkstaInfo"]
        info["tag"] = level
        if level not in (100, 101):
            info[arm[0]] = NULL
            response["ErrorCode"] = ERROR_INVALID_LEVEL
            return response
        if level == 101 and self.caller.anonymous:
            info[arm[0]] = NULL
            response["ErrorCode"] = ERROR_ACCESS_DENIED
            return response
        s = self.view.server_info()
        major = s.get("version_major", 10)
        p = f"wki{level}_"
        fields: dict[str, Any] = {
            p + "platform_id": s.get("platform_id", PLATFORM_ID_NT),
            p + "computername": s.get("name", "") + "\0",
            p + "langroup": s.get("domain", "WORKGROUP") + "\0",
            p + "ver_major": major, p + "ver_minor": s.get("version_minor", 0),
        }
        if level == 101:
            fields[p + "lanroot"] = ("C:\\WINDOWS" if major < 6 else "C:\\Windows") + "\0"
        target = info[arm[0]]
        for key, value in fields.items():
            target[key] = value
        response["ErrorCode"] = NERR_SUCCESS
        return response

    def wksta_user_enum(self, request: Any) -> Any:
        level = request["UserInfo"]["Level"]
        if level not in (0, 1):
            raise Fault(RPC_X_BAD_STUB_DATA, f"user level {level}")
        response = NetrWkstaUserEnumResponse()
        response["UserInfo"]["Level"] = level
        union = response["UserInfo"]["WkstaUserInfo"]
        union["tag"] = level
        container = union[f"Level{level}"]
        resume = request.fields["ResumeHandle"].fields.get("ReferentID")
        response["ResumeHandle"] = NULL if resume == 0 else 0
        users: list[str] = []
        if self.is_admin:
            users = [s.get("user") or "" for s in self.view.sessions()
                     if s.get("protocol") == "rdp" and s.get("user")]
            response["ErrorCode"] = NERR_SUCCESS
        else:
            response["ErrorCode"] = ERROR_ACCESS_DENIED
        computer = self.view.server_info().get("name", "")
        entries = []
        for user in users:
            entry = getattr(wkst, f"WKSTA_USER_INFO_{level}")()
            entry[f"wkui{level}_username"] = user + "\0"
            if level == 1:
                # Local accounts: the logon domain and server are the computer itself.
                entry["wkui1_logon_domain"] = computer + "\0"
                entry["wkui1_oth_domains"] = "\0"
                entry["wkui1_logon_server"] = computer + "\0"
            entries.append(entry)
        container["EntriesRead"] = len(entries)
        if entries:
            for entry in entries:
                container["Buffer"].append(entry)
        else:
            container["Buffer"] = NULL
        response["TotalEntries"] = len(entries)
        return response
