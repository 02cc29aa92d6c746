"""READY=1 (systemd Type=notify) only once the instance can deliver (issue 11).

The server runs as systemd runs it: ``NOTIFY_SOCKET`` names a datagram socket the test holds,
as PID 1's is. Redis is down at start: the instance must say why it is not ready and say
READY=1 only once subscribed, when /ready answers 200. (gunicorn on its own says READY=1 as
soon as it listens.) tests/deploy/test_e2e.py proves the same under a real systemd.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer
from tests.support.server import http_get, start_server


class NotifySocket:
    """What systemd listens on: one datagram per sd_notify() call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def next(self, timeout: float) -> dict[str, str]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines() if "=" in line)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    listener = NotifySocket(tmp_path / "notify")
    yield listener
    listener.close()


def test_ready_only_once_subscribed_to_redis(notify_socket: NotifySocket) -> None:
    redis = RedisServer()  # its port is free: Redis is down when the instance starts
    env = {"NOTIFY_SOCKET": str(notify_socket.path), **redis.env}
    try:
        with start_server(env, wait_ready=False) as server:
            first = notify_socket.next(timeout=20)
            assert "READY" not in first, "READY=1 while Redis is down"
            assert first["STATUS"] == "not ready: not subscribed to redis"
            status = http_get(server.url + "/ready")
            assert status is not None and status.status == 503

            redis.start()
            ready = notify_socket.next(timeout=20)
            # The moment systemd hears READY=1, the instance delivers: /ready says so.
            response = http_get(server.url + "/ready")
            assert ready == {"READY": "1", "STATUS": "ready"}
            assert response is not None and response.status == 200
    finally:
        redis.remove()


def test_standalone_is_ready_at_once(notify_socket: NotifySocket) -> None:
    env = {"NOTIFY_SOCKET": str(notify_socket.path), "ZOU_EVENTS_MODE": "standalone"}
    with start_server(env, wait_ready=False) as server:
        assert notify_socket.next(timeout=20) == {"READY": "1", "STATUS": "ready"}
        response = http_get(server.url + "/ready")
        assert response is not None and response.status == 200
