"""Redis paused, its connections cut, or down, during traffic, on a private Redis (issue 7).

What "truthful" means for /ready: it answers 200 exactly while the instance holds its
subscription. A pause (DEBUG SLEEP, CLIENT PAUSE) of 5 s does not cut the subscription:
what Zou publishes meanwhile waits in Redis and arrives afterwards, so /ready stays 200 and
no event is lost. A cut connection loses the subscription until it is re-established: /ready
turns 503 meanwhile, and what is published in that gap is lost (Redis pub/sub keeps
nothing); what is published once /ready is 200 again arrives, in order.
Redis down is tested with a restart that keeps the data (SAVE, stop, start: what a
production Redis with persistence does), so that the room state can be checked intact.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest
import redis

from tests.resilience.support import (
    LoadClient,
    health_seconds,
    metric,
    publish_sequence,
    ready_status,
    sampling,
    worker_pid,
)
from tests.support.js_client import JsClient, Message
from tests.support.redis_server import RedisServer
from tests.support.server import ServerHandle, start_server, wait_until
from tests.support.tokens import make_token

SOCKETS = 20
PAUSE_SECONDS = 5
NOT_SUBSCRIBED = {"ready": False, "reason": "not subscribed to redis"}


class Traffic:
    """Publishes numbered events at a steady rate from a thread, as Zou's API would: with no
    socket timeout, a publish blocks while Redis is paused; a failed one is not counted."""

    def __init__(
        self, client: redis.Redis, channel: str, event: str, per_second: float = 100
    ) -> None:
        self.client = client
        self.channel = channel
        self.event = event
        self.interval = 1 / per_second
        self.published = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                publish_sequence(self.client, self.channel, self.event, 1, start=self.published)
                self.published += 1
            except redis.RedisError:
                self.failed += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(PAUSE_SECONDS + 10)


def debug_sleep(admin: redis.Redis) -> None:
    admin.execute_command("DEBUG", "SLEEP", PAUSE_SECONDS)  # returns when Redis wakes up


def client_pause(admin: redis.Redis) -> None:
    admin.execute_command("CLIENT", "PAUSE", PAUSE_SECONDS * 1000, "ALL")
    time.sleep(PAUSE_SECONDS)  # the pause is timed by Redis; wait it out


def kill_server_connections(admin: redis.Redis) -> None:
    """Cut every connection of zou-events (its pub/sub one included), not the test's own."""
    for client in admin.client_list():
        if not client["name"].startswith("test-"):
            admin.client_kill_filter(_id=client["id"])


FAULTS: dict[str, Callable[[redis.Redis], None]] = {
    "debug_sleep": debug_sleep,
    "client_pause": client_pause,
    "client_kill": kill_server_connections,
}


@pytest.mark.parametrize("fault", FAULTS)
def test_delivery_survives_a_redis_fault_during_traffic(
    fault: str, private_redis: RedisServer, redis_env: dict[str, str]
) -> None:
    admin = private_redis.client(client_name="test-admin", socket_timeout=PAUSE_SECONDS + 5)
    publisher = private_redis.client(db=2, client_name="test-publisher")
    with start_server(redis_env) as server:
        worker = worker_pid(server)
        tokens = [make_token(server.secret_key) for _ in range(SOCKETS)]
        with LoadClient([server.url], tokens, SOCKETS, transport="websocket") as load:
            load.wait_connected(SOCKETS, 20)
            with (
                sampling(lambda: ready_status(server)) as readiness,
                sampling(lambda: health_seconds(server)) as health,
                Traffic(publisher, server.channel, "during") as traffic,
            ):
                wait_until(lambda: traffic.published >= 50, 10, "traffic before the fault")
                FAULTS[fault](admin)
                published_at_recovery = traffic.published
                wait_until(server.is_ready, 30, "/ready after the fault")
                wait_until(
                    lambda: traffic.published >= published_at_recovery + 50,
                    10,
                    "traffic after the fault",
                )
            statuses = [(status, body) for _, status, body in readiness]
            if fault == "client_kill":  # the lost subscription is told
                assert "redis subscription lost, retrying" in server.logs()
                assert metric(server, "zou_events_redis_reconnects_total") >= 1
                assert (503, NOT_SUBSCRIBED) in statuses
            else:
                assert set(s for s, _ in statuses) == {200}  # still subscribed, nothing lost
            assert max(health) < 1.0, f"/health took up to {max(health):.2f}s"

            publish_sequence(publisher, server.channel, "after", 1000)
            stats = load.wait_stats(
                lambda s: s["events"].get("after", 0) == 1000 * SOCKETS,
                30,
                "every event published after recovery",
            )
            assert stats["outOfOrder"] == 0
            assert stats["disconnects"] == {} and stats["connected"] == SOCKETS
            if fault != "client_kill":  # only a cut subscription may lose events
                assert traffic.failed == 0 and stats["gaps"] == 0
                assert stats["events"]["during"] == traffic.published * SOCKETS
        assert worker_pid(server) == worker
        assert '"level": "error"' not in server.logs()


def room_keys(client: redis.Redis, prefix: str) -> dict[str, object]:
    """Every room key (not the instances' heartbeats) with its content."""
    readers = {
        b"hash": client.hgetall,
        b"list": lambda key: client.lrange(key, 0, -1),
        b"set": client.smembers,
        b"string": client.get,
    }
    keys = client.keys(f"{prefix}room:*") + client.keys(f"{prefix}rooms")
    return {key.decode(): readers[client.type(key)](key) for key in keys}


def room_refusals(server: ServerHandle, event: str) -> float:
    return metric(
        server,
        f'zou_events_room_events_refused_total{{event="{event}",reason="store_unavailable"}}',
    )


def people_updated_to(count: int) -> Callable[[Message], bool]:
    return lambda m: (
        m.get("event") == "preview-room:room-people-updated"
        and len(m["args"][0]["people"]) == count
    )


def enter_room(playlist: str, *tabs: JsClient) -> None:
    """Each tab opens and joins the review room, as Kitsu does; all see everyone in."""
    for tab in tabs:
        tab.wait_type("connect")
        tab.emit("preview-room:open-playlist", {"playlist_id": playlist})
        tab.emit("preview-room:join", {"playlist_id": playlist})
    for tab in tabs:
        tab.wait_for(people_updated_to(len(tabs)))


def test_redis_down_keeps_sockets_refuses_room_events_and_keeps_room_state(
    private_redis: RedisServer, redis_env: dict[str, str]
) -> None:
    playlist = str(uuid.uuid4())
    rooms = private_redis.client(db=2)
    with (
        start_server(redis_env) as server,
        JsClient(server.url, auth={"token": make_token(server.secret_key)}) as alice,
        JsClient(server.url, auth={"token": make_token(server.secret_key)}) as bob,
    ):
        enter_room(playlist, alice, bob)
        alice.emit("preview-room:room-updated", {"playlist_id": playlist, "current_frame": 42})
        bob.wait_for(lambda m: frame_of(m) == 42)
        before = room_keys(rooms, server.key_prefix)
        assert before, "the room is in Redis"

        private_redis.save_and_stop()
        wait_until(lambda: server.get_json("/ready") == (503, NOT_SUBSCRIBED), 10, "/ready 503")
        alice.emit("preview-room:room-updated", {"playlist_id": playlist, "current_frame": 99})
        wait_until(
            lambda: room_refusals(server, "room-updated") == 1, 10, "the refusal to be counted"
        )
        # Without Redis, a person token's revocation cannot be checked: new sockets are refused.
        with JsClient(server.url, auth={"token": make_token(server.secret_key)}) as late:
            refusal = late.wait_type("connect_error")
            assert refusal["message"] == "Authentication is unavailable, try again later."
        assert server.get_json("/health")[0] == 200

        private_redis.start()  # loads the saved data
        wait_until(server.is_ready, 30, "re-subscription")
        assert room_keys(rooms, server.key_prefix) == before
        alice.emit("preview-room:room-updated", {"playlist_id": playlist, "current_frame": 7})
        bob.wait_for(lambda m: frame_of(m) == 7)
        assert not [m for m in bob.seen if frame_of(m) == 99]
        publish_sequence(rooms, server.channel, "after", 200)
        for tab in (alice, bob):
            tab.wait_for(lambda m: m.get("event") == "after" and m["args"][0]["i"] == 199)
            assert [m["args"][0]["i"] for m in tab.events("after")] == list(range(200))
            assert not [m for m in tab.seen if m["type"] == "disconnect"]


def frame_of(message: dict[str, object]) -> object:
    if message.get("event") != "preview-room:room-updated":
        return None
    return message["args"][0].get("current_frame")  # type: ignore[index]


def test_presence_of_a_socket_gone_while_redis_is_paused_is_cleaned_up(
    private_redis: RedisServer, redis_env: dict[str, str]
) -> None:
    playlist = str(uuid.uuid4())
    admin = private_redis.client(client_name="test-admin")
    with (
        start_server(redis_env) as server,
        JsClient(server.url, auth={"token": make_token(server.secret_key)}) as alice,
        JsClient(server.url, auth={"token": make_token(server.secret_key)}) as bob,
    ):
        enter_room(playlist, alice, bob)
        alice.drain()
        alice.seen.clear()  # from now on, only what follows bob's departure
        admin.execute_command("CLIENT", "PAUSE", PAUSE_SECONDS * 1000, "ALL")
        bob.close()  # bob leaves while Redis is paused
        wait_until(
            lambda: "room cleanup failed, retrying" in server.logs(),
            PAUSE_SECONDS + 5,
            "the cleanup to fail",
        )
        alice.wait_for(people_updated_to(1), timeout=10)
