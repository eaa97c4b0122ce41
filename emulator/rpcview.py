"""The host as the RPC services see it (``protocols.dcerpc.service.ServerView``), over the engine.

Everything is read live from the session engine and the server's configuration, so
``net session``, ``net share``, ``net files`` and ``net config server`` over RPC agree
with the admin API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from protocols.dcerpc.accounts import account_dicts

if TYPE_CHECKING:
    from emulator.server import EmulatorServer

PLATFORM_ID_NT = 500
# MS-SRVS 2.2.2.7 server types.
SV_TYPE_WORKSTATION = 0x00000001
SV_TYPE_SERVER = 0x00000002
SV_TYPE_SERVER_NT = 0x00008000
SV_TYPE_POTENTIAL_BROWSER = 0x00010000
SV_TYPE_NT = 0x00001000
STYPE_DISKTREE = 0x00000000
STYPE_DISKTREE_SPECIAL = 0x80000000  # STYPE_SPECIAL: ADMIN$, C$
STYPE_IPC_SPECIAL = 0x80000003
UNLIMITED_USERS = 0xFFFFFFFF  # sv102_users when the edition has no session limit
# Windows 10 1607 / Server 2016 restricted NetSessionEnum to administrators.
SESSION_ENUM_ADMIN_FROM = (10, 0)


class EngineServerView:
    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.engine = server.engine

    def sessions(self) -> list[dict[str, Any]]:
        now, idle_after = self.engine.now(), self.engine.rules.idle_after
        return [s.to_dict(now, idle_after) for s in self.engine.sessions()]

    def delete_sessions(self, client: str | None, user: str | None) -> int:
        return len(self.engine.delete_matching(client=client, user=user))

    def shares(self) -> list[tuple[str, int, str, str]]:
        # Windows' own order (nmap smb-enum-shares, `net share`): ADMIN$, C$, IPC$, then
        # the shares; paths as Windows paths.
        server = self.server
        disks = [(name, STYPE_DISKTREE, "", server.windows_path(path))
                 for name, path in sorted(server.share_dirs.items())]
        return [("ADMIN$", STYPE_DISKTREE_SPECIAL, "Remote Admin", "C:\\Windows"),
                ("C$", STYPE_DISKTREE_SPECIAL, "Default share", "C:\\"),
                ("IPC$", STYPE_IPC_SPECIAL, "Remote IPC", ""), *disks]

    def server_info(self) -> dict[str, Any]:
        edition, config = self.server.edition, self.server.config
        limit = self.engine.limit("smb")
        server_sku = edition.smb_limit is None  # server editions have no SMB session limit
        kind = SV_TYPE_WORKSTATION | SV_TYPE_SERVER | SV_TYPE_NT | SV_TYPE_POTENTIAL_BROWSER
        if server_sku:
            kind |= SV_TYPE_SERVER_NT
        return {"name": config.netbios_name, "comment": self.server.comment,
                "platform_id": PLATFORM_ID_NT,
                "version_major": edition.version[0], "version_minor": edition.version[1],
                "type": kind, "users": UNLIMITED_USERS if limit is None else limit,
                "autodisconnect": self.engine.rules.autodisconnect_minutes,
                "domain": config.workgroup}

    def set_autodisconnect(self, minutes: int) -> None:
        self.engine.set_autodisconnect(minutes)

    def close_file(self, file_id: int) -> bool:
        return self.engine.close_file(file_id)

    def is_admin(self, user: str) -> bool:
        return self.server.is_admin(user)

    def session_enum_needs_admin(self) -> bool:
        return self.server.edition.version >= SESSION_ENUM_ADMIN_FROM

    def now(self) -> float:
        return self.engine.now()

    def local_domain(self) -> dict[str, Any]:
        edition, config = self.server.edition, self.server.config
        restrict = config.restrict_anonymous_sam
        threshold, minutes = edition.sam_lockout
        return {"name": config.netbios_name, "sid": self.server.machine_sid(),
                "workgroup": config.workgroup,
                "restrict_anonymous_sam": (edition.restrict_anonymous_sam if restrict is None
                                           else restrict),
                "anonymous_lookup": edition.lsa_anonymous_lookup,
                "lockout_threshold": threshold, "lockout_minutes": minutes,
                "password_complex": edition.sam_password_complex}

    def accounts(self) -> list[dict[str, Any]]:
        edition = self.server.edition
        admins = {name.lower() for name in self.server.config.admin_users}
        return account_dicts(list(self.server.users), admins, edition.sam_builtin_accounts,
                             edition.sam_first_user_rid, self.engine.logon_history())
