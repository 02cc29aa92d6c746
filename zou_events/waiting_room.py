"""New sessions that arrive faster than the worker connects them wait their turn, in arrival
order, instead of being answered HTTP 503 at once.

A refusal is not cheap: a connection, a parsed request and an answer cost the worker about
0.5 ms, and socket.io-client comes back 1-5 s later (it ignores ``Retry-After``) to pay it
again. In a 10,000-tab reconnect storm those refusals were a third of the worker's CPU. A
handshake that waits here was parsed once, costs nothing while its greenlet is parked, and
is let in as soon as admission's rate and the event loop's lag allow, well within the
client's 20 s connect timeout (``max_wait``). Only the passing reasons (too fast,
overloaded) wait; draining and a full instance are answered at once, and so is everyone
once the room holds ``capacity`` handshakes or a handshake has waited ``max_wait``.
"""

from __future__ import annotations

import time
from collections import deque

import gevent
from gevent.event import Event

from zou_events import metrics
from zou_events.admission import TOO_FAST, Admission


class _Waiter:
    __slots__ = ("decided", "done", "refusal")

    def __init__(self) -> None:
        self.decided = Event()
        self.refusal: str | None = None
        self.done = False  # let in, refused, or gone: no longer counted as waiting


class WaitingRoom:
    def __init__(self, admission: Admission, capacity: int, max_wait: float) -> None:
        self.admission = admission
        self.capacity = capacity
        self.max_wait = max_wait
        self._queue: deque[_Waiter] = deque()
        self._waiting = 0  # the waiters in the queue not yet done
        self._usher: gevent.Greenlet | None = None
        self._reason = TOO_FAST  # why the usher last held the queue back
        # A new token or a new lag sample is worth a look this often: the bucket refills at
        # its rate, the lag is sampled every 0.1 s.
        self._recheck = min(0.05, 1.0 / admission.per_second)

    @property
    def waiting(self) -> int:
        return self._waiting

    def admit(self) -> str | None:
        """None once the new session may go on (perhaps after a wait), or why it may not."""
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
        return self._wait()

    def _wait(self) -> str | None:
        waiter = _Waiter()
        self._queue.append(waiter)
        self._waiting += 1
        metrics.admission_waiting.inc()
        if self._usher is None:
            self._usher = gevent.spawn(self._let_in_turn_by_turn)
        started = time.monotonic()
        try:
            if waiter.decided.wait(self.max_wait):
                metrics.admission_wait_seconds.observe(time.monotonic() - started)
                return waiter.refusal
            return self._reason
        finally:
            self._leave(waiter)  # timed out, or the request's greenlet was killed

    def _leave(self, waiter: _Waiter) -> None:
        if not waiter.done:
            waiter.done = True
            self._waiting -= 1
            metrics.admission_waiting.dec()

    def _decide_next(self, refusal: str | None) -> None:
        while self._queue:
            waiter = self._queue.popleft()
            if not waiter.done:  # skip those that gave up
                waiter.refusal = refusal
                self._leave(waiter)
                waiter.decided.set()
                return

    def _let_in_turn_by_turn(self) -> None:
        try:
            while self._waiting:
                lasting = self.admission.lasting_refusal()
                if lasting is not None:  # draining or full: nobody waiting can get in now
                    while self._waiting:
                        self._decide_next(lasting)
                    break
                passing = self.admission.passing_refusal()
                if passing is None:
                    self._decide_next(None)
                    gevent.sleep(0)  # the handshake let in runs before the next is weighed
                else:
                    self._reason = passing
                    while self._queue and self._queue[0].done:  # gave up, oldest first
                        self._queue.popleft()
                    gevent.sleep(self._recheck)
        finally:
            if not self._waiting:
                self._queue.clear()  # only waiters that gave up are left
            self._usher = None
