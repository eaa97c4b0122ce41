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

from .dcerpc_helpers import ADMIN, ALICE, ANONYMOUS, Client, FakeView


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


def test_wksta_user_enum_lists_interactive_logons_to_admins():
    c = Client("wkssvc", wkst.MSRPC_UUID_WKST, FakeView(), ADMIN)
    call = wkst.NetrWkstaUserEnum()
    call["ServerName"] = "\x00"
    call["UserInfo"]["Level"] = 1
    call["UserInfo"]["WkstaUserInfo"]["tag"] = 1
    call["UserInfo"]["WkstaUserInfo"]["Level1"]["Buffer"] = NULL
    call["PreferredMaximumLength"] = 0xFFFFFFFF
    call["ResumeHandle"] = 0
    r = c.call(call, NetrWkstaUserEnumResponse)  # MS-WKST's shape: ResumeHandle is a pointer
    rows = list(r["UserInfo"]["WkstaUserInfo"]["Level1"]["Buffer"])
    assert r["ErrorCode"] == 0 and r["TotalEntries"] == 1 and r["ResumeHandle"] == 0
    assert [(text(e["wkui1_username"]), text(e["wkui1_logon_domain"])) for e in rows] == [
        ("alice", "EMULATOR")]  # the RDP session of the fake view
    # impacket 0.13's own response class (a bare ULONG ResumeHandle) still reads the users.
    legacy = c.call(call, wkst.NetrWkstaUserEnumResponse)
    assert len(legacy["UserInfo"]["WkstaUserInfo"]["Level1"]["Buffer"]) == 1
    alice = Client("wkssvc", wkst.MSRPC_UUID_WKST, FakeView(), ALICE)
    call["UserInfo"]["Level"] = 0
    call["UserInfo"]["WkstaUserInfo"]["tag"] = 0
    call["UserInfo"]["WkstaUserInfo"]["Level0"]["Buffer"] = NULL
    assert alice.call(call, NetrWkstaUserEnumResponse)["ErrorCode"] == ERROR_ACCESS_DENIED


def test_wkssvc_unserved_opnum():
    c = Client("wkssvc", wkst.MSRPC_UUID_WKST, FakeView(), ALICE)
    call = wkst.NetrWkstaTransportEnum()
    call["ServerName"] = "\x00"
    call["TransportInfo"]["Level"] = 0
    call["TransportInfo"]["WkstaTransportInfo"]["tag"] = 0
    call["TransportInfo"]["WkstaTransportInfo"]["Level0"]["Buffer"] = NULL
    call["PreferredMaximumLength"] = 0xFFFFFFFF
    call["ResumeHandle"] = NULL
    assert c.fault(call) == NCA_S_OP_RNG_ERROR


# -- spoolss --------------------------------------------------------------------------------------


def spoolss(caller=ANONYMOUS):
    return Client("spoolss", rprn.MSRPC_UUID_RPRN, FakeView(), caller)


def open_printer(c, name, ex=False):
    """As rprn.hRpcOpenPrinter / hRpcOpenPrinterEx build it."""
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
        return c.call(call, rprn.RpcOpenPrinterExResponse)
    return c.call(call, rprn.RpcOpenPrinterResponse)


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
