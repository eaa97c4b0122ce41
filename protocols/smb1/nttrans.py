"""SMB_COM_NT_TRANSACT (0xA0, MS-CIFS 2.2.4.62) with the subcommands clients send to an
XP-era host: NT_TRANSACT_QUERY_SECURITY_DESC (smbclient's `showacls`, smbcacls: the same
descriptor SMB2's QUERY_INFO gives), NT_TRANSACT_SET_SECURITY_DESC (accepted and not
kept, as over SMB2), NT_TRANSACT_NOTIFY_CHANGE (STATUS_NOT_IMPLEMENTED, which MS-CIFS
3.3.5.59.4 allows a server without change notification; Windows would wait for a change)
and NT_TRANSACT_IOCTL (STATUS_NOT_SUPPORTED, as SMB2's IOCTL answers the FSCTLs it does
not build). NT_TRANSACT_CREATE and NT_TRANSACT_RENAME: STATUS_NOT_SUPPORTED (clients open
with NT_CREATE_ANDX). Secondaries (0xA1) go through ``protocols/smb1/secondary.py``."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from impacket import nt_errors

from protocols.errors import StatusError
from protocols.smb1.messages import Block, Header
from protocols.smb1.secondary import Primary
from protocols.smb1.trans import fragments

if TYPE_CHECKING:
    from protocols.smb1.core import Chain, SMB1Core

# MaxSetupCount, Reserved1, TotalParameterCount, TotalDataCount, MaxParameterCount,
# MaxDataCount, ParameterCount, ParameterOffset, DataCount, DataOffset, SetupCount,
# Function (19 words before the setup words).
NT_REQUEST = struct.Struct("<BHIIIIIIIIBH")
# Reserved1, TotalParameterCount, TotalDataCount, ParameterCount, ParameterOffset,
# ParameterDisplacement, DataCount, DataOffset, DataDisplacement, SetupCount (18 words).
NT_RESPONSE = struct.Struct("<3xIIIIIIIIB")
NT_TRANSACT_CREATE = 0x0001
NT_TRANSACT_IOCTL = 0x0002
NT_TRANSACT_SET_SECURITY_DESC = 0x0003
NT_TRANSACT_NOTIFY_CHANGE = 0x0004
NT_TRANSACT_RENAME = 0x0005
NT_TRANSACT_QUERY_SECURITY_DESC = 0x0006
STATUS_BUFFER_TOO_SMALL = 0xC0000023


class NtTransaction(Primary):
    def __init__(self, block: Block, message: bytes) -> None:
        if len(block.words) < NT_REQUEST.size:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "NT_TRANSACT words")
        (max_setup, _r1, total_params, total_data, max_params, max_data, param_count,
         param_offset, data_count, data_offset, setup_count,
         self.function) = NT_REQUEST.unpack_from(block.words)
        self._take(block, message, "NT_TRANSACT", words_size=NT_REQUEST.size,
                   setup_count=setup_count, max_setup=max_setup, total_params=total_params,
                   max_params=max_params, total_data=total_data, max_data=max_data,
                   param_count=param_count, param_offset=param_offset,
                   data_count=data_count, data_offset=data_offset)
        self.setup = block.words[NT_REQUEST.size:NT_REQUEST.size + 2 * setup_count]


def nt_responses(request: Header, uid: int, tid: int, status: int, params: bytes,
                 data: bytes, max_buffer: int) -> list[bytes]:
    """An NT_TRANSACT's response messages, each within the client's MaxBufferSize."""
    return fragments(request, uid, tid, status, params, data, max_buffer,
                     lambda tp, td, pc, po, pd, dc, do, dd: NT_RESPONSE.pack(
                         tp, td, pc, po, pd, dc, do, dd, 0),
                     NT_RESPONSE.size, overhead=96)


class NtTransCommands:
    def nt_transact(self: SMB1Core, block: Block, chain: Chain) -> list[bytes]:
        self._session(chain), self._tree(chain)
        trans = NtTransaction(block, chain.message)
        if not trans.complete:
            return self.begin_transaction(chain, block.command, trans)
        return self.run_nt_transact(trans, chain)

    def run_nt_transact(self: SMB1Core, trans: NtTransaction, chain: Chain) -> list[bytes]:
        self._tree(chain)
        function = trans.function
        try:
            if function == NT_TRANSACT_QUERY_SECURITY_DESC:
                fid, _reserved, fields = struct.unpack_from("<HHI", trans.params)
                descriptor = self._op(chain, fid).handle.security_info(fields)
                needed = struct.pack("<I", len(descriptor))
                if len(descriptor) > trans.max_data:
                    # The length needed and no descriptor (MS-CIFS 3.3.5.59.5).
                    return self._nt_reply(chain, needed, b"", STATUS_BUFFER_TOO_SMALL)
                return self._nt_reply(chain, needed, descriptor)
            if function == NT_TRANSACT_SET_SECURITY_DESC:
                fid, _reserved, _fields = struct.unpack_from("<HHI", trans.params)
                self._op(chain, fid)  # the descriptor is accepted, not kept (as over SMB2)
                return self._nt_reply(chain, b"", b"")
            if function == NT_TRANSACT_NOTIFY_CHANGE:
                if len(trans.setup) >= 6:
                    (fid,) = struct.unpack_from("<H", trans.setup, 4)
                    self._op(chain, fid)
                raise StatusError(nt_errors.STATUS_NOT_IMPLEMENTED, "change notification")
            if function == NT_TRANSACT_IOCTL:
                if len(trans.setup) >= 6:
                    (fid,) = struct.unpack_from("<H", trans.setup, 4)
                    self._op(chain, fid)
                raise StatusError(nt_errors.STATUS_NOT_SUPPORTED, "NT_TRANSACT_IOCTL")
        except struct.error:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "short NT_TRANSACT "
                              "parameters") from None
        raise StatusError(nt_errors.STATUS_NOT_SUPPORTED, f"NT_TRANSACT 0x{function:x}")

    def _nt_reply(self: SMB1Core, chain: Chain, params: bytes, data: bytes,
                  status: int = 0) -> list[bytes]:
        return nt_responses(chain.request, chain.uid, chain.tid, status, params, data,
                            self.client_max_buffer)
