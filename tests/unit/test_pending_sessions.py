"""Sessions that must join a namespace in time (issue 10)."""

from __future__ import annotations

import gevent
from prometheus_client import REGISTRY

from zou_events.pending_sessions import PendingSessions


def timeouts() -> float:
    sample = "zou_events_connections_refused_total"
    return REGISTRY.get_sample_value(sample, {"reason": "connect_timeout"}) or 0.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pending(clock: Clock, closed: list[str]) -> PendingSessions:
    return PendingSessions(5.0, closed.append, clock=clock)


def test_sessions_past_their_deadline_are_closed_and_counted() -> None:
    clock, closed = Clock(), []
    sessions = pending(clock, closed)
    sessions.opened("a")
    clock.now += 2
    sessions.opened("b")
    before = timeouts()
    clock.now += 3
    assert sessions.sweep() == 1
    assert closed == ["a"]
    assert len(sessions) == 1
    clock.now += 2
    assert sessions.sweep() == 1
    assert closed == ["a", "b"]
    assert timeouts() == before + 2
    assert sessions.sweep() == 0


def test_at_the_bound_only_sessions_past_half_the_timeout_are_closed_early() -> None:
    clock, closed = Clock(), list[str]()
    sessions = PendingSessions(20.0, closed.append, clock=clock, max_pending=10)
    for eio_sid in "abcdefghij":  # one a second: a is 9 s old when j opens
        sessions.opened(eio_sid)
        clock.now += 1
    assert sessions.full()
    # None older than 10 s (half the timeout): a storm's slow client, kept; new sessions
    # wait meanwhile (admission's "unjoined").
    assert sessions.sweep() == 0 and closed == []
    clock.now += 2  # a is 12 s old, b 11 s, c 10 s
    with sessions.connecting("a"):  # being authenticated: kept, as at its deadline
        assert sessions.sweep() == 1
    assert closed == ["b"]  # down to 9 (90 % of the bound)
    assert not sessions.full()
    assert sessions.sweep() == 0  # under the bound: only deadlines close sessions
    sessions.opened("k")
    assert sessions.sweep() == 1  # full again
    assert closed == ["b", "a"] and len(sessions) == 9


def test_vouched_sessions_have_their_whole_timeout_and_leave_the_bound_to_others() -> None:
    """A session whose handshake carried a valid token (a person's slow client) is never
    closed early, and does not fill the bound: it holds a socket's place instead."""
    clock, closed = Clock(), list[str]()
    sessions = PendingSessions(20.0, closed.append, clock=clock, max_pending=4)
    for eio_sid in "abcdefgh":  # a, c, e, g vouched; one a second
        sessions.opened(eio_sid, vouched=eio_sid in "aceg")
        clock.now += 1
    assert sessions.vouched == 4 and len(sessions) == 8
    assert sessions.full()  # b, d, f, h: four without a valid token
    clock.now += 8  # a is 16 s old ... h 9 s: a to g past half the timeout
    assert sessions.sweep() == 1
    assert closed == ["b"]  # the oldest unvouched, down to 3 (90 % of 4)
    assert not sessions.full()
    assert sessions.sweep() == 0
    clock.now += 4  # a's deadline (20 s) has passed: vouched, it is closed as anyone then
    assert sessions.sweep() == 1 and closed == ["b", "a"]
    assert sessions.vouched == 3
    sessions.settled("c")  # joined
    assert sessions.vouched == 2 and len(sessions) == 5


def test_settled_sessions_are_never_closed() -> None:
    clock, closed = Clock(), []
    sessions = pending(clock, closed)
    sessions.opened("joined")
    sessions.opened("gone")
    sessions.settled("joined")
    sessions.settled("gone")
    sessions.settled("never-seen")
    clock.now += 60
    assert sessions.sweep() == 0
    assert (closed, len(sessions)) == ([], 0)


def test_a_connect_being_authenticated_holds_the_deadline_until_it_is_decided() -> None:
    clock, closed = Clock(), []
    sessions = pending(clock, closed)
    sessions.opened("slow-auth")
    sessions.opened("silent")
    with sessions.connecting("slow-auth"), sessions.connecting("slow-auth"):
        clock.now += 10
        assert sessions.sweep() == 1
        assert closed == ["silent"]
    # refused: still not in a namespace, so closed at the next sweep
    assert sessions.sweep() == 1
    assert closed == ["silent", "slow-auth"]


def test_one_failing_close_does_not_keep_the_others_open() -> None:
    clock, closed = Clock(), []

    def close(eio_sid: str) -> None:
        if eio_sid == "broken":
            raise RuntimeError("transport already torn down")
        closed.append(eio_sid)

    sessions = PendingSessions(5.0, close, clock=clock)
    for eio_sid in ("broken", "a", "b"):
        sessions.opened(eio_sid)
    clock.now += 5
    assert sessions.sweep() == 3
    assert closed == ["a", "b"]
    assert len(sessions) == 0


def test_the_sweeper_waits_while_the_worker_is_overloaded() -> None:
    closed: list[str] = []
    overloaded = [True]
    sessions = PendingSessions(0.05, closed.append)
    sessions.opened("late-through-no-fault-of-its-own")
    sessions.start(overloaded=lambda: overloaded[0])
    gevent.sleep(0.3)  # six times the timeout, thirty sweep intervals
    assert closed == []
    overloaded[0] = False
    with gevent.Timeout(2):
        while not closed:
            gevent.sleep(0.01)
    assert closed == ["late-through-no-fault-of-its-own"]
