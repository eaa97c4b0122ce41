"""RAP (MS-RAP) over ``\\PIPE\\LANMAN``: NetShareEnum, NetServerGetInfo, NetWkstaGetInfo,
NetSessionEnum, answered from the same ``ServerView`` srvsvc reads."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from protocols.smb1.core import SMB1Core

NERR_SUCCESS = 0
ERROR_ACCESS_DENIED = 5
ERROR_MORE_DATA = 234
ERROR_INVALID_LEVEL = 124
ERROR_NOT_SUPPORTED = 50
RAP_NET_SHARE_ENUM = 0
RAP_NET_SESSION_ENUM = 6
RAP_NET_SERVER_GET_INFO = 13
RAP_NET_WKSTA_GET_INFO = 63


def _strings(params: bytes) -> tuple[int, bytes, bytes, int]:
    (opcode,) = struct.unpack_from("<H", params)
    param_desc_end = params.index(b"\0", 2)
    data_desc_end = params.index(b"\0", param_desc_end + 1)
    return (opcode, params[2:param_desc_end], params[param_desc_end + 1:data_desc_end],
            data_desc_end + 1)


class _Buffer:
    """Fixed-size records, then the strings they point at (offsets into the buffer)."""

    def __init__(self, fixed_size: int, count: int) -> None:
        self.fixed = bytearray()
        self.heap = bytearray()
        self.base = fixed_size * count

    def pointer(self, text: str) -> int:
        offset = self.base + len(self.heap)
        self.heap += text.encode("cp437", "replace") + b"\0"
        return offset

    def data(self) -> bytes:
        return bytes(self.fixed + self.heap)


def call(core: SMB1Core, session: Any, params: bytes, max_data: int) -> tuple[bytes, bytes]:
    """(response parameters, response data) of one RAP call."""
    try:
        opcode, _pdesc, _ddesc, pos = _strings(params)
        level = struct.unpack_from("<H", params, pos)[0]
    except (ValueError, struct.error):
        return struct.pack("<HH", 87, 0), b""  # ERROR_INVALID_PARAMETER
    pipes = core.conn.config.pipes
    view = pipes.view if pipes is not None else None
    if view is None:
        return struct.pack("<HH", ERROR_NOT_SUPPORTED, 0), b""
    if opcode == RAP_NET_SHARE_ENUM:
        return _share_enum(view, level, max_data)
    if opcode == RAP_NET_SERVER_GET_INFO:
        return _server_info(view, level)
    if opcode == RAP_NET_WKSTA_GET_INFO:
        return _wksta_info(view, core, session, level)
    if opcode == RAP_NET_SESSION_ENUM:
        return _session_enum(view, session, level, max_data)
    core.conn.log(f"smb {core.conn.address}: RAP opcode {opcode} not supported")
    return struct.pack("<HH", ERROR_NOT_SUPPORTED, 0), b""


def _fit(records: list[Any], fixed: int, max_data: int, build: Any) -> tuple[int, bytes, int]:
    """As many records as fit in max_data: (status, data, count)."""
    for count in range(len(records), -1, -1):
        buf = _Buffer(fixed, count)
        for record in records[:count]:
            build(buf, record)
        data = buf.data()
        if len(data) <= max_data:
            return (NERR_SUCCESS if count == len(records) else ERROR_MORE_DATA), data, count
    return ERROR_MORE_DATA, b"", 0


def _share_enum(view: Any, level: int, max_data: int) -> tuple[bytes, bytes]:
    if level != 1:  # share_info_1: "B13BWz"
        return struct.pack("<HH", ERROR_INVALID_LEVEL, 0), b""
    shares = view.shares()

    def build(buf: _Buffer, share: tuple[str, int, str, str]) -> None:
        name, kind, remark, _path = share
        buf.fixed += (name.encode("cp437", "replace")[:12].ljust(13, b"\0") + b"\0"
                      + struct.pack("<HI", kind & 0xFFFF, buf.pointer(remark)))

    status, data, count = _fit(shares, 20, max_data, build)
    return struct.pack("<HHHH", status, 0, count, len(shares)), data


def _server_info(view: Any, level: int) -> tuple[bytes, bytes]:
    info = view.server_info()
    name = info["name"].encode("cp437", "replace")[:15].ljust(16, b"\0")
    if level == 0:
        data = name
    elif level == 1:  # "B16BBDz": name, major, minor, type, comment
        buf = _Buffer(26, 1)
        buf.fixed += name + struct.pack("<BBII", info["version_major"], info["version_minor"],
                                        info["type"], buf.pointer(info.get("comment", "")))
        data = buf.data()
    else:
        return struct.pack("<HH", ERROR_INVALID_LEVEL, 0), b""
    return struct.pack("<HHH", NERR_SUCCESS, 0, len(data)), data


def _wksta_info(view: Any, core: SMB1Core, session: Any, level: int) -> tuple[bytes, bytes]:
    if level != 10:  # "zzzBBzz": computer, user, domain, major, minor, logon domain, others
        return struct.pack("<HH", ERROR_INVALID_LEVEL, 0), b""
    info = view.server_info()
    buf = _Buffer(22, 1)
    user = session.slot.user or ""
    buf.fixed += struct.pack("<III", buf.pointer(info["name"]), buf.pointer(user),
                             buf.pointer(info["domain"]))
    buf.fixed += struct.pack("<BBII", info["version_major"], info["version_minor"],
                             buf.pointer(info["name"]), buf.pointer(""))
    data = buf.data()
    return struct.pack("<HHH", NERR_SUCCESS, 0, len(data)), data


def _session_enum(view: Any, session: Any, level: int, max_data: int) -> tuple[bytes, bytes]:
    if level != 2:  # session_info_2: "zzWWWDDDz"
        return struct.pack("<HH", ERROR_INVALID_LEVEL, 0), b""
    if session.anonymous or session.guest or not view.is_admin(session.slot.user or ""):
        return struct.pack("<HH", ERROR_ACCESS_DENIED, 0), b""
    sessions = [s for s in view.sessions() if s.get("protocol") == "smb"
                and s.get("state") != "pending"]
    now = view.now()  # the host's clock (a virtual one in tests)

    def build(buf: _Buffer, s: dict[str, Any]) -> None:
        logon = s.get("logon_time")
        seconds = int(now - logon) if isinstance(logon, (int, float)) else 0
        buf.fixed += struct.pack(
            "<IIHHHIIII", buf.pointer(s.get("address") or s.get("client") or ""),
            buf.pointer(s.get("user") or ""), s.get("opens", 0) & 0xFFFF, len(s.get("trees", [])),
            1, max(0, seconds), int(s.get("idle_seconds", 0)),
            1 if s.get("user") == "Guest" else 0, buf.pointer(""))  # client type: unknown

    status, data, count = _fit(sessions, 30, max_data, build)
    return struct.pack("<HHHH", status, 0, count, len(sessions)), data
