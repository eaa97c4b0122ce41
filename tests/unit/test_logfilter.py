"""Descriptor exhaustion logs one line per interval with a count (issue 14, finding 9).

The events come from Twisted's own accept loop (``twisted.internet.tcp._accept``) over a
listening socket that answers EMFILE, so the filter is checked against the real format
strings, on a task.Clock.
"""

import errno

from twisted.internet import tcp
from twisted.internet.task import Clock
from twisted.logger import Logger, formatEvent

from emulator.logfilter import AcceptErrorThrottle


class _Listener:
    """accept(): EMFILE until the reserved descriptor is released, then one waiting
    client, then EAGAIN (what the kernel does while the process is out of descriptors)."""

    def __init__(self, reservation):
        self.reservation = reservation
        self.handed = False

    def accept(self):
        if self.reservation.available():
            raise OSError(errno.EMFILE, "Too many open files")
        if not self.handed:
            self.handed = True
            return _Socket(), ("127.0.0.1", 40000)
        raise OSError(errno.EAGAIN, "again")


class _Socket:
    def close(self):
        pass


class _Reservation:
    def __init__(self):
        self.held = True

    def available(self):
        return self.held

    def __enter__(self):
        self.held = False

    def __exit__(self, *exc):
        self.held = True


def _refuse_one(logger):
    """One pass of Twisted's accept loop: one client refused under EMFILE."""
    reservation = _Reservation()
    assert list(tcp._accept(logger, range(10), _Listener(reservation), reservation)) == []


def test_emfile_refusals_become_one_line_then_a_count_per_interval():
    clock, lines = Clock(), []
    throttle = AcceptErrorThrottle(lambda e: lines.append(formatEvent(e)), clock, 60.0)
    logger = Logger(namespace="twisted.internet.tcp.Port", observer=throttle)
    unfiltered = []
    plain = Logger(observer=lambda e: unfiltered.append(e))
    _refuse_one(plain)
    assert len(unfiltered) == 3  # what Twisted writes per refused connection, unfiltered
    for _ in range(500):
        _refuse_one(logger)
    assert len(lines) == 1 and "EMFILE" in lines[0]
    clock.advance(60)
    assert len(lines) == 2 and lines[1].startswith("500 connections refused in the last 60 s")
    _refuse_one(logger)
    clock.advance(60)
    assert lines[2].startswith("1 connections refused") and "501 in all" in lines[2]
    clock.advance(60)  # a quiet interval: nothing more, and no timer left behind
    assert len(lines) == 3 and not clock.getDelayedCalls()
    Logger(observer=throttle).info("an unrelated line {x}", x=1)  # passes through as it is
    assert lines[-1] == "an unrelated line 1"


def test_could_not_accept_is_counted_too():
    clock, lines = Clock(), []
    throttle = AcceptErrorThrottle(lambda e: lines.append(formatEvent(e)), clock, 10.0)
    logger = Logger(observer=throttle)

    class Failing:
        def accept(self):
            raise OSError(errno.ENFILE, "Too many open files in system")

    for _ in range(3):
        list(tcp._accept(logger, range(1), Failing(), _Reservation()))
    clock.advance(10)
    assert len(lines) == 2 and "ENFILE" in lines[0] and lines[1].startswith("3 connections")
