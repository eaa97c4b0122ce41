"""TREE_CONNECT and the commands on opens: CREATE, CLOSE, READ, WRITE, IOCTL, QUERY/SET_INFO.

Disk work goes to ``fs.DiskShare``/``OpenFile``; pipes on IPC$ to ``pipe.PipeHandle``.
"""

from __future__ import annotations

from typing import Any

from impacket import smb3structs as s2

from protocols.dcerpc.pipes import Caller
from protocols.errors import StatusError
from protocols.smb2 import bodies
from protocols.smb2.fileinfo import FileInfoClass
from protocols.smb2.leases import Grant
from protocols.smb2.messages import HEADER_SIZE, Header, buffer_at
from protocols.smb2.oplocks import CachingHandlers
from protocols.smb2.pipe import PipeHandle
from protocols.smb2.state import (
    FSCTL_DFS_GET_REFERRALS, FSCTL_PIPE_TRANSCEIVE, FSCTL_VALIDATE_NEGOTIATE_INFO, FULL_ACCESS,
    SHARE_FLAG_ENCRYPT_DATA, SHARE_FLAG_NO_CACHING, STATUS_ACCESS_DENIED,
    STATUS_BUFFER_OVERFLOW, STATUS_END_OF_FILE, STATUS_INVALID_DEVICE_REQUEST,
    STATUS_INVALID_PARAMETER, STATUS_NOT_FOUND, STATUS_NOT_SUPPORTED,
    STATUS_OBJECT_NAME_NOT_FOUND, STATUS_SUCCESS, Disconnect, Open, Request,
    Tree, close_quietly, utf16,
)


class FileHandlers(CachingHandlers):
    def _tree_connect(self, request: Request, response: Header) -> tuple[int, bytes]:
        session = request.session
        assert session is not None
        req = bodies.TREE_CONNECT.parse(request.message, HEADER_SIZE)
        path = utf16(buffer_at(request.message, req.PathOffset, req.PathLength))
        name = path.rstrip("\\").rsplit("\\", 1)[-1].lower()
        if (self.dialect == 0x0311 and not request.header.signed and not request.encrypted
                and not session.anonymous and not session.guest):
            raise Disconnect("unsigned TREE_CONNECT on 3.1.1 (MS-SMB2 3.3.5.7)")
        share = self.share_for(session, name)
        if share is None:
            share_type, flags = s2.SMB2_SHARE_TYPE_PIPE, SHARE_FLAG_NO_CACHING
        else:
            share_type, flags = s2.SMB2_SHARE_TYPE_DISK, 0
        encrypt = name in self.config.encrypt_shares
        if encrypt:
            # A share's EncryptData with RejectUnencryptedAccess (Windows' default): a
            # session that cannot encrypt (2.x, no ENCRYPTION capability, null) is refused.
            if not self.cipher or session.anonymous or session.keys is None:
                raise StatusError(STATUS_ACCESS_DENIED, f"EncryptData share {name}: this "
                                  "session cannot encrypt")
            flags |= SHARE_FLAG_ENCRYPT_DATA
        tree = Tree(self._next_tree_id, name, share, encrypt_data=encrypt)
        self._next_tree_id += 1
        session.trees[tree.id] = tree
        self._update_opens(session)
        response.tree_id = tree.id
        return STATUS_SUCCESS, bodies.TREE_CONNECT_RESPONSE.pack(
            ShareType=share_type, ShareFlags=flags, MaximalAccess=FULL_ACCESS)

    def _tree_disconnect(self, request: Request, response: Header) -> tuple[int, bytes]:
        session = request.session
        assert session is not None
        tree = self._tree(request)
        for key, op in list(session.opens.items()):
            if op.tree is tree:
                close_quietly(session.opens.pop(key))
        del session.trees[tree.id]
        self._update_opens(session)
        return STATUS_SUCCESS, bodies.EMPTY_RESPONSE

    def _create(self, request: Request, response: Header) -> tuple[int, bytes]:
        session = request.session
        assert session is not None
        tree = self._tree(request)
        req = bodies.CREATE.parse(request.message, HEADER_SIZE)
        name = utf16(buffer_at(request.message, req.NameOffset, req.NameLength))
        handle: Any
        lease = None
        if tree.share is None:
            pipes = self.config.pipes
            pipe = pipes.known(name) if pipes is not None else None
            if pipes is None or pipe is None:
                raise StatusError(STATUS_OBJECT_NAME_NOT_FOUND, f"pipe {name}")
            if session.anonymous and not self.config.gate.anonymous_may_open("pipe", pipe):
                # RestrictNullSessAccess: refused, yet the null session still counts.
                raise StatusError(STATUS_ACCESS_DENIED, f"null session to pipe {pipe}")
            slot = session.slot
            caller = Caller(user=slot.user, anonymous=session.anonymous, client=slot.client,
                            address=self.address)
            endpoint = pipes.open(pipe, caller, log=self.log)
            if endpoint is None:
                raise StatusError(STATUS_OBJECT_NAME_NOT_FOUND, f"pipe {name}")
            handle, action = PipeHandle(endpoint), s2.FILE_OPENED
        else:
            if name.startswith("\\"):
                raise StatusError(STATUS_INVALID_PARAMETER, "leading backslash")
            lease = self._lease_request(request, req)
            self._check_lease_key(tree.share.name, name, lease)
            handle, action = tree.share.open(
                name, desired_access=req.DesiredAccess,
                create_disposition=req.CreateDisposition, create_options=req.CreateOptions,
                file_attributes=req.FileAttributes)
        file_id = (self._next_file_id, self._next_file_id)
        self._next_file_id += 1
        op = session.opens[file_id] = Open(file_id, tree, handle)
        self._chain_file_id = file_id
        self._update_opens(session)
        info = handle.network_open_info()

        def finish(grant: Grant) -> bytes:
            contexts = self._lease_response_context(grant, lease)
            offset = HEADER_SIZE + bodies.CREATE_RESPONSE.size if contexts else 0
            return bodies.CREATE_RESPONSE.pack(
                OplockLevel=grant.oplock, CreateAction=action, FileIdPersistent=file_id[0],
                FileIdVolatile=file_id[1], CreateContextsOffset=offset,
                CreateContextsLength=len(contexts), **_attributes(info, "EndOfFile")) + contexts

        # An overwriting disposition breaks the other holders to none there (3.3.1.4).
        return self._grant_caching(request, response, session, op, req, lease, finish,
                                   created=action == s2.FILE_CREATED)

    def _close(self, request: Request, response: Header) -> tuple[int, bytes]:
        session = request.session
        assert session is not None
        req = bodies.CLOSE.parse(request.message, HEADER_SIZE)
        op = self._open(request, req)
        body = bodies.CLOSE_RESPONSE.pack()
        if req.Flags & s2.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB:
            body = bodies.CLOSE_RESPONSE.pack(
                Flags=s2.SMB2_CLOSE_FLAG_POSTQUERY_ATTRIB,
                **_attributes(op.handle.network_open_info(), "EndofFile"))
        del session.opens[op.file_id]
        self._update_opens(session)
        if op.lease is not None:
            op.lease.close()
        op.handle.close()
        return STATUS_SUCCESS, body

    def _flush(self, request: Request, response: Header) -> tuple[int, bytes]:
        req = bodies.FLUSH.parse(request.message, HEADER_SIZE)
        self._open(request, req).handle.flush()
        return STATUS_SUCCESS, bodies.EMPTY_RESPONSE

    def _read(self, request: Request, response: Header) -> tuple[int, bytes]:
        req = bodies.READ.parse(request.message, HEADER_SIZE)
        op = self._open(request, req)
        if req.Length > self.config.max_transact:
            raise StatusError(STATUS_INVALID_PARAMETER, "read larger than MaxReadSize")
        data = op.handle.read(req.Offset, req.Length)
        status = STATUS_SUCCESS
        if isinstance(op.handle, PipeHandle):
            # Message mode: a message longer than the READ leaves the rest for the next one.
            status = STATUS_BUFFER_OVERFLOW if op.handle.overflow else STATUS_SUCCESS
        elif len(data) < req.MinimumCount or (not data and req.Length):
            raise StatusError(STATUS_END_OF_FILE, "read at end of file")
        return status, bodies.READ_RESPONSE.pack(
            DataOffset=HEADER_SIZE + bodies.READ_RESPONSE.size, DataLength=len(data)) + data

    def _write(self, request: Request, response: Header) -> tuple[int, bytes]:
        req = bodies.WRITE.parse(request.message, HEADER_SIZE)
        op = self._open(request, req)
        data = buffer_at(request.message, req.DataOffset, req.Length)
        written = op.handle.write(req.Offset, data)
        self._contend_write(op)
        return STATUS_SUCCESS, bodies.WRITE_RESPONSE.pack(Count=written)

    def _lock(self, request: Request, response: Header) -> tuple[int, bytes]:
        self._contend_write(self._open(request, bodies.LOCK.parse(request.message, HEADER_SIZE)))
        # Byte-range locks are granted without being enforced: one client per file is the
        # common case in the tests this emulator serves.
        return STATUS_SUCCESS, bodies.EMPTY_RESPONSE

    def _ioctl(self, request: Request, response: Header) -> tuple[int, bytes]:
        req = bodies.IOCTL.parse(request.message, HEADER_SIZE)
        code = req.CtlCode
        status = STATUS_SUCCESS
        if code == FSCTL_VALIDATE_NEGOTIATE_INFO:
            output = self._validate_negotiate(
                buffer_at(request.message, req.InputOffset, req.InputCount))
        elif code == FSCTL_DFS_GET_REFERRALS:
            raise StatusError(STATUS_NOT_FOUND, "no DFS namespace here")
        elif code == FSCTL_PIPE_TRANSCEIVE:
            op = self._open(request, req)
            if not isinstance(op.handle, PipeHandle):
                raise StatusError(STATUS_INVALID_DEVICE_REQUEST, "transceive on a file")
            output = op.handle.transceive(
                buffer_at(request.message, req.InputOffset, req.InputCount),
                min(req.MaxOutputResponse, self.config.max_transact))
            if op.handle.overflow:  # the reply goes on with READs
                status = STATUS_BUFFER_OVERFLOW
        else:
            raise StatusError(STATUS_NOT_SUPPORTED, f"FSCTL 0x{code:08x}")
        offset = HEADER_SIZE + bodies.IOCTL_RESPONSE.size
        return status, bodies.IOCTL_RESPONSE.pack(
            CtlCode=code, FileIdPersistent=req.FileIdPersistent,
            FileIdVolatile=req.FileIdVolatile, InputOffset=offset, OutputOffset=offset,
            OutputCount=len(output)) + output

    def _query_directory(self, request: Request, response: Header) -> tuple[int, bytes]:
        req = bodies.QUERY_DIRECTORY.parse(request.message, HEADER_SIZE)
        op = self._open(request, req)
        pattern = utf16(buffer_at(request.message, req.FileNameOffset,
                                   req.FileNameLength)) or "*"
        data = op.handle.query_directory(req.FileInformationClass, pattern, req.Flags,
                                         req.OutputBufferLength)
        return STATUS_SUCCESS, _output_body(data)

    def _query_info(self, request: Request, response: Header) -> tuple[int, bytes]:
        req = bodies.QUERY_INFO.parse(request.message, HEADER_SIZE)
        op = self._open(request, req)
        info_type, info_class, limit = req.InfoType, req.FileInfoClass, req.OutputBufferLength
        if info_type == s2.SMB2_0_INFO_FILE:
            data = op.handle.query_info(info_class, limit)
        elif info_type == s2.SMB2_0_INFO_FILESYSTEM and op.tree.share is not None:
            data = op.tree.share.fs_info(info_class)
        elif info_type == s2.SMB2_0_INFO_SECURITY:
            data = op.handle.security_info(req.AdditionalInformation)
        else:
            raise StatusError(STATUS_NOT_SUPPORTED, f"info type {info_type}")
        status = STATUS_SUCCESS
        if len(data) > limit:
            status, data = STATUS_BUFFER_OVERFLOW, data[:limit]
        return status, _output_body(data)

    def _set_info(self, request: Request, response: Header) -> tuple[int, bytes]:
        req = bodies.SET_INFO.parse(request.message, HEADER_SIZE)
        op = self._open(request, req)
        data = buffer_at(request.message, req.BufferOffset, req.BufferLength)
        if req.InfoType == s2.SMB2_0_INFO_FILE:
            op.handle.set_info(req.FileInfoClass, data)
            if req.FileInfoClass in (FileInfoClass.ALLOCATION, FileInfoClass.END_OF_FILE):
                self._contend_write(op)  # the size changed
        elif req.InfoType != s2.SMB2_0_INFO_SECURITY:  # ACL changes are accepted, not kept
            raise StatusError(STATUS_NOT_SUPPORTED, f"set info type {req.InfoType}")
        return STATUS_SUCCESS, bodies.SET_INFO_RESPONSE

    def _change_notify(self, request: Request, response: Header) -> tuple[int, bytes]:
        raise StatusError(STATUS_NOT_SUPPORTED, "change notification")


def _attributes(info: Any, end_of_file_field: str) -> dict[str, int]:
    """The times, sizes and attributes CREATE and CLOSE responses both carry."""
    return {"CreationTime": info.creation_time, "LastAccessTime": info.last_access_time,
            "LastWriteTime": info.last_write_time, "ChangeTime": info.change_time,
            "AllocationSize": info.allocation_size, end_of_file_field: info.end_of_file,
            "FileAttributes": info.file_attributes}


def _output_body(data: bytes) -> bytes:
    """QUERY_DIRECTORY and QUERY_INFO responses: the output buffer right after the body."""
    return bodies.OUTPUT_RESPONSE.pack(
        OutputBufferOffset=HEADER_SIZE + bodies.OUTPUT_RESPONSE.size,
        OutputBufferLength=len(data)) + data
