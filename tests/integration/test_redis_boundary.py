"""No message on Zou's channel and no client packet can silence an instance (issue 10).

A real server on a private Redis, Kitsu's socket.io-client and raw WebSocket sockets (whose
namespace sid the test knows, to aim room changes at it). Each bad message is published on
the channel, then an ordinary event: it must reach every client, the bad one must be
dropped and counted, and /ready must stay true. A review-room relay carrying NaN must not
reach the other reviewers (socket.io-client cannot parse it and disconnects).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.integration.rooms_support import metric
from tests.support.js_client import JsClient
from tests.support.raw_websocket import EventsSocket
from tests.support.redis_messages import emit, nested, room_change
from tests.support.redis_server import RedisServer
from tests.support.server import ServerHandle, start_server, wait_until
from tests.support.tokens import make_token

DROPPED = "zou_events_redis_messages_dropped_total"
EVENT_TIMEOUT = 10.0  # seconds for an event to reach a raw socket


def raw_socket(server: ServerHandle) -> EventsSocket:
    return EventsSocket(server.port, f"access_token_cookie={make_token(server.secret_key)}")


@pytest.fixture
def server(private_redis: RedisServer) -> Iterator[ServerHandle]:
    """A fresh instance per test: on code without the boundary, one message stops it."""
    with start_server(private_redis.env) as handle:
        yield handle


# (bad message built from two sockets' sids, the drop reason). Each one, on code without
# the boundary, stopped the subscriber (RecursionError, ValueError from python-socketio's
# manager) or silenced sockets, or disconnected every socket.io-client.
BAD_MESSAGES: dict[str, tuple[Callable[[str, str], str], str]] = {
    "json nested past the recursion limit": (
        lambda a, b: emit("main:bad", nested(100_000)),
        "too_deep",
    ),
    "emit data nested 600 levels": (lambda a, b: emit("main:bad", f"[{nested(600)}]"), "too_deep"),
    "emit data with NaN": (lambda a, b: emit("main:bad", '[{"fps": NaN}]'), "bad_number"),
    "emit data with Infinity": (
        lambda a, b: emit("main:bad", "[[-Infinity, 1e999]]"),
        "bad_number",
    ),
    "enter_room of another socket's sid room": (
        lambda a, b: room_change("enter_room", a, b),
        "sid_room",
    ),
    "close_room of a sid room": (lambda a, b: room_change("close_room", None, a), "sid_room"),
    "close_room without a room": (lambda a, b: room_change("close_room", None, None), "no_room"),
    "leave_room without a room": (lambda a, b: room_change("leave_room", a, None), "no_room"),
}


@pytest.mark.parametrize("case", BAD_MESSAGES)
def test_a_bad_message_is_dropped_and_the_next_event_reaches_everyone(
    case: str, server: ServerHandle, private_redis: RedisServer
) -> None:
    build, reason = BAD_MESSAGES[case]
    publisher = private_redis.client(db=2)
    kitsu = JsClient(server.url, auth={"token": make_token(server.secret_key)})
    alice, bob = raw_socket(server), raw_socket(server)
    try:
        kitsu.wait_type("connect")
        before = metric(server, DROPPED, reason=reason)
        assert publisher.publish(server.channel, build(alice.sid, bob.sid)) == 1
        publisher.publish(server.channel, emit("main:after", '[{"ok": true}]'))
        assert alice.next_event("main:after", EVENT_TIMEOUT) == [{"ok": True}]
        assert bob.next_event("main:after", EVENT_TIMEOUT) == [{"ok": True}]
        assert kitsu.wait_event("main:after")["args"] == [{"ok": True}]
        assert not [
            m
            for m in kitsu.seen
            if m["type"] in ("disconnect", "event") and m.get("event") != "main:after"
        ], kitsu.seen
        wait_until(lambda: metric(server, DROPPED, reason=reason) == before + 1, 5, "the drop")
        assert server.is_ready()
        assert metric(server, "zou_events_redis_subscriber_restarts_total", reason="died") == 0
        assert '"dropped redis message"' in server.logs()
    finally:
        kitsu.close()
        alice.close()
        bob.close()


def test_a_relay_with_nan_does_not_reach_the_other_reviewers(server: ServerHandle) -> None:
    room = str(uuid.uuid4())
    opened = f'{{"playlist_id": "{room}"}}'
    reviewer = JsClient(server.url, auth={"token": make_token(server.secret_key)})
    sender = raw_socket(server)
    try:
        reviewer.wait_type("connect")
        reviewer.emit("preview-room:open-playlist", {"playlist_id": room})
        reviewer.wait_event("preview-room:room-people-updated")
        sender.send_event("preview-room:open-playlist", opened)
        sender.next_event("preview-room:room-people-updated", EVENT_TIMEOUT)
        before = metric(server, "zou_events_client_packets_dropped_total")
        for poison in ("NaN", "Infinity", "-Infinity", "1e999"):
            sender.send_event(
                "preview-room:panzoom-changed",
                f'{{"playlist_id": "{room}", "data": {{"x": {poison}, "y": 0, "zoom": 1}}}}',
            )
        sender.send_event(
            "preview-room:panzoom-changed",
            f'{{"playlist_id": "{room}", "data": {{"x": 0.5, "y": 0, "zoom": 1}}}}',
        )
        relayed = reviewer.wait_event("preview-room:panzoom-changed")
        assert relayed["args"] == [{"playlist_id": room, "data": {"x": 0.5, "y": 0, "zoom": 1}}]
        assert len(reviewer.events("preview-room:panzoom-changed")) == 1
        assert not [m for m in reviewer.seen if m["type"] == "disconnect"]
        wait_until(
            lambda: metric(server, "zou_events_client_packets_dropped_total") == before + 4,
            5,
            "the four packets dropped",
        )
    finally:
        reviewer.close()
        sender.close()


def test_a_lost_subscription_is_reported_and_restored_by_itself(
    server: ServerHandle, private_redis: RedisServer
) -> None:
    """A cut pub/sub connection is a loss, not a death: the loop itself re-subscribes (the
    watchdog has nothing to do), /ready tells the gap, the next event arrives."""
    admin = private_redis.client()
    publisher = private_redis.client(db=2)
    alice = raw_socket(server)
    try:
        reconnects = metric(server, "zou_events_redis_reconnects_total")
        assert admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 1
        wait_until(lambda: not server.is_ready(), 5, "/ready 503 during the gap")
        wait_until(server.is_ready, 15, "/ready 200 again")
        assert metric(server, "zou_events_redis_reconnects_total") > reconnects
        assert metric(server, "zou_events_redis_subscribed") == 1
        assert publisher.publish(server.channel, emit("main:after", "[1]")) == 1
        assert alice.next_event("main:after", EVENT_TIMEOUT) == [1]
        assert metric(server, "zou_events_redis_subscriber_restarts_total", reason="died") == 0
        assert metric(server, "zou_events_redis_subscriber_restarts_total", reason="stalled") == 0
    finally:
        alice.close()


def test_client_packets_nested_too_deep_or_with_nan_are_dropped(
    server: ServerHandle, private_redis: RedisServer
) -> None:
    """Engine.IO's and Socket.IO's readers alike: the packet is dropped and counted, the
    socket keeps receiving (a RecursionError used to escape Engine.IO's WebSocket reader)."""
    alice = raw_socket(server)
    try:
        before = metric(server, "zou_events_client_packets_dropped_total")
        alice.ws.send_text("4" + nested(5000))  # a message that is not Socket.IO, too deep
        alice.ws.send_text("42/events," + f'["main:x",{nested(200)}]')
        alice.ws.send_text('42/events,["main:x",{"x":NaN}]')
        wait_until(
            lambda: metric(server, "zou_events_client_packets_dropped_total") == before + 3,
            5,
            "three packets dropped",
        )
        private_redis.client(db=2).publish(server.channel, emit("main:after", "[1]"))
        assert alice.next_event("main:after", EVENT_TIMEOUT) == [1]  # the sender is still served
    finally:
        alice.close()
