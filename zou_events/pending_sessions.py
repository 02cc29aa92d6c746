"""Engine.IO sessions that have not joined a namespace yet: closed unless they do in time.

A handshake needs no token (Kitsu authenticates in the Socket.IO CONNECT it sends right
after), so a session that never sends one would hold its place forever. Each gets
ZOU_EVENTS_CONNECT_TIMEOUT to have a CONNECT to "/" or "/events" accepted; one greenlet
sweeps the late ones. Meanwhile they do not count against ZOU_EVENTS_MAX_SOCKETS. The
timeout is long (a busy browser can send its CONNECT seconds after the handshake), so the
new-session rate times the timeout is no bound worth having (20,000 sessions, about 140 MB,
from a client with no token). At MAX_PENDING (``full``) new handshakes wait their turn
(admission's ``unjoined``), and the sweep closes the oldest early, but only those past half
the timeout: a CONNECT that late is a client that sends none (a flood of handshakes with no
token, which then cannot keep real users out), while a storm's slow client, whose CONNECTs
come a few seconds behind, is held back instead of having its sessions closed under it
(closing the oldest at once cost a 10,000-tab storm 6,000 retries and half its time).

A session whose handshake carried a token that passes the local checks (Kitsu's cookie) is
a person's, whose client may be slow (one load client driving a 10,000-tab storm sent
CONNECTs over 10 s behind): it has its whole timeout, is never closed early, and does not
count toward MAX_PENDING; it holds a place under ZOU_EVENTS_MAX_SOCKETS instead
(``vouched``), as the socket it is about to be.

While the worker is overloaded a CONNECT may wait its turn longer than the timeout: that
delay is the server's, not the client's, so the sweep waits too (admission refuses new
sessions meanwhile, so none pile up).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import gevent
import structlog

from zou_events import metrics
from zou_events.log_limit import log_misbehaviour

log = structlog.get_logger("zou_events.pending_sessions")

CONNECT_TIMEOUT = "connect_timeout"
CLOSES_PER_TURN = 100
# Sessions without a namespace kept at most (about 7 KiB each): a storm's, with Kitsu's
# CONNECTs up to 5 s behind their handshakes at the default new-session rate.
MAX_PENDING = 5_000
# At the bound, the sweep closes sessions past this share of the timeout early, down to
# this share of the bound: room for the handshakes waiting meanwhile.
EARLY_CLOSE_AGE = 0.5
EARLY_CLOSE_DOWN_TO = 0.9


class PendingSessions:
    def __init__(
        self,
        timeout: float,
        close: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.timeout = timeout
        self.max_pending = max_pending
        self.sweep_interval = min(1.0, timeout / 5)
        self._close = close
        self._clock = clock
        # Insertion order is deadline order, as every session gets the same timeout.
        self._deadlines: dict[str, float] = {}
        self._vouched: set[str] = set()  # sessions whose handshake carried a valid token
        # CONNECTs being handled: authentication may wait on Zou's API, not to be cut short.
        self._connecting: Counter[str] = Counter()
        self._sweeper: gevent.Greenlet | None = None

    def __len__(self) -> int:
        return len(self._deadlines)

    @property
    def vouched(self) -> int:
        """Sessions whose handshake carried a valid token: each holds a socket's place."""
        return len(self._vouched)

    def _unvouched(self) -> int:
        return len(self._deadlines) - len(self._vouched)

    def full(self) -> bool:
        """At the bound: new sessions must wait (admission's ``unjoined``)."""
        return self._unvouched() >= self.max_pending

    def opened(self, eio_sid: str, vouched: bool = False) -> None:
        self._deadlines[eio_sid] = self._clock() + self.timeout
        if vouched:
            self._vouched.add(eio_sid)

    def settled(self, eio_sid: str) -> None:
        """The session joined a namespace, or is gone."""
        self._deadlines.pop(eio_sid, None)
        self._vouched.discard(eio_sid)

    @contextmanager
    def connecting(self, eio_sid: str) -> Iterator[None]:
        """While a CONNECT of this session is handled, its deadline waits."""
        self._connecting[eio_sid] += 1
        try:
            yield
        finally:
            self._connecting[eio_sid] -= 1
            if self._connecting[eio_sid] <= 0:
                del self._connecting[eio_sid]

    def start(self, overloaded: Callable[[], bool]) -> None:
        if self._sweeper is None:
            self._sweeper = gevent.spawn(self._sweep_forever, overloaded)

    def _sweep_forever(self, overloaded: Callable[[], bool]) -> None:
        while True:
            gevent.sleep(self.sweep_interval)
            if not overloaded():
                self.sweep()

    def sweep(self) -> int:
        """Close the sessions past their deadline and, when ``full``, the oldest unvouched
        past ``EARLY_CLOSE_AGE`` of the timeout; how many were closed."""
        now = self._clock()
        # Deadlines before this are of sessions old enough to be closed early.
        early = now + self.timeout * (1 - EARLY_CLOSE_AGE) if self.full() else now
        excess = self._unvouched() - int(self.max_pending * EARLY_CLOSE_DOWN_TO)
        expired: list[str] = []
        for eio_sid, deadline in self._deadlines.items():
            if deadline > now:
                if deadline >= early or len(expired) >= excess:
                    break
                if eio_sid in self._vouched:  # a person's slow client: its whole timeout
                    continue
            if eio_sid not in self._connecting:
                expired.append(eio_sid)
        for count, eio_sid in enumerate(expired, 1):
            if count % CLOSES_PER_TURN == 0:
                gevent.sleep(0)  # thousands at once (after an overload) must not stall the loop
            self.settled(eio_sid)
            try:
                self._close(eio_sid)
            except Exception:  # one failed close must not keep the others open
                log.exception("cannot close a pending session", eio_sid=eio_sid)
        if expired:
            metrics.connections_refused.labels(CONNECT_TIMEOUT).inc(len(expired))
            log_misbehaviour(
                log,
                "info",
                "sessions closed: no namespace joined in time",
                reason=CONNECT_TIMEOUT,
                closed=len(expired),
                timeout_seconds=self.timeout,
            )
        return len(expired)
