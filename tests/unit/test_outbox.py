"""The outbox over a real socket pair: coalesced writes, order, a full kernel buffer, limits."""

from __future__ import annotations

import socket as std_socket
from collections.abc import Iterator

import gevent
import pytest
from gevent import socket
from prometheus_client import REGISTRY

from zou_events.transport.frames import SharedFrame
from zou_events.transport.outbox import Flusher, Outbox

LIMITS = (1_000_000, 1 << 30)


class CountingKernelSocket(socket.socket._gevent_sock_class):  # type: ignore[misc,name-defined]
    """The kernel socket under gevent's wrapper, counting the send calls the outbox makes
    (it writes there directly, not through the wrapper)."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.calls = 0

    def send(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        return super().send(*args, **kwargs)


class CountingSocket(socket.socket):
    """A gevent socket whose kernel socket counts the outbox's non-blocking sends."""

    _gevent_sock_class = CountingKernelSocket

    @property
    def sends(self) -> int:
        return int(self._sock.calls)


@pytest.fixture
def pair() -> Iterator[tuple[CountingSocket, socket.socket]]:
    left, right = std_socket.socketpair()
    writer = CountingSocket(fileno=left.detach())
    reader = socket.socket(fileno=right.detach())
    yield writer, reader
    writer.close()
    reader.close()


def read_exactly(sock: socket.socket, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        assert chunk, "peer closed early"
        data += chunk
    return bytes(data)


def test_frames_of_one_turn_go_out_in_one_send_in_order(pair) -> None:
    writer, reader = pair
    outbox = Outbox(writer, *LIMITS)
    for frame in (b"one", b"two", b"three"):
        outbox.put(frame)
    assert writer.sends == 0  # nothing is written before the event loop's turn
    gevent.sleep(0)
    assert writer.sends == 1
    assert read_exactly(reader, 11) == b"onetwothree"


def test_at_once_writes_before_the_turn_ends_unless_frames_wait(pair) -> None:
    writer, reader = pair
    outbox = Outbox(writer, *LIMITS)
    outbox.put(b"first", at_once=True)
    assert writer.sends == 1  # the first clients read while the server writes the others
    outbox.put(b"second")
    outbox.put(b"third", at_once=True)  # behind a waiting frame: keeps its place
    assert writer.sends == 1
    gevent.sleep(0)
    assert writer.sends == 2
    assert read_exactly(reader, 16) == b"firstsecondthird"


def test_a_full_kernel_buffer_stalls_the_outbox_without_losing_or_reordering(pair) -> None:
    writer, reader = pair
    writer.setsockopt(std_socket.SOL_SOCKET, std_socket.SO_SNDBUF, 4096)
    outbox = Outbox(writer, *LIMITS)
    frames = [i.to_bytes(4, "big") * 2500 for i in range(400)]  # 4 MB, far over the buffers
    for frame in frames[:200]:
        outbox.put(frame)
    gevent.sleep(0)
    assert outbox.pending_bytes > 0  # the kernel took part of it: a greenlet waits for more
    for frame in frames[200:]:
        outbox.put(frame)
    expected = b"".join(frames)
    received = gevent.spawn(read_exactly, reader, len(expected)).get(timeout=30)
    assert received == expected


def test_shared_frames_count_as_written_once_the_kernel_has_them(pair) -> None:
    writer, reader = pair
    shared = SharedFrame("4hello", arrived=0.0)
    first, second = Outbox(writer, *LIMITS), Outbox(writer, *LIMITS)
    assert not first.put(shared.frame, shared)
    assert not second.put(shared.frame, shared)
    shared.remaining = 2  # as the fan-out counts the copies that wait (delivery.py)
    gevent.sleep(0)
    assert shared.remaining == 0
    assert read_exactly(reader, 2 * len(shared.frame)) == shared.frame * 2


def observed_deliveries() -> float:
    return REGISTRY.get_sample_value("zou_events_delivery_seconds_count") or 0.0


def test_the_delivery_metric_is_observed_when_the_last_copy_reaches_the_kernel(pair) -> None:
    writer, reader = pair
    shared = SharedFrame("4hello", arrived=0.0)
    at_once, coalesced = Outbox(writer, *LIMITS), Outbox(writer, *LIMITS)
    before = observed_deliveries()
    assert at_once.put(shared.frame, shared, at_once=True)  # the fan-out's to count: not here
    if not coalesced.put(shared.frame, shared):
        shared.remaining += 1  # as the fan-out counts the copies that wait (delivery.py)
    shared.handed()
    assert observed_deliveries() == before  # one copy still waits
    gevent.sleep(0)
    assert observed_deliveries() == before + 1
    assert read_exactly(reader, 2 * len(shared.frame)) == shared.frame * 2
    everywhere_at_once = SharedFrame("4again", arrived=0.0)
    assert at_once.put(everywhere_at_once.frame, everywhere_at_once, at_once=True)
    everywhere_at_once.handed()
    assert observed_deliveries() == before + 2


def test_limits_count_messages_and_bytes(pair) -> None:
    writer, _ = pair
    by_count = Outbox(writer, max_messages=3, max_bytes=1 << 20)
    by_size = Outbox(writer, max_messages=1000, max_bytes=10)
    for _ in range(2):
        by_count.put(b"x")
    by_size.put(b"123456789")
    assert not by_count.over_limit() and not by_size.over_limit()
    by_count.put(b"x")
    by_size.put(b"0")
    assert by_count.over_limit() and by_size.over_limit()


def test_closing_never_waits_for_the_client_and_drops_later_frames(pair) -> None:
    writer, _ = pair
    writer.setsockopt(std_socket.SOL_SOCKET, std_socket.SO_SNDBUF, 4096)
    outbox = Outbox(writer, *LIMITS)
    outbox.put(b"x" * 4_000_000)  # the reader never reads
    with gevent.Timeout(1):
        outbox.close()
    outbox.put(b"late")
    assert outbox.pending_bytes == 0


def test_a_broken_connection_closes_the_outbox_without_raising(pair) -> None:
    writer, reader = pair
    reader.close()
    outbox = Outbox(writer, *LIMITS)
    outbox.put(b"lost")
    gevent.sleep(0)
    assert outbox.closed
    outbox.put(b"after")
    assert outbox.pending_bytes == 0


def test_messages_are_written_at_once_only_while_they_come_one_per_turn() -> None:
    flusher = Flusher()
    assert flusher.write_at_once()  # calm: the first message of a turn
    assert not flusher.write_at_once()  # a second one in the same turn: coalesced
    gevent.sleep(0)
    assert not flusher.write_at_once()  # the last turn was a burst: keep coalescing
    gevent.sleep(0)
    assert flusher.write_at_once()  # one message in the last turn: calm again
