"""Fixtures of the resilience tests: each test gets its own Redis, so that its faults and its
load disturb nothing else (and nothing else, e.g. a benchmark on the shared Redis, reaches
its clients)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServer


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer("--enable-debug-command", "local")
    server.start()
    yield server
    server.remove()


@pytest.fixture
def redis_env(private_redis: RedisServer) -> dict[str, str]:
    """The server environment pointing at the private Redis."""
    return {"KV_HOST": "127.0.0.1", "KV_PORT": str(private_redis.port)}
