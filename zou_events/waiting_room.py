"""New sessions that arrive faster than the worker connects them wait their turn, in arrival
order, instead of being answered HTTP 503 at once.

A refusal is not cheap: a connection, a parsed request and an answer cost the worker about
0.5 ms, and socket.io-client comes back 1-5 s later (it ignores ``Retry-After``) to pay it
again. In a 10,000-tab reconnect storm those refusals were a third of the worker's CPU. A
handshake that waits here was parsed once, costs nothing while its greenlet is parked, and
is let in as soon as admission's rate and the event loop's lag allow, well within the
client's 20 s connect timeout (``max_wait``). Only the passing reasons (too fast,
overloaded) wait; draining and a full instance are answered at once, and so is everyone
once the room holds ``capacity`` handshakes or a handshake has waited ``max_wait``. A
handshake whose client hung up while it waited (socket.io-client gives up after its own
timeout and starts again) is dropped at its turn, without spending the rate on it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import gevent
from gevent.event import Event

from zou_events import metrics
from zou_events.admission import ABANDONED, TOO_FAST, Admission

# The loop's lag falls only when its sampler runs (every 0.1 s), and sessions without a
# namespace as their clients join: a look every 10 ms is soon enough, and costs a storm's
# worker nothing.
LAG_RECHECK = 0.01


def _always_there() -> bool:
    return True


class _Waiter:
    __slots__ = ("decided", "done", "refusal", "still_there")

    def __init__(self, still_there: Callable[[], bool]) -> None:
        self.decided = Event()
        self.refusal: str | None = None
        self.done = False  # let in, refused, or gone: no longer counted as waiting
        self.still_there = still_there


class WaitingRoom:
    def __init__(self, admission: Admission, capacity: int, max_wait: float) -> None:
        self.admission = admission
        self.capacity = capacity
        self.max_wait = max_wait
        self._queue: deque[_Waiter] = deque()
        self._waiting = 0  # the waiters in the queue not yet done
        self._usher: gevent.Greenlet | None = None
        self._reason = TOO_FAST  # why the usher last held the queue back
        # When a new token is worth a look: the bucket refills at its rate.
        self._token_recheck = min(0.05, 1.0 / admission.per_second)

    @property
    def waiting(self) -> int:
        return self._waiting

    def admit(self, still_there: Callable[[], bool] = _always_there) -> str | None:
        """None once the new session may go on (perhaps after a wait), or why it may not;
        ``still_there`` tells, when its turn comes, whether its client is still connected."""
        lasting = self.admission.lasting_refusal()
        if lasting is not None:
            return lasting
        if self._waiting:
            passing: str | None = self._reason  # first come, first served: behind the queue
        else:
            passing = self.admission.passing_refusal()
            if passing is None:
                return None
            self._reason = passing
        if self._waiting >= self.capacity or self.max_wait <= 0:
            return passing
        return self._wait(still_there)

    def _wait(self, still_there: Callable[[], bool]) -> str | None:
        waiter = _Waiter(still_there)
        self._queue.append(waiter)
        self._waiting += 1
        metrics.admission_waiting.inc()
        if self._usher is None:
            self._usher = gevent.spawn(self._let_in_turn_by_turn)
        started = time.monotonic()
        try:
            if not waiter.decided.wait(self.max_wait):
                return self._reason
            if waiter.refusal is None:
                metrics.admission_wait_seconds.observe(time.monotonic() - started)
            return waiter.refusal
        finally:
            self._leave(waiter)  # timed out, or the request's greenlet was killed

    def _leave(self, waiter: _Waiter) -> None:
        if not waiter.done:
            waiter.done = True
            self._waiting -= 1
            metrics.admission_waiting.dec()

    def _first(self) -> _Waiter:
        """The first waiter not done; there is one while ``_waiting``."""
        while self._queue[0].done:  # timed out or killed, oldest first
            self._queue.popleft()
        return self._queue[0]

    def _decide_first(self, refusal: str | None) -> None:
        waiter = self._first()
        self._queue.popleft()
        waiter.refusal = refusal
        self._leave(waiter)
        waiter.decided.set()

    def _let_in_turn_by_turn(self) -> None:
        try:
            while self._waiting:
                lasting = self.admission.lasting_refusal()
                if lasting is not None:  # draining or full: nobody waiting can get in now
                    while self._waiting:
                        self._decide_first(lasting)
                    break
                if not self._first().still_there():
                    self._decide_first(ABANDONED)  # its client hung up: no token spent
                    continue
                passing = self.admission.passing_refusal()
                if passing is None:
                    self._decide_first(None)
                    gevent.sleep(0)  # the handshake let in runs before the next is weighed
                else:
                    self._reason = passing
                    # A token comes at the bucket's rate; the lag and the sessions without a
                    # namespace change only as the worker catches up.
                    gevent.sleep(self._token_recheck if passing == TOO_FAST else LAG_RECHECK)
        finally:
            if not self._waiting:
                self._queue.clear()  # only waiters that gave up are left
            self._usher = None
