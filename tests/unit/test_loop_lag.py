"""Event-loop lag and the admission it drives (a saturated worker turns new sessions away)."""

from __future__ import annotations

import time

import gevent
from prometheus_client import REGISTRY

from zou_events.admission import OVERLOADED, TOO_FAST, Admission
from zou_events.loop_lag import LoopLag


def lag_samples() -> float:
    return REGISTRY.get_sample_value("zou_events_event_loop_lag_seconds_count") or 0.0


def sampled(since: float) -> None:
    """Yield to the loop until the sampler has measured once more."""
    with gevent.Timeout(5):
        while lag_samples() <= since:
            gevent.sleep(0.005)


def test_a_blocked_loop_shows_as_lag_at_once_and_in_the_metric() -> None:
    lag = LoopLag(interval=0.02)
    lag.start()
    sampled(lag_samples())
    assert lag.current() < 0.1
    samples = lag_samples()
    time.sleep(0.3)  # not gevent's: holds the whole loop, as CPU-bound handlers would
    assert lag.current() >= 0.25  # seen before the sampler even got its turn
    sampled(samples)
    assert lag.current() >= 0.25  # measured by the sampler, as the metric recorded it
    sampled(lag_samples())
    assert lag.current() < 0.1  # caught up


def admission(lag: list[float]) -> Admission:
    return Admission(
        max_sockets=10,
        per_second=1.0,
        burst=1,
        socket_count=lambda: 0,
        draining=lambda: False,
        loop_lag=lambda: lag[0],
        max_lag=0.25,
    )


def test_new_sessions_wait_while_the_loop_lags_without_using_the_rate() -> None:
    lag = [1.0]
    gate = admission(lag)
    assert gate.refusal() == OVERLOADED
    assert gate.refusal() == OVERLOADED
    lag[0] = 0.01
    assert gate.refusal() is None  # the one token of the burst was kept for this one
    assert gate.refusal() == TOO_FAST
