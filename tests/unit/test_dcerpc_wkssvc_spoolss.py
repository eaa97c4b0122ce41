"""wkssvc and spoolss driven with impacket's client-side request classes."""

from __future__ import annotations

import pytest
from impacket.dcerpc.v5 import rprn, wkst
from impacket.dcerpc.v5.dtypes import NULL

from protocols.dcerpc.pipes import NCA_S_FAULT_CONTEXT_MISMATCH, NCA_S_OP_RNG_ERROR
from protocols.dcerpc.spoolss import ERROR_INVALID_PRINTER_NAME
from protocols.dcerpc.wkssvc import (
    ERROR_ACCESS_DENIED,
    ERROR_INVALID_LEVEL,
    NetrWkstaUserEnumResponse,
)

from .dcerpc_helpers import ADMIN, ALICE, ANONYMOUS, Client, FakeView, enum_call
from .dcerpc_helpers import open_printer as open_printer_call


def text(value):
    return value.rstrip("\0")


# -- wkssvc ---------------------------------------------------------------------------------------


def wksta_get_info(caller, level, view=None):
    c = Client("wkssvc", wkst.MSRPC_UUID_WKST, view or FakeView(), caller)
    call = wkst.NetrWkstaGetInfo()
    call["ServerName"] = "\\\\EMULATOR\0"
    call["Level"] = level
    return c.call(call, wkst.NetrWkstaGetInfoResponse)


@pytest.mark.parametrize("version", [(5, 1), (6, 1), (10, 0)])
def test_wksta_get_info_100_has_the_editions_version(version):
    r = wksta_get_info(ANONYMOUS, 100, FakeView(version=version))
    info = r["WkstaInfo"]["WkstaInfo100"]
    assert r["ErrorCode"] == 0
    assert (info["wki100_platform_id"], text(info["wki100_computername"]),
            text(info["wki100_langroup"])) == (500, "EMULATOR", "WORKGROUP")
    assert (info["wki100_ver_major"], info["wki100_ver_minor"]) == version


def test_wksta_get_info_101():
    r = wksta_get_info(ALICE, 101)
    info = r["WkstaInfo"]["WkstaInfo101"]
    assert r["ErrorCode"] == 0 and text(info["wki101_lanroot"]) == "C:\\WINDOWS"
    assert wksta_get_info(ANONYMOUS, 101)["ErrorCode"] == ERROR_ACCESS_DENIED
    assert wksta_get_info(ADMIN, 102)["ErrorCode"] == ERROR_INVALID_LEVEL


def user_enum(level):
    """As wkst.hNetrWkstaUserEnum builds it."""
    return enum_call(wkst.NetrWkstaUserEnum(), level, "WkstaUserInfo", info="UserInfo",
                     resume=0, ServerName="\x00")


def test_wksta_user_enum_lists_interactive_logons_to_admins():
    c = Client("wkssvc", wkst.MSRPC_UUID_WKST, FakeView(), ADMIN)
    call = user_enum(1)
    r = c.call(call, NetrWkstaUserEnumResponse)  # MS-WKST's shape: ResumeHandle is a pointer
    rows = list(r["UserInfo"]["WkstaUserInfo"]["Level1"]["Buffer"])
    assert r["ErrorCode"] == 0 and r["TotalEntries"] == 1 and r["ResumeHandle"] == 0
    assert [(text(e["wkui1_username"]), text(e["wkui1_logon_domain"])) for e in rows] == [
        ("alice", "EMULATOR")]  # the RDP session of the fake view
    # impacket 0.13's own response class (a bare ULONG ResumeHandle) still reads the users.
    legacy = c.call(call, wkst.NetrWkstaUserEnumResponse)
    assert len(legacy["UserInfo"]["WkstaUserInfo"]["Level1"]["Buffer"]) == 1
    alice = Client("wkssvc", wkst.MSRPC_UUID_WKST, FakeView(), ALICE)
    call = user_enum(0)
    assert alice.call(call, NetrWkstaUserEnumResponse)["ErrorCode"] == ERROR_ACCESS_DENIED


def test_wkssvc_unserved_opnum():
    c = Client("wkssvc", wkst.MSRPC_UUID_WKST, FakeView(), ALICE)
    call = enum_call(wkst.NetrWkstaTransportEnum(), 0, "WkstaTransportInfo",
                     info="TransportInfo", ServerName="\x00")
    assert c.fault(call) == NCA_S_OP_RNG_ERROR


# -- spoolss --------------------------------------------------------------------------------------


def spoolss(caller=ANONYMOUS):
    return Client("spoolss", rprn.MSRPC_UUID_RPRN, FakeView(), caller)


def open_printer(c, name, ex=False):
    response = rprn.RpcOpenPrinterExResponse if ex else rprn.RpcOpenPrinterResponse
    return c.call(open_printer_call(name, ex), response)


def close_printer(c, handle):
    call = rprn.RpcClosePrinter()
    call["phPrinter"] = handle
    return call


@pytest.mark.parametrize("ex", [False, True], ids=["RpcOpenPrinter", "RpcOpenPrinterEx"])
@pytest.mark.parametrize("name", ["\\\\EMULATOR\0", "\\\\127.0.0.1\0", NULL])
def test_a_null_session_opens_and_closes_the_print_server(ex, name):
    c = spoolss()
    r = open_printer(c, name, ex)
    handle = r["pHandle"]
    assert r["ErrorCode"] == 0 and len(handle) == 20 and handle != b"\0" * 20
    closed = c.call(close_printer(c, handle), rprn.RpcClosePrinterResponse)
    assert closed["ErrorCode"] == 0 and closed["phPrinter"] == b"\0" * 20
    # Closing it again: the RPC runtime no longer knows the context handle.
    assert c.fault(close_printer(c, handle)) == NCA_S_FAULT_CONTEXT_MISMATCH


def test_there_are_no_printers():
    c = spoolss(ALICE)
    r = open_printer(c, "\\\\EMULATOR\\LaserJet\0")
    assert r["ErrorCode"] == ERROR_INVALID_PRINTER_NAME and r["pHandle"] == b"\0" * 20


@pytest.mark.parametrize("name,error", [
    ("\\\\EMULATOR\\\0", 0), ("\0", 0),  # the server, with a trailing backslash; ""
    ("LaserJet\0", ERROR_INVALID_PRINTER_NAME),  # a local printer's bare name
    ("\\EMULATOR\0", ERROR_INVALID_PRINTER_NAME),  # one backslash is no server name
    ("\\\\EMULATOR\\LaserJet\\\0", ERROR_INVALID_PRINTER_NAME),
])
def test_what_names_the_print_server(name, error):
    assert open_printer(spoolss(), name)["ErrorCode"] == error


def test_handles_belong_to_their_pipe():
    a, b = spoolss(), spoolss()
    handle = open_printer(a, NULL)["pHandle"]
    assert b.fault(close_printer(b, handle)) == NCA_S_FAULT_CONTEXT_MISMATCH


def test_other_spoolss_opnums_fault():
    c = spoolss()
    call = rprn.RpcEnumPrinters()
    call["Flags"] = rprn.PRINTER_ENUM_LOCAL
    call["Name"] = NULL
    call["pPrinterEnum"] = NULL
    call["Level"] = 1
    call["cbBuf"] = 0
    assert c.fault(call) == NCA_S_OP_RNG_ERROR
