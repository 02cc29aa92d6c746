"""Engine.IO pings for every socket, from one greenlet.

python-engineio starts a greenlet per socket for each ping cycle, which sleeps through the
ping interval: at any time every socket has one, with its saved stack (about 6 KiB a socket
with 1,000 sockets, measured with tracemalloc). The interval is the same for all sockets,
so their ping times come in order: one FIFO and one greenlet do the same job.
"""

from __future__ import annotations

import functools
import time
import weakref
from collections import deque
from typing import Any

import gevent
import structlog
from engineio import packet as eio_packet
from gevent.event import Event

log = structlog.get_logger("zou_events.transport.pings")

_YIELD_EVERY = 200  # pings sent in a row before other greenlets get a turn


class Pinger:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._due: deque[tuple[float, weakref.ref[Any]]] = deque()
        self._queued = Event()
        self._greenlet: gevent.Greenlet | None = None

    def install(self, socket: Any) -> None:
        """Take over ``socket``'s pings (engineio calls ``schedule_ping`` at connect and at
        each PONG). Weak references, here and in the queue: a socket closed before its ping
        is due (a client cut for a flood, a tab closed) goes at once with its WebSocket and
        buffers, not a ping interval later (1,000 cut sockets held 64 MB)."""
        socket.schedule_ping = functools.partial(self.schedule, weakref.ref(socket))

    def schedule(self, socket_ref: weakref.ref[Any]) -> None:
        socket = socket_ref()
        # engineio's rule: a new ping only once the previous one was answered
        if socket is None or not socket.last_ping:
            return
        socket.last_ping = None
        self._due.append((time.monotonic() + self.interval, socket_ref))
        self._queued.set()
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            if not self._due:
                self._queued.clear()
                self._queued.wait()
                continue
            delay = self._due[0][0] - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)  # later entries are due later: nothing to wake up for
                continue
            sent = 0
            now = time.monotonic()
            while self._due and self._due[0][0] <= now and sent < _YIELD_EVERY:
                self._ping(self._due.popleft()[1])
                sent += 1
            gevent.sleep(0)

    @staticmethod
    def _ping(socket_ref: weakref.ref[Any]) -> None:
        # One socket's failure must not stop the others' pings: without them every client
        # would be cut at its ping timeout.
        socket = socket_ref()
        try:
            if socket is None or socket.closing or socket.closed:
                return
            socket.last_ping = time.time()  # engineio's ping timeout counts from here
            socket.send(eio_packet.Packet(eio_packet.PING))
        except Exception as error:
            log.warning("ping failed", error=type(error).__name__)
