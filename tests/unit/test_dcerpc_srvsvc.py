"""srvsvc driven with impacket's client-side request classes against a fake ServerView.

Each test builds the request as impacket's helpers do (srvs.NetrSessionEnum() ...), sends
it through a PipeEndpoint and parses the answer with impacket's response class.
"""

from __future__ import annotations

import pytest
from impacket.dcerpc.v5 import srvs
from impacket.dcerpc.v5.dtypes import NULL

from protocols.dcerpc.pipes import NCA_S_OP_RNG_ERROR, RPC_X_BAD_STUB_DATA
from protocols.dcerpc.srvsvc import (
    ERROR_ACCESS_DENIED,
    ERROR_INVALID_LEVEL,
    ERROR_INVALID_PARAMETER,
    NERR_CLIENT_NAME_NOT_FOUND,
    NERR_FILE_ID_NOT_FOUND,
    NERR_NET_NAME_NOT_FOUND,
    NERR_USER_NOT_FOUND,
)

from .dcerpc_helpers import (
    ADMIN,
    ALICE,
    ANONYMOUS,
    NOW,
    Client,
    FakeView,
    enum_call,
    reassemble,
    session,
)
from .dcerpc_helpers import share_enum as share_enum_request

SRVSVC = srvs.MSRPC_UUID_SRVS


def client(caller=ALICE, view=None):
    view = view or FakeView()
    return Client("srvsvc", SRVSVC, view, caller), view


def entries(container):
    return [] if container["Buffer"] in (NULL, b"", None) else list(container["Buffer"])


def text(value):
    return value.rstrip("\0") if isinstance(value, str) else value


# -- NetrShareEnum / NetrShareGetInfo ----------------------------------------------------------


def share_enum(c, level, resume=NULL):
    call = share_enum_request(level, server="\\\\EMULATOR\0", resume=resume)
    return c.call(call, srvs.NetrShareEnumResponse)


@pytest.mark.parametrize("caller", [ALICE, ANONYMOUS, ADMIN], ids=["user", "null", "admin"])
@pytest.mark.parametrize("level", [0, 1])
def test_share_enum_levels_0_and_1_for_anyone(caller, level):
    c, _ = client(caller)
    r = share_enum(c, level)
    assert r["ErrorCode"] == 0 and r["TotalEntries"] == 2
    rows = entries(r["InfoStruct"]["ShareInfo"][f"Level{level}"])
    assert [text(e[f"shi{level}_netname"]) for e in rows] == ["docs", "IPC$"]
    if level == 1:
        assert [(e["shi1_type"], text(e["shi1_remark"])) for e in rows] == [
            (0, ""), (0x80000003, "Remote IPC")]


@pytest.mark.parametrize("level", [2, 502])
def test_share_enum_levels_2_and_502_show_paths_to_admins_only(level):
    c, _ = client(ADMIN)
    r = share_enum(c, level, resume=0)
    assert r["ErrorCode"] == 0 and r["ResumeHandle"] == 0
    rows = entries(r["InfoStruct"]["ShareInfo"][f"Level{level}"])
    docs = rows[0]
    p = f"shi{level}_"
    assert text(docs[p + "path"]) == "/srv/docs"
    assert docs[p + "max_uses"] == 0xFFFFFFFF
    assert docs[p + "current_uses"] == 2  # alice and bob are connected to docs
    assert docs[p + "passwd"] in (NULL, b"", "")
    c, _ = client(ALICE)
    denied = share_enum(c, level)
    assert denied["ErrorCode"] == ERROR_ACCESS_DENIED and denied["TotalEntries"] == 0


def test_share_level_501_and_share_get_info_1005():
    c, _ = client(ANONYMOUS)
    r = share_enum(c, 501)
    rows = entries(r["InfoStruct"]["ShareInfo"]["Level501"])
    assert r["ErrorCode"] == 0
    assert [(text(e["shi501_netname"]), e["shi501_type"], e["shi501_flags"]) for e in rows] == [
        ("docs", 0, 0), ("IPC$", 0x80000003, 0)]
    r = share_get_info(c, "docs", 501)
    assert text(r["InfoStruct"]["ShareInfo501"]["shi501_remark"]) == ""
    r = share_get_info(c, "IPC$", 1005)
    assert r["ErrorCode"] == 0 and r["InfoStruct"]["ShareInfo1005"]["shi1005_flags"] == 0


def test_share_enum_unserved_level():
    c, _ = client(ADMIN)
    assert share_enum(c, 503)["ErrorCode"] == ERROR_INVALID_LEVEL


def share_get_info(c, name, level):
    call = srvs.NetrShareGetInfo()
    call["ServerName"] = NULL
    call["NetName"] = name + "\0"
    call["Level"] = level
    return c.call(call, srvs.NetrShareGetInfoResponse)


def test_share_get_info():
    c, _ = client(ALICE)
    r = share_get_info(c, "DOCS", 1)
    assert r["ErrorCode"] == 0
    assert text(r["InfoStruct"]["ShareInfo1"]["shi1_netname"]) == "docs"
    assert share_get_info(c, "ipc$", 0)["ErrorCode"] == 0
    assert share_get_info(c, "nosuch", 1)["ErrorCode"] == NERR_NET_NAME_NOT_FOUND
    assert share_get_info(c, "docs", 2)["ErrorCode"] == ERROR_ACCESS_DENIED
    assert share_get_info(c, "docs", 1004)["ErrorCode"] == ERROR_INVALID_LEVEL
    admin, _ = client(ADMIN)
    r = share_get_info(admin, "docs", 502)
    assert r["ErrorCode"] == 0
    assert text(r["InfoStruct"]["ShareInfo502"]["shi502_path"]) == "/srv/docs"


# -- NetrSessionEnum ------------------------------------------------------------------------------


def srvs_enum(c, call_class, level, union, **args):
    """A Net*Enum call of ``c`` (see ``enum_call``): impacket's response and its rows."""
    r = c.call(enum_call(call_class(), level, union, **args),
               getattr(srvs, call_class.__name__ + "Response"))
    return r, entries(r["InfoStruct"][union][f"Level{level}"])


def session_enum(c, level, client_name=NULL, user=NULL):
    """As srvs.hNetrSessionEnum builds it."""
    return srvs_enum(c, srvs.NetrSessionEnum, level, "SessionInfo", resume=0,
                     ServerName=NULL, ClientName=client_name, UserName=user)


def test_session_enum_level_10():
    c, _ = client(ALICE)
    r, rows = session_enum(c, 10)
    assert r["ErrorCode"] == 0 and r["TotalEntries"] == 3
    # SMB sessions only (no RDP, no half-done setup); \\NAME from the NTLM workstation,
    # else the address; the null session shows no user.
    assert [(text(e["sesi10_cname"]), text(e["sesi10_username"])) for e in rows] == [
        ("\\\\PC1", "alice"), ("\\\\10.0.0.5", "bob"), ("\\\\10.0.0.3", "")]
    assert rows[0]["sesi10_time"] == int(NOW) - 1_767_225_600  # since logon
    assert rows[0]["sesi10_idle_time"] == 4


def test_session_enum_level_502_for_admins():
    c, _ = client(ADMIN)
    r, rows = session_enum(c, 502)
    assert r["ErrorCode"] == 0
    alice = rows[0]
    assert alice["sesi502_num_opens"] == 2
    assert alice["sesi502_user_flags"] == 0
    assert text(alice["sesi502_transport"]) == "\\Device\\NetbiosSmb"
    assert text(alice["sesi502_cltype_name"]) == ""


@pytest.mark.parametrize("level", [0, 1, 2, 10, 502])
def test_session_enum_every_level_parses(level):
    c, _ = client(ADMIN)
    r, rows = session_enum(c, level)
    assert r["ErrorCode"] == 0 and len(rows) == 3
    assert all(text(e[f"sesi{level}_cname"]).startswith("\\\\") for e in rows)


@pytest.mark.parametrize("needs_admin,caller,level,allowed", [
    (False, ALICE, 10, True), (False, ALICE, 0, True),  # XP/7: levels 0 and 10 for users
    (False, ALICE, 1, False), (False, ALICE, 2, False), (False, ALICE, 502, False),
    (False, ADMIN, 502, True), (False, ANONYMOUS, 10, False),
    (True, ALICE, 10, False), (True, ALICE, 0, False),  # Windows 10 1607+: admins only
    (True, ADMIN, 10, True), (True, ADMIN, 502, True), (True, ANONYMOUS, 0, False),
])
def test_session_enum_access_follows_the_edition(needs_admin, caller, level, allowed):
    c, _ = client(caller, FakeView(needs_admin=needs_admin))
    r, rows = session_enum(c, level)
    assert r["ErrorCode"] == (0 if allowed else ERROR_ACCESS_DENIED)
    assert bool(rows) == allowed


def test_session_enum_filters():
    c, _ = client(ADMIN)
    r, rows = session_enum(c, 10, client_name="\\\\pc1\0")
    assert [text(e["sesi10_username"]) for e in rows] == ["alice"]
    r, rows = session_enum(c, 10, client_name="\\\\10.0.0.5\0")  # an address works too
    assert [text(e["sesi10_username"]) for e in rows] == ["bob"]
    r, rows = session_enum(c, 10, user="BOB\0")
    assert [text(e["sesi10_cname"]) for e in rows] == ["\\\\10.0.0.5"]
    r, rows = session_enum(c, 10, client_name="\\\\PC1\0", user="bob\0")
    assert r["ErrorCode"] == NERR_CLIENT_NAME_NOT_FOUND and rows == []
    r, _ = session_enum(c, 10, user="nobody\0")
    assert r["ErrorCode"] == NERR_USER_NOT_FOUND
    r, rows = session_enum(c, 10, client_name="\0", user="\0")  # empty strings: no filter
    assert r["ErrorCode"] == 0 and len(rows) == 3


def test_session_enum_with_no_sessions():
    c, _ = client(ADMIN, FakeView(session_list=[]))
    r, rows = session_enum(c, 10)
    assert r["ErrorCode"] == 0 and r["TotalEntries"] == 0 and rows == []


# -- NetrSessionDel -------------------------------------------------------------------------------


def session_del(c, client_name=NULL, user=NULL):
    call = srvs.NetrSessionDel()
    call["ServerName"] = NULL
    call["ClientName"] = client_name
    call["UserName"] = user
    return c.call(call, srvs.NetrSessionDelResponse)["ErrorCode"]


def test_session_del_by_admin():
    c, view = client(ADMIN)
    assert session_del(c, "\\\\PC1\0") == 0
    assert session_del(c, NULL, "bob\0") == 0
    assert view.deleted == [("PC1", None), (None, "bob")]


def test_session_del_needs_an_admin_and_a_name():
    c, view = client(ALICE)
    assert session_del(c, "\\\\PC1\0") == ERROR_ACCESS_DENIED
    c, view2 = client(ADMIN)
    assert session_del(c) == ERROR_INVALID_PARAMETER
    assert view.deleted == view2.deleted == []
    anonymous, _ = client(ANONYMOUS, FakeView(admins={""}))
    assert session_del(anonymous, "\\\\PC1\0") == ERROR_ACCESS_DENIED


def test_session_del_without_a_match():
    c, view = client(ADMIN, FakeView(delete_result=0))
    assert session_del(c, "\\\\NOSUCH\0") == NERR_CLIENT_NAME_NOT_FOUND
    assert session_del(c, NULL, "nobody\0") == NERR_USER_NOT_FOUND


# -- open files and connections -------------------------------------------------------------------


def file_enum(c, level, base=NULL, user=NULL):
    return srvs_enum(c, srvs.NetrFileEnum, level, "FileInfo", ServerName=NULL, BasePath=base,
                     UserName=user)


def test_file_enum_and_close():
    c, view = client(ADMIN)
    r, rows = file_enum(c, 3)
    assert r["ErrorCode"] == 0 and r["TotalEntries"] == 3
    assert [(e["fi3_id"], text(e["fi3_path_name"]), text(e["fi3_username"])) for e in rows] == [
        ((3 << 16) | 1, "\\docs\\a.txt", "alice"), ((3 << 16) | 2, "\\PIPE\\srvsvc", "alice"),
        ((4 << 16) | 1, "\\docs\\b.txt", "bob")]
    _, rows = file_enum(c, 2, user="bob\0")
    assert [e["fi2_id"] for e in rows] == [(4 << 16) | 1]
    _, rows = file_enum(c, 3, base="\\PIPE\0")
    assert [text(e["fi3_path_name"]) for e in rows] == ["\\PIPE\\srvsvc"]

    close = srvs.NetrFileClose()
    close["ServerName"] = NULL
    close["FileId"] = (3 << 16) | 1
    assert c.call(close, srvs.NetrFileCloseResponse)["ErrorCode"] == 0
    close["FileId"] = 12345
    assert c.call(close, srvs.NetrFileCloseResponse)["ErrorCode"] == NERR_FILE_ID_NOT_FOUND
    assert view.closed == [(3 << 16) | 1, 12345]


def test_files_are_for_admins():
    c, view = client(ALICE)
    r, rows = file_enum(c, 3)
    assert r["ErrorCode"] == ERROR_ACCESS_DENIED and rows == []
    close = srvs.NetrFileClose()
    close["ServerName"] = NULL
    close["FileId"] = (3 << 16) | 1
    assert c.call(close, srvs.NetrFileCloseResponse)["ErrorCode"] == ERROR_ACCESS_DENIED
    assert view.closed == []


def connection_enum(c, qualifier, level=1):
    return srvs_enum(c, srvs.NetrConnectionEnum, level, "ConnectInfo", ServerName=NULL,
                     Qualifier=qualifier)


def test_connection_enum():
    c, _ = client(ADMIN)
    r, rows = connection_enum(c, "docs\0")
    assert r["ErrorCode"] == 0
    assert [(text(e["coni1_netname"]), text(e["coni1_username"])) for e in rows] == [
        ("PC1", "alice"), ("10.0.0.5", "bob")]
    r, rows = connection_enum(c, "\\\\PC1\0")
    assert [(text(e["coni1_netname"]), e["coni1_type"]) for e in rows] == [
        ("IPC$", 0x80000003), ("docs", 0)]
    r, rows = connection_enum(c, "\\\\PC1\0", level=0)
    assert [e["coni0_id"] for e in rows] == [(3 << 16) | 1, (3 << 16) | 2]
    assert connection_enum(c, "nosuch\0")[0]["ErrorCode"] == NERR_NET_NAME_NOT_FOUND
    assert connection_enum(c, "\\\\NOSUCH\0")[0]["ErrorCode"] == NERR_CLIENT_NAME_NOT_FOUND
    assert connection_enum(c, NULL)[0]["ErrorCode"] == ERROR_INVALID_PARAMETER
    alice, _ = client(ALICE)
    assert connection_enum(alice, "docs\0")[0]["ErrorCode"] == ERROR_ACCESS_DENIED


# -- the server -----------------------------------------------------------------------------------


def server_get_info(c, level):
    call = srvs.NetrServerGetInfo()
    call["ServerName"] = NULL
    call["Level"] = level
    return c.call(call, srvs.NetrServerGetInfoResponse)


@pytest.mark.parametrize("caller", [ALICE, ANONYMOUS])
def test_server_get_info_100_101(caller):
    c, _ = client(caller)
    r = server_get_info(c, 101)
    info = r["InfoStruct"]["ServerInfo101"]
    assert r["ErrorCode"] == 0
    assert (info["sv101_platform_id"], text(info["sv101_name"])) == (500, "EMULATOR")
    assert (info["sv101_version_major"], info["sv101_version_minor"]) == (5, 1)
    assert info["sv101_type"] == 0x11003
    r = server_get_info(c, 100)
    assert text(r["InfoStruct"]["ServerInfo100"]["sv100_name"]) == "EMULATOR"


def test_server_get_info_102_users_and_autodisconnect():
    c, view = client(ADMIN)
    info = server_get_info(c, 102)["InfoStruct"]["ServerInfo102"]
    assert (info["sv102_users"], info["sv102_disc"]) == (5, 15)
    view.autodisconnect = -1
    assert server_get_info(c, 102)["InfoStruct"]["ServerInfo102"]["sv102_disc"] == 0xFFFFFFFF
    alice, _ = client(ALICE)
    assert server_get_info(alice, 102)["ErrorCode"] == ERROR_ACCESS_DENIED
    assert server_get_info(c, 103)["ErrorCode"] == ERROR_INVALID_LEVEL


def server_set_disc(c, value, level=1010):
    call = srvs.NetrServerSetInfo()
    call["ServerName"] = NULL
    call["Level"] = level
    call["InfoStruct"]["tag"] = level
    member = "sv1010_disc" if level == 1010 else "sv1016_hidden"
    call["InfoStruct"][f"ServerInfo{level}"][member] = value
    return c.call(call, srvs.NetrServerSetInfoResponse)


def test_server_set_info_1010():
    c, view = client(ADMIN)
    assert server_set_disc(c, 30)["ErrorCode"] == 0 and view.autodisconnect == 30
    assert server_set_disc(c, 0xFFFFFFFF)["ErrorCode"] == 0 and view.autodisconnect == -1
    refused = server_set_disc(c, 70000)
    assert (refused["ErrorCode"], refused["ParmErr"]) == (ERROR_INVALID_PARAMETER, 10)
    assert server_set_disc(c, 1, level=1016)["ErrorCode"] == ERROR_INVALID_LEVEL
    alice, view2 = client(ALICE)
    assert server_set_disc(alice, 30)["ErrorCode"] == ERROR_ACCESS_DENIED
    assert view2.autodisconnect == 15


def test_remote_tod():
    c, _ = client(ANONYMOUS)
    call = srvs.NetrRemoteTOD()
    call["ServerName"] = NULL
    r = c.call(call, srvs.NetrRemoteTODResponse)
    tod = r["BufferPtr"]
    assert r["ErrorCode"] == 0 and tod["tod_elapsedt"] == int(NOW)
    assert (tod["tod_year"], tod["tod_month"], tod["tod_day"]) == (2026, 1, 1)
    assert (tod["tod_hours"], tod["tod_mins"], tod["tod_secs"]) == (0, 1, 40)
    assert tod["tod_weekday"] == 4  # Thursday, Sunday = 0


# -- what is not served ---------------------------------------------------------------------------


def test_unserved_opnums_fault():
    c, _ = client(ADMIN)
    add = srvs.NetrShareAdd()
    add["ServerName"] = NULL
    add["Level"] = 2
    add["InfoStruct"]["tag"] = 2
    add["InfoStruct"]["ShareInfo2"]["shi2_netname"] = "x\0"
    add["InfoStruct"]["ShareInfo2"]["shi2_remark"] = "\0"
    add["InfoStruct"]["ShareInfo2"]["shi2_path"] = "c:\\\0"
    add["InfoStruct"]["ShareInfo2"]["shi2_passwd"] = NULL
    add["ParmErr"] = NULL
    assert c.fault(add) == NCA_S_OP_RNG_ERROR
    diskenum = srvs.NetrServerDiskEnum()
    diskenum["ServerName"] = NULL
    diskenum["Level"] = 0
    diskenum["DiskInfoStruct"]["Buffer"] = NULL
    diskenum["PreferedMaximumLength"] = 0xFFFFFFFF
    diskenum["ResumeHandle"] = NULL
    assert c.fault(diskenum) == NCA_S_OP_RNG_ERROR


def test_unknown_union_level_is_bad_stub_data():
    c, _ = client(ADMIN)
    call = share_enum_request(1)
    stub = bytearray(call.getData())
    stub[8:12] = (77).to_bytes(4, "little")  # a union tag no arm has
    assert c.fault(call, stub=bytes(stub)) == RPC_X_BAD_STUB_DATA


def test_a_level_no_arm_has_is_bad_stub_data_for_every_enumeration():
    """The Level beside the union names one the union has no arm for (the tag is fine)."""
    c, _ = client(ADMIN)
    for call in (enum_call(srvs.NetrSessionEnum(), 10, "SessionInfo", ServerName=NULL,
                           ClientName=NULL, UserName=NULL),
                 enum_call(srvs.NetrFileEnum(), 3, "FileInfo", ServerName=NULL,
                           BasePath=NULL, UserName=NULL),
                 enum_call(srvs.NetrConnectionEnum(), 1, "ConnectInfo", ServerName=NULL,
                           Qualifier="docs\0"),
                 share_enum_request(1)):
        call["InfoStruct"]["Level"] = 77
        assert c.fault(call) == RPC_X_BAD_STUB_DATA
    get_info = srvs.NetrServerGetInfo()
    get_info["ServerName"] = NULL
    get_info["Level"] = 77
    assert c.fault(get_info) == RPC_X_BAD_STUB_DATA


def with_lone_surrogate(call, marker):
    """The stub of ``call`` with the UTF-16 unit ``marker`` (a character of one of its
    strings) replaced by a lone high surrogate, which impacket cannot decode."""
    stub = call.getData()
    unit = marker.encode("utf-16-le")
    assert stub.count(unit) == 1
    return stub.replace(unit, b"\x00\xd8")


def test_names_that_are_not_utf16_match_nothing():
    c, view = client(ADMIN)
    get_info = srvs.NetrShareGetInfo()
    get_info["ServerName"] = NULL
    get_info["NetName"] = "d#cs\0"
    get_info["Level"] = 1
    r = srvs.NetrShareGetInfoResponse(reassemble(c.raw(
        get_info, stub=with_lone_surrogate(get_info, "#"))))
    assert r["ErrorCode"] == NERR_NET_NAME_NOT_FOUND
    sessions = enum_call(srvs.NetrSessionEnum(), 10, "SessionInfo", ServerName=NULL,
                         ClientName="\\\\P#1\0", UserName=NULL)
    r = srvs.NetrSessionEnumResponse(reassemble(c.raw(
        sessions, stub=with_lone_surrogate(sessions, "#"))))
    assert r["ErrorCode"] == NERR_CLIENT_NAME_NOT_FOUND
    delete = srvs.NetrSessionDel()
    delete["ServerName"] = NULL
    delete["ClientName"] = NULL
    delete["UserName"] = "b#b\0"
    r = srvs.NetrSessionDelResponse(reassemble(c.raw(
        delete, stub=with_lone_surrogate(delete, "#"))))
    assert r["ErrorCode"] == 0 and view.deleted == [(None, "b\ufffdb")]


def test_session_times_from_posix_or_missing_logon():
    view = FakeView(session_list=[session(1, "a", logon=NOW - 90), session(2, "b", logon="")])
    c, _ = client(ADMIN, view)
    _, rows = session_enum(c, 10)
    assert [e["sesi10_time"] for e in rows] == [90, 0]
