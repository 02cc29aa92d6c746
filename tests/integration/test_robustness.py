"""Redis outages and bad client input leave the worker serving (issue 2)."""

from __future__ import annotations

import pytest
import redis
import websocket

from tests.support.js_client import JsClient
from tests.support.raw_eio import Polling, raw_post, status_within
from tests.support.redis_server import RedisServer
from tests.support.server import ServerHandle, free_port, start_server, wait_until
from tests.support.tokens import make_token


def test_redis_restart_with_100_clients(private_redis: RedisServer) -> None:
    with start_server(private_redis.env) as server:
        token = make_token(server.secret_key)
        with JsClient(server.url, auth={"token": token}, count=100) as clients:
            for index in range(100):
                clients.wait_for(lambda m, i=index: m["type"] == "connect" and m["i"] == i)
            private_redis.stop()
            wait_until(lambda: not server.is_ready(), 20, "/ready to report the outage")
            status, body = server.get_json("/ready")
            assert status == 503 and body == {"ready": False, "reason": "not subscribed to redis"}
            private_redis.start()
            wait_until(server.is_ready, 30, "re-subscription after the restart")
            publisher = private_redis.client(db=2)
            publisher.publish(
                server.channel,
                '{"method":"emit","event":"after:restart","data":[{"n":1}],"namespace":"/events",'
                '"room":null,"skip_sid":null,"callback":null,"host_id":"t"}',
            )
            for index in range(100):
                clients.wait_for(
                    lambda m, i=index: (
                        m["type"] == "event" and m["event"] == "after:restart" and m["i"] == i
                    )
                )
            assert not [m for m in clients.seen if m["type"] == "disconnect"]
        assert "redis subscription restored" in server.logs()


def test_explicit_redis_down_starts_not_ready(private_redis: RedisServer) -> None:
    private_redis.stop()
    with start_server(private_redis.env, wait_ready=False) as server:
        assert server.get_json("/ready") == (
            503,
            {"ready": False, "reason": "not subscribed to redis"},
        )
        assert server.get_json("/health")[0] == 200
        private_redis.start()
        wait_until(server.is_ready, 30, "readiness once Redis answers")


def test_standalone_mode_when_no_redis_is_configured_or_reachable() -> None:
    unused = free_port()
    with start_server({"KV_HOST": "", "KV_PORT": str(unused)}) as server:
        first_line = server.logs().splitlines()[0]
        assert "standalone" in first_line
        assert server.get_json("/stats")[1]["instance"]["mode"] == "standalone"


def ws_connect(server: ServerHandle, token: str) -> websocket.WebSocket:
    # A Bearer header, as gazu: frames without connection state recovery's offsets.
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket",
        header=[f"Authorization: Bearer {token}"],
        timeout=10,
    )
    ws.recv()
    ws.send("40/events,")
    ws.recv()
    return ws


def still_serving(server: ServerHandle, token: str) -> None:
    with JsClient(server.url, auth={"token": token}) as client:
        client.wait_type("connect")


def test_oversized_websocket_message_closes_only_that_socket(
    server: ServerHandle, token: str
) -> None:
    ws = ws_connect(server, token)
    ws.send("42/events," + "x" * 1_100_000)
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        for _ in range(5):
            ws.recv()
    still_serving(server, token)


@pytest.mark.parametrize(
    "packet",
    [
        "9garbage",
        "4",
        "42/events,not json",
        '42/events,{"not":"a list"}',
        "42/events,[]",
        "4\x00\x01",
        '42/events,["preview-room:unknown-event",{}]',
        '42/events,["totally-unknown",1,2,3]',
        '451-/events,["x",{"_placeholder":true,"num":0}]',
    ],
)
def test_invalid_packets_leave_the_worker_serving(
    server: ServerHandle, token: str, packet: str
) -> None:
    ws = ws_connect(server, token)
    try:
        ws.send(packet)
        ws.send("3")  # a pong: the connection must not be wedged
    except websocket.WebSocketConnectionClosedException:
        pass
    finally:
        ws.close()
    still_serving(server, token)


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe garbage", "\xff\xfe garbage".encode(), b"9unknown packet type"],
    ids=["not UTF-8", "UTF-8 garbage", "unknown packet type"],
)
def test_invalid_polling_bodies_are_refused(server: ServerHandle, token: str, body: bytes) -> None:
    client = Polling(server.url)
    with raw_post(server.port, client.sid, body) as conn:
        assert status_within(conn, 5) == 400
    still_serving(server, token)


def test_non_utf8_cookie_and_huge_token(server: ServerHandle, token: str) -> None:
    polling = Polling(server.url, {"Cookie": "access_token_cookie=\xff\xfe\x80; x=\xe9"})
    polling.post("40/events,")
    assert polling.get() == ['44/events,{"message":"Invalid access token."}']
    with JsClient(server.url, cookie="access_token_cookie=" + "a" * 100_000) as client:
        client.wait_for(lambda m: m["type"] in ("connect_error", "disconnect"))
    still_serving(server, token)


def test_undecodable_packets_are_counted_and_the_socket_stays(
    server: ServerHandle, token: str, redis_events: redis.Redis
) -> None:
    def dropped() -> float:
        for line in server.get_text("/metrics").splitlines():
            if line.startswith("zou_events_client_packets_dropped_total "):
                return float(line.split()[-1])
        raise AssertionError("metric missing")

    before = dropped()
    earlier_lines = len(server.logs().splitlines())
    ws = ws_connect(server, token)
    try:
        ws.send('42/events,["x",' + "[" * 5000 + "]" * 5000 + "]")  # deeper than Python parses
        ws.send('42/events,["x"')  # truncated JSON
        wait_until(lambda: dropped() == before + 2, 10, "both packets counted as dropped")
        redis_events.publish(  # the socket is still served
            server.channel, '{"method":"emit","event":"ok","data":[1],"namespace":"/events"}'
        )
        assert ws.recv() == '42/events,["ok",1]'
    finally:
        ws.close()
    ours = server.logs().splitlines()[earlier_lines:]
    tracebacks = [line for line in ours if "Traceback" in line]
    assert not tracebacks, tracebacks[0][:3000]
