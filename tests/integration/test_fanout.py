"""API events from Redis to Kitsu's and gazu's clients (issue 2)."""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
from typing import Any

import pytest
import redis
import socketio
import websocket

from tests.conftest import ZouPublisher, compact
from tests.support.js_client import JsClient
from tests.support.raw_eio import Polling
from tests.support.server import ServerHandle
from tests.support.tokens import make_token

PAYLOADS: list[Any] = [
    {},
    {"project_id": "fac539ee-31c4-46a4-ba3f-01899d9d7d54"},
    {"comment_id": "c1", "task_id": "t1", "person_id": "p1", "for_client": False},
    {"nested": {"list": [1, 2.5, None, True], "text": "Zoé 🎬 \u2028"}, "z": 1, "a": 2},
    {"big": "x" * 50_000},
]


def raw_emit(event: str, data: Any, **fields: Any) -> str:
    message = {
        "method": "emit",
        "event": event,
        "data": data,
        "binary": False,
        "namespace": "/events",
        "room": None,
        "skip_sid": None,
        "callback": None,
        "host_id": "test-publisher",
    }
    message.update(fields)
    return json.dumps(message)


def test_kitsu_client_receives_events_in_order_unchanged(
    server: ServerHandle, token: str, zou_publisher: ZouPublisher
) -> None:
    with JsClient(server.url, cookie=f"access_token_cookie={token}") as client:
        client.wait_type("connect")
        client.wait_type("upgrade")
        for index, payload in enumerate(PAYLOADS * 4):
            zou_publisher.emit(f"test:event-{index}", payload)
        received = [client.wait_event(f"test:event-{index}") for index in range(len(PAYLOADS) * 4)]
        events = [m["event"] for m in client.events() if m["event"].startswith("test:")]
        assert events == [f"test:event-{index}" for index in range(len(PAYLOADS) * 4)]
        for message, payload in zip(received, PAYLOADS * 4, strict=True):
            assert message["raw"] == compact([payload])


def test_events_keep_their_order_while_clients_upgrade(
    server: ServerHandle, token: str, zou_publisher: ZouPublisher
) -> None:
    """Events reach a socket through engineio's queue while it polls, straight to its outbox
    once it is on WebSocket: across the switch none is lost, repeated or reordered."""
    stop = threading.Event()

    def publish() -> None:
        n = 0
        while not stop.is_set():
            zou_publisher.emit("test:seq", {"n": n})
            n += 1
            time.sleep(0.002)  # pacing: a stream of events, not synchronisation

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    clients = [JsClient(server.url, cookie=f"access_token_cookie={token}") for _ in range(4)]
    try:
        for client in clients:
            client.wait_type("upgrade")
            upgraded_at = len(client.seen)
            client.wait_for(lambda m: m.get("event") == "test:seq", since=upgraded_at)
        stop.set()
        publisher.join()
        zou_publisher.emit("test:seq-done", {})
        for client in clients:
            client.wait_event("test:seq-done")
            numbers = [m["args"][0]["n"] for m in client.events("test:seq")]
            assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    finally:
        stop.set()
        for client in clients:
            client.close()


def test_events_reach_a_socket_still_polling(
    server: ServerHandle, token: str, zou_publisher: ZouPublisher
) -> None:
    with JsClient(server.url, auth={"token": token}, transports=["polling"]) as client:
        client.wait_type("connect")
        zou_publisher.emit("project:update", {"project_id": "p"})
        assert client.wait_event("project:update")["args"] == [{"project_id": "p"}]


def test_gazu_client_with_header_receives_events(
    server: ServerHandle, token: str, zou_publisher: ZouPublisher
) -> None:
    inbox: queue.Queue[Any] = queue.Queue()
    client = socketio.Client(reconnection=False)
    client.on("comment:new", inbox.put, namespace="/events")
    client.connect(
        server.url,
        headers={"Authorization": f"Bearer {token}", "User-Agent": "CGWire Gazu 1.1.12"},
        namespaces=["/events"],
    )
    try:
        zou_publisher.emit("comment:new", PAYLOADS[2])
        assert inbox.get(timeout=10) == PAYLOADS[2]
    finally:
        client.disconnect()


def websocket_events_client(server: ServerHandle, token: str) -> websocket.WebSocket:
    """A raw /events WebSocket authenticated as gazu is (Bearer header): its frames are
    python-socketio's, unchanged. A cookie socket's broadcasts end with connection state
    recovery's offset (tests/resilience/test_recovery.py)."""
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket",
        header=[f"Authorization: Bearer {token}"],
        timeout=10,
    )
    assert ws.recv().startswith("0{")
    ws.send("40/events,")
    assert ws.recv().startswith('40/events,{"sid":')
    return ws


def test_websocket_frame_is_socketio_wire_format(
    server: ServerHandle, token: str, redis_events: redis.Redis
) -> None:
    ws = websocket_events_client(server, token)
    try:
        redis_events.publish(server.channel, raw_emit("main:test", [{}]))
        assert ws.recv() == '42/events,["main:test",{}]'
    finally:
        ws.close()


@pytest.mark.parametrize(
    ("publisher", "fields"),
    [
        ("python-socketio 5.14.1", {"data": {"a": 1}, "binary": None}),
        ("python-socketio 5.15", {"data": {"a": 1}, "binary": False}),
        ("python-socketio 5.16+", {"data": [{"a": 1}], "binary": False}),
    ],
)
def test_every_json_era_format_is_delivered(
    server: ServerHandle,
    token: str,
    redis_events: redis.Redis,
    publisher: str,
    fields: dict[str, Any],
) -> None:
    message = json.loads(raw_emit("main:format", None))
    message.update(fields)
    if fields["binary"] is None:
        del message["binary"]  # 5.14.1 had no "binary" key
    ws = websocket_events_client(server, token)
    try:
        redis_events.publish(server.channel, json.dumps(message))
        assert ws.recv() == '42/events,["main:format",{"a":1}]', publisher
    finally:
        ws.close()


def test_binary_attachments_are_rebuilt(
    server: ServerHandle, token: str, redis_events: redis.Redis
) -> None:
    attachment = base64.b64encode(b"\x00\x01binary").decode()
    message = raw_emit(
        "file:chunk", [{"name": "a", "blob": {"_placeholder": True, "num": 0}}, attachment]
    )
    ws = websocket_events_client(server, token)
    try:
        redis_events.publish(
            server.channel,
            message.replace('"binary": false', '"binary": true'),
        )
        assert ws.recv() == (
            '451-/events,["file:chunk",{"name":"a","blob":{"_placeholder":true,"num":0}}]'
        )
        assert ws.recv() == b"\x00\x01binary"
    finally:
        ws.close()


def test_room_and_skip_sid_are_honoured(server: ServerHandle, redis_events: redis.Redis) -> None:
    token = make_token(server.secret_key)
    first, second = websocket_events_client(server, token), websocket_events_client(server, token)
    try:
        # The socket's own sid is a room, as in python-socketio.
        polling = Polling(server.url, {"Cookie": f"access_token_cookie={token}"})
        polling.post("40/events,")
        sid = json.loads(polling.get()[0][len("40/events,") :])["sid"]
        redis_events.publish(server.channel, raw_emit("only:one", [{"n": 1}], room=sid))
        redis_events.publish(server.channel, raw_emit("all:but", [{"n": 2}], skip_sid=sid))
        assert first.recv() == '42/events,["all:but",{"n":2}]'
        assert second.recv() == '42/events,["all:but",{"n":2}]'
        assert polling.get() == ['42/events,["only:one",{"n":1}]']
    finally:
        first.close()
        second.close()


MALFORMED = [
    b"not json",
    b'{"method": "emit", "event": "x", "da',
    b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94.",  # pickle protocol 4
    b"[1, 2, 3]",
    b'"just a string"',
    b'{"method": "emit", "event": 42, "data": [{}], "namespace": "/events"}',
    b'{"method": "emit", "event": "x", "data": [{}], "namespace": "/events", "room": {"a": 1}}',
    b'{"method": "emit", "event": "x", "data": [{}], "binary": true}',
    b'{"method": "emit", "event": "x", "data": ["{}", "%%%"], "binary": true}',
    b'{"method": "drop_database"}',
    b'{"method": "emit", "event": "x", "data": [{}], "skip_sid": [1, 2]}',
    b"\xff\xfe\xfd",
]


def metric_value(server: ServerHandle, name: str, **labels: str) -> float:
    response = server.get_text("/metrics")
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in response.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    raise AssertionError(f"{prefix!r} not in /metrics")


def test_malformed_redis_messages_are_dropped_and_counted(
    server: ServerHandle, token: str, redis_events: redis.Redis
) -> None:
    before = {
        reason: metric_value(server, "zou_events_redis_messages_dropped_total", reason=reason)
        for reason in ("malformed_json", "pickle", "not_an_object", "bad_field", "unknown_method")
    }
    ws = websocket_events_client(server, token)
    try:
        for raw in MALFORMED:
            redis_events.publish(server.channel, raw)
        redis_events.publish(server.channel, raw_emit("still:alive", [{"ok": True}]))
        assert ws.recv() == '42/events,["still:alive",{"ok":true}]'
    finally:
        ws.close()
    after = {
        reason: metric_value(server, "zou_events_redis_messages_dropped_total", reason=reason)
        for reason in before
    }
    assert after["malformed_json"] - before["malformed_json"] == 3
    assert after["pickle"] - before["pickle"] == 1
    assert after["not_an_object"] - before["not_an_object"] == 2
    assert (
        after["bad_field"] - before["bad_field"] == 4
    )  # the binary one without namespace is valid
    assert after["unknown_method"] - before["unknown_method"] == 1
    assert "dropped redis message" in server.logs()


def test_unauthenticated_socket_receives_nothing_while_being_checked(
    server: ServerHandle, zou_publisher: ZouPublisher
) -> None:
    polling = Polling(server.url)
    polling.post("40/events,")
    zou_publisher.emit("main:test", {})
    assert polling.get() == [
        '44/events,{"message":"Missing access token: send the Kitsu cookie, an Authorization '
        'header, or {\\"token\\": \\"<access token>\\"} in the socket.io auth payload."}'
    ]
