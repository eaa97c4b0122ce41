"""Transactions that span several requests (MS-CIFS 3.3.5.2.5): a TRANSACTION,
TRANSACTION2 or NT_TRANSACT primary whose ParameterCount/DataCount fall short of its
totals gets an interim response (WordCount 0, ByteCount 0), and its
TRANSACTION_SECONDARY (0x26) / TRANSACTION2_SECONDARY (0x33) / NT_TRANSACT_SECONDARY
(0xA1) requests, which have no response of their own, fill it in. When every byte is
there the transaction runs and answers with the primary's command.

Bounded: a transaction's counts are capped by Windows' own rule (MS-CIFS <240>: the
setup, parameter and data counts and maxima together at most 65 KiB, else
STATUS_INSUFF_SERVER_RESOURCES), so its buffer is at most that; at most the persona's
MaxMpxCount transactions wait per connection. Fragments may come in any order (the
displacements place them), but one that overlaps another, reaches past the total or
shrinks the total below what arrived ends the transaction with STATUS_INVALID_PARAMETER
(as Samba answers a bad secondary). A secondary without a pending transaction is dropped
with a log line and no answer (Samba does the same).
"""

from __future__ import annotations

import bisect
import dataclasses
import struct
from typing import TYPE_CHECKING, Any

from impacket import nt_errors
from impacket import smb as i

from protocols.errors import StatusError
from protocols.smb1.messages import EMPTY_BLOCK, Block, Header

if TYPE_CHECKING:
    from protocols.smb1.core import Chain, SMB1Core

STATUS_INSUFF_SERVER_RESOURCES = 0xC0000205
WINDOWS_TRANSACTION_LIMIT = 65 * 1024  # MS-CIFS <240>
# TotalParameterCount, TotalDataCount, ParameterCount, ParameterOffset,
# ParameterDisplacement, DataCount, DataOffset, DataDisplacement (MS-CIFS 2.2.4.34.1);
# TRANSACTION2_SECONDARY adds the FID (2.2.4.47.1); NT_TRANSACT_SECONDARY has 32-bit
# fields after 3 reserved bytes and 1 after them (2.2.4.63.1).
TRANS_SECONDARY = struct.Struct("<HHHHHHHH")
NT_SECONDARY = struct.Struct("<3xIIIIIIIIx")
PRIMARY_OF = {i.SMB.SMB_COM_TRANSACTION_SECONDARY: i.SMB.SMB_COM_TRANSACTION,
              i.SMB.SMB_COM_TRANSACTION2_SECONDARY: i.SMB.SMB_COM_TRANSACTION2,
              i.SMB.SMB_COM_NT_TRANSACT_SECONDARY: i.SMB.SMB_COM_NT_TRANSACT}


def check_limits(*counts: int) -> None:
    """MS-CIFS <240>: SetupCount + MaxSetupCount + TotalParameterCount +
    MaxParameterCount + TotalDataCount + MaxDataCount over 65 KiB is refused."""
    if sum(counts) > WINDOWS_TRANSACTION_LIMIT:
        raise StatusError(STATUS_INSUFF_SERVER_RESOURCES, "transaction counts over 65 KiB")


class Primary:
    """What TRANSACTION, TRANSACTION2 and NT_TRANSACT primaries share once their words are
    unpacked: the checked counts and offsets, the first parameter and data bytes."""

    max_params: int
    max_data: int
    total_params: int
    total_data: int
    params: bytes
    data: bytes

    def _take(self, block: Block, message: bytes, what: str, *, words_size: int,
              setup_count: int, max_setup: int, total_params: int, max_params: int,
              total_data: int, max_data: int, param_count: int, param_offset: int,
              data_count: int, data_offset: int) -> None:
        if len(block.words) < words_size + 2 * setup_count:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "SetupCount")
        check_limits(setup_count, max_setup, total_params, max_params, total_data, max_data)
        if param_count > total_params or data_count > total_data:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "counts past the totals")
        end = block.data_offset + len(block.data)
        for offset, count in ((param_offset, param_count), (data_offset, data_count)):
            if count and (offset < block.data_offset or offset + count > end):
                raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, f"{what} offsets")
        self.max_params, self.max_data = max_params, max_data
        self.total_params, self.total_data = total_params, total_data
        self.params = message[param_offset:param_offset + param_count]
        self.data = message[data_offset:data_offset + data_count]

    @property
    def complete(self) -> bool:
        return len(self.params) >= self.total_params and len(self.data) >= self.total_data


class Part:
    """One of a transaction's two byte ranges (parameters, data) being filled in."""

    def __init__(self, total: int, first: bytes) -> None:
        self.total = total
        self.buffer = bytearray(total)
        self.ranges: list[tuple[int, int]] = []  # (start, end), sorted, disjoint
        self.received = 0
        self.put(0, first)

    def put(self, displacement: int, chunk: bytes) -> None:
        if not chunk:
            return
        start, end = displacement, displacement + len(chunk)
        if end > self.total:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "fragment past the total")
        n = bisect.bisect_left(self.ranges, (start, end))
        if (n and self.ranges[n - 1][1] > start) or (n < len(self.ranges)
                                                      and self.ranges[n][0] < end):
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "overlapping fragment")
        self.ranges.insert(n, (start, end))
        self.buffer[start:end] = chunk
        self.received += len(chunk)

    def shrink(self, total: int) -> None:
        """The smallest total reported counts (MS-CIFS 3.3.5.2.5)."""
        if total > self.total:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "total grew")
        if self.ranges and self.ranges[-1][1] > total:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "total below what arrived")
        self.total = total
        del self.buffer[total:]

    @property
    def done(self) -> bool:
        return self.received == self.total


@dataclasses.dataclass
class Assembly:
    command: int  # the primary's
    trans: Any  # the primary's parsed transaction (setup, name, maxima)
    params: Part
    data: Part


def _key(header: Header) -> tuple[int, int, int, int]:
    return header.uid, header.tid, header.pid | header.pid_high << 16, header.mid


class SecondaryCommands:
    """Mixed into ``SMB1Core``: ``self._transactions`` holds the pending assemblies."""

    def begin_transaction(self: SMB1Core, chain: Chain, command: int, trans: Any
                          ) -> list[bytes]:
        """Hold an incomplete primary; answer the interim response."""
        key = _key(chain.request)
        if key not in self._transactions and len(self._transactions) >= self.persona.max_mpx:
            raise StatusError(STATUS_INSUFF_SERVER_RESOURCES, "too many pending transactions")
        self._transactions[key] = Assembly(command, trans,
                                           Part(trans.total_params, trans.params),
                                           Part(trans.total_data, trans.data))
        reply = chain.request.reply()
        reply.uid, reply.tid = chain.uid, chain.tid
        return [reply.pack() + EMPTY_BLOCK]

    def secondary(self: SMB1Core, block: Block, chain: Chain) -> list[bytes]:
        key = _key(chain.request)
        assembly = self._transactions.get(key)
        if assembly is None or PRIMARY_OF[block.command] != assembly.command:
            self.conn.log(f"smb {self.conn.address}: SMB1 secondary 0x{block.command:02x} "
                          "without its transaction: dropped")
            return []
        primary = dataclasses.replace(chain.request, command=assembly.command)
        final = dataclasses.replace(chain, request=primary)
        try:
            if self._add_fragment(assembly, block, chain.message):
                del self._transactions[key]
                trans = assembly.trans
                trans.params = bytes(assembly.params.buffer)
                trans.data = bytes(assembly.data.buffer)
                return self.run_assembled(assembly.command, trans, final)
        except StatusError as err:
            self._transactions.pop(key, None)
            reply = primary.reply()
            reply.uid, reply.tid = chain.uid, chain.tid
            reply.set_status(err.status)
            self.conn.log(f"smb {self.conn.address}: SMB1 transaction ended: {err}")
            return [reply.pack() + EMPTY_BLOCK]
        return []  # more to come; a secondary has no response of its own

    def _add_fragment(self: SMB1Core, assembly: Assembly, block: Block, message: bytes
                      ) -> bool:
        nt = block.command == i.SMB.SMB_COM_NT_TRANSACT_SECONDARY
        layout = NT_SECONDARY if nt else TRANS_SECONDARY
        if len(block.words) < layout.size:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "secondary words")
        (total_params, total_data, param_count, param_offset, param_disp, data_count,
         data_offset, data_disp) = layout.unpack_from(block.words)
        end = block.data_offset + len(block.data)
        for offset, count in ((param_offset, param_count), (data_offset, data_count)):
            if count and (offset < block.data_offset or offset + count > end):
                raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "secondary offsets")
        assembly.params.shrink(total_params)
        assembly.data.shrink(total_data)
        assembly.params.put(param_disp, message[param_offset:param_offset + param_count])
        assembly.data.put(data_disp, message[data_offset:data_offset + data_count])
        return assembly.params.done and assembly.data.done

    def drop_transactions(self: SMB1Core, uid: int) -> None:
        """A session's end ends its pending transactions."""
        for key in [k for k in self._transactions if k[0] == uid]:
            del self._transactions[key]
