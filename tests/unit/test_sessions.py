"""Authenticated sockets cut at their token's expiry (an event-loop timer each) and by the
revocation sweep, reading Zou's revoked-token store on the suite's real Redis.
(The sweep's questions to Zou's API about bot tokens: test_bot_recheck.py.)"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import gevent
import pytest
import redis
from gevent.event import Event

from tests.support import suite_redis
from zou_events import sessions as sessions_module
from zou_events.auth import Identity
from zou_events.sessions import Sessions


class Kicks:
    """The kick callback: (sid, reason) in order, and an event per kick awaited."""

    def __init__(self) -> None:
        self.done: list[tuple[str, str]] = []
        self._kicked = Event()

    def __call__(self, sid: str, identity: Identity, reason: str) -> None:
        assert identity.jti.startswith("unit-")  # the kicked socket's own
        self.done.append((sid, reason))
        self._kicked.set()

    def wait(self, timeout: float) -> bool:
        kicked = self._kicked.wait(timeout)
        self._kicked.clear()
        return kicked


@pytest.fixture(scope="module")
def store() -> Iterator[redis.Redis]:
    """Zou's revoked-token store: ``<jti>`` = "true" in DB 0 (jtis unique to each test)."""
    with suite_redis.client(suite_redis.TOKENS_DB, decode_responses=True) as client:
        yield client


def revoked_in(store: redis.Redis, batches: list[int] | None = None) -> Callable[..., set[str]]:
    """One MGET per batch of jtis, as the server reads Zou's store; ``batches`` notes sizes."""

    def revoked(jtis: list[str]) -> set[str]:
        if batches is not None:
            batches.append(len(jtis))
        return {jti for jti, value in zip(jtis, store.mget(jtis), strict=True) if value == "true"}

    return revoked


def identity(expires_at: float | None = None, kind: str = "person") -> Identity:
    return Identity(
        person_id="person",
        jti=f"unit-{uuid.uuid4()}",
        identity_type=kind,
        expires_at=expires_at,
        source="cookie",
        token="token",
    )


def test_a_socket_is_cut_when_its_token_expires() -> None:
    kicks = Kicks()
    sessions = Sessions(kicks, None, sweep_interval=60)
    # Timers count from the loop's cached clock, which a serving worker keeps fresh; the tests
    # before this one may have run without the loop for seconds.
    gevent.get_hub().loop.update_now()
    added = time.time()
    sessions.add("expiring", identity(expires_at=added + 0.3))
    sessions.add("bot", identity(kind="bot"))  # no expiry: no timer
    assert kicks.wait(5)
    assert time.time() - added >= 0.25  # not before its time (the loop's clock is cached)
    assert kicks.done == [("expiring", "token_expired")]


def test_a_token_already_expired_is_cut_at_once() -> None:
    kicks = Kicks()
    Sessions(kicks, None, sweep_interval=60).add("late", identity(expires_at=time.time() - 5))
    assert kicks.wait(1) and kicks.done == [("late", "token_expired")]


def test_a_removed_socket_is_not_cut_later() -> None:
    kicks = Kicks()
    sessions = Sessions(kicks, None, sweep_interval=60)
    gevent.get_hub().loop.update_now()  # as in test_a_socket_is_cut_when_its_token_expires
    kept = identity(expires_at=time.time() + 0.2)
    sessions.add("gone", identity(expires_at=time.time() + 0.1))
    sessions.add("kept", kept)
    assert sessions.remove("gone") is not None
    assert sessions.remove("gone") is None
    assert kicks.wait(5)  # the later timer fired: the removed one had its chance
    assert kicks.done == [("kept", "token_expired")]
    assert len(sessions) == 1 and sessions.get("kept") is kept


def test_the_sweep_cuts_the_sockets_of_revoked_person_tokens_in_batches(
    store: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sessions_module, "_SWEEP_BATCH", 2)
    kicks, batches = Kicks(), []
    sessions = Sessions(kicks, revoked_in(store, batches), sweep_interval=60)
    people = {f"s{n}": identity() for n in range(5)}
    for sid, person in people.items():
        sessions.add(sid, person)
    sessions.add("s5", people["s1"])  # a second tab of the same token
    store.set(people["s1"].jti, "true", ex=60)
    store.set(people["s4"].jti, "true", ex=60)
    store.set(people["s2"].jti, "false", ex=60)  # only "true" means revoked, as in Zou

    assert sessions.sweep() == 3
    assert sorted(kicks.done) == [
        ("s1", "token_revoked"),
        ("s4", "token_revoked"),
        ("s5", "token_revoked"),
    ]
    assert batches == [2, 2, 2]


def test_bot_tokens_are_not_swept_without_zous_api(store: redis.Redis) -> None:
    kicks = Kicks()
    sessions = Sessions(kicks, revoked_in(store), sweep_interval=60)
    bot = identity(kind="bot")
    store.set(bot.jti, "true", ex=60)
    sessions.add("bot", bot)
    assert sessions.sweep() == 0 and kicks.done == []


def test_the_sweeper_runs_every_interval_and_outlives_a_failed_sweep(store: redis.Redis) -> None:
    kicks, calls = Kicks(), []
    read = revoked_in(store)

    def flaky(jtis: list[str]) -> set[str]:
        calls.append(len(jtis))
        if len(calls) == 1:
            raise redis.ConnectionError("Redis down for one sweep")
        return read(jtis)

    sessions = Sessions(kicks, flaky, sweep_interval=0.05)
    revoked = identity()
    store.set(revoked.jti, "true", ex=60)
    sessions.add("revoked", revoked)
    sessions.start()
    try:
        assert kicks.wait(5)
        assert len(calls) >= 2 and kicks.done[0] == ("revoked", "token_revoked")
    finally:
        sessions.stop()
    sweeps = len(calls)
    gevent.sleep(0.2)  # four intervals: a stopped sweeper sweeps no more
    assert len(calls) == sweeps
