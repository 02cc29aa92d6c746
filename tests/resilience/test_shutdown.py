"""SIGTERM of an instance with connected sockets (issue 7; SIGKILL is in the rooms e2e tests).

The instance stops taking sockets (/ready 503, new handshakes 503), closes the ones it has
in batches at the transport level (socket.io-client sees "transport close" and reconnects),
and exits cleanly within its graceful timeout. Behind nginx, the clients reconnect to
another instance.
"""

from __future__ import annotations

import json
import signal
import socket
import time

import urllib3

from tests.resilience.support import (
    LoadClient,
    metric,
    publish_sequence,
    ready_status,
    sampling,
)
from tests.support.js_client import JsClient
from tests.support.redis_server import RedisServer
from tests.support.server import ServerHandle, start_server, wait_until
from tests.support.tokens import make_token

SOCKETS = 200  # opened over 1 s: a burst of connects is test_reconnect_storm's subject
GRACEFUL_TIMEOUT = 10
HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


def handshake_status(server: ServerHandle) -> tuple[int | None, bytes]:
    try:
        response = urllib3.request("GET", server.url + HANDSHAKE, timeout=1.0, retries=False)
    except urllib3.exceptions.HTTPError:
        return None, b""
    return response.status, response.data


def terminate(server: ServerHandle) -> float:
    """SIGTERM as systemd sends it (to the whole group); returns how long the exit took."""
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    server.process.wait(GRACEFUL_TIMEOUT + 5)
    return time.monotonic() - started


def test_sigterm_drains_gradually_and_exits_cleanly(redis_env: dict[str, str]) -> None:
    env = {**redis_env, "ZOU_EVENTS_GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT)}
    server = start_server(env)
    try:
        tokens = [make_token(server.secret_key) for _ in range(SOCKETS)]
        with (
            LoadClient([server.url], tokens, SOCKETS, transport="websocket", ramp_ms=5) as load,
            JsClient(server.url, auth={"token": tokens[0]}, reconnection=True) as kitsu,
        ):
            load.wait_connected(SOCKETS, 30)
            kitsu.wait_type("upgrade")
            with (
                sampling(lambda: ready_status(server), interval=0.02) as readiness,
                sampling(lambda: handshake_status(server), interval=0.02) as handshakes,
            ):
                took = terminate(server)
            logs = server.logs()
            stats = load.stats()
            disconnect = kitsu.wait_type("disconnect")
            kitsu.wait_type("connect_error")  # socket.io-client tries to reconnect by itself
    finally:
        server.stop()
    assert server.process.returncode == 0
    assert took < GRACEFUL_TIMEOUT, f"exit took {took:.1f}s"
    assert disconnect["reason"] == "transport close"
    assert stats["disconnects"] == {"transport close": SOCKETS}
    # Batches of 50 every 0.1 s (drain.py): 200 sockets take at least 0.3 s.
    assert stats["lastDisconnectAt"] - stats["firstDisconnectAt"] >= 0.25
    assert stats["connects"] == SOCKETS  # no reconnection was accepted during the drain

    answered = [(status, body) for _, status, body in readiness if status is not None]
    first_refusal = answered.index((503, {"ready": False, "reason": "draining"}))
    assert all(status == 503 for status, _ in answered[first_refusal:])
    refused = [item for item in handshakes if item[0] is not None]
    first_503 = refused.index((503, b"draining"))
    assert all(status == 503 for status, _ in refused[first_503:])

    events = [json.loads(line) for line in logs.splitlines()]
    drained = [e["sockets"] for e in events if e["event"] == "drain complete"]
    assert drained and min(drained) >= SOCKETS + 1  # + Kitsu's client


def test_sigterm_clients_reconnect_to_the_other_instance(
    private_redis: RedisServer, redis_env: dict[str, str]
) -> None:
    env = {**redis_env, "ZOU_EVENTS_GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT)}
    with start_server(env) as survivor:
        stopped = start_server({**env, "SECRET_KEY": survivor.secret_key})
        try:
            tokens = [make_token(survivor.secret_key) for _ in range(SOCKETS)]
            # Failover order as nginx's upstream: the stopped instance first, then the other.
            with (
                LoadClient([stopped.url, survivor.url], tokens, SOCKETS, ramp_ms=5) as load,
                JsClient(stopped.url, auth={"token": tokens[0]}) as kitsu,
            ):
                load.wait_connected(SOCKETS, 30)
                kitsu.wait_type("upgrade")
                assert load.stats()["connectedByBase"] == {stopped.url: SOCKETS}
                terminate(stopped)
                assert kitsu.wait_type("disconnect")["reason"] == "transport close"
                with JsClient(survivor.url, auth={"token": tokens[0]}) as again:
                    again.wait_type("connect")
                stats = load.wait_stats(
                    lambda s: s["connectedByBase"] == {survivor.url: SOCKETS},
                    20,
                    "every socket to reconnect to the other instance",
                )
                assert stats["connectErrors"] == {} and stats["invalidSession"] == 0
                publish_sequence(private_redis.client(db=2), survivor.channel, "after", 100)
                stats = load.wait_stats(
                    lambda s: s["events"].get("after") == 100 * SOCKETS, 20, "delivery"
                )
                assert stats["outOfOrder"] == 0 and stats["gaps"] == 0
        finally:
            stopped.stop()
        assert stopped.process.returncode == 0


def test_silent_connections_do_not_hold_the_exit_back(redis_env: dict[str, str]) -> None:
    """Connections that never sent a byte may wait ZOU_EVENTS_FIRST_REQUEST_TIMEOUT (20 s)
    for their first request: a draining worker closes them at once, or gunicorn would wait
    for them up to the graceful timeout."""
    env = {**redis_env, "ZOU_EVENTS_GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT)}
    server = start_server(env)
    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(SOCKETS)]
    try:
        wait_until(
            lambda: metric(server, "zou_events_connections_awaiting_first_request") == SOCKETS,
            10,
            "the silent connections to be accepted",
        )
        took = terminate(server)
        logs = server.logs()
    finally:
        server.stop()
        for conn in silent:
            conn.close()
    assert server.process.returncode == 0
    assert took < GRACEFUL_TIMEOUT / 2, f"exit took {took:.1f}s"
    closed = [
        json.loads(line)
        for line in logs.splitlines()
        if '"connections closed: no request in time"' in line
    ]
    assert [(e["reason"], e["closed"]) for e in closed] == [("draining", SOCKETS)]
