"""Zou's API client: its bounded cache, its circuit breaker, and the answers it gives the
authenticator and the room handlers, against a scripted stand-in for Zou's API
(tests/support/scripted_zou.py: the real one cannot answer 500 or 422 on demand)."""

from __future__ import annotations

import pytest

from tests.support.clock import Clock
from tests.support.scripted_zou import AUTHENTICATED, ScriptedZou, account
from tests.support.server import free_port
from zou_events import zou_api
from zou_events.zou_api import (
    STALE_ACCOUNT_SECONDS,
    Account,
    CircuitBreaker,
    TtlCache,
    ZouApi,
    ZouRejectedToken,
    ZouUnavailable,
)

CACHE_SECONDS = 60.0


@pytest.fixture
def api(zou: ScriptedZou, zou_clock: Clock) -> ZouApi:
    return ZouApi(zou.url, timeout=2.0, cache_seconds=CACHE_SECONDS)


# --- the cache ---------------------------------------------------------------------------


def test_cache_entries_expire_after_their_lifetime_or_a_shorter_max_age(zou_clock: Clock) -> None:
    cache: TtlCache[str] = TtlCache(ttl=10)
    cache.put("k", "v")
    zou_clock.advance(5)
    assert cache.get("k") == "v"
    assert cache.get("k", max_age=4) is None
    zou_clock.advance(5.1)
    assert cache.get("k") is None
    assert cache.get("k", max_age=11) == "v"  # stale answers stay readable on request


def test_a_full_cache_drops_its_oldest_entry_first(zou_clock: Clock) -> None:
    cache: TtlCache[int] = TtlCache(ttl=10, max_entries=2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 3)  # stored again: now the newest
    cache.put("c", 4)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (3, None, 4)


# --- the circuit breaker -----------------------------------------------------------------


def test_the_breaker_opens_after_consecutive_failures_only(zou_clock: Clock) -> None:
    breaker = CircuitBreaker(threshold=3, cooldown=10)
    for _ in range(2):
        breaker.record(False)
    breaker.record(True)  # a success in between: the count starts over
    for _ in range(2):
        breaker.record(False)
        assert breaker.allow()
    breaker.record(False)
    assert not breaker.allow()


def test_an_open_breaker_lets_one_trial_through_per_cooldown(zou_clock: Clock) -> None:
    breaker = CircuitBreaker(threshold=1, cooldown=10)
    breaker.record(False)
    zou_clock.advance(9.9)
    assert not breaker.allow()
    zou_clock.advance(0.1)
    assert breaker.allow()  # the trial
    assert not breaker.allow()  # only one
    breaker.record(False)  # the trial failed: closed for another cool-down
    zou_clock.advance(9.9)
    assert not breaker.allow()
    zou_clock.advance(0.1)
    assert breaker.allow()
    breaker.record(True)  # the trial succeeded: closed
    assert all(breaker.allow() for _ in range(3))


# --- accounts ----------------------------------------------------------------------------


def test_an_account_is_asked_with_the_users_token_then_cached(
    api: ZouApi, zou: ScriptedZou
) -> None:
    expected = Account(active=True, role="user", preview_project_id=None, is_bot=False)
    assert api.account("tok", "jti") == expected
    assert api.account("tok", "jti") == expected
    assert zou.asked(AUTHENTICATED) == 1
    assert zou.tokens == ["Bearer tok"]


def test_an_answer_older_than_max_age_is_asked_again(
    api: ZouApi, zou: ScriptedZou, zou_clock: Clock
) -> None:
    api.account("tok", "jti")
    zou_clock.advance(5)
    api.account("tok", "jti", max_age=10)
    assert zou.asked(AUTHENTICATED) == 1
    api.account("tok", "jti", max_age=4)
    assert zou.asked(AUTHENTICATED) == 2


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((200, account(active=False)), Account(False, "user", None, False)),
        ((200, account(preview_project_id="project")), Account(True, "user", "project", False)),
        (
            (200, {"user": {"active": "yes", "role": 7, "preview_project_id": ""}}),
            Account(False, None, None, False),
        ),
        ((200, {"user": "nobody"}), None),
        ((200, ["not", "an", "object"]), None),
        ((401, {"msg": "Unknown account"}), None),  # unknown, inactive, revoked bot alike
    ],
)
def test_zous_answer_is_read_field_by_field(
    zou_clock: Clock, answer: tuple[int, object], expected: Account | None
) -> None:
    with ScriptedZou({AUTHENTICATED: answer}) as zou:
        assert ZouApi(zou.url, 2.0, CACHE_SECONDS).account("tok", "jti") == expected


def test_a_token_zou_cannot_decode_is_told_apart(zou_clock: Clock) -> None:
    """422: Zou's SECRET_KEY is not ours."""
    answer = (422, {"msg": "Signature verification failed"})
    with ScriptedZou({AUTHENTICATED: answer}) as zou, pytest.raises(ZouRejectedToken):
        ZouApi(zou.url, 2.0, CACHE_SECONDS).account("tok", "jti")


def test_recheck_always_asks_and_refreshes_the_cache(api: ZouApi, zou: ScriptedZou) -> None:
    api.account("tok", "jti")
    zou.answers[AUTHENTICATED] = (200, account(active=False))
    assert api.recheck("tok", "jti") == Account(False, "user", None, False)
    assert api.account("tok", "jti") == Account(False, "user", None, False)
    assert zou.asked(AUTHENTICATED) == 2


def test_while_zou_fails_a_known_account_is_trusted_for_a_while_only_when_allowed(
    api: ZouApi, zou: ScriptedZou, zou_clock: Clock
) -> None:
    known = api.account("tok", "jti")
    zou.answers[AUTHENTICATED] = (502, {"msg": "bad gateway"})
    zou_clock.advance(CACHE_SECONDS + 1)  # past the cache's lifetime
    assert api.account("tok", "jti") == known
    with pytest.raises(ZouUnavailable):
        api.account("tok", "jti", fallback_to_stale=False)
    zou_clock.advance(STALE_ACCOUNT_SECONDS)
    with pytest.raises(ZouUnavailable):
        api.account("tok", "jti")
    with pytest.raises(ZouUnavailable):
        api.account("tok", "never-seen")


def test_after_repeated_failures_zou_is_not_asked_until_the_cooldown(
    api: ZouApi, zou: ScriptedZou, zou_clock: Clock
) -> None:
    zou.answers[AUTHENTICATED] = (500, {"msg": "error"})
    for attempt in range(zou_api._BREAKER_THRESHOLD):
        with pytest.raises(ZouUnavailable):
            api.account("tok", f"jti-{attempt}")
    asked = zou.asked(AUTHENTICATED)
    with pytest.raises(ZouUnavailable, match="circuit open"):
        api.account("tok", "another")
    with pytest.raises(ZouUnavailable, match="circuit open"):
        api.can_read_playlist("tok", "another", "playlist")
    assert zou.asked("/") == asked  # nothing reached Zou
    zou.answers[AUTHENTICATED] = (200, account())
    zou_clock.advance(zou_api._BREAKER_COOLDOWN)
    assert api.account("tok", "another") is not None  # the trial, which closes the circuit
    assert api.account("tok", "yet-another") is not None


def test_zou_unreachable_is_unavailable(zou_clock: Clock) -> None:
    api = ZouApi(f"http://127.0.0.1:{free_port()}", 2.0, CACHE_SECONDS)
    with pytest.raises(ZouUnavailable):
        api.account("tok", "jti")


# --- playlists ---------------------------------------------------------------------------


def test_playlist_access_is_zous_answer_cached_per_token_and_playlist(
    api: ZouApi, zou: ScriptedZou
) -> None:
    zou.answers["/data/playlists/readable"] = (200, {"id": "readable"})
    zou.answers["/data/playlists/"] = (403, {"msg": "forbidden"})
    assert api.can_read_playlist("tok", "jti", "readable")
    assert not api.can_read_playlist("tok", "jti", "secret")
    assert not api.can_read_playlist("tok", "jti", "secret")
    assert api.can_read_playlist("tok2", "jti2", "readable")
    assert zou.asked("/data/playlists/readable") == 2  # once per token
    assert zou.asked("/data/playlists/secret") == 1


def test_a_playlist_id_cannot_change_the_path_asked(api: ZouApi, zou: ScriptedZou) -> None:
    assert not api.can_read_playlist("tok", "jti", "../../auth/authenticated?x=1")
    assert zou.asked(AUTHENTICATED) == 0
    assert zou.asked("/data/playlists/..%2F..%2Fauth%2Fauthenticated%3Fx%3D1") == 1
