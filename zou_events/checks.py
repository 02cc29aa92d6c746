"""What `zou-events check` verifies, beyond "it answers": the mistakes that leave an instance
running but useless. Each failure is an exception whose type names the mistake.

- ``SecretKeyMismatch``: Zou's API refuses the signature of a token signed with our
  ``SECRET_KEY`` (every client would be refused). The token names a random person: Zou
  answers 401 (unknown person) when it accepts the signature, 422 "Signature verification
  failed" when it does not (observed on Zou 1.0.97, tests/compat/test_check.py).
- ``ClockSkew``: Zou finds that token expired or not yet valid although it is valid for a
  minute either side of this host's clock: token expiry would be judged wrongly.
- ``ZouTooOld``: Zou before 0.20.77 publishes its events pickled; nothing would be delivered.
- ``NotZouApi``: the URL answers, but not as Zou's API does.
- ``PubSubNotDelivered``: Redis accepts a subscription, but a message published on it does
  not come back (a proxy or load balancer in front of several Redis servers, for example).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import jwt
import urllib3

from zou_events import redis_link
from zou_events.config import KV_EVENTS_DB_INDEX, Settings

FIRST_JSON_ZOU = (0, 20, 77)  # python-socketio 5.14.1: JSON instead of pickle on Redis
PUBSUB_TIMEOUT = 3.0  # seconds for a published test message to come back
CLOCK_MARGIN = 60  # seconds of clock difference with Zou's host that pass unnoticed
REDIS_TIMEOUT = 2.0


class CheckFailed(Exception):
    """A mistake the check found; the subclass names it."""


class SecretKeyMismatch(CheckFailed):
    pass


class ClockSkew(CheckFailed):
    pass


class ZouTooOld(CheckFailed):
    pass


class NotZouApi(CheckFailed):
    pass


class PubSubNotDelivered(CheckFailed):
    pass


def redis_ping(settings: Settings) -> str:
    redis_link.ping(settings, REDIS_TIMEOUT)
    return settings.redis.describe()


def redis_round_trip(settings: Settings, timeout: float = PUBSUB_TIMEOUT) -> str:
    """Subscribe as the server does, publish as Zou does, and wait for the message. The
    channel is unique to this check, so that no running instance nor Zou's stream sees it."""
    channel = f"{settings.channel}:zou-events-check:{uuid.uuid4().hex}"
    probe = uuid.uuid4().hex.encode()
    subscriber = redis_link.connect(settings, KV_EVENTS_DB_INDEX, decode=False)
    publisher = redis_link.connect(settings, KV_EVENTS_DB_INDEX, decode=False)
    pubsub = subscriber.pubsub()
    started = time.monotonic()
    deadline = started + timeout
    try:
        pubsub.subscribe(channel)
        receivers = None
        while (remaining := deadline - time.monotonic()) > 0:
            message = pubsub.get_message(timeout=remaining)
            if message is None:
                continue
            if message["type"] == "subscribe":
                receivers = publisher.publish(channel, probe)
            elif message["type"] == "message" and message["data"] == probe:
                return f"a published message came back in {time.monotonic() - started:.3f} s"
    finally:
        pubsub.close()
        for client in (subscriber, publisher):
            client.connection_pool.disconnect()
    if receivers is None:
        raise PubSubNotDelivered(f"Redis did not confirm a subscription within {timeout:g} s")
    raise PubSubNotDelivered(
        f"a message published on Redis did not come back to a subscription within {timeout:g} s "
        f"(PUBLISH reached {receivers} subscriber(s)): KV_HOST must lead to the one Redis that "
        "Zou publishes on, not to a proxy over several"
    )


def _get(url: str, timeout: float, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    response = urllib3.request("GET", url, headers=headers, timeout=timeout, retries=False)
    try:
        body = json.loads(response.data)
    except ValueError:
        body = None
    return response.status, body


def _version(text: str) -> tuple[int, ...]:
    """``1.0.97`` -> (1, 0, 97); a part's leading digits only (``0.20.77rc1`` -> (0, 20, 77))."""
    parts = (re.match(r"\d*", part) for part in text.split(".")[:3])
    return tuple(int(match.group() or 0) if match else 0 for match in parts)


def zou_version(settings: Settings) -> str:
    """Zou's API answers ``{"api": "Zou", "version": ...}`` on ``/``."""
    status, body = _get(settings.zou_api_url + "/", settings.zou_api_timeout)
    if status != 200 or not isinstance(body, dict) or body.get("api") != "Zou":
        raise NotZouApi(
            f"{settings.zou_api_url}/ answered HTTP {status}, not as Zou's API: "
            "ZOU_EVENTS_ZOU_API_URL is Zou's own address (http://127.0.0.1:5000), without /api"
        )
    version = str(body.get("version", ""))
    if _version(version) < FIRST_JSON_ZOU:
        raise ZouTooOld(
            f"Zou {version} publishes its events pickled; zou-events needs Zou 0.20.77 or later"
        )
    return f"Zou {version}"


def secret_key(settings: Settings) -> str:
    """Zou's verdict on a token signed with our key, for a person that does not exist."""
    now = int(time.time())
    token = jwt.encode(
        {
            "fresh": False,
            "iat": now - CLOCK_MARGIN,
            "nbf": now - CLOCK_MARGIN,
            "exp": now + CLOCK_MARGIN,
            "jti": str(uuid.uuid4()),
            "type": "access",
            "sub": str(uuid.uuid4()),
            "identity_type": "person",
        },
        settings.secret_key,
        algorithm="HS256",
    )
    status, body = _get(
        settings.zou_api_url + "/auth/authenticated",
        settings.zou_api_timeout,
        {"Authorization": f"Bearer {token}"},
    )
    said = str((body or {}).get("msg") or (body or {}).get("message") or "")[:200]
    if status == 422 and "signature verification failed" in said.lower():
        raise SecretKeyMismatch(
            "Zou's API refuses the signature of a token signed with this SECRET_KEY: set Zou's "
            "value (every client would be refused)"
        )
    if "expired" in said.lower() or "not yet valid" in said.lower():
        raise ClockSkew(
            f"Zou's API says {said!r} of a token valid {CLOCK_MARGIN} s either side of this "
            "host's clock: synchronise the clocks (NTP) of Zou's host and this one"
        )
    if status in (200, 401):  # 401: the signature holds, the (random) person does not exist
        return "Zou's API accepts tokens signed with this SECRET_KEY"
    raise NotZouApi(f"/auth/authenticated answered HTTP {status} {said!r}")
