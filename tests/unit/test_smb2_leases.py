"""Leases and oplocks through the sans-IO SMB2 connection, two clients on one host, task.Clock.

What Windows grants comes from Samba's smbtorture smb2.lease tests, which were written
against Windows 7 (source4/torture/smb2/lease.c: request_results, lease_upgrade_tests,
break_results); the acknowledgment statuses from MS-SMB2 3.3.5.22.1 and 3.3.5.22.2.
"""

from __future__ import annotations

import struct

import pytest
from impacket import smb3structs as s2
from twisted.internet.task import Clock

from emulator.core.editions import get_edition
from emulator.core.engine import SessionEngine
from emulator.core.events import EventLog
from protocols.smb2 import bodies
from protocols.smb2.connection import SMB2ServerConnection, SMBServerConfig
from protocols.smb2.framing import frame
from protocols.smb2.fs import DiskShare
from protocols.smb2.leases import LeaseTable
from protocols.smb2.messages import FLAGS_ASYNC_COMMAND, HEADER_SIZE, Header, split_compound
from protocols.smb2.oplocks import create_contexts, response_contexts
from protocols.smb2.state import MAX_CREDITS

from .smb2_helpers import logon, unframe

STATUS_SUCCESS = 0
STATUS_PENDING = 0x103
STATUS_MORE_PROCESSING_REQUIRED = 0xC0000016
STATUS_INVALID_PARAMETER = 0xC000000D
STATUS_OBJECT_NAME_NOT_FOUND = 0xC0000034
STATUS_UNSUCCESSFUL = 0xC0000001
STATUS_REQUEST_NOT_ACCEPTED = 0xC00000D0
STATUS_INVALID_DEVICE_STATE = 0xC0000184
STATUS_INVALID_OPLOCK_PROTOCOL = 0xC00000E3
STATUS_FILE_CLOSED = 0xC0000128
UNSOLICITED = 0xFFFFFFFFFFFFFFFF
R, H, W = 1, 2, 4
LEASE1, LEASE2 = b"\x0d\xf0\xdd\xe0\xfe\x0f\xdc\xba" * 2, b"\xad\xbe\xed\xfe\xef\xbe\xad\xde" * 2
FILE_DIRECTORY_FILE = 0x1


def make(tmp_path, edition="win10"):
    clock = Clock()
    clock.advance(1_767_225_600)
    engine = SessionEngine(get_edition(edition), clock, EventLog(clock.seconds))
    (tmp_path / "f.txt").write_bytes(b"data")
    (tmp_path / "d").mkdir()
    table = LeaseTable(clock)
    config = SMBServerConfig(gate=engine, lookup_password={"alice": "pw"}.get,
                             shares={"share": DiskShare("share", tmp_path)}, now=clock.seconds,
                             leases=table)
    return engine, clock, config, table


class Client:
    """A minimal unsigned SMB2 client on a disk share; keeps every message it is sent."""

    def __init__(self, config: SMBServerConfig, dialect: int, guid: bytes) -> None:
        self.conn = SMB2ServerConnection(config, address="10.0.0.3")
        self.flushed = 0
        self.conn.on_output = self._on_output
        self.dialect, self.guid = dialect, guid
        self.message_id = self.session_id = self.tree_id = 0
        self.inbox: list[tuple[Header, bytes]] = []

    def _on_output(self) -> None:
        self.flushed += 1
        self._collect()

    def _collect(self) -> None:
        for framed in unframe(self.conn.data_to_send()):
            for message in split_compound(framed, MAX_CREDITS):
                self.inbox.append((Header.parse(message), message))

    def send(self, command: int, body: bytes) -> tuple[Header, bytes]:
        """Send one request; return its (first) response. Notifications stay in the inbox."""
        # Ask for a few credits: a compound may hold no more requests than the client holds.
        header = Header(command, credits=8, message_id=self.message_id,
                        session_id=self.session_id, tree_id=self.tree_id)
        self.message_id += 1
        self.conn.receive_data(frame(header.pack() + body))
        self._collect()
        return self.take(header.message_id)

    def take(self, message_id: int) -> tuple[Header, bytes]:
        for i, (h, msg) in enumerate(self.inbox):
            if h.message_id == message_id:
                del self.inbox[i]
                return h, msg
        raise AssertionError(f"no response to message {message_id}")

    def notifications(self) -> list[tuple[Header, bytes]]:
        found = [(h, m) for h, m in self.inbox if h.message_id == UNSOLICITED]
        self.inbox = [(h, m) for h, m in self.inbox if h.message_id != UNSOLICITED]
        return found

    def login(self) -> None:
        logon(self, dialect=self.dialect, guid=self.guid, user="alice", password="pw",
              share="share")

    def create_request(self, name: str, *, oplock: int = 0, lease: bytes | None = None,
                       options: int = 0, contexts: bytes | None = None,
                       disposition: int = s2.FILE_OPEN, access: int = 0x0012019F) -> bytes:
        raw = name.encode("utf-16-le")
        name_offset = HEADER_SIZE + bodies.CREATE.size
        if contexts is None:
            contexts = response_contexts([(b"RqLs", lease)]) if lease is not None else b""
        ctx_offset = name_offset + len(raw) + (-(name_offset + len(raw)) % 8)
        pad = b"\0" * (ctx_offset - name_offset - len(raw))
        return bodies.CREATE.pack(
            RequestedOplockLevel=oplock, ImpersonationLevel=2, DesiredAccess=access,
            ShareAccess=7, CreateDisposition=disposition, CreateOptions=options,
            NameOffset=name_offset, NameLength=len(raw),
            CreateContextsOffset=ctx_offset if contexts else 0,
            CreateContextsLength=len(contexts)) + raw + (pad + contexts if contexts else b"")

    def create(self, name: str, **kw) -> tuple[Header, bytes]:
        return self.send(s2.SMB2_CREATE, self.create_request(name, **kw))

    def close(self, fid) -> int:
        h, _ = self.send(s2.SMB2_CLOSE, bodies.CLOSE.pack(
            FileIdPersistent=fid[0], FileIdVolatile=fid[1]))
        return h.status

    def lease_ack(self, key: bytes, state: int) -> tuple[Header, bytes]:
        return self.send(s2.SMB2_OPLOCK_BREAK,
                         bodies.LEASE_BREAK_ACK.pack(LeaseKey=key, LeaseState=state))

    def oplock_ack(self, fid, level: int) -> tuple[Header, bytes]:
        return self.send(s2.SMB2_OPLOCK_BREAK, bodies.OPLOCK_BREAK.pack(
            OplockLevel=level, FileIdPersistent=fid[0], FileIdVolatile=fid[1]))


def v1(key: bytes, state: int) -> bytes:
    return bodies.LEASE_V1.pack(LeaseKey=key, LeaseState=state)


def v2(key: bytes, state: int, *, parent: bytes | None = None, epoch: int = 0) -> bytes:
    return bodies.LEASE_V2.pack(LeaseKey=key, LeaseState=state, Epoch=epoch,
                                Flags=s2.SMB2_LEASE_FLAG_PARENT_LEASE_KEY_SET if parent else 0,
                                ParentLeaseKey=parent or b"")


def created(msg: bytes):
    """(OplockLevel, file id, the response's lease context data or None)."""
    r = bodies.CREATE_RESPONSE.parse(msg, HEADER_SIZE)
    lease = create_contexts(msg, r.CreateContextsOffset, r.CreateContextsLength).get(b"RqLs")
    return r.OplockLevel, (r.FileIdPersistent, r.FileIdVolatile), lease


def break_timers(clock):
    """The break-acknowledgment timers left on the clock (the engine keeps its own)."""
    return [c for c in clock.getDelayedCalls() if getattr(c.func, "__name__", "") == "_timed_out"]


def pair(tmp_path, dialect=0x0300):
    engine, clock, config, table = make(tmp_path)
    a, b = Client(config, dialect, b"A" * 16), Client(config, dialect, b"B" * 16)
    a.login()
    b.login()
    return clock, table, a, b


# -- grants ---------------------------------------------------------------------------------

def test_leasing_is_advertised_on_2_1_and_later_only(tmp_path):
    _, _, config, _ = make(tmp_path)
    for dialect, leasing in ((0x0202, False), (0x0210, True), (0x0300, True)):
        c = Client(config, dialect, b"C" * 16)
        _, msg = c.send(s2.SMB2_NEGOTIATE, bodies.NEGOTIATE.pack(
            DialectCount=1, SecurityMode=1, ClientGuid=c.guid) + struct.pack("<H", dialect))
        caps = bodies.NEGOTIATE_RESPONSE.parse(msg, HEADER_SIZE).Capabilities
        assert bool(caps & s2.SMB2_GLOBAL_CAP_LEASING) is leasing


# Windows 7 (smbtorture request_results): H, W and HW are granted no caching.
@pytest.mark.parametrize("asked,granted", [(0, 0), (R, R), (H, 0), (W, 0), (R | H, R | H),
                                           (R | W, R | W), (H | W, 0), (R | W | H, R | W | H)])
def test_v1_lease_grants_on_a_file(tmp_path, asked, granted):
    _, _, a, _ = pair(tmp_path, 0x0210)
    h, msg = a.create("f.txt", oplock=0xFF, lease=v1(LEASE1, asked))
    assert h.status == STATUS_SUCCESS
    level, _, lease = created(msg)
    assert level == 0xFF
    got = bodies.LEASE_V1.parse(lease)
    assert (len(lease), got.LeaseKey, got.LeaseState, got.LeaseFlags) == (32, LEASE1, granted, 0)


def test_v2_lease_echoes_parent_key_and_bumps_the_epoch(tmp_path):
    _, _, a, _ = pair(tmp_path, 0x0300)
    h, msg = a.create("f.txt", oplock=0xFF, lease=v2(LEASE1, R | W | H, parent=b"P" * 16,
                                                      epoch=4))
    level, _, lease = created(msg)
    got = bodies.LEASE_V2.parse(lease)
    assert (level, len(lease), got.LeaseState) == (0xFF, 52, R | W | H)
    assert (got.ParentLeaseKey, got.Flags, got.Epoch) == (
        b"P" * 16, s2.SMB2_LEASE_FLAG_PARENT_LEASE_KEY_SET, 5)


def test_directories_get_no_lease_without_directory_leasing(tmp_path):
    # Windows 7 on 2.1 (smbtorture test_lease_request): OplockLevel NONE, no lease context.
    _, _, a, _ = pair(tmp_path, 0x0210)
    _, msg = a.create("d", oplock=0xFF, lease=v1(LEASE1, R | W | H), options=FILE_DIRECTORY_FILE)
    assert created(msg)[0] == 0 and created(msg)[2] is None


def test_directories_get_at_most_rh_when_directory_leasing_is_negotiated(tmp_path, monkeypatch):
    _, _, a, _ = pair(tmp_path, 0x0300)
    caps = SMB2ServerConnection._capabilities
    monkeypatch.setattr(SMB2ServerConnection, "_capabilities", lambda self, d: caps(self, d)
                        | s2.SMB2_GLOBAL_CAP_DIRECTORY_LEASING)
    _, msg = a.create("d", oplock=0xFF, lease=v2(LEASE1, R | W | H), options=FILE_DIRECTORY_FILE)
    level, _, lease = created(msg)
    assert level == 0xFF and bodies.LEASE_V2.parse(lease).LeaseState == R | H


@pytest.mark.parametrize("first,then,result", [(R | H, R | W, R | H), (R | W, R | W | H, R | W | H),
                                               (R | W | H, R, R | W | H), (R, R | H, R | H)])
def test_same_key_upgrades_as_windows(tmp_path, first, then, result):
    _, _, a, _ = pair(tmp_path, 0x0210)
    a.create("f.txt", oplock=0xFF, lease=v1(LEASE1, first))
    _, msg = a.create("f.txt", oplock=0xFF, lease=v1(LEASE1, then))
    assert bodies.LEASE_V1.parse(created(msg)[2]).LeaseState == result


def test_one_lease_key_on_two_files_is_invalid_parameter(tmp_path):
    (tmp_path / "g.txt").write_bytes(b"")
    _, table, a, _ = pair(tmp_path, 0x0210)
    a.create("f.txt", oplock=0xFF, lease=v1(LEASE1, R))
    h, _ = a.create("g.txt", oplock=0xFF, lease=v1(LEASE1, R))
    assert h.status == STATUS_INVALID_PARAMETER
    assert list(table.files) == [("share", "f.txt")]  # nothing registered for g.txt


def test_lease_level_without_a_context_and_on_2_0_2_is_no_oplock(tmp_path):
    _, _, a, _ = pair(tmp_path, 0x0210)
    level, _, lease = created(a.create("f.txt", oplock=0xFF)[1])
    assert (level, lease) == (0, None)
    (tmp_path / "old").mkdir()
    _, _, old, _ = pair(tmp_path / "old", 0x0202)
    level, _, lease = created(old.create("f.txt", oplock=0xFF, lease=v1(LEASE1, R))[1])
    assert (level, lease) == (0, None)


# -- lease breaks ---------------------------------------------------------------------------

def test_second_client_breaks_rwh_to_rh_then_completes_after_the_ack(tmp_path):
    clock, table, a, b = pair(tmp_path, 0x0300)
    _, msg = a.create("f.txt", oplock=0xFF, lease=v2(LEASE1, R | W | H))
    assert bodies.LEASE_V2.parse(created(msg)[2]).Epoch == 1
    flushed = a.flushed
    interim, _ = b.create("f.txt", oplock=0xFF, lease=v2(LEASE2, R | W | H))
    # The second CREATE waits: STATUS_PENDING, async, unsigned, an AsyncId.
    assert interim.status == STATUS_PENDING and interim.flags & FLAGS_ASYNC_COMMAND
    async_id = interim.process_id | interim.tree_id << 32
    assert async_id
    # The first connection got the break, pushed out through on_output (outside its receive).
    assert a.flushed == flushed + 1
    (note, raw), = a.notifications()
    assert (note.command, note.session_id, note.tree_id, note.status) == (0x12, 0, 0, 0)
    assert not note.flags & 0x8  # unsigned
    body = s2.SMB2LeaseBreakNotification(raw[HEADER_SIZE:])
    assert (body["StructureSize"], body["NewEpoch"], body["Flags"]) == (44, 2, 1)
    assert (body["LeaseKey"], body["CurrentLeaseState"], body["NewLeaseState"]) == (
        LEASE1, R | W | H, R | H)
    assert raw[HEADER_SIZE:] == bodies.LEASE_BREAK_NOTIFICATION.pack(
        NewEpoch=2, Flags=1, LeaseKey=LEASE1, CurrentLeaseState=7, NewLeaseState=3)
    assert b.inbox == []  # nothing more for the second client until the ack
    h, msg = a.lease_ack(LEASE1, R | H)
    assert h.status == STATUS_SUCCESS
    ack = bodies.LEASE_BREAK_ACK.parse(msg, HEADER_SIZE)
    assert (ack.StructureSize, ack.LeaseKey, ack.LeaseState) == (36, LEASE1, R | H)
    final, msg = b.take(interim.message_id)
    assert final.status == STATUS_SUCCESS and final.flags & FLAGS_ASYNC_COMMAND
    assert final.process_id | final.tree_id << 32 == async_id
    assert bodies.LEASE_V2.parse(created(msg)[2]).LeaseState == R | H  # break_results: RH
    assert break_timers(clock) == []


def test_plain_open_breaks_w_and_gets_no_oplock(tmp_path):
    _, _, a, b = pair(tmp_path, 0x0210)
    a.create("f.txt", oplock=0xFF, lease=v1(LEASE1, R | W))
    interim, _ = b.create("f.txt")
    assert interim.status == STATUS_PENDING
    (_, raw), = a.notifications()
    note = bodies.LEASE_BREAK_NOTIFICATION.parse(raw, HEADER_SIZE)
    assert (note.NewEpoch, note.CurrentLeaseState, note.NewLeaseState) == (0, R | W, R)
    a.lease_ack(LEASE1, R)
    final, msg = b.take(interim.message_id)
    assert final.status == STATUS_SUCCESS and created(msg)[0] == 0


def test_r_and_rh_leases_are_not_broken_by_an_open(tmp_path):
    _, _, a, b = pair(tmp_path, 0x0210)
    a.create("f.txt", oplock=0xFF, lease=v1(LEASE1, R | H))
    h, msg = b.create("f.txt", oplock=0xFF, lease=v1(LEASE2, R | W | H))
    assert h.status == STATUS_SUCCESS and a.notifications() == []
    assert bodies.LEASE_V1.parse(created(msg)[2]).LeaseState == R | H


def test_break_times_out_after_35_seconds_to_none(tmp_path):
    clock, table, a, b = pair(tmp_path, 0x0300)
    a.create("f.txt", oplock=0xFF, lease=v2(LEASE1, R | W | H))
    interim, _ = b.create("f.txt", oplock=0xFF, lease=v2(LEASE2, R | W | H))
    assert len(break_timers(clock)) == 1
    clock.advance(34.9)
    assert b.inbox == []
    clock.advance(0.2)
    final, msg = b.take(interim.message_id)
    assert final.status == STATUS_SUCCESS
    # The silent holder went to none (3.3.6.5); its open remains, so the waiter gets no W.
    assert bodies.LEASE_V2.parse(created(msg)[2]).LeaseState == R | H
    assert table.leases[(b"A" * 16, LEASE1)].state == 0
    h, _ = a.lease_ack(LEASE1, R | H)  # too late: the lease is no longer breaking
    assert h.status == STATUS_UNSUCCESSFUL
    assert break_timers(clock) == []


def test_holder_closing_ends_the_wait(tmp_path):
    clock, table, a, b = pair(tmp_path, 0x0300)
    _, msg = a.create("f.txt", oplock=0xFF, lease=v2(LEASE1, R | W | H))
    interim, _ = b.create("f.txt", oplock=0xFF, lease=v2(LEASE2, R | W | H))
    assert a.close(created(msg)[1]) == STATUS_SUCCESS
    final, msg = b.take(interim.message_id)
    assert bodies.LEASE_V2.parse(created(msg)[2]).LeaseState == R | W | H  # now alone
    assert break_timers(clock) == []


# -- bad acknowledgments -------------------------------------------------------------------

def test_bad_lease_acks_get_the_spec_statuses(tmp_path):
    clock, table, a, b = pair(tmp_path, 0x0300)
    assert a.lease_ack(b"?" * 16, 0)[0].status == STATUS_OBJECT_NAME_NOT_FOUND
    a.create("f.txt", oplock=0xFF, lease=v2(LEASE1, R | W | H))
    assert a.lease_ack(LEASE1, R)[0].status == STATUS_UNSUCCESSFUL  # not breaking
    b.create("f.txt", oplock=0xFF, lease=v2(LEASE2, R))
    assert b.lease_ack(LEASE1, R)[0].status == STATUS_OBJECT_NAME_NOT_FOUND  # other client's
    assert a.lease_ack(LEASE1, R | W)[0].status == STATUS_REQUEST_NOT_ACCEPTED  # beyond RH
    assert a.lease_ack(LEASE1, R)[0].status == STATUS_SUCCESS  # a subset of RH is fine
    short = bodies.LEASE_BREAK_ACK.pack(LeaseKey=LEASE1)[:20]
    assert a.send(s2.SMB2_OPLOCK_BREAK, short)[0].status == STATUS_INVALID_PARAMETER
    assert a.send(s2.SMB2_OPLOCK_BREAK, b"\x30\x00" + b"\0" * 46)[0].status \
        == STATUS_INVALID_PARAMETER
    assert not a.conn.close_requested and break_timers(clock) == []


@pytest.mark.parametrize("contexts", [
    b"\0" * 7,                                                     # shorter than a context
    bodies.CREATE_CONTEXT.pack(Next=3, NameOffset=16, NameLength=4) + b"RqLs",   # odd Next
    bodies.CREATE_CONTEXT.pack(NameOffset=16, NameLength=4, DataOffset=24, DataLength=99)
    + b"RqLs" + b"\0" * 12,                                        # data past the end
    response_contexts([(b"RqLs", b"\0" * 20)]),                    # a lease of 20 bytes
])
def test_bogus_create_contexts_are_invalid_parameter(tmp_path, contexts):
    clock, table, a, _ = pair(tmp_path, 0x0300)
    h, _ = a.create("f.txt", oplock=0xFF, contexts=contexts)
    assert h.status == STATUS_INVALID_PARAMETER
    assert table.files == {} and not a.conn.close_requested


# -- oplocks (2.0.2) -------------------------------------------------------------------------

@pytest.mark.parametrize("held", [s2.SMB2_OPLOCK_LEVEL_BATCH, s2.SMB2_OPLOCK_LEVEL_EXCLUSIVE])
def test_oplock_break_to_level_ii_on_2_0_2(tmp_path, held):
    clock, table, a, b = pair(tmp_path, 0x0202)
    _, msg = a.create("f.txt", oplock=held)
    level, fid, _ = created(msg)
    assert level == held
    interim, _ = b.create("f.txt", oplock=s2.SMB2_OPLOCK_LEVEL_BATCH)
    assert interim.status == STATUS_PENDING
    (note, raw), = a.notifications()
    assert note.session_id == a.session_id  # oplock breaks carry the open's session
    body = s2.SMB2OplockBreakNotification(raw[HEADER_SIZE:])
    assert body["OplockLevel"] == s2.SMB2_OPLOCK_LEVEL_II
    assert (body["FileID"]["Persistent"], body["FileID"]["Volatile"]) == fid
    h, msg = a.oplock_ack(fid, s2.SMB2_OPLOCK_LEVEL_II)
    assert h.status == STATUS_SUCCESS
    assert bodies.OPLOCK_BREAK.parse(msg, HEADER_SIZE).OplockLevel == s2.SMB2_OPLOCK_LEVEL_II
    final, msg = b.take(interim.message_id)
    assert created(msg)[0] == s2.SMB2_OPLOCK_LEVEL_II  # batch asked, another open: Level II
    assert break_timers(clock) == []


def test_level_ii_is_granted_and_not_broken_by_an_open(tmp_path):
    _, _, a, b = pair(tmp_path, 0x0202)
    assert created(a.create("f.txt", oplock=s2.SMB2_OPLOCK_LEVEL_II)[1])[0] == 1
    h, msg = b.create("f.txt", oplock=s2.SMB2_OPLOCK_LEVEL_II)
    assert h.status == STATUS_SUCCESS and created(msg)[0] == 1 and a.notifications() == []


def test_bad_oplock_acks_get_the_spec_statuses(tmp_path):
    clock, table, a, b = pair(tmp_path, 0x0202)
    assert a.oplock_ack((77, 77), 0)[0].status == STATUS_FILE_CLOSED
    _, msg = a.create("f.txt", oplock=s2.SMB2_OPLOCK_LEVEL_BATCH)
    fid = created(msg)[1]
    assert a.oplock_ack(fid, 0)[0].status == STATUS_INVALID_DEVICE_STATE  # not breaking
    b.create("f.txt")
    assert a.oplock_ack(fid, s2.SMB2_OPLOCK_LEVEL_BATCH)[0].status \
        == STATUS_INVALID_OPLOCK_PROTOCOL  # more than the break offered; the break ends
    assert a.oplock_ack(fid, 0)[0].status == STATUS_INVALID_DEVICE_STATE
    b.create("f.txt", oplock=0)  # b's first open completed when the break ended
    assert break_timers(clock) == []
    # A lease break acknowledgment on 2.0.2 is not a thing.
    assert a.lease_ack(LEASE1, 0)[0].status == STATUS_INVALID_PARAMETER


def test_lease_level_in_an_oplock_ack_is_invalid_parameter(tmp_path):
    clock, _, a, b = pair(tmp_path, 0x0202)
    fid = created(a.create("f.txt", oplock=s2.SMB2_OPLOCK_LEVEL_EXCLUSIVE)[1])[1]
    interim, _ = b.create("f.txt")
    assert a.oplock_ack(fid, 0xFF)[0].status == STATUS_INVALID_PARAMETER
    assert b.take(interim.message_id)[0].status == STATUS_SUCCESS
    assert break_timers(clock) == []


# -- connection loss ------------------------------------------------------------------------

def test_holder_lost_during_a_pending_break_releases_everything(tmp_path):
    clock, table, a, b = pair(tmp_path, 0x0300)
    a.create("f.txt", oplock=0xFF, lease=v2(LEASE1, R | W | H))
    interim, _ = b.create("f.txt", oplock=0xFF, lease=v2(LEASE2, R | W | H))
    a.conn.connection_lost()
    final, msg = b.take(interim.message_id)
    assert bodies.LEASE_V2.parse(created(msg)[2]).LeaseState == R | W | H
    assert break_timers(clock) == [] and (b"A" * 16, LEASE1) not in table.leases


def test_waiter_lost_during_a_pending_break_releases_everything(tmp_path):
    clock, table, a, b = pair(tmp_path, 0x0300)
    a.create("f.txt", oplock=0xFF, lease=v2(LEASE1, R | W | H))
    b.create("f.txt", oplock=0xFF, lease=v2(LEASE2, R | W | H))
    b.conn.connection_lost()
    assert b.conn._pending == {}
    assert [len(e.opens) for e in table.files.values()] == [1]  # only a's open is left
    assert a.lease_ack(LEASE1, R | H)[0].status == STATUS_SUCCESS
    assert b.inbox == [] and break_timers(clock) == []
    a.conn.connection_lost()
    assert table.files == {} and table.leases == {}


def test_cancel_of_a_waiting_create_undoes_the_open(tmp_path):
    clock, table, a, b = pair(tmp_path, 0x0300)
    a.create("f.txt", oplock=0xFF, lease=v2(LEASE1, R | W | H))
    interim, _ = b.create("f.txt", oplock=0xFF, lease=v2(LEASE2, R | W | H))
    cancel = Header(s2.SMB2_CANCEL, flags=FLAGS_ASYNC_COMMAND, message_id=interim.message_id,
                    process_id=interim.process_id, tree_id=interim.tree_id,
                    session_id=b.session_id)
    b.conn.receive_data(frame(cancel.pack() + bodies.EMPTY_RESPONSE))
    b._collect()
    final, _ = b.take(interim.message_id)
    assert final.status == 0xC0000120 and final.flags & FLAGS_ASYNC_COMMAND  # STATUS_CANCELLED
    assert b.conn._pending == {} and (b"B" * 16, LEASE2) not in table.leases
    assert [len(e.opens) for e in table.files.values()] == [1]
    assert a.lease_ack(LEASE1, R | H)[0].status == STATUS_SUCCESS
    assert b.inbox == [] and break_timers(clock) == []


def test_logoff_while_waiting_sends_nothing_later(tmp_path):
    clock, table, a, b = pair(tmp_path, 0x0300)
    a.create("f.txt", oplock=0xFF, lease=v2(LEASE1, R | W | H))
    b.create("f.txt", oplock=0xFF, lease=v2(LEASE2, R | W | H))
    assert b.send(s2.SMB2_LOGOFF, bodies.EMPTY_RESPONSE)[0].status == STATUS_SUCCESS
    assert a.lease_ack(LEASE1, R | H)[0].status == STATUS_SUCCESS
    assert b.inbox == [] and [len(e.opens) for e in table.files.values()] == [1]


def test_a_create_mid_compound_does_not_wait(tmp_path):
    clock, table, a, b = pair(tmp_path, 0x0300)
    a.create("f.txt", oplock=0xFF, lease=v2(LEASE1, R | W | H))
    create = Header(s2.SMB2_CREATE, credits=1, message_id=b.message_id,
                    session_id=b.session_id, tree_id=b.tree_id).pack() \
        + b.create_request("f.txt", oplock=0xFF, lease=v2(LEASE2, R | W | H))
    create += b"\0" * (-len(create) % 8)
    create = create[:20] + struct.pack("<I", len(create)) + create[24:]
    close = Header(s2.SMB2_CLOSE, credits=1, message_id=b.message_id + 1,
                   session_id=b.session_id, tree_id=b.tree_id, flags=0x4).pack() \
        + bodies.CLOSE.pack(FileIdPersistent=2**64 - 1, FileIdVolatile=2**64 - 1)
    b.message_id += 2
    b.conn.receive_data(frame(create + close))
    b._collect()
    first, msg = b.take(b.message_id - 2)
    assert first.status == STATUS_SUCCESS  # no STATUS_PENDING inside a compound
    assert bodies.LEASE_V2.parse(created(msg)[2]).LeaseState == R | H  # W is still breaking
    assert b.take(b.message_id - 1)[0].status == STATUS_SUCCESS
    assert len(a.notifications()) == 1  # the holder was told all the same
    assert a.lease_ack(LEASE1, R | H)[0].status == STATUS_SUCCESS
    assert break_timers(clock) == []


def test_a_fault_in_the_holders_connection_costs_that_connection_only(tmp_path, monkeypatch):
    clock, table, a, b = pair(tmp_path, 0x0300)
    a.create("f.txt", oplock=0xFF, lease=v2(LEASE1, R | W | H))

    def broken(*args):
        raise RuntimeError("bug")

    monkeypatch.setattr(a.conn, "_send_break", broken)
    interim, _ = b.create("f.txt", oplock=0xFF, lease=v2(LEASE2, R | W | H))
    assert a.conn.close_requested and not b.conn.close_requested
    a.conn.connection_lost()  # the adapter drops it; its lease goes with it
    final, msg = b.take(interim.message_id)
    assert bodies.LEASE_V2.parse(created(msg)[2]).LeaseState == R | W | H
    assert break_timers(clock) == []


def test_the_twisted_adapter_flushes_output_made_outside_data_received(tmp_path):
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    from protocols.smb2.twisted import SMBFactory

    _, _, config, _ = make(tmp_path)
    proto = SMBFactory(config, netbios=False).buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.9", 50000))
    proto.makeConnection(transport)
    proto.core._send_unsolicited(b"\xfeSMB" + b"\0" * 60, None)  # e.g. a break notification
    assert transport.value() == frame(b"\xfeSMB" + b"\0" * 60)
    proto.connectionLost(None)


# -- READ caching revoked by a write from another key (3.3.1.4: no waiting) ----------------

def write(client, fid, data=b"xy"):
    return client.send(s2.SMB2_WRITE, bodies.WRITE.pack(
        DataOffset=HEADER_SIZE + 48, Length=len(data), FileIdPersistent=fid[0],
        FileIdVolatile=fid[1]) + data)[0].status


@pytest.mark.parametrize("held,ack_flag", [(R, 0), (R | H, 1)])
def test_a_write_by_another_key_breaks_read_caching_to_none(tmp_path, held, ack_flag):
    clock, table, a, b = pair(tmp_path, 0x0300)
    a.create("f.txt", oplock=0xFF, lease=v2(LEASE1, held))
    _, msg = b.create("f.txt")
    assert write(b, created(msg)[1]) == STATUS_SUCCESS  # the write does not wait
    (_, raw), = a.notifications()
    note = bodies.LEASE_BREAK_NOTIFICATION.parse(raw, HEADER_SIZE)
    assert (note.Flags, note.CurrentLeaseState, note.NewLeaseState) == (ack_flag, held, 0)
    expected = STATUS_SUCCESS if ack_flag else STATUS_UNSUCCESSFUL  # R alone: no ack wanted
    assert a.lease_ack(LEASE1, 0)[0].status == expected
    assert table.leases[(b"A" * 16, LEASE1)].state == 0 and break_timers(clock) == []


def test_a_write_under_the_same_lease_breaks_nothing(tmp_path):
    _, _, a, _ = pair(tmp_path, 0x0300)
    a.create("f.txt", oplock=0xFF, lease=v2(LEASE1, R | H))
    _, msg = a.create("f.txt", oplock=0xFF, lease=v2(LEASE1, R | H))
    assert write(a, created(msg)[1]) == STATUS_SUCCESS and a.notifications() == []


def test_a_write_breaks_level_ii_to_none_without_an_ack(tmp_path):
    clock, _, a, b = pair(tmp_path, 0x0202)
    fid = created(a.create("f.txt", oplock=s2.SMB2_OPLOCK_LEVEL_II)[1])[1]
    _, msg = b.create("f.txt")
    assert write(b, created(msg)[1]) == STATUS_SUCCESS
    (_, raw), = a.notifications()
    assert bodies.OPLOCK_BREAK.parse(raw, HEADER_SIZE).OplockLevel == 0
    # 2.2.24.1: a break from Level II is not acknowledged; one sent anyway finds no break.
    assert a.oplock_ack(fid, 0)[0].status == STATUS_INVALID_DEVICE_STATE
    assert break_timers(clock) == []


def _set_eof(client, fid):
    return client.send(s2.SMB2_SET_INFO, bodies.SET_INFO.pack(
        InfoType=1, FileInfoClass=20, BufferLength=8, BufferOffset=HEADER_SIZE + 32,
        FileIdPersistent=fid[0], FileIdVolatile=fid[1]) + struct.pack("<Q", 1))[0].status


def _lock(client, fid):
    return client.send(s2.SMB2_LOCK, bodies.LOCK.pack(
        LockCount=1, FileIdPersistent=fid[0], FileIdVolatile=fid[1])
        + struct.pack("<QQII", 0, 1, s2.SMB2_LOCKFLAG_EXCLUSIVE_LOCK, 0))[0].status


@pytest.mark.parametrize("operation", [_set_eof, _lock], ids=["end-of-file", "byte-range-lock"])
def test_size_changes_and_locks_break_read_caching_too(tmp_path, operation):
    _, _, a, b = pair(tmp_path, 0x0300)
    a.create("f.txt", oplock=0xFF, lease=v2(LEASE1, R))
    _, msg = b.create("f.txt")
    assert operation(b, created(msg)[1]) == STATUS_SUCCESS
    (_, raw), = a.notifications()
    assert bodies.LEASE_BREAK_NOTIFICATION.parse(raw, HEADER_SIZE).NewLeaseState == 0


def test_an_overwriting_open_revokes_read_caching(tmp_path):
    _, _, a, b = pair(tmp_path, 0x0300)
    a.create("f.txt", oplock=0xFF, lease=v2(LEASE1, R))
    h, _ = b.create("f.txt", disposition=s2.FILE_OVERWRITE_IF)
    assert h.status == STATUS_SUCCESS
    (_, raw), = a.notifications()
    assert bodies.LEASE_BREAK_NOTIFICATION.parse(raw, HEADER_SIZE).NewLeaseState == 0


# -- what smbtorture's smb2.lease / smb2.oplock suites found (written against Windows) ------

BATCH, EXCLUSIVE, LEVEL_II = s2.SMB2_OPLOCK_LEVEL_BATCH, s2.SMB2_OPLOCK_LEVEL_EXCLUSIVE, 1
STAT_ACCESS = 0x80 | 0x100 | 0x100000  # FILE_READ/WRITE_ATTRIBUTES | SYNCHRONIZE


def lease_state(msg: bytes) -> int:
    return bodies.LEASE_V1.parse(created(msg)[2]).LeaseState


def test_an_upgrade_other_keys_cut_short_leaves_the_lease_as_it_was(tmp_path):
    # smb2.lease.break: LEASE1 broken RW -> R beside LEASE2's R; asking RWH again keeps R
    # (RH would be what the other key leaves: an upgrade is whole or not at all).
    _, _, a, b = pair(tmp_path, 0x0210)
    a.create("f.txt", oplock=0xFF, lease=v1(LEASE1, R))
    b.create("f.txt", oplock=0xFF, lease=v1(LEASE2, R))
    _, msg = a.create("f.txt", oplock=0xFF, lease=v1(LEASE1, R | W | H))
    assert lease_state(msg) == R and a.notifications() == b.notifications() == []
    # upgrade3: with the other key there, R -> RH is whole, so it is taken.
    _, msg = a.create("f.txt", oplock=0xFF, lease=v1(LEASE1, R | H))
    assert lease_state(msg) == R | H


def test_a_lease_answers_in_the_version_it_was_made_with(tmp_path):
    _, _, a, _ = pair(tmp_path, 0x0300)
    a.create("f.txt", oplock=0xFF, lease=v2(LEASE1, R, epoch=0x4711))
    _, msg = a.create("f.txt", oplock=0xFF, lease=v1(LEASE1, R | H))
    lease = created(msg)[2]
    assert len(lease) == 52 and bodies.LEASE_V2.parse(lease).Epoch == 0x4713  # v2_epoch2
    (tmp_path / "g.txt").write_bytes(b"")
    a.create("g.txt", oplock=0xFF, lease=v1(LEASE2, R))
    _, msg = a.create("g.txt", oplock=0xFF, lease=v2(LEASE2, R | W))
    assert len(created(msg)[2]) == 32 and lease_state(msg) == R | W  # v2_epoch3


@pytest.mark.parametrize("held", [R | H, R | W | H])
def test_no_oplock_beside_a_handle_caching_lease(tmp_path, held):
    # smb2.lease.oplock: RH or RWH held (RWH breaks to RH), any oplock asked: none.
    _, _, a, b = pair(tmp_path, 0x0210)
    a.create("f.txt", oplock=0xFF, lease=v1(LEASE1, held))
    h, msg = b.create("f.txt", oplock=LEVEL_II)
    if held & W:
        assert h.status == STATUS_PENDING
        a.lease_ack(LEASE1, R | H)
        h, msg = b.take(h.message_id)
    assert h.status == STATUS_SUCCESS and created(msg)[0] == 0


def test_a_lease_beside_an_oplock_gets_no_handle_caching(tmp_path):
    # smb2.lease.oplock (oplock_results_2): Level II held, RHW asked: R.
    _, _, a, b = pair(tmp_path, 0x0210)
    a.create("f.txt", oplock=LEVEL_II)
    h, msg = b.create("f.txt", oplock=0xFF, lease=v1(LEASE2, R | W | H))
    assert h.status == STATUS_SUCCESS and lease_state(msg) == R


@pytest.mark.parametrize("access,stat", [(0x80, True), (0x100, True), (0x100000, True),
                                         (0x1, False), (0x20000, False), (0x10000, False)])
def test_a_stat_open_breaks_no_oplock_and_gets_none(tmp_path, access, stat):
    # smb2.oplock.statopen1 / exclusive4: FILE_READ/WRITE_ATTRIBUTES and SYNCHRONIZE only.
    _, _, a, b = pair(tmp_path, 0x0202)
    a.create("f.txt", oplock=BATCH)
    h, msg = b.create("f.txt", oplock=EXCLUSIVE, access=access)
    assert (h.status != STATUS_PENDING) is stat
    assert bool(a.notifications()) is not stat
    if stat:
        assert created(msg)[0] == 0


def test_read_control_is_a_stat_open_for_leases_only(tmp_path):
    # smb2.lease.statopen4: READ_CONTROL alone breaks no lease (it does break an oplock).
    _, _, a, b = pair(tmp_path, 0x0210)
    a.create("f.txt", oplock=0xFF, lease=v1(LEASE1, R | W | H))
    h, _ = b.create("f.txt", access=0x20000)
    assert h.status == STATUS_SUCCESS and a.notifications() == []


def test_a_stat_open_does_not_keep_write_caching_away(tmp_path):
    # smb2.lease.statopen3: a stat open first, then RWH is granted whole.
    _, _, a, b = pair(tmp_path, 0x0210)
    b.create("f.txt", access=STAT_ACCESS)
    _, msg = a.create("f.txt", oplock=0xFF, lease=v1(LEASE1, R | W | H))
    assert lease_state(msg) == R | W | H


def test_a_stat_open_that_creates_the_file_gets_its_oplock(tmp_path):
    # smb2.oplock.batch9: it does, and a full open then breaks it to Level II.
    _, _, a, b = pair(tmp_path, 0x0202)
    _, msg = a.create("new.txt", oplock=BATCH, access=STAT_ACCESS, disposition=s2.FILE_CREATE)
    level, fid, _ = created(msg)
    assert level == BATCH
    interim, _ = b.create("new.txt", oplock=BATCH)
    assert interim.status == STATUS_PENDING
    (_, raw), = a.notifications()
    assert bodies.OPLOCK_BREAK.parse(raw, HEADER_SIZE).OplockLevel == LEVEL_II
    a.oplock_ack(fid, LEVEL_II)
    assert created(b.take(interim.message_id)[1])[0] == LEVEL_II


@pytest.mark.parametrize("disposition,to", [(s2.FILE_SUPERSEDE, 0), (s2.FILE_OPEN, LEVEL_II),
                                            (s2.FILE_OVERWRITE_IF, 0), (s2.FILE_OPEN_IF, LEVEL_II)])
def test_an_overwriting_open_breaks_exclusive_straight_to_none(tmp_path, disposition, to):
    # smb2.oplock.exclusive9: the new open still gets Level II once the break is done.
    _, _, a, b = pair(tmp_path, 0x0202)
    fid = created(a.create("f.txt", oplock=EXCLUSIVE)[1])[1]
    interim, _ = b.create("f.txt", oplock=EXCLUSIVE, disposition=disposition)
    assert interim.status == STATUS_PENDING
    (_, raw), = a.notifications()
    assert bodies.OPLOCK_BREAK.parse(raw, HEADER_SIZE).OplockLevel == to
    a.oplock_ack(fid, to)
    assert created(b.take(interim.message_id)[1])[0] == LEVEL_II


def test_an_overwriting_open_breaks_rwh_to_none(tmp_path):
    # smb2.lease.breaking2: RWH -> none, acknowledged; the open waits for it.
    _, _, a, b = pair(tmp_path, 0x0210)
    a.create("f.txt", oplock=0xFF, lease=v1(LEASE1, R | W | H))
    interim, _ = b.create("f.txt", disposition=s2.FILE_OVERWRITE)
    assert interim.status == STATUS_PENDING
    (_, raw), = a.notifications()
    note = bodies.LEASE_BREAK_NOTIFICATION.parse(raw, HEADER_SIZE)
    assert (note.Flags, note.CurrentLeaseState, note.NewLeaseState) == (1, R | W | H, 0)
    assert a.lease_ack(LEASE1, R | H)[0].status == STATUS_REQUEST_NOT_ACCEPTED
    assert a.lease_ack(LEASE1, 0)[0].status == STATUS_SUCCESS
    assert b.take(interim.message_id)[0].status == STATUS_SUCCESS


def test_a_write_breaks_every_level_ii_the_writers_own_too(tmp_path):
    # smb2.oplock.batch6: two Level II holders, one writes: both break to none, no ack.
    clock, _, a, b = pair(tmp_path, 0x0202)
    fid_a = created(a.create("f.txt", oplock=LEVEL_II)[1])[1]
    b.create("f.txt", oplock=LEVEL_II)
    assert write(a, fid_a) == STATUS_SUCCESS
    for client in (a, b):
        (note, raw), = client.notifications()
        assert bodies.OPLOCK_BREAK.parse(raw, HEADER_SIZE).OplockLevel == 0
    assert break_timers(clock) == []


def test_a_write_keeps_the_writers_own_exclusive_oplock(tmp_path):
    _, _, a, _ = pair(tmp_path, 0x0202)
    fid = created(a.create("f.txt", oplock=EXCLUSIVE)[1])[1]
    assert write(a, fid) == STATUS_SUCCESS and a.notifications() == []


@pytest.mark.parametrize("disposition", [s2.FILE_SUPERSEDE, s2.FILE_OVERWRITE,
                                         s2.FILE_OVERWRITE_IF])
def test_an_attribute_only_open_that_overwrites_is_no_stat_open(tmp_path, disposition):
    # smb2.oplock.exclusive5, batch13, batch14, batch16: it breaks, and gets Level II.
    _, _, a, b = pair(tmp_path, 0x0202)
    fid = created(a.create("f.txt", oplock=BATCH)[1])[1]
    interim, _ = b.create("f.txt", oplock=BATCH, access=STAT_ACCESS, disposition=disposition)
    assert interim.status == STATUS_PENDING
    (_, raw), = a.notifications()
    a.oplock_ack(fid, bodies.OPLOCK_BREAK.parse(raw, HEADER_SIZE).OplockLevel)
    assert created(b.take(interim.message_id)[1])[0] == LEVEL_II
