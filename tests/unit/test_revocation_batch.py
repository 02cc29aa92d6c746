"""Concurrent handshakes' revocation checks share MGETs on the suite's real Redis (Zou's
revoked-token store, DB 0), so that a reconnect storm cannot run the pool dry."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import gevent
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support import suite_redis
from tests.support.server import free_port
from zou_events.revocation_batch import MAX_BATCH, RevocationBatcher, RevokedLookup


@pytest.fixture(scope="module")
def store() -> Iterator[redis.Redis]:
    with suite_redis.client(suite_redis.TOKENS_DB, decode_responses=True) as client:
        yield client


def recorded(client: redis.Redis, batches: list[list[str]]) -> RevokedLookup:
    """Zou's store read with one MGET per call, each call's jtis recorded."""

    def lookup(jtis: list[str]) -> set[str]:
        batches.append(jtis)
        return {jti for jti, value in zip(jtis, client.mget(jtis), strict=True) if value == "true"}

    return lookup


def check_all(batcher: RevocationBatcher, jtis: list[str]) -> list[bool | BaseException]:
    """Every jti checked by a greenlet of its own, all at once as in a storm."""

    def check(jti: str) -> bool | BaseException:
        try:
            return batcher.is_revoked(jti)
        except Exception as error:
            return error

    checks = [gevent.spawn(check, jti) for jti in jtis]
    gevent.joinall(checks, timeout=30)
    return [greenlet.value for greenlet in checks]


def test_a_storm_of_checks_is_answered_by_one_lookup(store: redis.Redis) -> None:
    jtis = [str(uuid.uuid4()) for _ in range(300)]
    revoked = set(jtis[::7])
    store.mset(dict.fromkeys(revoked, "true"))
    batches: list[list[str]] = []
    try:
        answers = check_all(RevocationBatcher(recorded(store, batches)), jtis)
    finally:
        store.delete(*revoked)
    assert answers == [jti in revoked for jti in jtis]
    assert batches == [jtis]


def test_a_batch_holds_at_most_max_batch_jtis_and_asks_each_once(store: redis.Redis) -> None:
    distinct = [str(uuid.uuid4()) for _ in range(MAX_BATCH + 200)]
    jtis = distinct + distinct[-10:]  # two tabs of one browser share a token
    batches: list[list[str]] = []
    answers = check_all(RevocationBatcher(recorded(store, batches)), jtis)
    assert answers == [False] * len(jtis)
    assert [len(batch) for batch in batches] == [MAX_BATCH, 200]
    assert sorted(jti for batch in batches for jti in batch) == sorted(distinct)


def test_an_unreachable_store_fails_every_waiting_check_and_the_next_ones_ask_again() -> None:
    down = redis.Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))
    batches: list[list[str]] = []
    batcher = RevocationBatcher(recorded(down, batches))
    first = check_all(batcher, ["a", "b", "c"])
    assert all(isinstance(answer, redis.ConnectionError) for answer in first)
    second = check_all(batcher, ["d"])
    assert isinstance(second[0], redis.ConnectionError)
    assert batches == [["a", "b", "c"], ["d"]]
