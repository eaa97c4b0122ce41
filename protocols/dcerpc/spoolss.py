"""MS-RPRN (the print spooler, ``\\PIPE\\spoolss``): just enough for KB 328459's leak.

A printer-querying client (often over a null session) opens ``\\PIPE\\spoolss``, binds,
opens the print server with RpcOpenPrinter(Ex) and keeps the pipe open; the open pipe
keeps its null session alive past the temporary-null-session expiry, so a few such
clients fill an XP box's session limit. Served: RpcOpenPrinter (1), RpcClosePrinter (29),
RpcOpenPrinterEx (69). This host shares no printers: opening the print server (``NULL``,
``\\\\NAME``) succeeds, a printer (``\\\\NAME\\PRINTER``, or a bare local name) is
ERROR_INVALID_PRINTER_NAME. Every other opnum gets the fault nca_s_op_rng_error; an
unknown printer handle gets the RPC runtime's fault for a context handle it does not
know (nca_s_fault_context_mismatch).
"""

from __future__ import annotations

import struct
import uuid
from typing import Any

from impacket.dcerpc.v5 import rprn

from protocols.dcerpc.netapi import string_arg
from protocols.dcerpc.pdu import NCA_S_FAULT_CONTEXT_MISMATCH
from protocols.dcerpc.service import Caller, Fault, ServerView, Service

ERROR_SUCCESS = 0
ERROR_INVALID_PRINTER_NAME = 1801

NULL_HANDLE = b"\0" * 20


class SpoolssService(Service):
    name = "spoolss"
    interface = rprn.MSRPC_UUID_RPRN  # 1.0

    def __init__(self, view: ServerView, caller: Caller) -> None:
        super().__init__(view, caller)
        self.handles: set[bytes] = set()  # the context handles this open has given out

    def _open(self, request: Any, response: Any) -> Any:
        if not _names_the_server(string_arg(request, "pPrinterName")):
            response["pHandle"] = NULL_HANDLE
            response["ErrorCode"] = ERROR_INVALID_PRINTER_NAME
            return response
        # A context handle: 4 attribute bytes (0) and a GUID unique to this open.
        handle = struct.pack("<I", 0) + uuid.uuid4().bytes
        self.handles.add(handle)
        response["pHandle"] = handle
        response["ErrorCode"] = ERROR_SUCCESS
        return response

    def open_printer(self, request: Any) -> Any:
        return self._open(request, rprn.RpcOpenPrinterResponse())

    def open_printer_ex(self, request: Any) -> Any:
        return self._open(request, rprn.RpcOpenPrinterExResponse())

    def close_printer(self, request: Any) -> Any:
        handle = bytes(request["phPrinter"])  # the PRINTER_HANDLE's 20 bytes
        if handle not in self.handles:
            raise Fault(NCA_S_FAULT_CONTEXT_MISMATCH, "unknown printer handle")
        self.handles.discard(handle)
        response = rprn.RpcClosePrinterResponse()
        response["phPrinter"] = NULL_HANDLE
        response["ErrorCode"] = ERROR_SUCCESS
        return response

    operations = {
        1: (rprn.RpcOpenPrinter, open_printer),
        29: (rprn.RpcClosePrinter, close_printer),
        69: (rprn.RpcOpenPrinterEx, open_printer_ex),
    }


def _names_the_server(name: str | None) -> bool:
    """NULL, "" and ``\\\\NAME`` (a trailing backslash allowed) name the print server."""
    if not name:
        return True
    return name.startswith("\\\\") and "\\" not in name[2:].rstrip("\\")
