"""The garbage collector's full passes held to a share of the worker's time.

A full (generation 2) pass of CPython's collector walks every container object the worker
holds, and the event loop stands still meanwhile: every socket's deliveries and handshakes
wait for it. CPython starts one when enough objects were promoted to the old generation
since the last one, which counts objects that were *moved* there, not objects still alive.
In a reconnect storm thousands of handshakes are in flight at each young collection, get
promoted, and end a moment later by reference counting: measured in a 10,000-tab storm,
40 full passes of 200-440 ms each (9.7 s of the worker's 58 s; 33 of them found nothing to
collect), each stalling the loop long enough for more handshakes to time out and come
back.

After a full pass that took *d* seconds, automatic full passes are held (the collector's
third threshold out of reach; the young generations are left alone) for ``RATIO`` x *d*:
full passes then take at most 1 / (1 + RATIO) of the worker's time, whatever the heap's
size or a client's doing. When the hold ends, CPython decides as before whether a pass is
due. Nothing garbage is kept for longer than the hold: a pass comes at most ``MAX_HOLD``
after the last.

The young generation is also made larger (``YOUNG_THRESHOLD`` new objects still alive
instead of CPython's 700) so that what a handshake or a delivery makes is mostly gone by
reference counting before a young collection would promote it: in 10,000-tab storms,
9-10 full passes became 2 and the collector's whole time fell from 2.2-2.3 s to 1.0 s.
A young collection then walks more objects (a few milliseconds on a slow core, against a
fraction of one), and comes that much more rarely.

CPython 3.14's collector is incremental (no full pass to hold, the third threshold is
ignored): there, and on other interpreters, the collector is left as it is.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from typing import Any

import gevent

# Full passes take at most 1 / (1 + RATIO) of the worker's time: 5 %.
RATIO = 19.0
# However long the last pass took, the next may come this soon after it.
MAX_HOLD = 60.0
# How often the hold's end is looked for: a pass due then waits at most this much longer.
TICK = 1.0
# New container objects still alive that start a young collection (CPython's default: 700).
YOUNG_THRESHOLD = 10_000
# Above any count of generation-1 collections (the largest threshold CPython takes, a C int).
_HELD = 2**31 - 1
HOLDABLE = sys.implementation.name == "cpython" and sys.version_info < (3, 14)

Observe = Callable[[float], None]


def _ignore(_seconds: float) -> None:
    pass


class GcBudget:
    """Holds the automatic full passes after each one for ``ratio`` times its duration.
    The collector is process-wide: one per worker (``install``)."""

    def __init__(
        self,
        ratio: float = RATIO,
        max_hold: float = MAX_HOLD,
        observe: Observe = _ignore,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ratio = ratio
        self.max_hold = max_hold
        self._observe = observe  # each full pass's duration, for the metrics
        self._clock = clock
        self._started = 0.0
        self._threshold: int | None = None  # CPython's third threshold while held
        self.held_until = 0.0

    @property
    def held(self) -> bool:
        return self._threshold is not None

    def on_collection(self, phase: str, info: dict[str, Any]) -> None:
        """A ``gc.callbacks`` entry: each full pass timed, then the next ones held."""
        if info["generation"] != 2:
            return
        now = self._clock()
        if phase == "start":
            self._started = now
            return
        duration = now - self._started
        self._observe(duration)
        self.held_until = now + min(self.ratio * duration, self.max_hold)
        if self._threshold is None:
            young, middle, self._threshold = gc.get_threshold()
            gc.set_threshold(young, middle, _HELD)

    def tick(self) -> None:
        """Let CPython run full passes again once the hold is over."""
        if self._threshold is not None and self._clock() >= self.held_until:
            young, middle, _ = gc.get_threshold()
            gc.set_threshold(young, middle, self._threshold)
            self._threshold = None


def install(observe: Observe, tick: float = TICK) -> GcBudget | None:
    """Hold this process's full passes to their budget, for as long as it runs, and make its
    young generation ``YOUNG_THRESHOLD``; None where there is nothing to hold
    (``HOLDABLE``)."""
    if not HOLDABLE:
        return None
    budget = GcBudget(observe=observe)
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    gc.callbacks.append(budget.on_collection)
    # A timer of the loop rather than a greenlet: a tick costs one callback, and it does
    # not keep the loop alive (ref=False).
    timer = gevent.get_hub().loop.timer(tick, tick, ref=False)
    timer.start(budget.tick)
    return budget
