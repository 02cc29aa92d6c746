"""The subscriber's boundary and watchdog: a message that fails is dropped and counted, a loop
that died or stopped turning is reported at once and restarted.

A real subscriber and a real server's fanout; the faults (a loop that raises what it does not
expect, a connection that never completes) are injected through the connect function, since
nothing read from Redis can stop the loop any more. Redis itself is exercised end to end in
tests/integration/test_redis_boundary.py and tests/resilience/test_redis_faults.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import gevent
import pytest
import redis
from prometheus_client import REGISTRY

from zou_events import subscriber as subscriber_module
from zou_events.bus import MemoryBus
from zou_events.config import load_settings
from zou_events.fanout import Fanout
from zou_events.messages import Emit
from zou_events.subscriber import Subscriber
from zou_events.transport.server import EventServer


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def restarts(reason: str) -> float:
    return sample("zou_events_redis_subscriber_restarts_total", reason=reason)


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    with gevent.Timeout(timeout, AssertionError(f"timed out after {timeout}s")):
        while not condition():
            gevent.sleep(0.01)


@pytest.fixture
def fanout() -> Fanout:
    bus = MemoryBus("here")
    return Fanout(EventServer(load_settings({"SECRET_KEY": "k" * 32})), bus.host_id, bus.publish)


@pytest.fixture
def started() -> Iterator[list[Subscriber]]:
    running: list[Subscriber] = []
    yield running
    for subscriber in running:
        subscriber.stop()


def test_a_dead_loop_is_reported_at_once_and_restarted(
    fanout: Fanout, started: list[Subscriber]
) -> None:
    calls: list[int] = []

    def connect() -> redis.Redis:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug outside the per-message boundary")
        raise redis.ConnectionError("Redis down: the loop retries, alive")

    subscriber = Subscriber(connect, "channel", fanout)
    subscriber._subscribed = True  # as if subscribed when the bug struck
    before = restarts("died")
    subscriber.start()
    started.append(subscriber)
    wait_for(lambda: subscriber._greenlet is not None and subscriber._greenlet.dead)
    assert not subscriber.subscribed  # /ready says so without waiting for the watchdog
    wait_for(lambda: restarts("died") == before + 1)
    assert sample("zou_events_redis_subscribed") == 0
    wait_for(lambda: len(calls) >= 2)  # the new loop runs and retries
    gevent.sleep(subscriber_module.WATCH_SECONDS * 1.5)
    assert restarts("died") == before + 1  # a loop that retries is not restarted
    assert not subscriber._greenlet.dead


def test_a_loop_that_stops_turning_is_restarted(
    fanout: Fanout, started: list[Subscriber], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subscriber_module, "STALL_SECONDS", 0.2)
    monkeypatch.setattr(subscriber_module, "RESTART_AFTER_SECONDS", 1.5)
    calls: list[int] = []

    def connect() -> redis.Redis:
        calls.append(1)
        if len(calls) == 1:
            gevent.sleep(3600)  # a connection that never completes
        raise redis.ConnectionError("down")

    subscriber = Subscriber(connect, "channel", fanout)
    subscriber._subscribed = True  # as if it had been subscribed before it stopped turning
    before = restarts("stalled")
    subscriber.start()
    started.append(subscriber)
    assert subscriber.subscribed
    wait_for(lambda: not subscriber.subscribed, timeout=1.0)  # /ready: alive is not enough
    assert not subscriber._greenlet.dead and restarts("stalled") == before
    wait_for(lambda: restarts("stalled") == before + 1)
    wait_for(lambda: len(calls) >= 2)


def test_any_failure_applying_a_message_drops_that_message_only(fanout: Fanout) -> None:
    class BrokenFanout(Fanout):
        def deliver(self, emit: Emit, arrived: float, raw: bytes | None = None) -> int:
            raise RuntimeError("a bug in delivery")

    broken = BrokenFanout(fanout.server, "here", fanout.publish)
    subscriber = Subscriber(lambda: redis.Redis(), "channel", broken)
    before = sample("zou_events_redis_messages_dropped_total", reason="error")
    message = b'{"method":"emit","event":"x","data":[{}],"namespace":"/events"}'
    subscriber.handle(message, 0.0)
    subscriber.handle(message, 0.0)
    assert sample("zou_events_redis_messages_dropped_total", reason="error") == before + 2
