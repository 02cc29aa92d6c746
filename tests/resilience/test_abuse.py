"""Abuse at the transport level (issue 7), beyond tests/integration/test_robustness.py
(oversized single message, invalid Engine.IO/Socket.IO packets, 100 KB token, non-UTF-8
cookie) and the room flood of the rooms e2e tests.

Malformed WebSocket frames get the close code of docs/architecture.md (1002 protocol error,
1007 invalid UTF-8, 1009 too big); connections that never finish their request and sessions
that are never used are reclaimed. After each, the worker is the same process, /health
answers within 1 s and Kitsu's client still connects.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import pytest
import urllib3

from tests.resilience.support import (
    emit_message,
    health_seconds,
    metric,
    raise_fd_limit,
    worker_pid,
)
from tests.support.js_client import JsClient
from tests.support.raw_eio import Polling
from tests.support.raw_websocket import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_TEXT,
    RawWebSocket,
    frame,
)
from tests.support.redis_server import RedisServer
from tests.support.server import ServerHandle, start_server, wait_until
from tests.support.tokens import make_token

MAX_PAYLOAD = 65536
HALF_OPEN = 2000
PARTIAL_REQUEST = b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@pytest.fixture(scope="module")
def abuse_redis() -> Iterator[RedisServer]:
    """The module's server's Redis (``private_redis`` is one per test)."""
    redis_server = RedisServer()
    redis_server.start()
    yield redis_server
    redis_server.remove()


@pytest.fixture(scope="module")
def server(abuse_redis: RedisServer) -> Iterator[ServerHandle]:
    env = {**abuse_redis.env, "ZOU_EVENTS_MAX_PAYLOAD_BYTES": str(MAX_PAYLOAD)}
    with start_server(env) as handle:
        yield handle


@pytest.fixture(scope="module")
def worker(server: ServerHandle) -> int:
    """The worker's pid when the module started: a crash would change it."""
    return worker_pid(server)


@pytest.fixture
def cookie(server: ServerHandle) -> str:
    return f"access_token_cookie={make_token(server.secret_key)}"


def assert_still_serving(server: ServerHandle, worker: int) -> None:
    assert worker_pid(server) == worker
    assert health_seconds(server) < 1.0
    with JsClient(server.url, auth={"token": make_token(server.secret_key)}) as client:
        client.wait_type("connect")


def connected_websocket(server: ServerHandle, cookie: str) -> RawWebSocket:
    ws = RawWebSocket(server.port, "EIO=4&transport=websocket", cookie)
    assert ws.status == 101
    assert ws.read_text().startswith("0{")
    ws.send_text("40/events,")
    assert ws.read_text().startswith("40/events,")
    return ws


FRAMES: dict[str, tuple[list[bytes], int]] = {
    "fragments_over_the_limit": (
        [frame(b"4" + b"x" * 40_000, fin=False), frame(b"x" * 40_000, OP_CONTINUATION)],
        1009,
    ),
    "announced_length_of_4_exabytes": ([frame(b"", length=2**62)], 1009),
    "non_utf8_text": ([frame(b'42/events,["x","\xff\xfe"]')], 1007),
    "non_utf8_across_fragments": (
        [frame(b'42/events,["\xe2\x82', fin=False), frame(b'"]', OP_CONTINUATION)],
        1007,
    ),
    "unmasked": ([frame(b"3", masked=False)], 1002),
    "reserved_bits": ([frame(b"3", rsv=0b100)], 1002),
    "unknown_opcode": ([frame(b"3", 0x3)], 1002),
    "fragmented_ping": ([frame(b"", OP_PING, fin=False)], 1002),
    "ping_over_125_bytes": ([frame(b"x" * 126, OP_PING)], 1002),
    "continuation_first": ([frame(b"3", OP_CONTINUATION)], 1002),
    "new_message_inside_a_fragmented_one": (
        [frame(b"4", fin=False), frame(b"2/events,", OP_TEXT)],
        1002,
    ),
    "close_with_invalid_code": ([frame(struct.pack("!H", 999), OP_CLOSE)], 1002),
}


@pytest.mark.parametrize("case", FRAMES)
def test_malformed_frames_get_their_close_code(
    server: ServerHandle, worker: int, cookie: str, case: str
) -> None:
    frames, expected = FRAMES[case]
    with connected_websocket(server, cookie) as ws:
        for data in frames:
            ws.send(data)
        assert ws.close_code() == expected
    assert_still_serving(server, worker)


def test_unexpected_binary_frame_leaves_the_worker_serving(
    server: ServerHandle, worker: int, cookie: str
) -> None:
    """Kitsu never sends binary frames; one out of the blue must not hurt the worker."""
    with connected_websocket(server, cookie) as ws:
        ws.send(frame(b"\x04\xff\x00garbage", OP_BINARY))
        ws.send(frame(b"3"))
    assert_still_serving(server, worker)


@pytest.mark.parametrize("how", ["close_frame_after_probe", "tcp_close_after_probe", "tcp_close"])
def test_websocket_closed_mid_upgrade_leaves_the_polling_session_working(
    server: ServerHandle, worker: int, abuse_redis: RedisServer, cookie: str, how: str
) -> None:
    polling = Polling(server.url, {"Cookie": cookie})
    assert polling.post("40/events,") == 200
    assert polling.get()[0].startswith("40/events,")
    ws = RawWebSocket(server.port, f"EIO=4&transport=websocket&sid={polling.sid}", cookie)
    assert ws.status == 101
    if how != "tcp_close":
        ws.send_text("2probe")
        assert ws.read_text() == "3probe"
    if how == "close_frame_after_probe":  # instead of the upgrade packet "5"
        ws.send(frame(struct.pack("!H", 1000), OP_CLOSE))
        assert ws.close_code() == 1000
    ws.close()

    event = f"still-polling:{how}"
    abuse_redis.client(db=2).publish(server.channel, emit_message(event, {}))
    received: list[str] = []
    deadline = time.monotonic() + 10
    while not any(event in packet for packet in received) and time.monotonic() < deadline:
        received += polling.get(timeout=5)  # a noop may come first
    assert any(event in packet for packet in received), received
    assert_still_serving(server, worker)


def closed_by_server(conn: socket.socket) -> bool:
    """For a non-blocking connection: has the server closed it?"""
    try:
        return conn.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def half_open(server: ServerHandle, request: bytes) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    conn.sendall(request)
    conn.setblocking(False)
    return conn


def test_half_open_connections_are_reclaimed_while_serving(
    server: ServerHandle, worker: int
) -> None:
    """Connections that send part of a request and stop: gunicorn's keep-alive timeout (2 s)
    bounds a head from its first byte, so they cost nothing after that."""
    raise_fd_limit(2 * HALF_OPEN + 1024)
    connections: list[socket.socket] = []
    try:
        for _ in range(HALF_OPEN):
            connections.append(half_open(server, PARTIAL_REQUEST))
        opened = time.monotonic()
        assert_still_serving(server, worker)
        open_ones = set(connections)

        def all_closed() -> bool:
            open_ones.difference_update([c for c in list(open_ones) if closed_by_server(c)])
            return not open_ones

        wait_until(all_closed, 15, "the half-open connections to be closed", step=0.2)
        assert time.monotonic() - opened < 10
    finally:
        for conn in connections:
            conn.close()
    assert_still_serving(server, worker)


def test_slowloris_is_cut_despite_trickling(server: ServerHandle, worker: int) -> None:
    """A byte every 0.5 s does not keep a connection: the 2 s bound from the first byte is
    for the whole head (ZOU_EVENTS_FIRST_REQUEST_TIMEOUT is for silence only)."""
    connections = [half_open(server, PARTIAL_REQUEST[:1]) for _ in range(200)]
    open_ones = set(connections)
    started = time.monotonic()
    try:
        for sent in range(1, 20):  # 10 s of trickle at most
            open_ones.difference_update([c for c in list(open_ones) if closed_by_server(c)])
            if not open_ones:
                break
            for conn in open_ones:
                conn.send(PARTIAL_REQUEST[sent : sent + 1])
            time.sleep(0.5)  # the trickle's pace
        assert not open_ones, f"{len(open_ones)} trickling connections still open"
        assert time.monotonic() - started < 6
    finally:
        for conn in connections:
            conn.close()
    assert_still_serving(server, worker)


def test_abandoned_sessions_are_reaped_and_free_their_places(redis_env: dict[str, str]) -> None:
    """Handshakes never followed by a CONNECT hold no place under ZOU_EVENTS_MAX_SOCKETS, and
    are closed after ZOU_EVENTS_CONNECT_TIMEOUT."""
    env = {**redis_env, "ZOU_EVENTS_MAX_SOCKETS": "300", "ZOU_EVENTS_CONNECT_TIMEOUT": "1"}
    handshake = "/socket.io/?EIO=4&transport=polling"
    with start_server(env) as server:
        for _ in range(301):
            assert urllib3.request("GET", server.url + handshake, retries=False).status == 200
        wait_until(
            lambda: (
                metric(server, 'zou_events_connections_refused_total{reason="connect_timeout"}')
                == 301
            ),
            10,
            "abandoned sessions to be closed",
            step=0.5,
        )
        assert health_seconds(server) < 1.0
