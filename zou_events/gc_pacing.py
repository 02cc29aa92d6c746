"""Full garbage collections paced between fan-outs.

A full (generation 2) pass of CPython's collector walks every container object that was not
frozen at start-up: with 1,000 sockets it stops the event loop for 8-9 ms. CPython starts one
from inside whatever allocation crosses its thresholds, which in steady traffic is most
often a fan-out, and then the message's last recipients wait for the pass too. While the
subscriber holds the pacing, automatic full passes never start (the third threshold is out
of reach; the young generations stay automatic) and the subscriber runs each one itself
once a message has been fanned out and no other one is waiting.

CPython starts a full pass when it has run more generation-1 collections since the last one
than its third threshold (10), and the objects moved to the old generation since then are
over a quarter of those that survived it. Python cannot read that second count: a pass is
due here on the first condition alone, so passes run at least as often as CPython's.

CPython 3.14's collector is incremental (no full pass to pace, the third threshold is
ignored): there, and on other interpreters, the collector is left as it is.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable

import gevent

# Above any count of generation-1 collections (the largest threshold CPython takes, a C int).
_HELD = 2**31 - 1
# A message waiting postpones a due pass, but not past this many times CPython's count: a
# burst that never lets the Redis buffer run dry still gets its passes, between messages.
OVERDUE_FACTOR = 4
PACEABLE = sys.implementation.name == "cpython" and sys.version_info < (3, 14)


def _nothing_waiting() -> bool:
    return False


class GcPacer:
    """Holds automatic full passes back while held, and runs them when it is told the loop
    is between messages. The collector is process-wide: use the module's ``PACER``."""

    def __init__(self) -> None:
        self._holders = 0
        self._threshold = 0  # CPython's third threshold as it was before holding

    @property
    def held(self) -> bool:
        return self._holders > 0

    def hold(self) -> None:
        """Stop automatic full passes (until as many ``release`` calls)."""
        if not PACEABLE:
            return
        if self._holders == 0:
            young, middle, self._threshold = gc.get_threshold()
            gc.set_threshold(young, middle, _HELD)
        self._holders += 1

    def release(self) -> None:
        """Let CPython run full passes by itself again once nobody holds them."""
        if not PACEABLE or self._holders == 0:
            return
        self._holders -= 1
        if self._holders == 0:
            young, middle, _ = gc.get_threshold()
            gc.set_threshold(young, middle, self._threshold)

    def due(self) -> bool:
        """CPython would have started a full pass by now."""
        return self.held and gc.isenabled() and gc.get_count()[2] > self._threshold

    def collect_if_due(self, waiting: Callable[[], bool] = _nothing_waiting) -> bool:
        """Run the full pass if one is due: now, between messages, unless ``waiting()`` says
        another message is already there to fan out (and the pass is not overdue).
        Returns whether it ran."""
        if not self.due():
            return False
        # A turn of the event loop first: the writes the last messages left in the
        # outboxes (a burst's) go out before the pass, not after it.
        gevent.sleep(0)
        overdue = gc.get_count()[2] > self._threshold * OVERDUE_FACTOR
        if not self.due() or (not overdue and waiting()):
            return False
        gc.collect()
        return True


PACER = GcPacer()
