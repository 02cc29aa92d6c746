"""Tokens remembered once verified (auth.VerifiedTokens): the same answers as auth.verify,
PyJWT asked once per token while it is valid, never past its expiry, within a bound."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from tests.support.tokens import make_token
from zou_events import auth
from zou_events.auth import AuthRefused, VerifiedTokens

KEY = "k" * 64


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens PyJWT was asked to check, in order (PyJWT itself answers)."""
    asked: list[str] = []
    real: Callable[..., Any] = jwt.decode

    def decode(token: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(auth.jwt, "decode", decode)
    return asked


def reason(tokens: VerifiedTokens, token: str, now: float) -> str:
    with pytest.raises(AuthRefused) as refused:
        tokens.verify(token, "cookie", now)
    return refused.value.reason


def test_a_token_is_checked_by_pyjwt_once_and_keeps_its_identity(decoded: list[str]) -> None:
    tokens = VerifiedTokens(KEY)
    token = make_token(KEY, sub="person-1", jti="jti-1")
    now = time.time()
    first = tokens.verify(token, "cookie", now)
    again = tokens.verify(token, "cookie", now + 1)
    assert again == first == auth.verify(token, KEY, "cookie", now)
    assert decoded == [token, token]  # ours once, then auth.verify's own in the assert


def test_the_source_is_the_one_it_came_from_this_time(decoded: list[str]) -> None:
    tokens = VerifiedTokens(KEY)
    token = make_token(KEY)
    now = time.time()
    assert tokens.verify(token, "cookie", now).source == "cookie"
    assert tokens.verify(token, "auth", now).source == "auth"
    assert tokens.verify(token, "cookie", now).source == "cookie"
    assert len(decoded) == 1


def test_a_remembered_token_is_refused_as_expired_at_its_exp(decoded: list[str]) -> None:
    tokens = VerifiedTokens(KEY)
    token = make_token(KEY, lifetime=60)
    exp = jwt.decode(token, KEY, algorithms=["HS256"])["exp"]
    decoded.clear()
    tokens.verify(token, "cookie", exp - 1)
    assert reason(tokens, token, exp) == "expired"
    assert len(decoded) == 1
    # forgotten once expired: asked again, PyJWT's answer (its own clock) is the same
    assert reason(tokens, token, exp + 1) == "expired"
    assert len(decoded) == 2


def test_refused_tokens_are_not_remembered(decoded: list[str]) -> None:
    tokens = VerifiedTokens(KEY)
    forged = make_token("another key" * 6)
    refresh = make_token(KEY, type="refresh")
    now = time.time()
    for _ in range(2):
        assert reason(tokens, forged, now) == "invalid_token"
        assert reason(tokens, refresh, now) == "refresh_token"
    assert decoded == [forged, refresh, forged, refresh]


@pytest.mark.parametrize("token", ["", "x" * (auth.MAX_TOKEN_LENGTH + 1), "\ud800.a.b", "é.a.b"])
def test_what_is_no_jwt_is_invalid_before_pyjwt(decoded: list[str], token: str) -> None:
    """A lone surrogate (a JSON auth payload may carry one) made PyJWT fail with an error
    that was no refusal: the client got no answer to its CONNECT."""
    assert reason(VerifiedTokens(KEY), token, time.time()) == "invalid_token"
    with pytest.raises(AuthRefused, match="Invalid access token"):
        auth.verify(token, KEY, "auth")
    assert decoded == []


def test_at_most_size_tokens_the_oldest_forgotten_first(decoded: list[str]) -> None:
    tokens = VerifiedTokens(KEY, size=2)
    first, second, third = (make_token(KEY) for _ in range(3))
    now = time.time()
    for token in (first, second, third, second, third, first):
        tokens.verify(token, "cookie", now)
    assert decoded == [first, second, third, first]
