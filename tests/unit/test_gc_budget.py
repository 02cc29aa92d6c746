"""Full garbage collection passes held to their budget: after a pass that took d, none
starts by itself for ratio x d; the young generations are left alone; CPython decides
again once the hold is over."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import gevent
import pytest

from zou_events import gc_budget
from zou_events.gc_budget import GcBudget

pytestmark = pytest.mark.skipif(not gc_budget.HOLDABLE, reason="no full pass to hold")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def collector_as_it_was() -> Iterator[None]:
    thresholds, callbacks = gc.get_threshold(), list(gc.callbacks)
    yield
    gc.set_threshold(*thresholds)
    gc.callbacks[:] = callbacks


def full_pass(budget: GcBudget, clock: Clock, seconds: float) -> None:
    budget.on_collection("start", {"generation": 2})
    clock.now += seconds
    budget.on_collection("stop", {"generation": 2, "collected": 0, "uncollectable": 0})


def test_a_full_pass_holds_the_next_for_ratio_times_its_duration() -> None:
    clock, observed = Clock(), list[float]()
    budget = GcBudget(ratio=19.0, observe=observed.append, clock=clock)
    young, middle, third = gc.get_threshold()
    full_pass(budget, clock, 0.3)

    assert observed == [pytest.approx(0.3)]
    assert gc.get_threshold() == (young, middle, 2**31 - 1)  # young generations untouched
    assert budget.held_until == pytest.approx(clock.now + 19 * 0.3)
    clock.now += 19 * 0.3 - 0.01
    budget.tick()
    assert budget.held
    clock.now += 0.02
    budget.tick()
    assert not budget.held
    assert gc.get_threshold() == (young, middle, third)


def test_young_collections_are_neither_timed_nor_held() -> None:
    clock, observed = Clock(), list[float]()
    budget = GcBudget(observe=observed.append, clock=clock)
    thresholds = gc.get_threshold()
    for generation in (0, 1):
        budget.on_collection("start", {"generation": generation})
        clock.now += 0.5
        budget.on_collection("stop", {"generation": generation})

    assert observed == []
    assert not budget.held
    assert gc.get_threshold() == thresholds


def test_a_pass_run_while_held_extends_the_hold_and_the_threshold_comes_back_whole() -> None:
    clock = Clock()
    budget = GcBudget(ratio=10.0, clock=clock)
    third = gc.get_threshold()[2]
    full_pass(budget, clock, 0.1)
    clock.now += 0.5
    full_pass(budget, clock, 0.2)  # e.g. an explicit gc.collect() during the hold

    assert budget.held_until == pytest.approx(clock.now + 2.0)
    clock.now += 2.01
    budget.tick()
    assert gc.get_threshold()[2] == third  # not the held value taken for CPython's


def test_a_long_pass_holds_at_most_max_hold() -> None:
    clock = Clock()
    budget = GcBudget(ratio=19.0, max_hold=60.0, clock=clock)
    full_pass(budget, clock, 10.0)

    assert budget.held_until == pytest.approx(clock.now + 60.0)


def promote_and_drop(rounds: int) -> None:
    """A reconnect storm's shape: many objects alive across young collections (promoted to
    the old generation), then gone by reference counting, never garbage."""
    for _ in range(rounds):
        in_flight = [{"request": [i]} for i in range(20_000)]
        gc.collect(1)  # what a young collection finds alive moves to the old generation
        del in_flight


def full_passes() -> int:
    return int(gc.get_stats()[2]["collections"])


def test_churn_that_makes_cpython_run_full_passes_runs_none_while_held() -> None:
    gc.collect()
    before = full_passes()
    promote_and_drop(40)
    unheld = full_passes() - before
    assert unheld >= 2, "the churn should make CPython run full passes by itself"

    observed: list[float] = []
    budget = GcBudget(ratio=1e6, observe=observed.append)  # held for the whole test
    gc.callbacks.append(budget.on_collection)
    gc.collect()  # a first pass, timed: the hold starts
    before = full_passes()
    promote_and_drop(40)

    assert full_passes() == before
    assert len(observed) == 1 and observed[0] > 0


def test_installed_it_times_the_passes_and_lets_them_run_again_after_the_hold() -> None:
    observed: list[float] = []
    _, middle, third = gc.get_threshold()
    budget = gc_budget.install(observed.append, tick=0.01)
    assert budget is not None
    assert gc.get_threshold() == (gc_budget.YOUNG_THRESHOLD, middle, third)
    gc.collect()

    assert len(observed) == 1
    assert budget.held
    with gevent.Timeout(5.0 + 20 * observed[0]):
        while budget.held:  # the loop's timer ends the hold
            gevent.sleep(0.01)
    assert gc.get_threshold()[2] == third
