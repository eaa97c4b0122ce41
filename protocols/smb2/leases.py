"""The host's lease and oplock table: sans-IO, shared by every SMB connection of one host.

MS-SMB2 3.3.1.4 describes the object store this plays: per file, the opens on it and the
caching each holds. A *holder* is one lease (its opens share a (ClientGuid, LeaseKey)) or one
open's oplock; an oplock is modelled with the lease bits MS-FSA uses for it (Level II = R,
Exclusive = RW, Batch = RWH). A new open by another key breaks WRITE caching away from the
holders (3.3.1.4: the store waits for the acknowledgment), and the open is granted what is
left once those breaks are done (acknowledged, timed out, or closed).

Nothing here knows bytes or sockets: a holder's owner is told of a break through its
``notify`` callback (the connection turns it into an OPLOCK_BREAK notification), and a
waiting open is told through ``on_ready``. The break-acknowledgment timer runs on the
injected clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol
from collections.abc import Callable

from impacket import nt_errors
from impacket import smb3structs as s2

from protocols.errors import StatusError

R = s2.SMB2_LEASE_READ_CACHING
H = s2.SMB2_LEASE_HANDLE_CACHING
W = s2.SMB2_LEASE_WRITE_CACHING

OPLOCK_NONE = s2.SMB2_OPLOCK_LEVEL_NONE
OPLOCK_II = s2.SMB2_OPLOCK_LEVEL_II
OPLOCK_EXCLUSIVE = s2.SMB2_OPLOCK_LEVEL_EXCLUSIVE
OPLOCK_BATCH = s2.SMB2_OPLOCK_LEVEL_BATCH
OPLOCK_LEASE = s2.SMB2_OPLOCK_LEVEL_LEASE

# The lease states MS-FSA 2.1.5.18 accepts; any other request is granted no caching
# (Windows 7 answers "H", "W" and "HW" with a lease context of state 0: smbtorture's
# smb2.lease.request, written against Windows).
VALID_LEASE_STATES = frozenset({0, R, R | W, R | H, R | W | H})
_OPLOCK_STATE = {OPLOCK_NONE: 0, OPLOCK_II: R, OPLOCK_EXCLUSIVE: R | W, OPLOCK_BATCH: R | W | H}

# MS-SMB2 3.3.2.1 / 3.3.2.5: Windows waits 35 seconds for a break acknowledgment.
BREAK_ACK_TIMEOUT = 35.0

# A "stat open" asks only for attributes (and SYNCHRONIZE): it breaks no oplock and takes no
# oplock; for leases READ_CONTROL counts as stat access too (smbtorture smb2.oplock.statopen1
# and smb2.lease.statopen4 against Windows; Samba's is_oplock_stat_open/is_lease_stat_open).
FILE_READ_ATTRIBUTES, FILE_WRITE_ATTRIBUTES = 0x80, 0x100
READ_CONTROL, SYNCHRONIZE = 0x20000, 0x100000
_STAT_ACCESS = FILE_READ_ATTRIBUTES | FILE_WRITE_ATTRIBUTES | SYNCHRONIZE


def is_stat_open(access: int, *, lease: bool = False) -> bool:
    bits = _STAT_ACCESS | (READ_CONTROL if lease else 0)
    return bool(access & bits) and not access & ~bits


def oplock_level(state: int) -> int:
    """The oplock level a lease-bit state stands for (anything short of RW is Level II)."""
    if state & W:
        return OPLOCK_BATCH if state & H else OPLOCK_EXCLUSIVE
    return OPLOCK_II if state & R else OPLOCK_NONE


def _limits(other: OpenRef) -> bool:
    """Whether another open keeps WRITE caching (and Exclusive/Batch) from a new one: any
    open does but a stat open holding no caching (smbtorture smb2.lease.statopen3)."""
    return not other.closed and not (other.stat and (other.holder is None
                                                     or not other.holder.state))


class ClockLike(Protocol):
    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any,
                  **kw: Any) -> Any: ...


@dataclass(eq=False)
class Holder:
    """One lease, or one open's oplock."""

    file: FileEntry
    state: int
    lease_key: bytes | None = None  # None: an oplock
    client_guid: bytes = b""
    version: int = 1
    epoch: int = 0
    parent_key: bytes | None = None
    breaking: bool = False
    break_to: int = 0
    timer: Any = None
    opens: list[OpenRef] = field(default_factory=list)

    @property
    def is_lease(self) -> bool:
        return self.lease_key is not None


@dataclass(eq=False)
class OpenRef:
    """One open on a file as the table sees it; ``close()`` when the open goes away."""

    table: LeaseTable
    file: FileEntry
    owner: object  # the connection: its opens are dropped together on connection loss
    notify: Callable[[Holder, OpenRef, int, bool], None]  # (holder, open, new state, ack?)
    cookie: Any = None  # the connection's own record of the open
    holder: Holder | None = None
    closed: bool = False
    stat: bool = False  # a stat open: no other open's caching is limited by it

    def close(self) -> None:
        self.table.close(self)


@dataclass(eq=False)
class Ticket:
    """An open waiting for breaks to finish before its caching is granted."""

    ref: OpenRef
    request: GrantRequest
    waiting_on: set[Holder]
    on_ready: Callable[[Grant], None] | None = None
    cancelled: bool = False


@dataclass(eq=False)
class FileEntry:
    key: tuple[str, str]
    opens: list[OpenRef] = field(default_factory=list)
    holders: list[Holder] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)


@dataclass(frozen=True)
class GrantRequest:
    oplock: int  # RequestedOplockLevel
    lease_state: int = 0
    lease_key: bytes | None = None
    client_guid: bytes = b""
    version: int = 1
    epoch: int = 0
    parent_key: bytes | None = None
    is_directory: bool = False
    directory_leasing: bool = False  # the connection negotiated DIRECTORY_LEASING
    access: int = 0x001F01FF  # DesiredAccess (FILE_ALL_ACCESS unless told)
    overwrite: bool = False  # CreateDisposition SUPERSEDE, OVERWRITE or OVERWRITE_IF
    created: bool = False  # the CREATE made the file


@dataclass(frozen=True)
class Grant:
    """What the CREATE response says: OplockLevel, and the lease context if any."""

    oplock: int
    lease: Holder | None = None
    break_in_progress: bool = False


class LeaseTable:
    def __init__(self, clock: ClockLike, break_timeout: float = BREAK_ACK_TIMEOUT) -> None:
        self.clock = clock
        self.break_timeout = break_timeout
        self.files: dict[tuple[str, str], FileEntry] = {}
        self.leases: dict[tuple[bytes, bytes], Holder] = {}

    @staticmethod
    def file_key(share: str, path: str) -> tuple[str, str]:
        return share.lower(), path.replace("/", "\\").strip("\\").lower()

    # -- CREATE ---------------------------------------------------------------------------
    def check_lease_key(self, client_guid: bytes, lease_key: bytes,
                        key: tuple[str, str]) -> None:
        """One lease key names one file (3.3.5.9.8: another file is STATUS_INVALID_PARAMETER)."""
        lease = self.leases.get((client_guid, lease_key))
        if lease is not None and lease.file.key != key:
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "lease key bound to another file")

    def open(self, key: tuple[str, str], owner: object, request: GrantRequest,
             notify: Callable[[Holder, OpenRef, int, bool], None], cookie: Any = None
             ) -> Ticket:
        """Register an open; break WRITE caching held under other keys. The ticket is ready
        (``waiting_on`` empty) at once, or when the breaks it waits for have finished.

        A stat open breaks nothing (an attribute-only open breaks no lease either, even
        with READ_CONTROL). An overwriting open breaks every other holder straight to none
        (smbtorture smb2.oplock.exclusive9 and smb2.lease.breaking2 against Windows; the
        algorithm is MS-FSA 2.1.4.12's), waiting only for those that held WRITE."""
        entry = self.files.setdefault(key, FileEntry(key))
        # Overwriting writes data, so an attribute-only open that overwrites is no stat
        # open (smbtorture smb2.oplock.exclusive5, batch13 against Windows).
        stat = is_stat_open(request.access) and not request.overwrite
        ref = OpenRef(self, entry, owner, notify, cookie, stat=stat)
        entry.opens.append(ref)
        mine = self._lease_of(request) if request.lease_key is not None else None
        waiting: set[Holder] = set()
        for holder in list(entry.holders):
            if holder is mine or stat:
                continue
            if (holder.is_lease and not request.overwrite
                    and is_stat_open(request.access, lease=True)):
                continue
            if holder.breaking and holder.break_to & W == 0:
                waiting.add(holder)  # already breaking away from W: wait for that break too
            elif holder.breaking:
                continue
            elif request.overwrite and holder.state:
                wrote = holder.state & W
                self._break(holder, 0)
                if wrote and holder.breaking:
                    waiting.add(holder)
            elif holder.state & W:
                self._break(holder, holder.state & ~W if holder.is_lease else R)
                if holder.breaking:
                    waiting.add(holder)
        ticket = Ticket(ref, request, waiting)
        if waiting:
            entry.tickets.append(ticket)
        return ticket

    def contend_write(self, ref: OpenRef) -> None:
        """Data written, the size changed or a byte range locked through ``ref``: READ
        caching under other keys is revoked without waiting (3.3.1.4); an RH lease breaks
        to none and is asked to acknowledge (MS-FSA 2.1.4.13: RH breaks to R or to none).
        Level II oplocks all break, the writer's own included (smbtorture
        smb2.oplock.batch6 and batch9 against Windows: "a break to none on both")."""
        if ref.closed:
            return
        for holder in list(ref.file.holders):
            if not holder.state & R or holder.breaking:
                continue
            if holder is ref.holder and (holder.is_lease or holder.state & W):
                continue
            self._break(holder, 0)

    def grant(self, ticket: Ticket) -> Grant:
        """The caching the ticket's open gets now (call when ``waiting_on`` is empty)."""
        ref, req = ticket.ref, ticket.request
        entry = ref.file
        others = [o for o in entry.opens if o is not ref and _limits(o)]
        if req.oplock == OPLOCK_LEASE and req.lease_key is not None:
            if req.is_directory and not req.directory_leasing:
                return Grant(OPLOCK_NONE)  # no lease on a directory (Windows 7: smbtorture)
            wanted = req.lease_state if req.lease_state in VALID_LEASE_STATES else 0
            if req.is_directory:
                wanted &= R | H  # 3.3.1.4: directories cache R and H only
            lease = self._lease_of(req)
            if lease is None:
                lease = Holder(entry, 0, lease_key=req.lease_key,
                               client_guid=req.client_guid, version=req.version,
                               epoch=req.epoch, parent_key=req.parent_key)
                self.leases[(req.client_guid, req.lease_key)] = lease
                entry.holders.append(lease)
                lease.state = self._allowed(wanted, ref, lease)
                lease.epoch = (lease.epoch + 1) & 0xFFFF
            elif not lease.breaking:
                # An upgrade takes the request only when it keeps all the lease has
                # (smbtorture smb2.lease.upgrade2 against Windows: RH + RW stays RH), and
                # only whole: what other keys keep from it leaves the lease as it was
                # (smb2.lease.break and upgrade3: R held beside another key's lease, RWH
                # asked, stays R; Samba's try_lease_upgrade does the same).
                if (wanted & lease.state == lease.state and wanted != lease.state
                        and self._allowed(wanted, ref, lease) == wanted):
                    lease.state = wanted
                    lease.epoch = (lease.epoch + 1) & 0xFFFF
            lease.opens.append(ref)
            ref.holder = lease
            return Grant(OPLOCK_LEASE, lease, lease.breaking)
        wanted = _OPLOCK_STATE.get(req.oplock, 0)
        if not wanted or (ref.stat and not req.created):
            # A stat open of an existing file gets no oplock (smb2.oplock.exclusive4); one
            # that creates the file does (smb2.oplock.batch9).
            return Grant(OPLOCK_NONE)
        if wanted & W and others:
            wanted = R  # Exclusive/Batch need the only open: Level II instead
        if any(h.state & W or (h.is_lease and h.state & H) for h in entry.holders):
            # Beside a lease holding HANDLE caching an oplock is not granted (smbtorture
            # smb2.lease.oplock against Windows 7: RH or RWH held, any oplock asked: none).
            return Grant(OPLOCK_NONE)
        holder = Holder(entry, wanted)
        holder.opens.append(ref)
        entry.holders.append(holder)
        ref.holder = holder
        return Grant(oplock_level(wanted))

    def grant_now(self, ticket: Ticket) -> Grant:
        """Grant without waiting for the breaks (what the breaking holders leave is less)."""
        ticket.cancelled = True
        if ticket in ticket.ref.file.tickets:
            ticket.ref.file.tickets.remove(ticket)
        return self.grant(ticket)

    def _lease_of(self, req: GrantRequest) -> Holder | None:
        assert req.lease_key is not None
        return self.leases.get((req.client_guid, req.lease_key))

    @staticmethod
    def _allowed(wanted: int, ref: OpenRef, lease: Holder) -> int:
        """WRITE caching only for the file's sole key (MS-FSA 2.1.5.18.2; smbtorture's
        smb2.lease.break table against Windows 7: a second key asking RWH gets RH)."""
        entry = ref.file
        if any(o.holder is not lease for o in entry.opens if o is not ref and _limits(o)):
            wanted &= ~W
        if any(h is not lease and h.state & W for h in entry.holders):
            wanted &= ~W
        if any(not h.is_lease and h.state for h in entry.holders):
            wanted &= ~H  # beside an oplock a lease gets no HANDLE caching (smb2.lease.oplock)
        return wanted

    # -- breaks ---------------------------------------------------------------------------
    def _break(self, holder: Holder, to: int) -> None:
        """3.3.4.6 / 3.3.4.7: tell the owner; an acknowledgment is awaited unless the break
        leaves nothing to flush (a lease at R alone, an oplock at Level II)."""
        ack = holder.state not in (0, R)
        if holder.is_lease:
            holder.epoch = (holder.epoch + 1) & 0xFFFF
        if ack:
            holder.breaking, holder.break_to = True, to
            holder.timer = self.clock.callLater(self.break_timeout, self._timed_out, holder)
            holder.opens[0].notify(holder, holder.opens[0], to, True)
        else:
            holder.opens[0].notify(holder, holder.opens[0], to, False)
            holder.state = to

    def _timed_out(self, holder: Holder) -> None:
        """No acknowledgment in time: the break completes to none (3.3.6.1, 3.3.6.5)."""
        holder.timer = None
        self._finish_break(holder, 0)

    def _finish_break(self, holder: Holder, state: int) -> None:
        if holder.timer is not None:
            holder.timer.cancel()
            holder.timer = None
        holder.breaking, holder.state = False, state
        self._wake(holder.file, holder)

    def _wake(self, entry: FileEntry, done: Holder) -> None:
        for ticket in list(entry.tickets):
            ticket.waiting_on.discard(done)
            if not ticket.waiting_on:
                entry.tickets.remove(ticket)
                if not ticket.cancelled and ticket.on_ready is not None:
                    ticket.on_ready(self.grant(ticket))

    # -- acknowledgments (3.3.5.22) --------------------------------------------------------
    def ack_lease(self, client_guid: bytes, lease_key: bytes, state: int) -> Holder:
        lease = self.leases.get((client_guid, lease_key))
        if lease is None:
            raise StatusError(nt_errors.STATUS_OBJECT_NAME_NOT_FOUND, "no such lease")
        if not lease.breaking:
            raise StatusError(nt_errors.STATUS_UNSUCCESSFUL, "lease not breaking")
        if state & ~lease.break_to:
            raise StatusError(nt_errors.STATUS_REQUEST_NOT_ACCEPTED, "ack beyond the break")
        self._finish_break(lease, state)
        return lease

    def ack_oplock(self, ref: OpenRef | None, level: int) -> int:
        holder = ref.holder if ref is not None else None
        if holder is None or holder.is_lease or not holder.breaking:
            raise StatusError(nt_errors.STATUS_INVALID_DEVICE_STATE, "no oplock break pending")
        if level == OPLOCK_LEASE:
            self._finish_break(holder, 0)
            raise StatusError(nt_errors.STATUS_INVALID_PARAMETER, "lease level in oplock ack")
        state = _OPLOCK_STATE.get(level, -1)
        if state < 0 or state & ~holder.break_to:
            self._finish_break(holder, 0)
            raise StatusError(nt_errors.STATUS_INVALID_OPLOCK_PROTOCOL, f"ack level {level}")
        self._finish_break(holder, state)
        return level

    # -- closes ---------------------------------------------------------------------------
    def close(self, ref: OpenRef) -> None:
        if ref.closed:
            return
        ref.closed = True
        entry = ref.file
        entry.opens.remove(ref)
        for ticket in list(entry.tickets):
            if ticket.ref is ref:
                ticket.cancelled = True
                entry.tickets.remove(ticket)
        holder = ref.holder
        if holder is not None:
            holder.opens.remove(ref)
            if not holder.opens:
                self._drop_holder(holder)
        if not entry.opens:
            self.files.pop(entry.key, None)

    def _drop_holder(self, holder: Holder) -> None:
        entry = holder.file
        if holder.timer is not None:
            holder.timer.cancel()
            holder.timer = None
        holder.breaking = False
        entry.holders.remove(holder)
        if holder.is_lease:
            assert holder.lease_key is not None
            self.leases.pop((holder.client_guid, holder.lease_key), None)
        self._wake(entry, holder)

    def drop_owner(self, owner: object) -> None:
        """Connection loss: every open of that connection goes, with its breaks and waits."""
        for entry in list(self.files.values()):
            for ref in [o for o in entry.opens if o.owner is owner]:
                self.close(ref)
