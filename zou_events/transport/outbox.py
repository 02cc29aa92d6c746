"""Write coalescing for WebSocket connections.

Every frame for a connection goes through its Outbox. While messages come one per turn of
the event loop, each is written at once (one non-blocking send per socket, so the first
clients read it while the server writes to the others). In a burst, the messages of a turn
wait, and a hub callback writes each outbox with frames waiting in one non-blocking send:
one system call per socket per turn instead of one per delivery, and no greenlet switch per
delivery. Those sends go to the kernel socket under gevent's wrapper (a non-blocking
socket: BlockingIOError when its buffer is full): with 1,000 recipients the wrapper's
Python frame was a tenth of the per-delivery cost. A connection whose kernel buffer is full
gets a greenlet that waits until it can write (through gevent's ``sendall``); meanwhile its
outbox grows, and the fan-out cuts it once it is over the send-queue limits, so a slow
reader never holds up the others.
"""

from __future__ import annotations

import contextlib
import socket

import gevent
import structlog

from zou_events.transport.frames import SharedFrame

log = structlog.get_logger("zou_events.transport.outbox")


class Outbox:
    __slots__ = (
        "_frames",
        "_raw",
        "_shared",
        "_sock",
        "_stalled",
        "closed",
        "max_bytes",
        "max_messages",
        "pending_bytes",
        "scheduled",
    )

    def __init__(self, sock: socket.socket, max_messages: int, max_bytes: int) -> None:
        self._sock = sock
        self._raw: socket.socket = getattr(sock, "_sock", sock)  # the kernel's, non-blocking
        self._frames: list[bytes] = []
        self._shared: list[SharedFrame] = []  # shared frames among _frames, for the metric
        self._stalled = False  # a greenlet is waiting for the kernel to take more
        self.closed = False
        self.scheduled = False
        self.pending_bytes = 0
        self.max_messages = max_messages
        self.max_bytes = max_bytes

    def put(self, frame: bytes, shared: SharedFrame | None = None, at_once: bool = False) -> bool:
        """Queue ``frame``; ``at_once``: write it now if nothing is waiting before it.
        Returns whether nothing of it waits here: written now, or dropped with a closed or
        failed connection. Then ``shared`` is left for the caller to count (one count per
        message, not per socket); otherwise it is counted here once written."""
        if self.closed:
            return True
        if at_once and not self._frames and not self._stalled:
            if self._write_now(frame) or self.closed:
                return True
            if shared is not None:  # its rest waits for a greenlet
                self._shared.append(shared)
            return False
        if shared is not None:
            self._shared.append(shared)
        self._frames.append(frame)
        self.pending_bytes += len(frame)
        if not self.scheduled and not self._stalled:
            self.scheduled = True
            flusher.schedule(self)
        return False

    def over_limit(self) -> bool:
        return len(self._frames) >= self.max_messages or self.pending_bytes >= self.max_bytes

    def flush(self) -> None:
        """Write what is waiting without blocking; never raises (runs in the hub)."""
        self.scheduled = False
        if self._stalled or self.closed or not self._frames:
            return
        if self._write_now(self._take()):
            self._written()

    def close(self) -> None:
        """Write what the kernel takes now, drop the rest: a closing socket never waits for
        its client."""
        self.flush()
        self._drop()

    def _write_now(self, data: bytes) -> bool:
        """One non-blocking send of ``data`` (nothing else is waiting): True when the kernel
        took all of it; otherwise the rest waits for a greenlet, or the outbox failed."""
        try:
            sent = self._raw.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._fail()
            return False
        if sent == len(data):
            return True
        self._frames.append(data[sent:])
        self.pending_bytes = len(data) - sent
        self._stalled = True
        gevent.spawn(self._write_when_possible)
        return False

    def _take(self) -> bytes:
        frames = self._frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        self._frames = []
        self.pending_bytes = 0
        return data

    def _written(self) -> None:
        shared, self._shared = self._shared, []
        for frame in shared:
            frame.written()

    def _write_when_possible(self) -> None:
        try:
            while self._frames and not self.closed:
                shared, self._shared = self._shared, []
                self._sock.sendall(self._take())  # blocks this greenlet only; socket timeout
                for frame in shared:
                    frame.written()
        except OSError:
            self._fail()
        finally:
            self._stalled = False

    def _drop(self) -> None:
        self.closed = True
        self._frames.clear()
        self._shared.clear()
        self.pending_bytes = 0

    def _fail(self) -> None:
        """The connection is broken: drop what waits, and let the reader see the end."""
        self._drop()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)


class Flusher:
    """Runs every scheduled outbox's flush once per turn of the event loop."""

    def __init__(self) -> None:
        self._due: list[Outbox] = []
        self._pending = False
        self._messages_this_turn = 0
        self._calm = True  # the last turn delivered at most one message

    def write_at_once(self) -> bool:
        """Whether the message being delivered is written at once: yes for the first of a
        turn while messages come one per turn; in a burst, coalescing them saves more."""
        self._messages_this_turn += 1
        if self._messages_this_turn > 1:
            return False
        gevent.get_hub().loop.run_callback(self._end_turn)
        return self._calm

    def _end_turn(self) -> None:
        self._calm = self._messages_this_turn == 1
        self._messages_this_turn = 0

    def schedule(self, outbox: Outbox) -> None:
        self._due.append(outbox)
        if not self._pending:
            self._pending = True
            gevent.get_hub().loop.run_callback(self._flush_due)

    def _flush_due(self) -> None:
        self._pending = False
        due, self._due = self._due, []
        for outbox in due:
            try:
                outbox.flush()
            except Exception:  # a hub callback must never raise
                log.exception("outbox flush failed")


flusher = Flusher()
