"""How long a new connection may stay silent before its first request, and how many may.

gunicorn waits for every request head under its keep-alive timeout (2 s), a connection's
first one too: a client that writes its first request more than 2 s after its connection
was accepted finds it closed unanswered. A busy client does (a loaded browser, a load
client: socket.io-client reports "xhr post error" and starts over; up to 4,899 failed
POSTs in one 10,000-tab storm, benchmarks.md). nginx and Node.js give a head 60 s.

Here a new connection has ``silence_timeout`` for its first byte; from that byte on, its
head has the keep-alive timeout as before, so a head trickled in pieces gets no more time
than it did. Silent connections cost the worker a parked greenlet and a socket each, so
while more than ``crowd`` of them wait, those silent for longer than the keep-alive timeout
are closed, oldest first (each new connection closes the oldest; each silent one checks at
2 s): a flood of silent connections holds at most ``crowd`` more than it could before, and
that for no longer. A draining worker stops waiting for any.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import gevent
import structlog

from zou_events.log_limit import log_misbehaviour

log = structlog.get_logger("zou_events.first_request")

# (reason, connections) for each closing: "silent" (no byte in time), "crowded" or "draining"
Closed = Callable[[str, int], None]


def report_closed(reason: str, count: int = 1) -> None:
    """Counts and logs (rate-limited) connections closed before a whole request head, by a
    reason of ``metrics.CLOSED_BEFORE_REQUEST``."""
    from zou_events import metrics  # imported once the worker patched the standard library

    metrics.connections_closed_before_request.labels(reason).inc(count)
    log_misbehaviour(
        log, "info", "connections closed: no request in time", reason=reason, closed=count
    )


class FirstRequestWait:
    """The silent connections of one worker, oldest first."""

    def __init__(
        self,
        silence_timeout: float,
        head_timeout: float,
        crowd: int,
        closed: Closed,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._silence_timeout = silence_timeout
        self._head_timeout = head_timeout
        self._crowd = crowd
        self._closed = closed
        self._clock = clock
        # connection -> when its wait began; dicts keep insertion order: oldest first
        self._silent: dict[Any, float] = {}

    def __len__(self) -> int:
        return len(self._silent)

    def arrives(self, client: Any) -> bool:
        """Waits until ``client`` sends its first byte (True), or hangs up, stays silent
        too long or is closed to make room (False: close it without a word)."""
        started = self._clock()
        self._silent[client] = started
        if len(self._silent) > self._crowd:
            self._make_room(started - self._head_timeout)
        try:
            # First as long as a head may take; longer only while the silent are few, so that
            # a burst of silent connections is down to the crowd 2 s later even if no other
            # connection comes to make room.
            first = min(self._silence_timeout, self._head_timeout)
            arrived = _first_byte(client, first)
            if arrived is not None:
                return arrived
            if len(self._silent) > self._crowd:
                self._closed("crowded", 1)
                return False
            arrived = _first_byte(client, self._silence_timeout - first)
            if arrived is not None:
                return arrived
            self._closed("silent", 1)
            return False
        except OSError:  # reset by the client
            return False
        finally:
            self._silent.pop(client, None)

    def stop_waiting(self) -> None:
        """Closes every silent connection, and makes new ones wait only as long as a head
        may take (a draining worker's connections would otherwise hold its exit back)."""
        self._silence_timeout = min(self._silence_timeout, self._head_timeout)
        self._close_oldest(len(self._silent), "draining", float("inf"))

    def _make_room(self, silent_since: float) -> None:
        self._close_oldest(len(self._silent) - self._crowd, "crowded", silent_since)

    def _close_oldest(self, count: int, reason: str, waiting_since: float) -> None:
        """Closes up to ``count`` connections, oldest first, of those waiting since
        ``waiting_since`` or before; their own ``arrives`` then returns False."""
        closing: list[Any] = []
        for client, since in self._silent.items():
            if len(closing) >= count or since > waiting_since:
                break
            closing.append(client)
        for client in closing:
            del self._silent[client]
            with suppress(OSError):  # already gone
                client.shutdown(socket.SHUT_RDWR)  # wakes its waiting recv with b""
        if closing:
            self._closed(reason, len(closing))


def _first_byte(client: Any, seconds: float) -> bool | None:
    """True when ``client`` sent a byte within ``seconds``, False when it hung up (or was
    shut down by ``_close_oldest``), None when the time passed in silence."""
    if seconds <= 0:
        return None
    with gevent.Timeout(seconds, False):
        # MSG_PEEK leaves the byte to the request parser.
        return bool(client.recv(1, socket.MSG_PEEK))
    return None
