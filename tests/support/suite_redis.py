"""The suite's Redis, named in this one place: ``ZOU_EVENTS_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379``; a database in the URL is ignored: Zou fixes its databases).

Each zou-events server the suite starts on it gets a channel and key prefix of its own
(server.py), so tests, and a benchmark beside them, never see each other's events. Tests
that inject faults into Redis start a private one instead (redis_server.py).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import redis

URL = os.environ.get("ZOU_EVENTS_TEST_REDIS_URL") or "redis://127.0.0.1:6379"
_PARTS = urlsplit(URL)
HOST = _PARTS.hostname or "127.0.0.1"
PORT = _PARTS.port or 6379
PASSWORD = _PARTS.password
EVENTS_DB = 2  # Zou's pub/sub database
TOKENS_DB = 0  # Zou's revoked-token store


def url(db: int) -> str:
    return f"{_PARTS.scheme}://{_PARTS.netloc}/{db}"


def client(db: int, *, decode_responses: bool = False) -> redis.Redis:
    return redis.Redis(
        host=HOST, port=PORT, password=PASSWORD, db=db, decode_responses=decode_responses
    )


def server_env() -> dict[str, str]:
    """The variables (Zou's names) that point a server, ours or Zou's, at this Redis."""
    env = {"KV_HOST": HOST, "KV_PORT": str(PORT)}
    if PASSWORD:
        env["KV_PASSWORD"] = PASSWORD
    return env
