"""Full garbage collections run between fan-outs, never inside one, and as often as CPython's.

The process is set up as a worker is after start-up (gc.freeze(), then a small old
generation): there CPython starts a full pass as soon as its generation-1 count allows, from
inside whatever allocation crosses the young thresholds. A "fan-out" here is such an
allocation: young objects kept alive while it runs, as a real one keeps its frames and lists.
"""

from __future__ import annotations

import gc
import json
import secrets
import weakref
from collections.abc import Callable, Iterator

import pytest

from tests.support import suite_redis
from zou_events.bus import MemoryBus
from zou_events.config import load_settings
from zou_events.fanout import Fanout
from zou_events.gc_pacing import OVERDUE_FACTOR, PACEABLE, PACER, GcPacer
from zou_events.messages import Emit
from zou_events.subscriber import Subscriber
from zou_events.transport.server import EventServer

pytestmark = pytest.mark.skipif(not PACEABLE, reason="no generational full pass to pace")

THRESHOLD = gc.get_threshold()[2]  # CPython's, as the pacers found it
# Enough young collections for CPython's full pass to be due many times over.
_MAX_FAN_OUTS = 10_000


class Fanning:
    """Whether a fan-out is running, and the full passes that started during one or not."""

    def __init__(self) -> None:
        self.inside = False
        self.inside_passes = 0
        self.outside_passes = 0

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            if self.inside:
                self.inside_passes += 1
            else:
                self.outside_passes += 1

    def fan_out(self) -> None:
        """Young objects alive for the whole fan-out: one young collection or more in it."""
        self.inside = True
        try:
            kept = [[] for _ in range(1_000)]
            del kept
        finally:
            self.inside = False

    def fan_out_until(self, condition: Callable[[], bool]) -> None:
        for _ in range(_MAX_FAN_OUTS):
            if condition():
                return
            self.fan_out()
        raise AssertionError("the condition never held")


@pytest.fixture
def worker_heap() -> Iterator[None]:
    """As in a worker after create_app: start-up frozen, a small old generation."""
    gc.collect()
    gc.freeze()
    gc.collect()
    yield
    gc.unfreeze()


@pytest.fixture
def fanning(worker_heap: None) -> Iterator[Fanning]:
    fanning = Fanning()
    gc.callbacks.append(fanning.on_gc)
    yield fanning
    gc.callbacks.remove(fanning.on_gc)


@pytest.fixture
def pacer() -> Iterator[GcPacer]:
    pacer = GcPacer()
    pacer.hold()
    yield pacer
    pacer.release()


def passes_count() -> int:
    """Generation-1 collections since the last full pass: what CPython's trigger counts."""
    return gc.get_count()[2]


def test_unpaced_cpython_starts_its_full_passes_inside_fan_outs(fanning: Fanning) -> None:
    """The problem, reproduced: what the pacing's tests rely on to be able to fail."""
    fanning.fan_out_until(lambda: fanning.inside_passes > 0)


def test_a_due_full_pass_waits_for_the_end_of_the_fan_out(fanning: Fanning, pacer: GcPacer) -> None:
    fanning.fan_out_until(pacer.due)
    fanning.fan_out()  # due, and a fan-out more: still nothing starts inside one
    assert passes_count() > THRESHOLD
    assert fanning.inside_passes == fanning.outside_passes == 0
    assert pacer.collect_if_due()
    assert fanning.outside_passes == 1 and fanning.inside_passes == 0
    assert passes_count() == 0 and not pacer.due()
    assert not pacer.collect_if_due()  # once per due pass


def test_a_pass_is_due_as_soon_as_cpythons_count_allows(fanning: Fanning, pacer: GcPacer) -> None:
    fanning.fan_out_until(lambda: passes_count() == THRESHOLD)
    assert not pacer.due() and not pacer.collect_if_due()
    fanning.fan_out_until(lambda: passes_count() > THRESHOLD)
    assert pacer.due()


def test_a_waiting_message_postpones_the_pass_until_it_is_overdue(
    fanning: Fanning, pacer: GcPacer
) -> None:
    fanning.fan_out_until(pacer.due)
    assert not pacer.collect_if_due(waiting=lambda: True)
    fanning.fan_out_until(lambda: passes_count() > THRESHOLD * OVERDUE_FACTOR)
    assert fanning.outside_passes == 0
    assert pacer.collect_if_due(waiting=lambda: True)  # a burst does not hold it forever
    assert fanning.outside_passes == 1 and fanning.inside_passes == 0


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_garbage_cycles_of_the_old_generation_are_collected_by_the_paced_pass(
    fanning: Fanning, pacer: GcPacer
) -> None:
    cycle = Cycle()
    gone = weakref.ref(cycle)
    gc.collect(1)  # survived a generation-1 collection: in the old generation now
    del cycle
    fanning.fan_out_until(pacer.due)
    assert gone() is not None  # only a full pass can free it, and none ran by itself
    assert pacer.collect_if_due()
    assert gone() is None


def test_holding_nests_and_release_gives_cpython_its_thresholds_back(worker_heap: None) -> None:
    before = gc.get_threshold()
    first, second = GcPacer(), GcPacer()
    first.hold()
    first.hold()
    assert gc.get_threshold()[:2] == before[:2]  # the young generations stay automatic
    assert gc.get_threshold()[2] > before[2]
    first.release()
    assert first.held and gc.get_threshold()[2] > before[2]
    first.release()
    assert not first.held and gc.get_threshold() == before
    first.release()  # one too many changes nothing
    assert gc.get_threshold() == before
    assert not second.due()  # a pacer nobody holds never collects


class Done(BaseException):
    """Ends the subscriber's loop from its fan-out (its boundary stops only Exception)."""


class AllocatingFanout(Fanout):
    """A real fan-out that also keeps young objects alive while it runs, as many as a
    fan-out to a few thousand sockets would; the last message ends the loop."""

    fanning: Fanning
    left: int

    def deliver(self, emit: Emit, arrived: float, raw: bytes | None = None) -> int:
        self.fanning.inside = True
        try:
            delivered = super().deliver(emit, arrived, raw)
            for _ in range(20):
                kept = [[] for _ in range(1_000)]
                del kept
        finally:
            self.fanning.inside = False
        self.left -= 1
        if self.left == 0:
            raise Done
        return delivered


def test_the_subscriber_runs_full_passes_between_messages_from_redis(fanning: Fanning) -> None:
    bus = MemoryBus("here")
    fanout = AllocatingFanout(
        EventServer(load_settings({"SECRET_KEY": "k" * 32})), bus.host_id, bus.publish
    )
    fanout.fanning = fanning
    fanout.left = messages = 60  # each one a generation-1 collection or two
    channel = f"gc-pacing-{secrets.token_hex(4)}"
    subscriber = Subscriber(lambda: suite_redis.client(suite_redis.EVENTS_DB), channel, fanout)
    before = gc.get_threshold()
    emit = json.dumps({"method": "emit", "event": "x", "data": [{}], "namespace": "/events"})

    def publish_all() -> None:
        with suite_redis.client(suite_redis.EVENTS_DB) as publisher:
            for _ in range(messages):
                publisher.publish(channel, emit)

    with pytest.raises(Done):
        subscriber._listen(on_subscribed=publish_all)
    assert fanout.left == 0
    assert fanning.inside_passes == 0
    assert fanning.outside_passes > 0
    assert gc.get_threshold() == before and not PACER.held  # released with the loop
