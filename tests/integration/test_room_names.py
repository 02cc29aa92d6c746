"""The names of review rooms: what Redis holds is validated like any input, names are asked of
Zou once per refresh and room, and again after Zou could not answer (against the suite's
real Redis, DB 5, a key prefix per test)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import gevent
import pytest
import redis

from tests.support import suite_redis
from zou_events.rooms.names import MemoryNamesStore, RedisNamesStore, RoomNamer
from zou_events.zou_api import MAX_NAME_CHARS, RoomNames, ZouUnavailable, clean_name

NAMES = RoomNames(playlist="Dailies 12", project="Big Buck Bunny")


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    connection = suite_redis.client(5, decode_responses=True)
    yield connection
    connection.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    value = f"zou-events-test:{uuid.uuid4().hex}:"
    yield value
    keys = list(client.scan_iter(f"{value}*"))
    if keys:
        client.delete(*keys)


def test_names_are_printable_and_bounded() -> None:
    assert clean_name("  Dailies\x00 12\n ") == "Dailies 12"
    assert clean_name("é" * 500) == "é" * MAX_NAME_CHARS
    for unusable in (None, 12, ["a"], "", " \x07 "):
        assert clean_name(unusable) is None


def test_redis_store_shares_names_and_refuses_what_is_not_names(
    client: redis.Redis, prefix: str
) -> None:
    store = RedisNamesStore(client, prefix)
    store.remember("r1", NAMES, ttl=60)
    assert RedisNamesStore(client, prefix).lookup(["r1", "unknown"]) == {"r1": NAMES}
    assert 0 < client.pttl(f"{prefix}room-names:r1") <= 60_000
    hostile = {
        "not-json": "{",
        "a-list": "[1, 2]",
        "not-text": json.dumps({"playlist": 3, "project": "P"}),
        "blank": json.dumps({"playlist": " ", "project": "P"}),
        "long": json.dumps({"playlist": "x" * 10_000, "project": "P\x1b[31m"}),
    }
    for room, raw in hostile.items():
        client.set(f"{prefix}room-names:{room}", raw)
    assert store.lookup(list(hostile)) == {
        "long": RoomNames(playlist="x" * MAX_NAME_CHARS, project="P[31m")
    }
    assert store.lookup([]) == {}


def test_memory_store_forgets_names_after_their_time() -> None:
    now = [0.0]
    store = MemoryNamesStore(clock=lambda: now[0])
    store.remember("r1", NAMES, ttl=10)
    now[0] = 9.0
    assert store.lookup(["r1"]) == {"r1": NAMES}
    now[0] = 10.5
    assert store.lookup(["r1"]) == {}


class ScriptedSource:
    """Zou's answers in order: names, or ZouUnavailable (the real API is exercised by
    tests/observability/test_obs_live_reviews.py)."""

    def __init__(self, *answers: RoomNames | Exception | None) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, str]] = []

    def room_names(self, token: str, playlist_id: str) -> RoomNames | None:
        self.asked.append((token, playlist_id))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_namer_asks_once_per_room_and_again_after_zou_failed() -> None:
    source = ScriptedSource(ZouUnavailable("timeout"), NAMES)
    store = MemoryNamesStore()
    namer = RoomNamer(source, store, refresh=600, keep=3600)
    namer.entered("r1", "token-a")
    gevent.wait(timeout=5)
    assert store.lookup(["r1"]) == {}  # Zou did not answer: the next entrant asks again
    namer.entered("r1", "token-b")
    gevent.wait(timeout=5)
    namer.entered("r1", "token-c")  # known: not asked again within the refresh period
    gevent.wait(timeout=5)
    assert source.asked == [("token-a", "r1"), ("token-b", "r1")]
    assert store.lookup(["r1"]) == {"r1": NAMES}
