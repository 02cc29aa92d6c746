"""How far behind the event loop runs: the signal that the worker is saturated.

A greenlet asks to wake up every ``interval``; how late it runs is how long any ready
greenlet (a handshake, a CONNECT, a write) waits for its turn. Admission refuses new sessions
while the lag is high, so that a reconnect storm on a slow machine cannot queue more work
than the worker finishes before the clients give up and retry (which would only add more).
"""

from __future__ import annotations

import time

import gevent

from zou_events import metrics


class LoopLag:
    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self._last = 0.0  # the lag of the last wake-up, seconds
        self._due = float("inf")  # when the next wake-up is expected (never, until started)

    def start(self) -> None:
        gevent.spawn(self._run_forever)

    def current(self) -> float:
        """The lag now: the last one measured, or more if the next wake-up is already late."""
        return max(self._last, time.monotonic() - self._due)

    def _run_forever(self) -> None:
        while True:
            self._due = time.monotonic() + self.interval
            gevent.sleep(self.interval)
            # Then through the hub's callback queue, where new greenlets (every request's
            # handler) and the outboxes' writes wait their turn: under load it is the longer
            # wait, as the loop runs its I/O watchers first and its callbacks for only a slice.
            gevent.sleep(0)
            self._last = max(0.0, time.monotonic() - self._due)
            metrics.event_loop_lag_seconds.observe(self._last)
