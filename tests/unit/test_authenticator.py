"""Who a connecting socket is: the token's place (cookie, header, auth payload), Zou's
revoked-token store on the suite's real Redis, and Zou's word through its API (a scripted
stand-in, tests/support/scripted_zou.py: the real API cannot fail on demand)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support import suite_redis
from tests.support.clock import Clock
from tests.support.scripted_zou import AUTHENTICATED, ScriptedZou, account
from tests.support.server import free_port
from tests.support.tokens import make_token
from zou_events.auth import AuthRefused, Identity
from zou_events.authenticator import Authenticator
from zou_events.zou_api import ZouApi, ZouUnavailable

KEY = "k" * 64
BOUND = 30.0  # the revocation sweep's interval
CACHE_SECONDS = 300.0


@pytest.fixture(scope="module")
def store() -> Iterator[redis.Redis]:
    """Zou's revoked-token store: ``<jti>`` = "true" in DB 0 (jtis unique to each test)."""
    with suite_redis.client(suite_redis.TOKENS_DB, decode_responses=True) as client:
        yield client


def is_revoked_in(client: redis.Redis) -> Any:
    return lambda jti: client.get(jti) == "true"


def down_store() -> redis.Redis:
    """A client of a Redis that is not there (no retries: the refusal is the answer)."""
    return redis.Redis(host="127.0.0.1", port=free_port(), retry=Retry(NoBackoff(), 0))


def with_zou(zou: ScriptedZou, store: redis.Redis | None) -> Authenticator:
    api = ZouApi(zou.url, timeout=2.0, cache_seconds=CACHE_SECONDS)
    return Authenticator(KEY, is_revoked_in(store) if store else None, api, BOUND)


def cookie(token: str) -> dict[str, str]:
    return {"HTTP_COOKIE": f"access_token_cookie={token}"}


def refused(authenticator: Authenticator, environ: dict[str, str], auth: Any = None) -> str:
    with pytest.raises(AuthRefused) as refusal:
        authenticator.authenticate(environ, auth)
    return refusal.value.reason


# --- where the token comes from ----------------------------------------------------------


def test_no_token_anywhere_is_refused_as_missing(store: redis.Redis) -> None:
    authenticator = Authenticator(KEY, is_revoked_in(store), None, BOUND)
    assert refused(authenticator, {}, None) == "missing_token"
    assert refused(authenticator, {}, {"token": ""}) == "missing_token"


def test_the_handshake_token_comes_first_then_the_auth_payload(store: redis.Redis) -> None:
    authenticator = Authenticator(KEY, is_revoked_in(store), None, BOUND)
    good, bad = make_token(KEY, sub="p"), make_token(KEY, lifetime=-5)
    identity = authenticator.authenticate(cookie(good), {"token": bad})
    assert (identity.person_id, identity.source) == ("p", "cookie")
    # an invalid cookie is not replaced by the header, but the auth payload is tried
    environ = {**cookie(bad), "HTTP_AUTHORIZATION": f"Bearer {good}"}
    assert refused(authenticator, environ) == "expired"
    assert authenticator.authenticate(environ, {"token": good}).source == "auth"
    assert refused(authenticator, environ, {"token": "garbage"}) == "invalid_token"


def test_a_handshake_vouches_for_its_session_only_with_a_token_that_passes() -> None:
    """What pending_sessions trusts to hold a slow client's session its whole timeout: a
    token in the cookie or the header that passes the local checks; nothing else."""
    authenticator = Authenticator(KEY, None, None, BOUND)
    good = make_token(KEY)
    assert authenticator.vouches(cookie(good))
    assert authenticator.vouches({"HTTP_AUTHORIZATION": f"Bearer {good}"})
    for environ in (
        {},
        cookie(make_token(KEY, lifetime=-5)),  # expired
        cookie(make_token("x" * 64)),  # another key
        cookie(make_token(KEY, type="refresh")),
        cookie("garbage"),
        {"HTTP_AUTHORIZATION": f"Basic {good}"},
    ):
        assert not authenticator.vouches(environ), environ


# --- Zou's revoked-token store -----------------------------------------------------------


def test_a_person_token_revoked_in_zous_store_is_refused(store: redis.Redis) -> None:
    authenticator = Authenticator(KEY, is_revoked_in(store), None, BOUND)
    jti = f"unit-{uuid.uuid4()}"
    token = make_token(KEY, jti=jti)
    assert authenticator.authenticate(cookie(token), None).jti == jti
    store.set(jti, "true", ex=60)
    assert refused(authenticator, cookie(token)) == "revoked"


def test_without_store_nor_zou_nobody_can_tell_a_person_token_is_revoked() -> None:
    authenticator = Authenticator(KEY, is_revoked_in(down_store()), None, BOUND)
    assert refused(authenticator, cookie(make_token(KEY))) == "zou_unavailable"


def test_bot_tokens_are_not_read_from_the_store(store: redis.Redis) -> None:
    """Zou revokes bot tokens in its database: without Zou's API, the local checks decide."""
    jti = f"unit-{uuid.uuid4()}"
    store.set(jti, "true", ex=60)
    authenticator = Authenticator(KEY, is_revoked_in(store), None, BOUND)
    bot = make_token(KEY, jti=jti, identity_type="bot", exp=None)
    assert authenticator.authenticate({"HTTP_AUTHORIZATION": f"Bearer {bot}"}, None).jti == jti


# --- Zou's word --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ((200, account(active=False)), "inactive"),
        ((401, {"msg": "Unknown account"}), "unknown_account"),
        ((422, {"msg": "Signature verification failed"}), "invalid_token"),
        ((500, {"msg": "error"}), "zou_unavailable"),
    ],
)
def test_zous_refusals(
    zou: ScriptedZou, store: redis.Redis, answer: tuple[int, Any], reason: str
) -> None:
    zou.answers[AUTHENTICATED] = answer
    assert refused(with_zou(zou, store), cookie(make_token(KEY))) == reason


def test_a_preview_account_is_known_as_such(zou: ScriptedZou, store: redis.Redis) -> None:
    zou.answers[AUTHENTICATED] = (200, account(preview_project_id="project"))
    assert with_zou(zou, store).authenticate(cookie(make_token(KEY)), None).is_preview_account


def test_with_the_store_read_zous_cached_answer_is_trusted_while_zou_is_down(
    zou: ScriptedZou, store: redis.Redis, zou_clock: Clock
) -> None:
    authenticator = with_zou(zou, store)
    token = make_token(KEY)
    authenticator.authenticate(cookie(token), None)
    zou.answers[AUTHENTICATED] = (503, {"msg": "down"})
    zou_clock.advance(CACHE_SECONDS + 1)
    assert authenticator.authenticate(cookie(token), None).jti
    assert zou.asked(AUTHENTICATED) == 2  # Zou was asked: its old answer was the fallback


def test_a_store_down_leaves_zou_to_judge_with_no_stale_answer(
    zou: ScriptedZou, zou_clock: Clock
) -> None:
    api = ZouApi(zou.url, timeout=2.0, cache_seconds=CACHE_SECONDS)
    authenticator = Authenticator(KEY, is_revoked_in(down_store()), api, BOUND)
    token = make_token(KEY)
    assert authenticator.authenticate(cookie(token), None).jti
    zou.answers[AUTHENTICATED] = (503, {"msg": "down"})
    zou_clock.advance(CACHE_SECONDS + 1)
    assert refused(authenticator, cookie(token)) == "zou_unavailable"


def test_a_bot_token_needs_an_answer_of_zou_no_older_than_the_revocation_bound(
    zou: ScriptedZou, store: redis.Redis, zou_clock: Clock
) -> None:
    authenticator = with_zou(zou, store)
    bot = {"HTTP_AUTHORIZATION": f"Bearer {make_token(KEY, identity_type='bot', exp=None)}"}
    authenticator.authenticate(bot, None)
    zou_clock.advance(BOUND - 1)
    authenticator.authenticate(bot, None)
    assert zou.asked(AUTHENTICATED) == 1
    zou_clock.advance(2)
    authenticator.authenticate(bot, None)
    assert zou.asked(AUTHENTICATED) == 2
    zou.answers[AUTHENTICATED] = (503, {"msg": "down"})
    zou_clock.advance(BOUND + 1)
    assert refused(authenticator, bot) == "zou_unavailable"  # no stale answer for a bot


# --- the sweep's question ----------------------------------------------------------------


def bot_identity() -> Identity:
    token = make_token(KEY, identity_type="bot", exp=None)
    return Authenticator(KEY, None, None, BOUND).authenticate(
        {"HTTP_AUTHORIZATION": f"Bearer {token}"}, None
    )


@pytest.mark.parametrize(
    ("answer", "valid"),
    [
        ((200, account()), True),
        ((200, account(active=False)), False),
        ((401, {"msg": "revoked"}), False),
    ],
)
def test_still_valid_is_zous_answer_now(
    zou: ScriptedZou, answer: tuple[int, Any], valid: bool
) -> None:
    authenticator = with_zou(zou, None)
    identity = bot_identity()
    authenticator.still_valid(identity)
    zou.answers[AUTHENTICATED] = answer
    assert authenticator.still_valid(identity) is valid
    assert zou.asked(AUTHENTICATED) == 2  # never the cache's answer


@pytest.mark.parametrize("status", [422, 500])
def test_still_valid_cannot_tell_when_zou_cannot(zou: ScriptedZou, status: int) -> None:
    """422 included: a SECRET_KEY changed under us must not cut every bot."""
    zou.answers[AUTHENTICATED] = (status, {"msg": "no"})
    with pytest.raises(ZouUnavailable):
        with_zou(zou, None).still_valid(bot_identity())
