"""Fixtures shared by every tier of the suite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import socketio

from tests.support import suite_redis
from tests.support.server import ServerHandle, start_server
from tests.support.tokens import make_token

pytest_plugins = ["tests.support.zou_fixtures", "tests.support.redis_server"]


@pytest.fixture(scope="session")
def redis_events() -> redis.Redis:
    """Zou's events database on the suite's Redis (pub/sub is not scoped by database)."""
    return suite_redis.client(suite_redis.EVENTS_DB)


@pytest.fixture(scope="session")
def redis_tokens() -> redis.Redis:
    """Zou's revoked-token store on the suite's Redis."""
    return suite_redis.client(suite_redis.TOKENS_DB, decode_responses=True)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    with start_server() as handle:
        yield handle


@pytest.fixture
def token(server: ServerHandle) -> str:
    return make_token(server.secret_key)


class ZouPublisher:
    """Publishes exactly like Zou's API: python-socketio's write-only RedisManager, on
    ``channel`` (Zou's is ``flask-socketio``; each test server has its own)."""

    def __init__(self, channel: str) -> None:
        self.manager = socketio.RedisManager(
            suite_redis.url(suite_redis.EVENTS_DB), channel=channel, write_only=True
        )

    def emit(self, event: str, data: Any, room: str | None = None) -> None:
        self.manager.emit(event, data, namespace="/events", room=room)


@pytest.fixture(scope="module")
def zou_publisher(server: ServerHandle) -> ZouPublisher:
    """Publishes to the module's server."""
    return ZouPublisher(server.channel)


def compact(value: Any) -> str:
    """JSON as python-socketio writes it on the wire."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
