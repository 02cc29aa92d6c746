"""Redis connections to Zou's Redis, and the choice between cluster and standalone mode."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from zou_events.config import Settings

COMMAND_TIMEOUT = 2.0  # a paused or dying Redis must not hold a handler for long
POOL_SIZE = 64  # greenlets beyond it wait for a connection instead of failing
POOL_WAIT = 5.0  # a reconnect storm keeps every connection busy for a moment


def connect(settings: Settings, db: int, *, decode: bool, for_pubsub: bool = False) -> redis.Redis:
    pool = redis.BlockingConnectionPool(
        max_connections=POOL_SIZE,
        timeout=POOL_WAIT,
        host=settings.redis.host,
        port=settings.redis.port,
        password=settings.redis.password,
        db=db,
        decode_responses=decode,
        socket_connect_timeout=COMMAND_TIMEOUT,
        # a subscription blocks on reads by design; its liveness is checked with pings
        socket_timeout=None if for_pubsub else COMMAND_TIMEOUT,
        socket_keepalive=True,
        # The subscription must see every cut itself, to report it and re-subscribe (redis-py
        # would otherwise re-subscribe silently, losing what was published meanwhile);
        # commands get one quick retry.
        retry=Retry(NoBackoff(), 0)
        if for_pubsub
        else Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
    )
    return redis.Redis(connection_pool=pool)


def ping(settings: Settings, timeout: float) -> None:
    """PING Redis on a connection of its own (no pool), failing within ``timeout``; raises
    what redis-py raises when Redis does not answer."""
    client = redis.Redis(
        host=settings.redis.host,
        port=settings.redis.port,
        password=settings.redis.password,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
    )
    try:
        client.ping()
    finally:
        client.close()


def answers(settings: Settings, timeout: float = 0.5) -> bool:
    """Whether Redis answers a PING right now."""
    try:
        ping(settings, timeout)
    except (redis.RedisError, OSError):
        return False
    return True


def resolve_mode(settings: Settings) -> str:
    """ "redis" or "standalone": auto picks Redis when configured or answering on localhost.

    A deployment that sets KV_HOST (or ZOU_EVENTS_MODE=redis) never falls back silently:
    it starts, reports not ready and keeps retrying until Redis answers.
    """
    if settings.mode != "auto":
        return settings.mode
    if settings.redis.explicit or answers(settings):
        return "redis"
    return "standalone"
