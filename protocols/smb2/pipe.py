"""A named-pipe open on IPC$, shaped like ``fs.OpenFile`` so the SMB handlers treat both alike.

The DCE/RPC work is ``protocols.dcerpc``; this adapter maps it onto SMB2: READ returns at
most one pipe message (``overflow`` -> STATUS_BUFFER_OVERFLOW, the client reads the rest),
and a READ with nothing pending answers STATUS_PIPE_EMPTY at once. Windows would pend
that READ (STATUS_PENDING) until the server writes; here every RPC is answered during the
WRITE that completes it, so a READ that finds nothing would wait forever: refusing it at
once is the only answer that cannot hang a client.
"""

from __future__ import annotations

from impacket import nt_errors

from protocols.dcerpc.pipes import PipeEndpoint
from protocols.errors import StatusError
from protocols.smb2 import fileinfo as fi

STATUS_PIPE_EMPTY = 0xC00000D9
STATUS_PIPE_DISCONNECTED = nt_errors.STATUS_PIPE_DISCONNECTED
FILE_ATTRIBUTE_NORMAL = 0x80
FILE_STANDARD_INFORMATION = 5
FILE_BASIC_INFORMATION = 4
PIPE_ALLOCATION_SIZE = 4096  # what Windows reports for a pipe


class PipeHandle:
    """One SMB open of ``\\PIPE\\<name>``."""

    def __init__(self, endpoint: PipeEndpoint) -> None:
        self.endpoint = endpoint

    @property
    def path(self) -> str:
        """How ``net files`` / NetrFileEnum show the open."""
        return f"\\PIPE\\{self.endpoint.name}"

    @property
    def overflow(self) -> bool:
        """The last READ or transceive returned part of a message (STATUS_BUFFER_OVERFLOW)."""
        return self.endpoint.overflow

    def read(self, offset: int, length: int) -> bytes:
        self._check()
        data = self.endpoint.read(length)
        if not data and not self.overflow:
            raise StatusError(STATUS_PIPE_EMPTY, f"pipe {self.endpoint.name}: nothing to read")
        return data

    def write(self, offset: int, data: bytes) -> int:
        self._check()
        self.endpoint.write(data)
        return len(data)

    def transceive(self, data: bytes, max_out: int) -> bytes:
        """FSCTL_PIPE_TRANSCEIVE: the reply, or its first part (see ``overflow``)."""
        self._check()
        out = self.endpoint.transceive(data, max_out)
        if not out and not self.overflow:
            raise StatusError(STATUS_PIPE_EMPTY, f"pipe {self.endpoint.name}: no reply")
        return out

    def _check(self) -> None:
        if self.endpoint.closed:
            raise StatusError(STATUS_PIPE_DISCONNECTED, self.endpoint.name)

    def flush(self) -> None:
        self._check()

    def close(self) -> None:
        self.endpoint.close()

    def network_open_info(self) -> fi.NetworkOpenInfo:
        return fi.NetworkOpenInfo(0, 0, 0, 0, PIPE_ALLOCATION_SIZE, 0, FILE_ATTRIBUTE_NORMAL)

    def query_info(self, info_class: int, output_buffer_length: int) -> bytes:
        info = self.network_open_info()
        if info_class == FILE_STANDARD_INFORMATION:
            data = fi.standard_information(info, 1, True, False)
        elif info_class == FILE_BASIC_INFORMATION:
            data = fi.basic_information(info)
        else:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, f"pipe info class {info_class}")
        if output_buffer_length < len(data):
            raise StatusError(nt_errors.STATUS_INFO_LENGTH_MISMATCH, f"class {info_class}")
        return data

    def security_info(self, additional_information: int) -> bytes:
        raise StatusError(nt_errors.STATUS_NOT_SUPPORTED, "security of a pipe")

    def set_info(self, info_class: int, data: bytes) -> None:
        raise StatusError(nt_errors.STATUS_NOT_SUPPORTED, "set info on a pipe")

    def query_directory(self, info_class: int, pattern: str, flags: int,
                        output_buffer_length: int) -> bytes:
        raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "a pipe is not a directory")

