"""Fixtures shared by every tier of the suite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import socketio

from tests.support.server import ServerHandle, start_server
from tests.support.tokens import make_token

pytest_plugins = ["tests.support.zou_fixtures"]

REDIS_URL = "redis://127.0.0.1:6379"


@pytest.fixture(scope="session")
def redis_events() -> redis.Redis:
    """Zou's events database (pub/sub is not scoped by database)."""
    return redis.Redis.from_url(f"{REDIS_URL}/2")


@pytest.fixture(scope="session")
def redis_tokens() -> redis.Redis:
    """Zou's revoked-token store (DB 0)."""
    return redis.Redis.from_url(f"{REDIS_URL}/0", decode_responses=True)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    with start_server() as handle:
        yield handle


@pytest.fixture
def token(server: ServerHandle) -> str:
    return make_token(server.secret_key)


class ZouPublisher:
    """Publishes exactly like Zou's API: python-socketio's write-only RedisManager."""

    def __init__(self) -> None:
        self.manager = socketio.RedisManager(
            f"{REDIS_URL}/2", channel="flask-socketio", write_only=True
        )

    def emit(self, event: str, data: Any, room: str | None = None) -> None:
        self.manager.emit(event, data, namespace="/events", room=room)


@pytest.fixture(scope="session")
def zou_publisher() -> ZouPublisher:
    return ZouPublisher()


def compact(value: Any) -> str:
    """JSON as python-socketio writes it on the wire."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
