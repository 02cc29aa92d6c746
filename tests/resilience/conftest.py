"""Fixtures of the resilience tests: each test gets its own Redis (``private_redis``, from
tests/support/redis_server.py), so that its faults and its load disturb nothing else."""

from __future__ import annotations

import pytest

from tests.support.redis_server import RedisServer
from tests.support.server import isolated_env


@pytest.fixture
def redis_env(private_redis: RedisServer) -> dict[str, str]:
    """The server environment pointing at the private Redis; the test's servers share one
    channel and key prefix (a cluster)."""
    return {**private_redis.env, **isolated_env()}
