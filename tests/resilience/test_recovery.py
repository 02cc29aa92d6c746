"""Connection state recovery (issue 14) with Kitsu's real socket.io-client 4.8.1, connected
as Kitsu connects (io('/events'), cookie, polling then WebSocket), through a router that
sends each session's requests to its instance as nginx does (tests/support/sid_router.py),
on real servers sharing a real Redis: events missed during a network cut or a rolling
restart are delivered on reconnection, exactly once and in order; beyond the window, or for
somebody else's pid, nothing is restored. gazu's client, connected beside, sees today's
bytes and one handler argument."""

from __future__ import annotations

import json
import queue
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
import socketio
import websocket

from tests.conftest import compact
from tests.resilience.support import emit_message, metric
from tests.support.js_client import JsClient, Message
from tests.support.raw_eio import Polling
from tests.support.redis_server import RedisServer
from tests.support.server import ServerHandle, start_server, wait_until
from tests.support.sid_router import SidRouter
from tests.support.tokens import make_token
from zou_events.recovery.recovery import READING_MARGIN
from zou_events.recovery.window import PREDECESSORS

EVENT = "task:update"
PER_SECOND = 20


class Publisher:
    """Publishes ``{"i": n}`` as Zou's API does, n = 0, 1, ..., at PER_SECOND until stopped."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self.client = client
        self.channel = channel
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            self.publish_one()
            # pacing the load, not synchronisation
            self._stop.wait(max(0.0, started + self.count / PER_SECOND - time.monotonic()))

    def publish_one(self) -> None:
        self.client.publish(self.channel, emit_message(EVENT, {"i": self.count}))
        self.count += 1

    @contextmanager
    def running(self) -> Iterator[Publisher]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(5)


def numbers(tab: JsClient, i: int | None = None) -> list[int]:
    """The ``i`` of every event a tab's handlers received, in order."""
    return [m["args"][0]["i"] for m in tab.events(EVENT) if i is None or m.get("i") == i]


def timeline(tab: JsClient, i: int | None = None) -> list[str]:
    """What a tab saw besides events, each after the last event it had then: for failures."""
    last, seen = None, []
    for m in tab.seen:
        if i in (None, m.get("i")):
            if m["type"] == "event":
                last = m["args"][0]["i"]
            else:
                seen.append(f"after {last}: {m}")
    return seen


def received(tab: JsClient, n: int, i: int | None = None, timeout: float = 30.0) -> Message:
    return tab.wait_for(
        lambda m: m["type"] == "event" and m["args"][0]["i"] == n and i in (None, m.get("i")),
        timeout,
    )


def connects(tab: JsClient, i: int | None = None) -> list[Message]:
    tab.drain()
    return [m for m in tab.seen if m["type"] == "connect" and i in (None, m.get("i"))]


def reconnected(tab: JsClient, i: int | None = None, timeout: float = 30.0) -> Message:
    """The tab's next connect after its first one."""
    since = tab.seen.index(connects(tab, i)[0]) + 1
    return tab.wait_for(
        lambda m: m["type"] == "connect" and i in (None, m.get("i")), timeout, since
    )


class Gazu:
    """gazu's client (python-socketio, Bearer header), and a raw WebSocket with the same
    header that keeps the exact frames."""

    def __init__(self, server: ServerHandle, token: str) -> None:
        self.calls: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self.client = socketio.Client(reconnection=False)
        self.client.on(EVENT, lambda *args: self.calls.put(args), namespace="/events")
        header = {"Authorization": f"Bearer {token}"}
        self.client.connect(server.url, headers=header, namespaces=["/events"])
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket",
            header=[f"Authorization: Bearer {token}"],
            timeout=10,
        )
        assert self.ws.recv().startswith("0{")
        self.ws.send("40/events,")
        self.connect_answer = self.ws.recv()

    def frames(self, count: int) -> list[str]:
        got: list[str] = []
        while len(got) < count:
            frame = self.ws.recv()
            if frame == "2":
                self.ws.send("3")
            else:
                got.append(frame)
        return got

    def handler_calls(self, count: int) -> list[tuple[Any, ...]]:
        return [self.calls.get(timeout=10) for _ in range(count)]

    def close(self) -> None:
        self.client.disconnect()
        self.ws.close()


def cookie(token: str) -> str:
    return f"access_token_cookie={token}"


@contextmanager
def kitsu_tab(
    env: dict[str, str], person: str | None = None
) -> Iterator[tuple[ServerHandle, SidRouter, JsClient]]:
    """One instance behind the router, and a Kitsu tab on it that reconnects by itself."""
    with (
        start_server(env) as server,
        SidRouter([server.port]) as router,
        JsClient(
            router.url, cookie=cookie(make_token(server.secret_key, sub=person)), reconnection=True
        ) as tab,
    ):
        yield server, router, tab


def test_a_ten_second_cut_is_recovered_and_gazu_sees_todays_bytes(
    redis_env: dict[str, str], private_redis: RedisServer
) -> None:
    with kitsu_tab(redis_env) as (server, router, tab):
        gazu = Gazu(server, make_token(server.secret_key))
        first = tab.wait_type("connect")
        tab.wait_type("upgrade")
        publisher = Publisher(private_redis.client(2), server.channel)
        with publisher.running():
            received(tab, 10)
            router.cut()
            time.sleep(10)  # the cut being tested lasts 10 s
            router.restore()
            back = reconnected(tab)
            received(tab, publisher.count + 10)  # live again
        last = publisher.count - 1
        received(tab, last)
        frames = gazu.frames(publisher.count)
        calls = gazu.handler_calls(publisher.count)
        replayed = metric(server, "zou_events_recovery_replayed_events_total")
        recovered = metric(server, 'zou_events_recoveries_total{outcome="recovered"}')
        gazu.close()
    assert back["recovered"] is True and back["pid"] == first["pid"]
    assert numbers(tab) == list(range(last + 1))  # every event once, in order
    assert all(m["offset"] for m in tab.events(EVENT))
    assert recovered == 1 and replayed >= 10 * PER_SECOND - PER_SECOND
    assert json.loads(gazu.connect_answer.removeprefix("40/events,")).keys() == {"sid"}
    assert frames == [f"42/events,{compact([EVENT, {'i': n}])}" for n in range(last + 1)]
    assert calls == [({"i": n},) for n in range(last + 1)]


@contextmanager
def two_instances(
    redis_env: dict[str, str], tabs: int
) -> Iterator[tuple[list[ServerHandle], JsClient]]:
    """Two instances of one cluster behind the router and ``tabs`` Kitsu tabs on WebSocket;
    a test may replace the instances in the list (restarts): all are stopped at the end."""
    servers = [start_server(redis_env)]
    try:
        servers.append(start_server({**redis_env, "SECRET_KEY": servers[0].secret_key}))
        token = make_token(servers[0].secret_key)
        with (
            SidRouter([server.port for server in servers]) as router,
            JsClient(router.url, cookie=cookie(token), reconnection=True, count=tabs) as browser,
        ):
            for i in range(tabs):
                browser.wait_for(lambda m, i=i: m["type"] == "upgrade" and m["i"] == i)
            yield servers, browser
    finally:
        for server in servers:
            server.stop()


def restart(
    server: ServerHandle, tabs: int, browser: JsClient, publisher: Publisher
) -> ServerHandle:
    """SIGTERM (the drain: its tabs reconnect to the other instance), then, once every tab
    is live again, the same instance started again on its port, and given the time to read
    a few events: its offsets agree with the other instance's once it read an event's
    predecessors (docs/architecture.md#connection-state-recovery)."""
    server.signal(signal.SIGTERM)
    assert server.process.wait(30) == 0
    for i in range(tabs):
        received(browser, publisher.count + 5, i)
    restarted = start_server(server.env, port=server.port)
    for i in range(tabs):
        received(browser, publisher.count + PREDECESSORS + 1, i)
    return restarted


def test_rolling_restart_of_two_instances_loses_nothing(
    redis_env: dict[str, str], private_redis: RedisServer
) -> None:
    tabs = 4
    with two_instances(redis_env, tabs) as (servers, browser):
        publisher = Publisher(private_redis.client(2), servers[0].channel)
        with publisher.running():
            for i in range(tabs):
                received(browser, 5, i)
            servers[0] = restart(servers[0], tabs, browser, publisher)
            servers[1] = restart(servers[1], tabs, browser, publisher)
        last = publisher.count - 1
        for i in range(tabs):
            received(browser, last, i)
        outcome = {i: [c["recovered"] for c in connects(browser, i)[1:]] for i in range(tabs)}
        sequences = {i: numbers(browser, i) for i in range(tabs)}
        timelines = {i: timeline(browser, i) for i in range(tabs)}
    for i in range(tabs):
        assert sequences[i] == list(range(last + 1)), "\n".join(timelines[i])
        # every tab left the second instance, some the first one as well: all recovered
        assert outcome[i] and all(outcome[i]), f"tab {i}: {outcome[i]}"


def live(browser: JsClient, tabs: int) -> None:
    """Every tab connected: its last connect after its last disconnect."""

    def connected(i: int) -> bool:
        kinds = [m["type"] for m in browser.seen if m.get("i") == i]
        kinds = [kind for kind in kinds if kind in ("connect", "disconnect")]
        return bool(kinds) and kinds[-1] == "connect"

    def all_connected() -> bool:
        browser.drain()
        return all(connected(i) for i in range(tabs))

    wait_until(all_connected, 30, "every tab connected again")


def test_a_rolling_restart_in_a_quiet_moment_is_recovered(
    redis_env: dict[str, str], private_redis: RedisServer
) -> None:
    """No event while the instances restart: the restarted one has read nothing the tabs
    had, yet it knows they missed nothing (docs/architecture.md)."""
    tabs = 2
    quiet = READING_MARGIN + 1  # the quiet moments being tested
    with two_instances(redis_env, tabs) as (servers, browser):
        publisher = Publisher(private_redis.client(2), servers[0].channel)
        for _ in range(3):
            publisher.publish_one()
        for i in range(tabs):
            received(browser, 2, i)
        servers[0].signal(signal.SIGTERM)
        assert servers[0].process.wait(30) == 0
        live(browser, tabs)
        time.sleep(quiet)
        servers[0] = start_server(servers[0].env, port=servers[0].port)
        time.sleep(quiet)
        servers[1].signal(signal.SIGTERM)
        assert servers[1].process.wait(30) == 0
        live(browser, tabs)
        for _ in range(3):
            publisher.publish_one()
        for i in range(tabs):
            received(browser, 5, i)
        outcome = {i: [c["recovered"] for c in connects(browser, i)[1:]] for i in range(tabs)}
        sequences = {i: numbers(browser, i) for i in range(tabs)}
    for i in range(tabs):
        assert sequences[i] == list(range(6))
        assert outcome[i] and all(outcome[i]), f"tab {i}: {outcome[i]}"


def test_beyond_the_window_nothing_is_replayed(
    redis_env: dict[str, str], private_redis: RedisServer
) -> None:
    env = {**redis_env, "ZOU_EVENTS_RECOVERY_WINDOW": "2"}
    with kitsu_tab(env) as (server, router, tab):
        tab.wait_type("upgrade")
        publisher = Publisher(private_redis.client(2), server.channel)
        for _ in range(10):
            publisher.publish_one()
        received(tab, 9)
        router.cut()
        for _ in range(10):  # missed, and never sent
            publisher.publish_one()
        time.sleep(4)  # the cut being tested: longer than the 2 s window
        router.restore()
        back = reconnected(tab)
        for _ in range(10):
            publisher.publish_one()
        received(tab, 29)
    assert back["recovered"] is False
    assert numbers(tab) == [*range(10), *range(20, 30)]


def connect_raw(server: ServerHandle, token: str, auth: dict[str, str]) -> tuple[str, list[str]]:
    """A CONNECT to /events with ``auth`` by hand over long-polling; the server's answer and
    the packets that came with it."""
    client = Polling(server.url, {"Cookie": cookie(token)})
    client.post("40/events," + json.dumps(auth))
    answer, *rest = client.get(timeout=5)
    return answer, rest


def test_a_pid_restores_nothing_for_another_person_an_expired_token_or_twice(
    redis_env: dict[str, str], private_redis: RedisServer
) -> None:
    with kitsu_tab(redis_env, "alice") as (server, router, tab):
        bob = make_token(server.secret_key, sub="bob")
        expired = make_token(server.secret_key, sub="alice", lifetime=-10)
        publisher = Publisher(private_redis.client(2), server.channel)
        pid = tab.wait_type("connect")["pid"]
        tab.wait_type("upgrade")

        def cut_while_publishing() -> dict[str, str]:
            """Cut the tab after one event, publish one more: Alice's recovery request, once
            the server has suspended her session."""
            publisher.publish_one()
            offset = received(tab, publisher.count - 1)["offset"]
            since = len(tab.seen)
            router.cut()
            tab.wait_for(lambda m: m["type"] == "disconnect", since=since)
            suspended = f"{server.key_prefix}recovery:{pid}"
            wait_until(lambda: publisher.client.exists(suspended), 10, "suspended session")
            publisher.publish_one()
            return {"pid": pid, "offset": offset}

        def restore() -> Message:
            since = len(tab.seen)
            router.restore()
            return tab.wait_for(lambda m: m["type"] == "connect", 30, since)

        auth = cut_while_publishing()
        refused, _ = connect_raw(server, expired, auth)
        assert refused.startswith("44/events,")  # the token is checked first
        assert restore()["recovered"] is True  # the refused attempt spent nothing
        again, again_rest = connect_raw(server, make_token(server.secret_key, sub="alice"), auth)
        assert json.loads(again.removeprefix("40/events,"))["pid"] != pid  # used once only
        assert again_rest == []

        auth = cut_while_publishing()
        stolen, stolen_rest = connect_raw(server, bob, auth)
        assert json.loads(stolen.removeprefix("40/events,"))["pid"] != pid
        assert stolen_rest == []  # Bob gets none of Alice's events
        assert restore()["recovered"] is False  # and the pid is spent
        refused_count = metric(server, 'zou_events_recoveries_total{outcome="refused"}')
        unknown_count = metric(server, 'zou_events_recoveries_total{outcome="unknown_pid"}')
    assert refused_count == 2  # the expired token, then Bob
    assert unknown_count == 2  # the second use, then Alice after Bob


def test_switched_off_every_socket_gets_zous_bytes(
    redis_env: dict[str, str], private_redis: RedisServer
) -> None:
    env = {**redis_env, "ZOU_EVENTS_RECOVERY": "false"}
    with kitsu_tab(env) as (server, _router, tab):
        connected = tab.wait_type("connect")
        tab.wait_type("upgrade")
        Publisher(private_redis.client(2), server.channel).publish_one()
        event = received(tab, 0)
    assert "pid" not in connected and "offset" not in event  # undefined in the client
    assert event["raw"] == compact([{"i": 0}])
