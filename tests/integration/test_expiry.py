"""Token expiry without a silent tab (issue 11): at the ``exp`` of a cookie's token the
transport ends (no Socket.IO DISCONNECT, which socket.io-client takes as final), so Kitsu's
client reconnects by itself with the cookie its browser holds then: accepted if Kitsu renewed
it, refused with Zou's message otherwise, and then it stops. A header's token, and any
revoked token, is still disconnected for good."""

from __future__ import annotations

import time
import uuid

import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ZouPublisher
from tests.support.js_client import JsClient
from tests.support.server import ServerHandle
from tests.support.tokens import make_token

LIFETIME = 8  # seconds: long enough to connect and upgrade first on a loaded machine
CUT_BOUND = 2.0  # the cut comes within this long after exp (an event-loop timer)
QUIET = 6.0  # longer than socket.io-client's reconnection delay (1 s, up to 5 s)


def cookie(token: str) -> str:
    return f"access_token_cookie={token}"


def test_a_tab_whose_cookie_was_renewed_keeps_receiving_events_after_expiry(
    server: ServerHandle, zou_publisher: ZouPublisher
) -> None:
    person = str(uuid.uuid4())
    first = make_token(server.secret_key, sub=person, lifetime=LIFETIME)
    expires_at = time.time() + LIFETIME
    with JsClient(server.url, cookie=cookie(first), reconnection=True) as tab:
        tab.wait_type("connect")
        tab.wait_type("upgrade")
        # Kitsu renews its cookie before exp; the socket still runs on the first token
        tab.send(cookie=cookie(make_token(server.secret_key, sub=person, lifetime=3600)))

        cut = tab.wait_type("disconnect", timeout=LIFETIME + 10)
        assert cut["reason"] == "transport close"  # not "io server disconnect": it comes back
        assert time.time() - expires_at < CUT_BOUND
        since = len(tab.seen)
        tab.wait_for(lambda m: m["type"] == "connect", timeout=15, since=since)

        marker = {"id": uuid.uuid4().hex}
        zou_publisher.emit("main:after-expiry", marker)
        received = tab.wait_event("main:after-expiry", timeout=10)
        assert received["args"] == [marker]
        assert not [m for m in tab.seen if m["type"] == "connect_error"]
    assert expiry_disconnects(server) >= 1


def test_a_tab_whose_cookie_was_not_renewed_is_refused_once_and_stops(
    server: ServerHandle,
) -> None:
    token = make_token(server.secret_key, lifetime=LIFETIME)
    with JsClient(server.url, cookie=cookie(token), reconnection=True) as tab:
        tab.wait_type("connect")
        assert tab.wait_type("disconnect", timeout=LIFETIME + 10)["reason"] == "transport close"
        refused = tab.wait_type("connect_error", timeout=15)
        assert refused["message"] == "Access token expired."
        opened = len([m for m in tab.seen if m["type"] == "open"])
        # Nothing to await: a reconnect loop would show within a few reconnection delays.
        time.sleep(QUIET)
        tab.drain()
        assert [m["type"] for m in tab.seen].count("connect_error") == 1
        assert len([m for m in tab.seen if m["type"] == "open"]) == opened
        assert not [m for m in tab.seen if m["type"] == "connect"][1:]


def test_a_header_token_cannot_be_renewed_so_its_socket_is_disconnected_for_good(
    server: ServerHandle,
) -> None:
    """gazu and scripts send the token in a header (or the auth payload): reconnecting would
    bring the same expired token back, and python-socketio retries a refused connection
    forever. They get the final Socket.IO DISCONNECT, as before."""
    token = make_token(server.secret_key, lifetime=LIFETIME)
    with JsClient(server.url, authorization=f"Bearer {token}", reconnection=True) as script:
        script.wait_type("connect")
        assert script.wait_type("disconnect", timeout=LIFETIME + 10)["reason"] == (
            "io server disconnect"
        )


def test_revocation_still_disconnects_for_good(
    server: ServerHandle, redis_tokens: redis.Redis
) -> None:
    jti = f"expiry-test-revoked-{uuid.uuid4()}"
    token = make_token(server.secret_key, jti=jti)
    with JsClient(server.url, cookie=cookie(token), reconnection=True) as tab:
        tab.wait_type("connect")
        redis_tokens.set(jti, "true", ex=120)
        assert tab.wait_type("disconnect", timeout=35)["reason"] == "io server disconnect"
        opened = len([m for m in tab.seen if m["type"] == "open"])
        time.sleep(QUIET)  # nothing to await: socket.io-client must not come back
        tab.drain()
        assert len([m for m in tab.seen if m["type"] == "open"]) == opened


def expiry_disconnects(server: ServerHandle) -> float:
    for family in text_string_to_metric_families(server.get_text("/metrics")):
        for sample in family.samples:
            if sample.name == "zou_events_disconnects_total" and sample.labels == {
                "namespace": "/events",
                "reason": "token_expired",
            }:
                return sample.value
    return 0.0
