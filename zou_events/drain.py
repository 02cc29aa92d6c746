"""Graceful drain on SIGTERM: stop taking sockets, hand the existing ones to other instances.

Sockets are closed at the transport level (no Socket.IO DISCONNECT, no Engine.IO CLOSE), so
Kitsu's client and gazu's see "transport close" and reconnect by themselves, to another
instance behind nginx.
They are closed in small batches spread over half the graceful timeout, so that the other
instances see a ramp rather than a reconnect storm.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import gevent
import structlog

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
