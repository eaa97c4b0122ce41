"""Shared by the DCE/RPC unit tests: a fake ServerView and impacket-built client PDUs."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from impacket.dcerpc.v5 import rpcrt, rprn, srvs
from impacket.dcerpc.v5.dtypes import NULL
from impacket.uuid import uuidtup_to_bin

from emulator.core.engine import file_id
from protocols.dcerpc.pipes import Caller, PipeEndpoint, open_pipe

NDR = uuidtup_to_bin(("8a885d04-1ceb-11c9-9fe8-08002b104860", "2.0"))
NOW = 1_767_225_700.0  # 2026-01-01T00:01:40Z, a Thursday

ALICE = Caller(user="alice", anonymous=False, client="PC1", address="10.0.0.2")
ADMIN = Caller(user="admin", anonymous=False, client="ADMINPC", address="10.0.0.9")
ANONYMOUS = Caller(user="", anonymous=True, client="", address="10.0.0.3")


def session(sid: int, user: str, client: str = "", address: str = "10.0.0.2", *,
            opens: list[str] | None = None, protocol: str = "smb", state: str = "active",
            anonymous: bool = False, logon: str | float = "2026-01-01T00:00:00.000Z",
            idle: int = 4, trees: list[str] | None = None) -> dict[str, Any]:
    """A session dict with every key of the engine's ``Session.to_dict``."""
    return {"id": sid, "protocol": protocol, "user": user, "client": client,
            "address": address, "state": state, "opens": len(opens or []),
            "open_files": list(opens or []), "trees": list(trees or []),
            "open_file_ids": [file_id(sid, i) for i in range(len(opens or []))],
            "idle_seconds": idle, "logon_time": logon, "anonymous": anonymous,
            "console": False}


@dataclass
class FakeView:
    """A ServerView whose answers the tests choose and whose calls they can inspect."""

    session_list: list[dict[str, Any]] = field(default_factory=lambda: [
        session(3, "alice", "PC1", opens=["\\docs\\a.txt", "\\PIPE\\srvsvc"],
                trees=["IPC$", "docs"]),
        session(4, "bob", "", "10.0.0.5", opens=["\\docs\\b.txt"], trees=["docs"]),
        session(5, "", "", "10.0.0.3", anonymous=True),
        session(6, "alice", "PC1", protocol="rdp"),
        session(7, "carol", "PC7", state="pending"),
    ])
    share_list: list[tuple[str, int, str, str]] = field(default_factory=lambda: [
        ("docs", 0, "", "/srv/docs"), ("IPC$", 0x80000003, "Remote IPC", "")])
    admins: set[str] = field(default_factory=lambda: {"admin"})
    needs_admin: bool = False
    autodisconnect: int = 15
    users: int = 5
    version: tuple[int, int] = (5, 1)
    deleted: list[tuple[str | None, str | None]] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    delete_result: int = 1

    def sessions(self) -> list[dict[str, Any]]:
        return [dict(s) for s in self.session_list]

    def delete_sessions(self, client: str | None, user: str | None) -> int:
        self.deleted.append((client, user))
        return self.delete_result

    def shares(self) -> list[tuple[str, int, str, str]]:
        return list(self.share_list)

    def server_info(self) -> dict[str, Any]:
        return {"name": "EMULATOR", "comment": "", "platform_id": 500,
                "version_major": self.version[0], "version_minor": self.version[1],
                "type": 0x11003, "users": self.users, "autodisconnect": self.autodisconnect,
                "domain": "WORKGROUP"}

    def set_autodisconnect(self, minutes: int) -> None:
        self.autodisconnect = minutes

    def close_file(self, file_id: int) -> bool:
        self.closed.append(file_id)
        return file_id == (3 << 16) | 1

    def is_admin(self, user: str) -> bool:
        return user.lower() in self.admins

    def session_enum_needs_admin(self) -> bool:
        return self.needs_admin

    def now(self) -> float:
        return NOW

    machine_sid: str = "S-1-5-21-1111111111-2222222222-3333333333"
    anonymous_lookup: bool = True
    restrict_anonymous_sam: bool = True
    lockout: tuple[int, int] = (0, 30)
    account_list: list[dict[str, Any]] = field(default_factory=lambda: [
        {"rid": 500, "name": "Administrator", "enabled": False, "admin": True,
         "logon_count": 0, "last_logon": None},
        {"rid": 501, "name": "Guest", "enabled": False, "admin": False,
         "logon_count": 0, "last_logon": None},
        {"rid": 1000, "name": "alice", "enabled": True, "admin": False,
         "logon_count": 3, "last_logon": NOW - 60},
        {"rid": 1001, "name": "admin", "enabled": True, "admin": True,
         "logon_count": 0, "last_logon": None},
    ])

    def local_domain(self) -> dict[str, Any]:
        threshold, minutes = self.lockout
        return {"name": "EMULATOR", "sid": self.machine_sid, "workgroup": "WORKGROUP",
                "restrict_anonymous_sam": self.restrict_anonymous_sam,
                "anonymous_lookup": self.anonymous_lookup, "lockout_threshold": threshold,
                "lockout_minutes": minutes, "password_complex": False}

    def accounts(self) -> list[dict[str, Any]]:
        return [dict(a) for a in self.account_list]


# -- client PDUs, built with impacket's client-side structures ----------------------------------

def bind_pdu(abstract: bytes, *, call_id: int = 1, transfer: bytes = NDR, context_id: int = 0,
             ptype: int = rpcrt.MSRPC_BIND, max_frag: int = 4280) -> bytes:
    bind = rpcrt.MSRPCBind()
    bind["max_tfrag"] = bind["max_rfrag"] = max_frag
    item = rpcrt.CtxItem()
    item["ContextID"] = context_id
    item["TransItems"] = 1
    item["AbstractSyntax"] = abstract
    item["TransferSyntax"] = transfer
    bind.addCtxItem(item)
    header = rpcrt.MSRPCHeader()
    header["type"] = ptype
    header["call_id"] = call_id
    header["pduData"] = bind.getData()
    return header.get_packet()


def enum_call(call: Any, level: int, union: str, *, info: str = "InfoStruct",
              resume: Any = NULL, **args: Any) -> Any:
    """A Net*Enum request as impacket's h* helpers build it: ``args``, the level's
    container with a NULL array, no size limit, ``resume`` as the ResumeHandle."""
    for key, value in args.items():
        call[key] = value
    call[info]["Level"] = level
    call[info][union]["tag"] = level
    call[info][union][f"Level{level}"]["Buffer"] = NULL
    # srvs spells it PreferedMaximumLength, wkst PreferredMaximumLength
    (size,) = [name for name, _ in call.structure if name.endswith("MaximumLength")]
    call[size] = 0xFFFFFFFF
    call["ResumeHandle"] = resume
    return call


def open_printer(name: Any = "\\\\EMULATOR\0", ex: bool = False) -> Any:
    """RpcOpenPrinter(Ex) as rprn.hRpcOpenPrinter / hRpcOpenPrinterEx build it."""
    call = rprn.RpcOpenPrinterEx() if ex else rprn.RpcOpenPrinter()
    call["pPrinterName"] = name
    call["pDatatype"] = NULL
    call["pDevModeContainer"]["pDevMode"] = NULL
    call["AccessRequired"] = rprn.SERVER_READ
    if ex:
        call["pClientInfo"]["Level"] = 1
        call["pClientInfo"]["ClientInfo"]["tag"] = 1
        info = call["pClientInfo"]["ClientInfo"]["pClientInfo1"]
        info["dwSize"] = 28
        info["pMachineName"] = "WS01\0"
        info["pUserName"] = "\0"
        info["dwBuildNum"] = 2600
        info["dwMajorVersion"] = 5
        info["dwMinorVersion"] = 1
        info["wProcessorArchitecture"] = 0
    return call


def share_enum(level: int = 1, *, server: Any = NULL, resume: Any = NULL) -> Any:
    """NetrShareEnum, as ``smbclient -L`` and impacket's listShares ask it."""
    return enum_call(srvs.NetrShareEnum(), level, "ShareInfo", resume=resume,
                     ServerName=server)


def request_pdu(call: Any, *, call_id: int = 2, context_id: int = 0, opnum: int | None = None,
                flags: int = 3, stub: bytes | None = None) -> bytes:
    req = rpcrt.MSRPCRequestHeader()
    req["flags"] = flags
    req["op_num"] = call.opnum if opnum is None else opnum
    req["ctx_id"] = context_id
    req["call_id"] = call_id
    req["pduData"] = call.getData() if stub is None else stub
    req["alloc_hint"] = len(req["pduData"])
    return req.get_packet()


def ptype(pdu: bytes) -> int:
    return pdu[2]


def fault_status(pdu: bytes) -> int:
    assert ptype(pdu) == rpcrt.MSRPC_FAULT, pdu.hex()
    return struct.unpack_from("<I", pdu, 24)[0]


def read_all(endpoint: PipeEndpoint) -> list[bytes]:
    out = []
    while True:
        message = endpoint.read(65536)
        if not message:
            return out
        out.append(message)


def reassemble(pdus: list[bytes]) -> bytes:
    """The stub of a (possibly fragmented) response, parsed with impacket's header class."""
    stub = b""
    for i, pdu in enumerate(pdus):
        header = rpcrt.MSRPCRespHeader(pdu)
        assert header["type"] == rpcrt.MSRPC_RESPONSE, pdu.hex()
        assert bool(header["flags"] & rpcrt.PFC_FIRST_FRAG) == (i == 0)
        assert bool(header["flags"] & rpcrt.PFC_LAST_FRAG) == (i == len(pdus) - 1)
        stub += header["pduData"]
    return stub


class Client:
    """One pipe open, bound to ``abstract``; ``call`` returns impacket's parsed response."""

    def __init__(self, pipe: str, abstract: bytes, view: Any, caller: Caller,
                 logs: list[str] | None = None) -> None:
        self.logs = logs if logs is not None else []
        endpoint = open_pipe(pipe, view, caller, log=self.logs.append)
        assert endpoint is not None
        self.endpoint = endpoint
        endpoint.write(bind_pdu(abstract))
        ack = rpcrt.MSRPCBindAck(endpoint.read(4280))
        assert ack["type"] == rpcrt.MSRPC_BINDACK and ack.getCtxItem(1)["Result"] == 0
        self.call_id = 2

    def raw(self, call: Any, **kwargs: Any) -> list[bytes]:
        self.call_id += 1
        self.endpoint.write(request_pdu(call, call_id=self.call_id, **kwargs))
        return read_all(self.endpoint)

    def call(self, call: Any, response_class: Any) -> Any:
        return response_class(reassemble(self.raw(call)))

    def fault(self, call: Any, **kwargs: Any) -> int:
        (pdu,) = self.raw(call, **kwargs)
        return fault_status(pdu)
