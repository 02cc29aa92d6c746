"""The wait for a new connection's first request (first_request.py), over real socket pairs:
a late first byte is waited for, silence is cut and counted, a crowd of silent connections
sheds its oldest, and a draining worker waits for none."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import gevent
from gevent import socket

from tests.support.clock import Clock
from zou_events.first_request import FirstRequestWait

HEAD_TIMEOUT = 1.0  # gunicorn's keep-alive timeout (2 s in a server): crowding closes past it


class Waits:
    def __init__(self, silence_timeout: float = 30.0, crowd: int = 100) -> None:
        self.clock = Clock()  # for crowding decisions; the timeouts are gevent's, real
        self.closed: Counter[str] = Counter()
        self.wait = FirstRequestWait(
            silence_timeout, HEAD_TIMEOUT, crowd, self._closed, clock=self.clock.monotonic
        )
        self.pairs: list[tuple[socket.socket, socket.socket]] = []

    def _closed(self, reason: str, count: int) -> None:
        self.closed[reason] += count

    def connect(self) -> tuple[socket.socket, gevent.Greenlet]:
        """A connection (the client's end) and the greenlet waiting for its first byte."""
        server_end, client_end = socket.socketpair()
        self.pairs.append((server_end, client_end))
        waiting = gevent.spawn(self.wait.arrives, server_end)
        gevent.sleep(0)  # the greenlet registers the connection and parks on its read
        return client_end, waiting

    def close(self) -> None:
        for pair in self.pairs:
            for end in pair:
                end.close()


@contextmanager
def waits(silence_timeout: float = 30.0, crowd: int = 100) -> Iterator[Waits]:
    w = Waits(silence_timeout, crowd)
    try:
        yield w
    finally:
        w.close()


def test_a_first_byte_later_than_the_keep_alive_timeout_is_waited_for() -> None:
    """The storm's busy client: it writes its request seconds after connecting."""
    with waits() as w:
        client, waiting = w.connect()
        gevent.sleep(0.1)
        assert not waiting.ready()
        client.sendall(b"GET / HTTP/1.1\r\n")
        assert waiting.get(timeout=5) is True
        # the byte is left for the request parser
        server_end = w.pairs[0][0]
        assert server_end.recv(100) == b"GET / HTTP/1.1\r\n"
        assert len(w.wait) == 0 and not w.closed


def test_silence_past_the_timeout_is_cut_and_counted() -> None:
    with waits(silence_timeout=0.2) as w:
        started = time.monotonic()
        _client, waiting = w.connect()
        assert waiting.get(timeout=5) is False
        assert time.monotonic() - started >= 0.2
        assert w.closed == Counter(silent=1)
        assert len(w.wait) == 0


def test_a_hang_up_is_no_request_and_not_counted() -> None:
    with waits() as w:
        client, waiting = w.connect()
        client.close()
        assert waiting.get(timeout=5) is False
        assert not w.closed


def test_a_crowd_closes_its_oldest_silent_connections_first() -> None:
    with waits(crowd=3) as w:
        early = [w.connect() for _ in range(3)]
        w.clock.now += HEAD_TIMEOUT + 0.1  # the first three have been silent past 2 s
        late = [w.connect() for _ in range(2)]
        assert [waiting.get(timeout=5) for _client, waiting in early[:2]] == [False, False]
        assert w.closed == Counter(crowded=2)
        assert not early[2][1].ready() and not any(waiting.ready() for _c, waiting in late)
        assert len(w.wait) == 3
        # the survivors are served when they speak
        early[2][0].sendall(b"G")
        assert early[2][1].get(timeout=5) is True


def test_a_crowd_of_young_connections_is_left_waiting() -> None:
    """Closing only the silent-past-2-s keeps a storm's connections, which all arrive at
    once, from shedding each other."""
    with waits(crowd=2) as w:
        connected = [w.connect() for _ in range(5)]
        w.clock.now += HEAD_TIMEOUT - 0.1
        connected.append(w.connect())
        assert not any(waiting.ready() for _client, waiting in connected)
        assert len(w.wait) == 6 and not w.closed


def test_a_burst_beyond_the_crowd_is_down_to_it_a_head_timeout_later() -> None:
    """With no connection coming after them to make room, the silent beyond the crowd
    close themselves, oldest first, once silent for as long as a head may take."""
    with waits(crowd=2) as w:
        started = time.monotonic()
        burst = [w.connect() for _ in range(5)]
        assert [waiting.get(timeout=5) for _client, waiting in burst[:3]] == [False] * 3
        assert time.monotonic() - started >= HEAD_TIMEOUT
        assert w.closed == Counter(crowded=3)
        assert not any(waiting.ready() for _client, waiting in burst[3:])
        assert len(w.wait) == 2


def test_a_draining_worker_closes_the_silent_and_waits_for_no_one() -> None:
    with waits(silence_timeout=30.0) as w:
        before = [w.connect() for _ in range(3)]
        w.wait.stop_waiting()
        assert [waiting.get(timeout=5) for _client, waiting in before] == [False] * 3
        assert w.closed == Counter(draining=3)
        # a connection accepted while the listener closes waits a head's time, not 30 s
        with gevent.Timeout(HEAD_TIMEOUT + 2):
            _client, waiting = w.connect()
            assert waiting.get() is False
        assert w.closed == Counter(draining=3, silent=1)
