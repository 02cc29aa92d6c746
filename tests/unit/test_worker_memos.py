"""What our gunicorn worker (gunicorn_worker.py) remembers instead of asking again: the
``Date`` header of the current second, a listening socket's address. The whole worker is
compared with gunicorn's own over real sockets in tests/integration/test_gunicorn_worker.py."""

from __future__ import annotations

import socket

from gunicorn.util import http_date

from zou_events.gunicorn_worker import DateOfTheSecond, ListenerName


class Formats:
    """gunicorn's http_date, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, timestamp: float | None = None) -> str:
        self.calls += 1
        return str(http_date(timestamp))


def test_the_date_is_gunicorns_and_formatted_once_a_second() -> None:
    times = iter([1_700_000_000.0, 1_700_000_000.4, 1_700_000_000.999, 1_700_000_001.0, 5.5])
    formats = Formats()
    date = DateOfTheSecond(formats, clock=lambda: next(times))

    texts = [date() for _ in range(5)]

    assert texts == [http_date(t) for t in (1_700_000_000, 1_700_000_000, 1_700_000_000.9)] + [
        http_date(1_700_000_001),
        http_date(5.5),
    ]
    assert formats.calls == 3  # three seconds
    assert date(86_400.0) == "Fri, 02 Jan 1970 00:00:00 GMT"  # a given time: gunicorn's


def test_a_listeners_address_is_read_once() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        named = ListenerName(listener)
        address = listener.getsockname()
    assert named.getsockname() == address  # kept: the socket is closed by now
