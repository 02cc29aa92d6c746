"""New sessions beyond the rate or the lag bound wait their turn, first come first served,
instead of HTTP 503 at once; draining, a full instance, a full room and a long wait refuse."""

from __future__ import annotations

import socket

import gevent
import gevent.socket
from prometheus_client import REGISTRY

from zou_events.admission import (
    ABANDONED,
    DRAINING,
    OVER_CAPACITY,
    OVERLOADED,
    TOO_FAST,
    UNJOINED,
    Admission,
    client_connected,
)
from zou_events.waiting_room import WaitingRoom


class Instance:
    """What admission looks at, set by the test."""

    def __init__(self) -> None:
        self.lag = 0.0
        self.draining = False
        self.sockets = 0
        self.unjoined_full = False  # at the bound of sessions without a namespace


def room(
    instance: Instance,
    per_second: float = 1000.0,
    burst: int = 1,
    capacity: int = 100,
    max_wait: float = 5.0,
) -> WaitingRoom:
    admission = Admission(
        max_sockets=10,
        per_second=per_second,
        burst=burst,
        socket_count=lambda: instance.sockets,
        draining=lambda: instance.draining,
        loop_lag=lambda: instance.lag,
        max_lag=1.0,
        unjoined_full=lambda: instance.unjoined_full,
    )
    return WaitingRoom(admission, capacity, max_wait)


def waiting(gate: WaitingRoom) -> float:
    return REGISTRY.get_sample_value("zou_events_admission_waiting") or 0.0


def arrive(gate: WaitingRoom, decisions: list[tuple[int, str | None]], n: int) -> gevent.Greenlet:
    return gevent.spawn(lambda: decisions.append((n, gate.admit())))


def settle_waiting(gate: WaitingRoom, count: int) -> None:
    with gevent.Timeout(5):
        while gate.waiting != count:
            gevent.sleep(0)


def test_beyond_the_rate_sessions_wait_and_get_in_in_arrival_order() -> None:
    gate = room(Instance(), per_second=50.0, burst=1)
    assert gate.admit() is None  # the burst's one token: no wait
    decisions: list[tuple[int, str | None]] = []
    arrivals = [arrive(gate, decisions, n) for n in range(4)]
    settle_waiting(gate, 4)
    assert waiting(gate) == 4
    gevent.joinall(arrivals, timeout=5, raise_error=True)
    assert decisions == [(0, None), (1, None), (2, None), (3, None)]
    assert gate.waiting == 0 and waiting(gate) == 0


def test_a_newcomer_queues_behind_those_waiting_even_when_a_token_is_there() -> None:
    instance = Instance()
    instance.lag = 5.0
    gate = room(instance, burst=10)
    decisions: list[tuple[int, str | None]] = []
    first = arrive(gate, decisions, 1)
    settle_waiting(gate, 1)
    instance.lag = 0.0
    # Asked before the loop has a turn: the rate has tokens, but the first is still queued.
    assert gate.admit() is None
    assert decisions == [(1, None)]  # the first was let in, and ran, before this one
    first.join()


def test_while_overloaded_nobody_gets_in_and_the_rate_is_not_spent() -> None:
    instance = Instance()
    instance.lag = 5.0
    gate = room(instance, per_second=0.001, burst=1, max_wait=0.2)
    assert gate.admit() == OVERLOADED  # waited its 0.2 s, then refused with the reason
    instance.lag = 0.0
    assert gate.admit() is None  # the one token is still there
    assert gate.admit() is not None


def test_while_sessions_without_a_namespace_are_at_their_bound_newcomers_wait() -> None:
    """A slow client's sessions are not joined yet: new ones wait until they are (or until
    the sweep closes the oldest), without spending the rate."""
    instance = Instance()
    instance.unjoined_full = True
    gate = room(instance, per_second=0.001, burst=1, max_wait=0.2)
    assert gate.admit() == UNJOINED  # waited its 0.2 s, then refused with the reason
    decisions: list[tuple[int, str | None]] = []
    waiter = arrive(gate, decisions, 1)
    settle_waiting(gate, 1)
    instance.unjoined_full = False  # the client's CONNECTs came
    waiter.join(timeout=5)
    assert decisions == [(1, None)]  # let in with the one token, still there
    assert gate.admit() == TOO_FAST


def test_a_session_that_waited_too_long_is_refused_with_the_reason_it_waited_for() -> None:
    gate = room(Instance(), per_second=0.001, burst=1, max_wait=0.1)
    assert gate.admit() is None
    before = REGISTRY.get_sample_value("zou_events_admission_wait_seconds_count") or 0.0
    assert gate.admit() == TOO_FAST
    assert gate.waiting == 0 and waiting(gate) == 0
    after = REGISTRY.get_sample_value("zou_events_admission_wait_seconds_count") or 0.0
    assert after == before  # only waits that ended in a session count


def test_with_no_wait_or_a_full_room_refusal_is_at_once() -> None:
    assert room(Instance(), per_second=0.001, max_wait=0.0).admit() is None
    no_wait = room(Instance(), per_second=0.001, max_wait=0.0)
    no_wait.admit()
    assert no_wait.admit() == TOO_FAST and no_wait.waiting == 0

    full = room(Instance(), per_second=0.001, capacity=1)
    full.admit()
    decisions: list[tuple[int, str | None]] = []
    queued = arrive(full, decisions, 1)
    settle_waiting(full, 1)
    with gevent.Timeout(0.05, AssertionError("a full room made a newcomer wait")):
        assert full.admit() == TOO_FAST
    queued.kill()


def test_draining_or_a_full_instance_refuses_at_once_and_lets_the_waiting_go() -> None:
    instance = Instance()
    instance.lag = 5.0
    gate = room(instance)
    decisions: list[tuple[int, str | None]] = []
    arrivals = [arrive(gate, decisions, n) for n in range(3)]
    settle_waiting(gate, 3)
    instance.draining = True
    assert gate.admit() == DRAINING
    gevent.joinall(arrivals, timeout=1, raise_error=True)
    assert sorted(decisions) == [(0, DRAINING), (1, DRAINING), (2, DRAINING)]

    instance.draining, instance.sockets = False, 10
    assert gate.admit() == OVER_CAPACITY


def test_a_waiting_request_killed_frees_its_place_and_spends_no_token() -> None:
    instance = Instance()
    instance.lag = 5.0
    gate = room(instance, per_second=0.001, burst=1)
    decisions: list[tuple[int, str | None]] = []
    gone = arrive(gate, decisions, 1)
    stays = arrive(gate, decisions, 2)
    settle_waiting(gate, 2)
    gone.kill()  # its client went away: gunicorn's greenlet ends
    assert gate.waiting == 1 and waiting(gate) == 1
    instance.lag = 0.0
    stays.join(timeout=5)
    assert decisions == [(2, None)]  # the one token went to the one still waiting


def test_a_waiter_whose_client_hung_up_is_dropped_at_its_turn_without_a_token() -> None:
    instance = Instance()
    instance.lag = 5.0
    gate = room(instance, per_second=0.001, burst=1)
    decisions: list[tuple[int, str | None]] = []
    there = [True, True]
    hung_up = gevent.spawn(lambda: decisions.append((1, gate.admit(lambda: there[0]))))
    settle_waiting(gate, 1)
    stays = gevent.spawn(lambda: decisions.append((2, gate.admit(lambda: there[1]))))
    settle_waiting(gate, 2)
    before = REGISTRY.get_sample_value("zou_events_admission_wait_seconds_count") or 0.0
    there[0] = False  # the first one's client gives up
    instance.lag = 0.0
    gevent.joinall([hung_up, stays], timeout=5, raise_error=True)
    assert decisions == [(1, ABANDONED), (2, None)]  # the one token went to the second
    after = REGISTRY.get_sample_value("zou_events_admission_wait_seconds_count") or 0.0
    assert after == before + 1


def test_a_client_is_connected_until_its_end_of_stream() -> None:
    server_side, client_side = gevent.socket.socketpair()
    with server_side, client_side:
        connected = client_connected(server_side)
        assert connected()
        client_side.sendall(b"GET /next")  # pipelined: still there, and not consumed
        assert connected()
        assert server_side.recv(100) == b"GET /next"
        client_side.shutdown(socket.SHUT_WR)
        assert not connected()
        assert server_side.gettimeout() is None  # left as gunicorn had it
    assert client_connected(None)()
