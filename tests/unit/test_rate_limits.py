"""The project's one token bucket and the per-socket room-event limiter built on it, on a
clock the test moves."""

from __future__ import annotations

import time

import pytest

from tests.support.clock import Clock
from zou_events.rooms import limits
from zou_events.rooms.limits import RateLimiter, TokenBucket


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    # from the real clock's reading: a socket's refusal window starts on the real clock
    clock = Clock(time.monotonic())
    monkeypatch.setattr(limits, "time", clock)
    return clock


def test_a_bucket_starts_full_and_refuses_past_its_burst(clock: Clock) -> None:
    bucket = TokenBucket(rate=2, burst=3)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_a_bucket_refills_at_its_rate_up_to_its_burst(clock: Clock) -> None:
    bucket = TokenBucket(rate=2, burst=3)
    for _ in range(3):
        bucket.take()
    clock.advance(0.4)  # 0.8 of a token
    assert not bucket.take()
    clock.advance(0.1)
    assert bucket.take()
    clock.advance(3600)  # a long pause saves no more than the burst
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_a_refused_take_spends_nothing(clock: Clock) -> None:
    bucket = TokenBucket(rate=1, burst=10)
    assert bucket.take(7)
    assert not bucket.take(4)  # 3 left
    assert bucket.take(3)


def test_an_explicit_now_is_the_callers_clock(clock: Clock) -> None:
    """Callers metering many sockets read the clock once and pass it."""
    bucket = TokenBucket(rate=10, burst=1)
    assert bucket.take(now=clock.now)
    assert not bucket.take(now=clock.now + 0.05)
    assert bucket.take(now=clock.now + 0.2)


def test_each_socket_has_its_own_bucket(clock: Clock) -> None:
    limiter = RateLimiter(per_second=1, burst=2, kick_after_refusals=100)
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    assert limiter.allow("b")
    assert limiter.refusals("a") == 1 and limiter.refusals("b") == 0
    clock.advance(1)
    assert limiter.allow("a")


def test_a_socket_refused_too_often_within_a_window_is_to_be_kicked(clock: Clock) -> None:
    limiter = RateLimiter(per_second=0.001, burst=1, kick_after_refusals=3)
    limiter.allow("s")
    for _ in range(2):
        limiter.allow("s")
        assert not limiter.should_kick("s")
    limiter.allow("s")
    assert limiter.should_kick("s")
    assert not limiter.should_kick("never-seen")


def test_refusals_count_per_window(clock: Clock) -> None:
    limiter = RateLimiter(per_second=0.001, burst=1, kick_after_refusals=3)
    limiter.allow("s")
    limiter.allow("s")
    limiter.allow("s")
    clock.advance(RateLimiter.WINDOW_SECONDS + 1)
    limiter.allow("s")  # a new window: the earlier refusals no longer count
    assert limiter.refusals("s") == 1 and not limiter.should_kick("s")


def test_a_forgotten_socket_starts_over_with_a_full_bucket(clock: Clock) -> None:
    limiter = RateLimiter(per_second=0.001, burst=1, kick_after_refusals=1)
    limiter.allow("s")
    limiter.allow("s")
    assert limiter.should_kick("s")
    limiter.forget("s")
    limiter.forget("s")  # twice: a socket disconnects once, but forgetting is idempotent
    assert limiter.refusals("s") == 0 and not limiter.should_kick("s")
    assert limiter.allow("s")
