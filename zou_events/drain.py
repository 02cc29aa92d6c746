"""Graceful drain on SIGTERM: stop taking sockets, hand the existing ones to other instances.

Sockets are closed at the transport level (no Socket.IO DISCONNECT, no Engine.IO CLOSE), so
Kitsu's client and gazu's see "transport close" and reconnect by themselves, to another
instance behind nginx.
They are closed in small batches spread over half the graceful timeout, so that the other
instances see a ramp rather than a reconnect storm.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import gevent
import structlog

from zou_events import metrics

if TYPE_CHECKING:
    from zou_events.bus import Subscription
    from zou_events.connections import Kicks
    from zou_events.sessions import Sessions
    from zou_events.transport.server import EventServer

log = structlog.get_logger("zou_events.drain")

BATCH_INTERVAL = 0.1
MIN_BATCH = 50


def drain_batches(count: int, graceful_timeout: float) -> tuple[int, float]:
    """(sockets per batch, seconds between batches) to close ``count`` sockets in time."""
    window = graceful_timeout / 2
    batches = max(1, int(window / BATCH_INTERVAL))
    return max(MIN_BATCH, math.ceil(count / batches)), BATCH_INTERVAL


def close_gradually(
    eio_sids: list[str], close: Callable[[str], None], graceful_timeout: float
) -> None:
    size, interval = drain_batches(len(eio_sids), graceful_timeout)
    log.info("draining sockets", sockets=len(eio_sids), batch=size, interval=interval)
    for start in range(0, len(eio_sids), size):
        if start:
            gevent.sleep(interval)
        for eio_sid in eio_sids[start : start + size]:
            try:
                close(eio_sid)
            except Exception as error:  # an already-closed socket must not stop the drain
                log.debug("socket close failed during drain", error=str(error))
    log.info("drain complete", sockets=len(eio_sids))


class Readiness:
    """Whether the instance takes new sessions: not while draining, nor while it does not
    hear the other instances and Zou's API (/ready, systemd's status, admission)."""

    def __init__(self, subscription: Subscription) -> None:
        self._subscription = subscription
        self.draining = False

    def is_ready(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining"
        if not self._subscription.subscribed:
            return False, "not subscribed to redis"
        return True, ""

    def is_draining(self) -> bool:
        return self.draining

    def refresh_gauges(self) -> None:
        metrics.ready.set(1 if self.is_ready()[0] else 0)


class Drain:
    """SIGTERM: refuse new sessions (503), close the existing ones gradually, then stop
    ``stop_first`` before anything changes (systemd's notifier: a new worker reports for
    itself) and ``stop_after`` once the sockets are gone."""

    def __init__(
        self,
        readiness: Readiness,
        server: EventServer,
        sessions: Sessions,
        kicks: Kicks,
        graceful_timeout: float,
        stop_first: Callable[[], None],
        stop_after: Sequence[Callable[[], None]],
    ) -> None:
        self._readiness = readiness
        self._server = server
        self._sessions = sessions
        self._kicks = kicks
        self._graceful_timeout = graceful_timeout
        self._stop_first = stop_first
        self._stop_after = stop_after

    def __call__(self) -> None:
        self._stop_first()
        self._readiness.draining = True
        metrics.draining.set(1)
        metrics.ready.set(0)
        eio_sids = self._server.open_session_ids()
        self._kicks.shutting_down(sid for sid, _identity in self._sessions.items())
        close_gradually(eio_sids, self._server.end_transport, self._graceful_timeout)
        for stop in self._stop_after:
            stop()
