"""Local token checks (auth.verify) and where a handshake's token is read from, on tokens
shaped exactly like Zou's (tests/support/tokens.py): every refusal carries Zou's reason."""

from __future__ import annotations

import time

import jwt
import pytest

from tests.support.tokens import make_token
from zou_events.auth import (
    MAX_TOKEN_LENGTH,
    MESSAGES,
    AuthRefused,
    SecretCheckedOnce,
    handshake_token,
    payload_token,
    verify,
)

KEY = "k" * 64


def refusal(token: str, now: float | None = None) -> str:
    with pytest.raises(AuthRefused) as refused:
        verify(token, KEY, "cookie", now=now)
    assert refused.value.message == MESSAGES[refused.value.reason] == str(refused.value)
    return refused.value.reason


def test_a_valid_person_token_gives_its_identity() -> None:
    token = make_token(KEY, sub="person-1", jti="jti-1", lifetime=60)
    identity = verify(token, KEY, "header")
    assert (identity.person_id, identity.jti, identity.identity_type) == (
        "person-1",
        "jti-1",
        "person",
    )
    assert identity.source == "header" and identity.token == token
    assert identity.expires_at == jwt.decode(token, KEY, algorithms=["HS256"])["exp"]
    assert not identity.is_preview_account


def test_a_bot_token_without_expiry_never_expires() -> None:
    identity = verify(make_token(KEY, identity_type="bot", exp=None), KEY, "header")
    assert identity.identity_type == "bot" and identity.expires_at is None


def test_the_identity_never_shows_its_token() -> None:
    token = make_token(KEY)
    identity = verify(token, KEY, "cookie")
    assert token not in repr(identity) and token not in str(identity)


def test_expired_tokens_are_refused_without_leeway() -> None:
    assert refusal(make_token(KEY, lifetime=-1)) == "expired"


def test_a_token_expiring_before_now_is_refused_at_now() -> None:
    """``now`` is the caller's clock: a token valid for jwt may be expired by then."""
    token = make_token(KEY, lifetime=30)
    verify(token, KEY, "cookie", now=time.time())
    assert refusal(token, now=time.time() + 31) == "expired"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (make_token("another key" * 4), "invalid_token"),
        (make_token(KEY)[:-3], "invalid_token"),  # signature cut
        ("not.a.jwt", "invalid_token"),
        ("", "invalid_token"),
        (jwt.encode({"sub": "x", "type": "access"}, None, algorithm="none"), "invalid_token"),
        (jwt.encode({"type": "access", "sub": "x"}, KEY, algorithm="HS512"), "invalid_token"),
        (make_token(KEY, type="refresh"), "refresh_token"),
        (make_token(KEY, type=None), "invalid_token"),
        (make_token(KEY, type="id"), "invalid_token"),
        (
            jwt.encode({"type": "access", "jti": "j", "identity_type": "person"}, KEY),
            "invalid_token",
        ),
        (make_token(KEY, sub=7), "invalid_token"),
        (make_token(KEY, jti=None), "revoked"),  # Zou's blocklist loader: revoked
        (make_token(KEY, jti=""), "revoked"),
        (make_token(KEY, identity_type=None), "revoked"),
        (make_token(KEY, identity_type="admin"), "revoked"),
        (make_token(KEY, requires_2fa_setup=True), "two_factor"),
        (make_token(KEY, padding="x" * MAX_TOKEN_LENGTH), "invalid_token"),  # unread
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 20 else None,
)
def test_refusals_carry_zous_reason(token: str, reason: str) -> None:
    assert refusal(token) == reason


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"HTTP_COOKIE": "a=1; access_token_cookie=tok; b=2"}, ("tok", "cookie")),
        ({"HTTP_COOKIE": 'access_token_cookie="tok"'}, ("tok", "cookie")),
        (
            {"HTTP_COOKIE": "access_token_cookie=tok", "HTTP_AUTHORIZATION": "Bearer other"},
            ("tok", "cookie"),
        ),
        ({"HTTP_AUTHORIZATION": "Bearer  tok "}, ("tok", "header")),
        # flask-jwt-extended refuses a malformed header rather than ignoring it
        ({"HTTP_AUTHORIZATION": "Basic dXNlcjpwdw=="}, ("", "header")),
        ({"HTTP_COOKIE": "access_token_cookie=; other=1"}, None),
        ({"HTTP_COOKIE": ";;==;access_token_cookie"}, None),  # malformed: no crash
        ({}, None),
    ],
)
def test_the_handshake_token_comes_from_the_cookie_then_the_header(
    environ: dict[str, str], expected: tuple[str, str] | None
) -> None:
    assert handshake_token(environ) == expected


@pytest.mark.parametrize(
    ("auth", "expected"),
    [({"token": "tok"}, "tok"), ({"token": ""}, None), ({"token": 7}, None), ("tok", None)],
)
def test_the_auth_payload_token_must_be_a_string(auth: object, expected: str | None) -> None:
    assert payload_token(auth) == expected


def test_the_secret_is_checked_once_and_a_bad_key_every_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checks: list[str | bytes] = []
    original = jwt.algorithms.HMACAlgorithm.prepare_key

    def counted(self: jwt.algorithms.HMACAlgorithm, key: str | bytes) -> bytes:
        checks.append(key)
        return original(self, key)

    # Other secrets before (other tests' servers): the latest ones are remembered.
    for other in range(10):
        key = f"{other:02d}" * 32
        verify(make_token(key), key, "cookie")
    monkeypatch.setattr(jwt.algorithms.HMACAlgorithm, "prepare_key", counted)
    secret = "s" * 64
    for person in ("person-1", "person-2", "person-3"):
        assert verify(make_token(secret, sub=person), secret, "cookie").person_id == person
    assert checks == [secret]  # PyJWT's decode goes through SecretCheckedOnce
    assert isinstance(jwt.get_algorithm_by_name("HS256"), SecretCheckedOnce)
    # An asymmetric key is no HMAC secret: refused at every decode, never remembered.
    pem = (
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"
        "-----END PUBLIC KEY-----\n"
    )
    for _ in range(2):
        with pytest.raises(jwt.InvalidKeyError):
            jwt.decode(make_token(secret), pem, algorithms=["HS256"])
    assert checks.count(pem) == 2
