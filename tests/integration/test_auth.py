"""Connection authentication on /events against a real server and Redis (issue 2).

The person and account checks that need Zou's database run against the real Zou API in
tests/compat; here the Zou API check is disabled so that the local rules are isolated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import redis
import socketio

from tests.conftest import ZouPublisher
from tests.support.js_client import JsClient
from tests.support.raw_eio import Polling
from tests.support.server import ServerHandle
from tests.support.tokens import make_token

MISSING = (
    "Missing access token: send the Kitsu cookie, an Authorization header, or "
    '{"token": "<access token>"} in the socket.io auth payload.'
)


def js_connect_error(server: ServerHandle, **config: object) -> str:
    with JsClient(server.url, **config) as client:
        return client.wait_for(lambda m: m["type"] in ("connect_error", "connect"))["message"]


def test_cookie_like_kitsu_connects_and_upgrades(server: ServerHandle, token: str) -> None:
    with JsClient(server.url, cookie=f"theme=dark; access_token_cookie={token}") as client:
        assert client.wait_type("open")["transport"] == "polling"
        client.wait_type("connect")
        assert client.wait_type("upgrade")["transport"] == "websocket"


def test_authorization_header_like_gazu_connects(server: ServerHandle, token: str) -> None:
    client = socketio.Client(reconnection=False)
    try:
        client.connect(
            server.url, headers={"Authorization": f"Bearer {token}"}, namespaces=["/events"]
        )
        assert "/events" in client.connection_namespaces
    finally:
        client.disconnect()


def test_auth_payload_connects(server: ServerHandle, token: str) -> None:
    with JsClient(server.url, auth={"token": token}) as client:
        client.wait_type("connect")


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"type": "refresh"}, "A refresh token was given: send the access token."),
        ({"lifetime": -5}, "Access token expired."),
        ({"jti": None}, "Access token revoked."),
        ({"identity_type": "martian"}, "Access token revoked."),
        ({"nbf": int(time.time()) + 3600}, "Invalid access token."),
        ({"requires_2fa_setup": True}, "Two-factor authentication setup is required."),
    ],
)
def test_refused_tokens_get_zous_message(
    server: ServerHandle, claims: dict[str, object], message: str
) -> None:
    token = make_token(server.secret_key, **claims)
    assert js_connect_error(server, cookie=f"access_token_cookie={token}") == message


def test_no_credentials_refused(server: ServerHandle) -> None:
    assert js_connect_error(server) == MISSING


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "x" * 100_000])
def test_garbage_tokens_refused(server: ServerHandle, token: str) -> None:
    assert js_connect_error(server, auth={"token": token}) == "Invalid access token."


def test_wrong_key_refused(server: ServerHandle) -> None:
    token = make_token("another-secret-key-" + "0" * 40)
    assert js_connect_error(server, cookie=f"access_token_cookie={token}") == (
        "Invalid access token."
    )


def test_revoked_token_refused(server: ServerHandle, redis_tokens: redis.Redis) -> None:
    token = make_token(server.secret_key, jti="revoked-jti-for-test")
    redis_tokens.set("revoked-jti-for-test", "true", ex=60)
    assert js_connect_error(server, auth={"token": token}) == "Access token revoked."


def test_invalid_cookie_is_not_replaced_by_header(server: ServerHandle, token: str) -> None:
    """flask-jwt-extended: a present cookie decides, even when a valid header follows."""
    expired = make_token(server.secret_key, lifetime=-5)
    message = js_connect_error(
        server, cookie=f"access_token_cookie={expired}", authorization=f"Bearer {token}"
    )
    assert message == "Access token expired."


def test_auth_payload_rescues_invalid_cookie(server: ServerHandle, token: str) -> None:
    """Zou 1.0.97 falls back to the auth payload whenever the handshake check fails."""
    expired = make_token(server.secret_key, lifetime=-5)
    with JsClient(server.url, cookie=f"access_token_cookie={expired}", auth={"token": token}) as c:
        c.wait_type("connect")


def test_default_namespace_connects_and_receives_nothing(
    server: ServerHandle, token: str, zou_publisher: ZouPublisher
) -> None:
    with (
        JsClient(server.url, namespace="/") as anonymous,
        JsClient(server.url, auth={"token": token}) as member,
    ):
        anonymous.wait_type("connect")
        member.wait_type("connect")
        zou_publisher.emit("main:test", {"n": 1})
        member.wait_event("main:test")
        zou_publisher.emit("main:test", {"n": 2})
        member.wait_for(lambda m: m["type"] == "event" and m["args"] == [{"n": 2}])
        assert anonymous.events() == []


def test_unknown_namespace_refused_like_zou(server: ServerHandle) -> None:
    client = Polling(server.url)
    client.post("40/foo,")
    assert client.get() == ['44/foo,"Unable to connect"']


def test_refusal_is_a_connect_error_packet(server: ServerHandle) -> None:
    client = Polling(server.url)
    client.post("40/events,")
    assert client.get() == ['44/events,{"message":' + json.dumps(MISSING) + "}"]


@pytest.fixture
def connected(server: ServerHandle) -> Iterator[tuple[JsClient, str]]:
    token = make_token(server.secret_key)
    with JsClient(server.url, auth={"token": token}) as client:
        client.wait_type("connect")
        yield client, token


def test_socket_cut_at_token_expiry(server: ServerHandle) -> None:
    # 8 s, not 3: on a loaded machine starting the client and connecting took over 3 s, and
    # the token had expired before its connect was handled (as in test_expiry.py).
    lifetime = 8
    token = make_token(server.secret_key, lifetime=lifetime)
    expires_at = time.time() + lifetime  # its exp, not counted from the connect
    with JsClient(server.url, auth={"token": token}) as client:
        client.wait_type("connect")
        # an auth-payload token cannot be renewed: for good (a cookie's: test_expiry.py)
        disconnect = client.wait_type("disconnect", timeout=lifetime + 10)
        assert disconnect["reason"] == "io server disconnect"
        assert time.time() - expires_at < 2.0


def test_revoked_socket_cut_within_30_seconds(
    server: ServerHandle, redis_tokens: redis.Redis
) -> None:
    jti = f"live-revocation-{time.time()}"
    token = make_token(server.secret_key, jti=jti)
    with JsClient(server.url, auth={"token": token}) as client:
        client.wait_type("connect")
        redis_tokens.set(jti, "true", ex=120)
        revoked_at = time.time()
        assert client.wait_type("disconnect", timeout=35)["reason"] == "io server disconnect"
        assert time.time() - revoked_at < 30
