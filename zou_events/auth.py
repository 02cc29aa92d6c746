"""Connection authentication: where the token is read from and what makes it valid.

Matches Zou 1.0.97's intent (flask-jwt-extended with Zou's configuration): the handshake's
``access_token_cookie`` cookie, else its ``Authorization: Bearer`` header; a present but
invalid cookie is not replaced by the header; when the handshake's token is missing or
invalid, the Socket.IO auth payload ``{"token": ...}`` is tried. Refusals carry Zou's
message for the cause.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import jwt
from jwt.algorithms import HMACAlgorithm

MAX_TOKEN_LENGTH = 8192  # Zou's tokens are < 1 KiB; anything far larger is refused unread
KNOWN_IDENTITY_TYPES = ("person", "bot", "person_api")
# Verified tokens remembered (VerifiedTokens): a studio's people, each with one cookie over
# all their tabs, fit many times over; about 1 KB each.
VERIFIED_TOKENS = 4096

K = TypeVar("K")
V = TypeVar("V")

MESSAGES = {
    "missing_token": (
        "Missing access token: send the Kitsu cookie, an Authorization header, or "
        '{"token": "<access token>"} in the socket.io auth payload.'
    ),
    "expired": "Access token expired.",
    "revoked": "Access token revoked.",
    "refresh_token": "A refresh token was given: send the access token.",
    "inactive": "Inactive account.",
    "two_factor": "Two-factor authentication setup is required.",
    "unknown_account": "Unknown account.",
    "invalid_token": "Invalid access token.",
    "zou_unavailable": "Authentication is unavailable, try again later.",
}


class AuthRefused(Exception):
    """A refused token; ``reason`` is a metrics label, ``message`` what the client is told."""

    def __init__(self, reason: str) -> None:
        super().__init__(MESSAGES[reason])
        self.reason = reason
        self.message = MESSAGES[reason]


@dataclass(frozen=True)
class Identity:
    person_id: str
    jti: str
    identity_type: str
    expires_at: float | None  # None: a bot token without expiry
    source: str  # "cookie", "header" or "auth"
    token: str
    is_preview_account: bool = False

    def __repr__(self) -> str:  # never show the token in logs or tracebacks
        return f"Identity(person_id={self.person_id!r}, identity_type={self.identity_type!r})"


def _cookie(header: str, name: str) -> str | None:
    """A cookie's value; tolerant of malformed headers (never raises)."""
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


def handshake_token(environ: dict[str, Any]) -> tuple[str, str] | None:
    """(token, source) from the handshake request: cookie first, then the header."""
    cookie = _cookie(environ.get("HTTP_COOKIE", ""), "access_token_cookie")
    if cookie:
        return cookie, "cookie"
    header = environ.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, value = header.strip().partition(" ")
        # flask-jwt-extended refuses a malformed header instead of ignoring it
        return (value.strip(), "header") if scheme == "Bearer" else ("", "header")
    return None


def _remember(kept: dict[K, V], key: K, value: V, size: int) -> None:
    """``kept[key] = value``, the oldest entry forgotten first beyond ``size``."""
    if len(kept) >= size:
        del kept[next(iter(kept))]
    kept[key] = value


class SecretCheckedOnce(HMACAlgorithm):
    """PyJWT's HS256 with each secret's checks made once: PyJWT checks the key at every
    decode (not PEM, SSH, DER, nor a JSON key), 2.5 % of a reconnect storm's CPU, for a
    secret that never changes. A key refused is checked again each time, and refused the
    same way."""

    def __init__(self) -> None:
        super().__init__(HMACAlgorithm.SHA256)
        self._prepared: dict[str | bytes, bytes] = {}

    def prepare_key(self, key: str | bytes) -> bytes:
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = super().prepare_key(key)
            _remember(self._prepared, key, prepared, 8)  # a server has one secret key
        return prepared


def _check_secrets_once() -> None:
    """PyJWT's own decode, through its public registry, with ``SecretCheckedOnce``."""
    jwt.unregister_algorithm("HS256")
    jwt.register_algorithm("HS256", SecretCheckedOnce())


_check_secrets_once()


def payload_token(auth: Any) -> str | None:
    token = auth.get("token") if isinstance(auth, dict) else None
    return token if isinstance(token, str) and token else None


def _refuse_unreadable(token: str) -> None:
    """A JWT is ASCII (base64url and dots): PyJWT would fail on a string UTF-8 cannot encode
    (a lone surrogate from a JSON auth payload) with an error that is no refusal."""
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise AuthRefused("invalid_token")


def verify(token: str, secret_key: str, source: str, now: float | None = None) -> Identity:
    """Local checks: signature, expiry, token type, identity claims (no I/O)."""
    _refuse_unreadable(token)
    try:
        claims = jwt.decode(
            token,
            secret_key,
            algorithms=["HS256"],
            leeway=0,
            options={"verify_aud": False, "verify_iss": False},
        )
    except jwt.ExpiredSignatureError:
        raise AuthRefused("expired") from None
    except jwt.InvalidTokenError:
        raise AuthRefused("invalid_token") from None
    if now is not None and isinstance(claims.get("exp"), int | float) and claims["exp"] <= now:
        raise AuthRefused("expired")
    token_type = claims.get("type")
    if token_type == "refresh":
        raise AuthRefused("refresh_token")
    if token_type != "access":
        raise AuthRefused("invalid_token")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthRefused("invalid_token")
    jti = claims.get("jti")
    identity_type = claims.get("identity_type")
    # Zou's blocklist loader treats both as revoked
    if not isinstance(jti, str) or not jti or identity_type not in KNOWN_IDENTITY_TYPES:
        raise AuthRefused("revoked")
    if claims.get("requires_2fa_setup"):
        raise AuthRefused("two_factor")
    expires = claims.get("exp")
    return Identity(
        person_id=subject,
        jti=jti,
        identity_type=identity_type,
        expires_at=float(expires) if isinstance(expires, int | float) else None,
        source=source,
        token=token,
    )


class VerifiedTokens:
    """``verify`` for one secret key, remembering the tokens that passed, by their SHA-256.

    After a restart or a network blip every tab of a person reconnects with the same cookie,
    and PyJWT's checks (signature, claims) were 3.4 % of a reconnect storm's CPU. A token is
    remembered only once it passed every local check, and only until its ``exp``: then it is
    refused as expired, as ``verify`` would. A refused token is checked again each time it
    comes. What may change (revocation, Zou's word on the account) is not remembered here:
    the authenticator asks at every connect. At most ``size`` tokens, the oldest forgotten
    first.
    """

    def __init__(self, secret_key: str, size: int = VERIFIED_TOKENS) -> None:
        self._secret_key = secret_key
        self._size = size
        self._verified: dict[bytes, Identity] = {}

    def verify(self, token: str, source: str, now: float) -> Identity:
        _refuse_unreadable(token)
        key = hashlib.sha256(token.encode("ascii")).digest()
        known = self._verified.get(key)
        if known is None:
            known = verify(token, self._secret_key, source, now)
            _remember(self._verified, key, known, self._size)
        elif known.expires_at is not None and known.expires_at <= now:
            del self._verified[key]
            raise AuthRefused("expired")
        return known if known.source == source else replace(known, source=source)
