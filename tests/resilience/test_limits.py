"""Admission limits and bounded send queues (issue 7)."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import urllib3
import websocket

from tests.support import suite_redis
from tests.support.js_client import JsClient
from tests.support.server import ServerHandle, start_server, wait_until
from tests.support.tokens import make_token

HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


def metric(server: ServerHandle, line_prefix: str) -> float:
    for line in server.get_text("/metrics").splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{line_prefix} not exported")


def test_socket_cap_answers_503_and_keeps_serving() -> None:
    with start_server({"ZOU_EVENTS_MAX_SOCKETS": "2"}) as server:
        token = make_token(server.secret_key)
        assert metric(server, 'zou_events_limit{limit="max_sockets"}') == 2
        with JsClient(server.url, auth={"token": token}, count=2) as clients:
            clients.wait_for(lambda m: m["type"] == "connect" and m["i"] == 0)
            clients.wait_for(lambda m: m["type"] == "connect" and m["i"] == 1)
            refused = urllib3.request("GET", server.url + HANDSHAKE, retries=False)
            assert refused.status == 503 and refused.data == b"over_capacity"
            assert (
                metric(server, 'zou_events_connections_refused_total{reason="over_capacity"}') >= 1
            )
            suite_redis.client(suite_redis.EVENTS_DB).publish(
                server.channel,
                '{"method":"emit","event":"still:served","data":[{}],"namespace":"/events"}',
            )
            clients.wait_for(lambda m: m.get("event") == "still:served" and m["i"] == 0)
            clients.wait_for(lambda m: m.get("event") == "still:served" and m["i"] == 1)


def test_new_session_rate_answers_503_after_the_wait() -> None:
    env = {
        "ZOU_EVENTS_NEW_SESSIONS_PER_SECOND": "0.1",
        "ZOU_EVENTS_NEW_SESSIONS_BURST": "3",
        "ZOU_EVENTS_ADMISSION_MAX_WAIT": "0.5",
    }
    with start_server(env) as server:
        statuses = [
            urllib3.request("GET", server.url + HANDSHAKE, retries=False).status for _ in range(5)
        ]
        assert statuses[:3] == [200, 200, 200]
        assert statuses[3:] == [503, 503]  # no token within the half second each waited
        assert metric(server, 'zou_events_connections_refused_total{reason="too_fast"}') == 2
        assert metric(server, "zou_events_admission_waiting") == 0


def test_new_sessions_beyond_the_rate_wait_their_turn_instead_of_a_503() -> None:
    env = {"ZOU_EVENTS_NEW_SESSIONS_PER_SECOND": "20", "ZOU_EVENTS_NEW_SESSIONS_BURST": "1"}
    with start_server(env) as server:
        with ThreadPoolExecutor(10) as pool:
            answers = list(
                pool.map(
                    lambda _: urllib3.request("GET", server.url + HANDSHAKE, retries=False),
                    range(10),
                )
            )
        assert [a.status for a in answers] == [200] * 10
        assert len({a.data for a in answers}) == 10  # ten sessions, each its own open packet
        assert metric(server, 'zou_events_connections_refused_total{reason="too_fast"}') == 0
        # at 20/s with a burst of 1, at least 8 of them had to wait for a token
        assert metric(server, "zou_events_admission_wait_seconds_count") >= 8


def test_slow_consumer_is_cut_and_the_others_get_everything() -> None:
    env = {"ZOU_EVENTS_SEND_QUEUE_MAX_BYTES": "65536"}
    with start_server(env) as server:
        token = make_token(server.secret_key)
        slow = websocket.create_connection(
            f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket",
            header=[f"Cookie: access_token_cookie={token}"],
            timeout=10,
        )
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.recv()
        slow.send("40/events,")
        slow.recv()
        with JsClient(server.url, auth={"token": token}, summary=True) as fast:
            fast.wait_type("upgrade")  # a polling client would only drain at its next poll
            publisher = suite_redis.client(suite_redis.EVENTS_DB)
            payload = "x" * 1_000
            started = time.monotonic()
            # Paced by what the fast client has read: 20 KB at a time stays under its send
            # queue limit however slowly its Node process runs, while the slow one, which
            # reads nothing, falls 10 MB behind.
            for batch in range(0, 10_000, 20):
                for index in range(batch, batch + 20):
                    publisher.publish(
                        server.channel,
                        f'{{"method":"emit","event":"load","data":[{{"i":{index},"p":"{payload}"}}],'
                        '"namespace":"/events"}',
                    )
                fast.wait_for(lambda m, last=batch + 19: m.get("index") == last, 30, since=batch)
            assert [m["index"] for m in fast.events("load")] == list(range(10_000))
            wait_until(
                lambda: (
                    metric(
                        server,
                        'zou_events_disconnects_total{namespace="/events",reason="slow_consumer"}',
                    )
                    == 1
                ),
                10,
                "the slow consumer to be cut",
            )
            assert time.monotonic() - started < 120
        slow.close()
