"""Access tokens shaped exactly like the ones Zou issues (flask-jwt-extended, HS256)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt


def make_token(secret: str, sub: str | None = None, lifetime: float = 3600, **claims: Any) -> str:
    """A Zou-like token; ``claims`` override or add claims (None removes one)."""
    now = int(time.time())
    payload: dict[str, Any] = {
        "fresh": False,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "type": "access",
        "sub": sub or str(uuid.uuid4()),
        "nbf": now,
        "exp": now + lifetime,
        "identity_type": "person",
        "refresh_jti": str(uuid.uuid4()),
    }
    payload.update(claims)
    payload = {key: value for key, value in payload.items() if value is not None}
    return jwt.encode(payload, secret, algorithm="HS256")
