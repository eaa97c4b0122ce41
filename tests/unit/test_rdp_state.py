"""The RDP connection's transition table and its timers (deadlines on task.Clock)."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from protocols.rdp.state import (
    TRANSITIONS,
    ConnectionStateMachine,
    Event,
    ProtocolStateError,
    State,
    TimerOwner,
    Timers,
)
from protocols.rdp.x224 import DecodeError


def test_the_tls_path_and_the_rdp_security_path_reach_active():
    for first, middle in ((Event.TLS_SELECTED, [Event.CONNECT_INITIAL]),
                          (Event.RDP_SELECTED, [Event.CONNECT_INITIAL_RDP,
                                                Event.SECURITY_EXCHANGE])):
        m = ConnectionStateMachine()
        for event in (first, *middle, Event.CLIENT_INFO, Event.CONFIRM_ACTIVE,
                      Event.FONT_LIST):
            m.fire(event)
        assert m.state == State.ACTIVE


def test_a_bad_transition_is_bad_input_naming_the_event_and_state():
    m = ConnectionStateMachine()
    with pytest.raises(ProtocolStateError, match="client-info is not allowed in state x224"):
        m.fire(Event.CLIENT_INFO)
    assert issubclass(ProtocolStateError, DecodeError)  # the core drops the connection
    assert m.state == State.X224


def test_every_state_can_close_and_closed_is_final():
    for state in State:
        assert TRANSITIONS[(state, Event.CLOSE)] == State.CLOSED
    assert {e for (s, e) in TRANSITIONS if s == State.CLOSED} == {Event.CLOSE}


def test_timers_fire_earliest_first_once_and_the_owner_holds_one_clock_call():
    clock = Clock()
    timers = Timers()
    fired: list[list[str]] = []
    owner = TimerOwner(clock, timers.next_deadline,
                       lambda now: fired.append(timers.expired(now)))
    timers.set("a", 10.0)
    timers.set("b", 5.0)
    owner.rearm()
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(5)
    assert fired == [["b"]] and len(clock.getDelayedCalls()) == 1  # re-armed for "a"
    timers.clear("a")
    owner.rearm()
    assert clock.getDelayedCalls() == []
    clock.advance(10)
    assert fired == [["b"]]
