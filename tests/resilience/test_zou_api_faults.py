"""Zou's API down (nothing listens) or hung (a socket that never answers) (issue 7).

What needs Zou's database is asked of its API; when the API cannot answer, a person never
seen is refused with a clear "try again later", room access fails closed, timeouts are short,
a circuit breaker stops the calls, the worker stays responsive, and /ready stays 200: Zou's
API is not a readiness condition (Readiness.is_ready only checks the Redis subscription and
the drain), since no other zou-events instance could do better while Zou is down.
Accepting a known person from the account cache while Zou is down needs a real Zou that
answered first: the Zou compatibility tier tests it.
"""

from __future__ import annotations

import uuid

from tests.resilience.support import (
    LoadClient,
    Stats,
    emit_message,
    health_seconds,
    metric,
    sampling,
)
from tests.support.faulty_zou import ACTIVE_USER, HungZou
from tests.support.js_client import JsClient
from tests.support.redis_server import RedisServer
from tests.support.server import ServerHandle, free_port, start_server, wait_until
from tests.support.tokens import make_token

UNAVAILABLE = "Authentication is unavailable, try again later."
TIMEOUT = 3.0  # ZOU_EVENTS_ZOU_API_TIMEOUT's default


def api_calls(server: ServerHandle, endpoint: str, outcome: str) -> float:
    return metric(
        server,
        f'zou_events_zou_api_requests_total{{endpoint="{endpoint}",outcome="{outcome}"}}',
    )


def connect_wave(server: ServerHandle, count: int) -> Stats:
    """``count`` person sockets connecting at once, each with its own never-seen token."""
    tokens = [make_token(server.secret_key) for _ in range(count)]
    with LoadClient([server.url], tokens, count, transport="websocket", reconnect=False) as load:
        return load.wait_stats(
            lambda s: s["connected"] + sum(s["connectErrors"].values()) == count,
            TIMEOUT + 10,
            f"{count} connects to be answered",
        )


def test_zou_api_down_refuses_unknown_people_and_opens_the_circuit(
    redis_env: dict[str, str],
) -> None:
    nothing = f"http://127.0.0.1:{free_port()}"
    with start_server({**redis_env, "ZOU_EVENTS_ZOU_API_URL": nothing}) as server:
        first = connect_wave(server, 20)
        assert first["connectErrors"] == {UNAVAILABLE: 20}
        assert first["answerSecondsMax"] < 1.0  # a refused TCP connect fails at once
        failed = api_calls(server, "authenticated", "error")
        assert failed >= 5  # the breaker's threshold

        second = connect_wave(server, 20)
        assert second["connectErrors"] == {UNAVAILABLE: 20}
        assert api_calls(server, "authenticated", "error") == failed  # Zou left alone
        assert api_calls(server, "authenticated", "circuit_open") == 40 - failed
        assert (
            metric(server, 'zou_events_connections_refused_total{reason="zou_unavailable"}') == 40
        )
        assert server.get_json("/ready") == (200, {"ready": True})
        assert "zou api failing, circuit opened" in server.logs()


def test_zou_api_hung_answers_connects_within_the_timeout_without_stalling_the_worker(
    redis_env: dict[str, str],
) -> None:
    with (
        HungZou() as zou,
        start_server({**redis_env, "ZOU_EVENTS_ZOU_API_URL": zou.url}) as server,
    ):
        with sampling(lambda: health_seconds(server)) as health:
            first = connect_wave(server, 200)
        assert first["connectErrors"] == {UNAVAILABLE: 200}
        assert TIMEOUT <= first["answerSecondsMax"] < TIMEOUT + 2
        assert len(health) > 10 and max(health) < 1.0, f"/health took up to {max(health):.2f}s"
        assert api_calls(server, "authenticated", "timeout") == 200
        # No pile-up: every abandoned request's connection to Zou was closed.
        wait_until(lambda: zou.open_connections() == 0, 5, "connections to Zou to be closed")

        calls_before = zou.counts()
        second = connect_wave(server, 50)
        assert second["connectErrors"] == {UNAVAILABLE: 50}
        assert second["answerSecondsMax"] < 1.0  # the open circuit answers at once
        assert zou.counts() == calls_before
        assert api_calls(server, "authenticated", "circuit_open") == 50
        assert server.get_json("/ready") == (200, {"ready": True})


def test_room_access_fails_closed_when_zou_cannot_answer(
    private_redis: RedisServer, redis_env: dict[str, str]
) -> None:
    """Zou answers who the person is, but its playlist route hangs: no room is entered."""
    playlist = str(uuid.uuid4())
    events = private_redis.client(db=2)
    with (
        HungZou({"/auth/authenticated": ACTIVE_USER}) as zou,
        start_server({**redis_env, "ZOU_EVENTS_ZOU_API_URL": zou.url}) as server,
        JsClient(server.url, auth={"token": make_token(server.secret_key)}) as client,
    ):
        client.wait_type("connect")
        client.emit("preview-room:open-playlist", {"playlist_id": playlist})
        client.emit("preview-room:join", {"playlist_id": playlist})
        for event in ("open-playlist", "join"):
            wait_until(
                lambda e=event: (
                    metric(
                        server,
                        f'zou_events_room_events_refused_total{{event="{e}",reason="no_access"}}',
                    )
                    == 1
                ),
                TIMEOUT + 3,
                f"{event} to be refused",
            )
        assert zou.requests[f"/data/playlists/{playlist}"] >= 1
        # Not in the room: an emit to the room does not reach the socket, a broadcast does.
        events.publish(server.channel, emit_message("room:only", {}, room=playlist))
        events.publish(server.channel, emit_message("everyone", {}))
        client.wait_event("everyone")
        assert client.events("room:only") == []
        assert events.keys(f"{server.key_prefix}room:*") == []
        assert not [m for m in client.seen if m["type"] == "disconnect"]


def test_refused_connection_is_counted_as_an_error(redis_env: dict[str, str]) -> None:
    nothing = f"http://127.0.0.1:{free_port()}"
    with start_server({**redis_env, "ZOU_EVENTS_ZOU_API_URL": nothing}) as server:
        connect_wave(server, 1)
        assert api_calls(server, "authenticated", "error") == 1
        assert api_calls(server, "authenticated", "timeout") == 0
