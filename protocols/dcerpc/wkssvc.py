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
from impacket.dcerpc.v5.dtypes import LPULONG, ULONG
from impacket.dcerpc.v5.ndr import NDRCALL

from protocols.dcerpc.netapi import (
    ERROR_ACCESS_DENIED,
    ERROR_INVALID_LEVEL,
    EnumAnswer,
    InfoAnswer,
    fill,
)
from protocols.dcerpc.service import Access, Service

# The levels of NetrWkstaGetInfo served, and who may ask for each.
_WKSTA_LEVELS = {100: Access.ANYONE, 101: Access.USERS}


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
    interface = wkst.MSRPC_UUID_WKST  # 1.0

    def wksta_get_info(self, request: Any) -> Any:
        level = request["Level"]
        answer = InfoAnswer(wkst.NetrWkstaGetInfoResponse(), "WkstaInfo", level, "workstation")
        if level not in _WKSTA_LEVELS:
            return answer.error(ERROR_INVALID_LEVEL)
        if not self.permits(_WKSTA_LEVELS[level]):
            return answer.error(ERROR_ACCESS_DENIED)
        s = self.view.server_info()
        return answer.fields({
            "platform_id": s["platform_id"], "computername": s["name"] + "\0",
            "langroup": s["domain"] + "\0",
            "ver_major": s["version_major"], "ver_minor": s["version_minor"],
            "lanroot": ("C:\\WINDOWS" if s["version_major"] < 6 else "C:\\Windows") + "\0",
        })

    def wksta_user_enum(self, request: Any) -> Any:
        level = request["UserInfo"]["Level"]
        answer = EnumAnswer(request, NetrWkstaUserEnumResponse(), "UserInfo", "WkstaUserInfo",
                            level, "user")
        if not self.permits(Access.ADMINS):
            return answer.error(ERROR_ACCESS_DENIED)
        computer = self.view.server_info()["name"]
        entry_class = getattr(wkst, f"WKSTA_USER_INFO_{level}")
        return answer.entries([fill(entry_class(), {
            "username": s["user"] + "\0",
            # Local accounts: the logon domain and server are the computer itself.
            "logon_domain": computer + "\0", "oth_domains": "\0",
            "logon_server": computer + "\0",
        }) for s in self.view.sessions() if s["protocol"] == "rdp" and s["user"]])

    operations = {
        0: (wkst.NetrWkstaGetInfo, wksta_get_info),
        2: (wkst.NetrWkstaUserEnum, wksta_user_enum),
    }
