"""The facts about Zou 1.0.97 that zou-events relies on, checked against the real Zou API.

Needs the ``zou_stack`` fixture (tests.support.zou_fixtures). Tokens never appear in
assertion messages.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import redis
import socketio

from tests.support import suite_redis
from tests.support.zou_stack import ZOU_CHANNEL, ZouStack, make_token

PERSON_CLAIMS = {"fresh", "iat", "jti", "type", "sub", "nbf", "exp", "identity_type", "refresh_jti"}
# name -> expected (role, is_bot, is a preview account)
AUTHENTICATED = {
    "admin": ("admin", False, False),
    "member": ("user", False, False),
    "outsider": ("user", False, False),
    "vendor": ("vendor", False, False),
    "client": ("client", False, False),
    "supervisor": ("supervisor", False, False),
    "preview": ("client", False, True),
    "bot": ("user", True, False),
}
# name -> (status on the internal playlist, status on the playlist shared with clients)
PLAYLIST_ACCESS = {
    "admin": (200, 200),
    "member": (200, 200),
    "supervisor": (200, 200),
    "bot": (200, 200),
    "outsider": (403, 403),
    "vendor": (403, 403),
    "client": (403, 200),
    "preview": (403, 200),
}


@pytest.fixture(scope="module")
def tokens(zou_stack: ZouStack) -> dict[str, str]:
    """One access token per seeded person (logged in like Kitsu), plus the bot's."""
    logged_in = {name: zou_stack.login(name)[0] for name in AUTHENTICATED if name != "bot"}
    return {**logged_in, "bot": zou_stack.seed.bot_token}


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.mark.parametrize("name", AUTHENTICATED)
def test_authenticated_describes_the_person(
    zou_stack: ZouStack, tokens: dict[str, str], name: str
) -> None:
    response = zou_stack.api("GET", "/auth/authenticated", tokens[name])
    assert response.status == 200
    body = response.json()
    assert body["authenticated"] is True
    assert set(body) == {"authenticated", "user", "organisation"}
    user = body["user"]
    role, is_bot, is_preview = AUTHENTICATED[name]
    expected_id = zou_stack.seed.bot_id if is_bot else zou_stack.person(name).id
    assert (user["id"], user["role"], user["active"], user["is_bot"]) == (
        expected_id,
        role,
        True,
        is_bot,
    )
    expected_preview = zou_stack.seed.project_id if is_preview else None
    assert user["preview_project_id"] == expected_preview


def test_login_sets_the_cookie_kitsu_sends(zou_stack: ZouStack) -> None:
    token, cookie = zou_stack.login("member")
    same = cookie == f"access_token_cookie={token}"
    assert same, "the access_token_cookie cookie differs from the access token"
    assert set(claims(token)) == PERSON_CLAIMS
    assert claims(token)["identity_type"] == "person"
    response = zou_stack.http.request(
        "GET", zou_stack.url + "/auth/authenticated", headers={"Cookie": cookie}
    )
    assert response.status == 200


def test_bot_token_has_no_expiry(zou_stack: ZouStack) -> None:
    bot = claims(zou_stack.seed.bot_token)
    assert bot["identity_type"] == "bot"
    assert bot["sub"] == zou_stack.seed.bot_id
    assert "exp" not in bot
    assert "refresh_jti" not in bot


def test_handmade_token_is_accepted(zou_stack: ZouStack) -> None:
    token = make_token(zou_stack.secret_key, zou_stack.person("member").id)
    assert zou_stack.api("GET", "/auth/authenticated", token).status == 200


def test_inactive_person_is_refused(zou_stack: ZouStack) -> None:
    inactive = zou_stack.person("inactive")
    login = zou_stack.api(
        "POST", "/auth/login", json={"email": inactive.email, "password": inactive.password}
    )
    assert login.status == 401
    assert login.json()["unactive"] is True
    token = make_token(zou_stack.secret_key, inactive.id)
    assert zou_stack.api("GET", "/auth/authenticated", token).status == 401


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("missing", 401),
        ("unknown person", 401),
        ("expired", 401),
        ("no identity_type", 401),
        ("bad signature", 422),
        ("refresh token", 422),
        ("garbage", 422),
    ],
)
def test_bad_tokens_status(zou_stack: ZouStack, case: str, status: int) -> None:
    """Zou answers 422, not 401, to tokens that do not decode or are of the wrong type."""
    secret, member = zou_stack.secret_key, zou_stack.person("member").id
    token = {
        "missing": None,
        "unknown person": make_token(secret, "00000000-0000-0000-0000-000000000000"),
        "expired": make_token(secret, member, lifetime=-10),
        "no identity_type": make_token(secret, member, identity_type=None),
        "bad signature": make_token("0" * 64, member),
        "refresh token": make_token(secret, member, type="refresh"),
        "garbage": "not.a.token",
    }[case]
    assert zou_stack.api("GET", "/auth/authenticated", token).status == status


@pytest.mark.parametrize("name", PLAYLIST_ACCESS)
def test_playlist_access(zou_stack: ZouStack, tokens: dict[str, str], name: str) -> None:
    seed = zou_stack.seed
    internal = zou_stack.api("GET", f"/data/playlists/{seed.playlist_id}", tokens[name])
    shared = zou_stack.api("GET", f"/data/playlists/{seed.client_playlist_id}", tokens[name])
    assert (internal.status, shared.status) == PLAYLIST_ACCESS[name]
    if internal.status == 200:
        assert internal.json()["project_id"] == seed.project_id


def test_unknown_playlist_is_not_found(zou_stack: ZouStack, tokens: dict[str, str]) -> None:
    unknown = "/data/playlists/00000000-0000-0000-0000-000000000000"
    assert zou_stack.api("GET", unknown, tokens["admin"]).status == 404


def test_logout_revokes_the_token_in_redis_db0(zou_stack: ZouStack) -> None:
    token, _cookie = zou_stack.login("supervisor")
    revoked = suite_redis.client(suite_redis.TOKENS_DB, decode_responses=True)
    with revoked:
        zou_stack.logout(token)
        for jti in (claims(token)["jti"], claims(token)["refresh_jti"]):
            assert revoked.get(jti) == "true"
            assert revoked.ttl(jti) > 0
    assert zou_stack.api("GET", "/auth/authenticated", token).status == 401


@pytest.fixture
def events_channel() -> Iterator[redis.client.PubSub]:
    client = suite_redis.client(suite_redis.EVENTS_DB)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(ZOU_CHANNEL)
    # The subscription is live once Redis confirms it.
    confirmation = pubsub.parse_response(block=True, timeout=5)
    assert confirmation is not None and confirmation[0] == b"subscribe"
    yield pubsub
    pubsub.close()
    client.close()


def next_published(pubsub: redis.client.PubSub, event: str, timeout: float) -> dict[str, Any]:
    """The next message for ``event`` on the channel (other runs may share this Redis)."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        message = pubsub.get_message(timeout=remaining)
        if message is not None:
            decoded = json.loads(message["data"])
            if decoded.get("event") == event:
                return decoded
    raise AssertionError(f"no {event} published on flask-socketio within {timeout}s")


def test_test_event_is_published_on_redis(
    zou_stack: ZouStack, events_channel: redis.client.PubSub
) -> None:
    assert zou_stack.api("GET", "/status/test-event").json() == {"success": True}
    message = next_published(events_channel, "main:test", timeout=10)
    host_id = message.pop("host_id")
    assert isinstance(host_id, str) and host_id
    assert message == {
        "method": "emit",
        "event": "main:test",
        "data": [{}],
        "binary": False,
        "namespace": "/events",
        "room": None,
        "skip_sid": None,
        "callback": None,
    }


def test_zou_event_stream_delivers_main_test(zou_stack: ZouStack) -> None:
    url = zou_stack.start_event_stream()
    _token, cookie = zou_stack.login("member")
    received: list[Any] = []
    delivered = threading.Event()
    client = socketio.Client(reconnection=False)

    @client.on("main:test", namespace="/events")
    def on_test(data: Any) -> None:
        received.append(data)
        delivered.set()

    # As Kitsu does: the access cookie on the handshake request.
    client.connect(url, headers={"Cookie": cookie}, namespaces=["/events"], wait_timeout=10)
    try:
        assert zou_stack.api("GET", "/status/test-event").status == 200
        assert delivered.wait(10), "main:test not delivered by Zou's event stream"
        assert received[0] == {}
    finally:
        client.disconnect()


def test_zou_event_stream_serves_the_api_index(zou_stack: ZouStack) -> None:
    """Zou's stream answers ``GET /`` with the API's index (healthchecks rely on it)."""
    response = zou_stack.http.request("GET", zou_stack.start_event_stream() + "/")
    assert response.status == 200
    assert response.json() == {"api": "Zou", "version": "1.0.97"}
