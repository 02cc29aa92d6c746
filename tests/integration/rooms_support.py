"""Helpers of the end-to-end preview-room tests (tests/integration/test_rooms_e2e.py).

Real instances sharing one Redis (each cluster under its own key prefix and channel, so that
nothing else on that Redis sees or disturbs it), Kitsu's socket.io-client seen one socket
("tab") at a time, the payloads Kitsu sends and the ones Zou answers, written out from the
reference rather than from the code under test, and Prometheus counters.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import secrets
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property, partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import compact
from tests.support import suite_redis
from tests.support.js_client import JsClient, Message
from tests.support.server import ServerHandle, isolated_env, start_server, wait_until
from tests.support.tokens import make_token

ROOMS_DB = 2  # Zou's KV_EVENTS_DB_INDEX: room state lives next to the events channel

PREFIX = "preview-room:"
OPEN = PREFIX + "open-playlist"
CLOSE = PREFIX + "close-playlist"
JOIN = PREFIX + "join"
LEAVE = PREFIX + "leave"
ROOM_UPDATED = PREFIX + "room-updated"
PEOPLE_UPDATED = PREFIX + "room-people-updated"
RELAYS = tuple(
    PREFIX + name
    for name in (
        "add-annotation",
        "update-annotation",
        "remove-annotation",
        "change-version",
        "panzoom-changed",
        "comparison-panzoom-changed",
    )
)
CLIENT_EVENTS = (OPEN, CLOSE, JOIN, LEAVE, ROOM_UPDATED, *RELAYS)

DEFAULT_COMPARING = {
    "enable": False,
    "task_type": None,
    "revision": None,
    "mode": "sidebyside",
    "comparison_preview_index": 0,
}
# Zou's _get_empty_room(), in the order of the wire (reference §1.4).
ROOM_TEMPLATE: dict[str, Any] = {
    "playlist_id": None,
    "user_id": None,
    "local_id": None,
    "people": [],
    "is_playing": False,
    "current_entity_id": None,
    "current_entity_index": None,
    "current_preview_file_id": None,
    "current_preview_file_index": None,
    "current_frame": 0,
    "is_repeating": None,
    "is_annotations_displayed": False,
    "is_zoom_enabled": False,
    "is_waveform_displayed": False,
    "is_laser_mode": None,
    "handle_in": None,
    "handle_out": None,
    "speed": None,
    "comparing": DEFAULT_COMPARING,
}


def new_id() -> str:
    return str(uuid.uuid4())


# --- payloads -----------------------------------------------------------------------------


def kitsu_state(room: str, user_id: str, **fields: Any) -> dict[str, Any]:
    """What Kitsu's previewRoom.js sends with ``join`` (and, plus ``local_id``, ``room_seq``
    and ``previous_preview_file_id``, with ``room-updated``), in its order."""
    payload: dict[str, Any] = {
        "user_id": user_id,
        "playlist_id": room,
        "is_playing": False,
        "current_entity_id": "5d0b7c2e-8f3a-4f4e-9a51-0c7f0f6a1b11",
        "current_entity_index": 0,
        "current_preview_file_id": "9e1f3c4d-2b6a-4c8e-8d7f-3a5b6c7d8e90",
        "current_preview_file_index": 0,
        "current_frame": 0,
        "is_repeating": False,
        "is_laser_mode": False,
        "is_annotations_displayed": True,
        "is_waveform_displayed": False,
        "is_zoom_enabled": False,
        "handle_in": None,
        "handle_out": None,
        "speed": 3,
        "comparing": dict(DEFAULT_COMPARING),
    }
    payload.update(fields)
    return payload


def kitsu_update(room: str, user_id: str, local_id: str, seq: int, **fields: Any) -> dict[str, Any]:
    """Kitsu's ``room-updated``: the state, ``local_id`` "<uuid>#<seq>", ``room_seq``."""
    return kitsu_state(
        room,
        user_id,
        local_id=f"{local_id}#{seq}",
        room_seq=seq,
        previous_preview_file_id="0c4e2a9b-7d1f-4e3a-b5c6-d7e8f9a0b1c2",
        **fields,
    )


def room_state(room: str, people: list[str], **fields: Any) -> dict[str, Any]:
    """The room dict Zou sends, in Zou's key order: the template with ``fields`` set."""
    unknown = fields.keys() - ROOM_TEMPLATE.keys()
    assert not unknown, f"not a room field: {unknown}"
    return {**ROOM_TEMPLATE, "playlist_id": room, "people": people, **fields}


def stored_from(payload: dict[str, Any], user_id: str) -> dict[str, Any]:
    """The fields a valid Kitsu payload sets (whitelist: unknown keys dropped), with the
    authenticated ``user_id``."""
    fields = {key: payload[key] for key in ROOM_TEMPLATE if key in payload}
    fields.pop("playlist_id", None)
    fields["user_id"] = user_id
    return fields


def update_reply(state: dict[str, Any], only_newcomer: bool = False) -> dict[str, Any]:
    """A ``room-updated`` answer: ``only_newcomer`` first (absent from join answers)."""
    return {"only_newcomer": only_newcomer, **state}


def people_reply(room: str, people: list[str]) -> dict[str, Any]:
    return {"people": people, "playlist_id": room, "id": room}


# --- clusters -----------------------------------------------------------------------------


@dataclass
class Cluster:
    """Instances sharing one Redis (or a single standalone one) and one SECRET_KEY."""

    servers: list[ServerHandle]
    prefix: str
    killed: set[int] = field(default_factory=set)

    @cached_property
    def redis(self) -> redis.Redis:
        return suite_redis.client(ROOMS_DB, decode_responses=True)

    def stats(self, index: int = 0) -> dict[str, Any]:
        status, body = self.servers[index].get_json("/stats")
        assert status == 200 and isinstance(body, dict)
        return body

    def instance_id(self, index: int) -> str:
        return self.stats(index)["instance"]["id"]

    def local_connections(self, index: int) -> int:
        """/events sockets of one instance, counted by that instance right now."""
        stats = self.stats(index)
        return stats["instances"][stats["instance"]["id"]]["nb_connections"]

    def keys(self, pattern: str = "*") -> set[str]:
        return set(self.redis.scan_iter(match=self.prefix + pattern, count=1000))

    def room_keys(self, room: str) -> set[str]:
        """Every trace of ``room`` in Redis (its keys and its entry in the room set)."""
        traces = self.keys(f"room:{room}:*")
        if self.redis.sismember(self.prefix + "rooms", room):
            traces.add(self.prefix + "rooms")
        return traces

    def kill(self, index: int) -> None:
        """SIGKILL the instance (gunicorn master and worker): nothing is cleaned up."""
        self.killed.add(index)
        self.servers[index].signal(signal.SIGKILL)
        self.servers[index].process.wait(10)


@contextmanager
def start_cluster(
    count: int, standalone: bool = False, instance_env: tuple[dict[str, str], ...] = (), **env: str
) -> Iterator[Cluster]:
    """``count`` instances (started and stopped in parallel), heartbeat every second so that
    reaping and cluster /stats are quick; the cluster's Redis keys are deleted at the end.
    ``env`` applies to every instance, ``instance_env[i]`` to instance ``i`` on top."""
    shared = {
        "SECRET_KEY": secrets.token_hex(32),
        **isolated_env(),
        "ZOU_EVENTS_HEARTBEAT_SECONDS": "1",
        **({"ZOU_EVENTS_MODE": "standalone"} if standalone else {}),
        **env,
    }
    with ThreadPoolExecutor(count) as pool:
        envs = [{**shared, **own} for own in instance_env] + [shared] * count
        starts = [pool.submit(start_server, dict(envs[index])) for index in range(count)]
    servers = [start.result() for start in starts if start.exception() is None]
    if len(servers) < count:
        for server in servers:
            server.stop()
        raise next(start.exception() for start in starts if start.exception() is not None)
    cluster = Cluster(servers, shared["ZOU_EVENTS_KEY_PREFIX"])
    try:
        yield cluster
    finally:
        with ThreadPoolExecutor(count) as pool:
            list(pool.map(ServerHandle.stop, servers))
        for index in cluster.killed:  # killed on purpose: its log is not evidence of a fault
            servers[index].log_path.unlink(missing_ok=True)
        if not standalone:
            keys = cluster.keys()
            if keys:
                cluster.redis.delete(*keys)


# --- Kitsu's client, one socket at a time -------------------------------------------------


class Tab:
    """One socket of a Kitsu client process, as one browser tab of ``person_id``.

    Its room events are read in order through a cursor, so that tests can check exactly
    what arrives, in which order, and that nothing else does.
    """

    _acks = itertools.count()

    def __init__(
        self, client: JsClient, server: ServerHandle, person_id: str, index: int | None
    ) -> None:
        self.client = client
        self.server = server
        self.person_id = person_id
        self.index = index  # None for a single-socket client (its messages are untagged)
        self.cursor = 0  # room events already checked

    def messages(self) -> list[Message]:
        self.client.drain()
        return [m for m in self.client.seen if m.get("i") == self.index]

    def room_events(self) -> list[Message]:
        return [
            m for m in self.messages() if m["type"] == "event" and m["event"].startswith(PREFIX)
        ]

    def payloads(self, event: str) -> list[Any]:
        return [m["args"][0] for m in self.room_events() if m["event"] == event]

    def wait_connected(self, timeout: float = 15.0) -> None:
        wait_until(
            lambda: any(m["type"] == "connect" for m in self.messages()),
            timeout,
            f"{self} to connect",
        )

    def is_disconnected(self) -> bool:
        return any(m["type"] == "disconnect" for m in self.messages())

    # sending

    def emit(self, event: str, *args: Any, ack: bool = False) -> str | None:
        """Emit like Kitsu; with ``ack``, ask for an ACK and return its id."""
        command: dict[str, Any] = {"emit": event, "args": list(args)}
        if self.index is not None:
            command["i"] = self.index
        ack_id = f"ack-{next(self._acks)}" if ack else None
        if ack_id is not None:
            command["ack"] = ack_id
        self.client.send(**command)
        return ack_id

    def open(self, room: str, ack: bool = False) -> str | None:
        return self.emit(OPEN, {"playlist_id": room, "user_id": self.person_id}, ack=ack)

    def close_room(self, room: str, ack: bool = False) -> str | None:
        return self.emit(CLOSE, {"playlist_id": room, "user_id": self.person_id}, ack=ack)

    def join(self, room: str, ack: bool = False, **fields: Any) -> str | None:
        """Kitsu's join; ``fields`` override its values (``user_id`` included)."""
        return self.emit(JOIN, {**kitsu_state(room, self.person_id), **fields}, ack=ack)

    def leave(self, room: str, ack: bool = False) -> str | None:
        return self.emit(LEAVE, {"user_id": self.person_id, "playlist_id": room}, ack=ack)

    def disconnect(self) -> None:
        """Close the socket, as closing the browser tab does."""
        self.client.send(close=True, **({} if self.index is None else {"i": self.index}))

    # reading

    def wait_ack(self, ack_id: str | None, timeout: float = 15.0) -> list[Any]:
        """The ACK's reply: proof that the server's handler has run to its end."""
        message = self.client.wait_for(lambda m: m["type"] == "ack" and m["id"] == ack_id, timeout)
        return message["reply"]

    def expect_next(self, *expected: tuple[str, Any], timeout: float = 15.0) -> None:
        """The next room events are exactly ``expected`` (event, payload), in this order and
        byte for byte (``raw`` keeps the key order of the wire)."""
        end = self.cursor + len(expected)
        wait_until(
            lambda: len(self.room_events()) >= end,
            timeout,
            f"{len(expected)} room events on {self}",
        )
        got = [(m["event"], m["raw"]) for m in self.room_events()[self.cursor : end]]
        wanted = [(event, compact([payload])) for event, payload in expected]
        assert got == wanted, f"{self}: got\n{_lines(got)}\nexpected\n{_lines(wanted)}"
        self.cursor = end

    def expect_nothing_more(self) -> None:
        extra = [(m["event"], m["raw"]) for m in self.room_events()[self.cursor :]]
        assert not extra, f"{self}: unexpected\n{_lines(extra)}"

    def __str__(self) -> str:
        return f"socket {self.index} of {self.person_id}"

    def wait_event(self, event: str, where: Callable[[Any], bool], timeout: float = 15.0) -> Any:
        """The first payload of ``event`` after the cursor that satisfies ``where`` (other
        events are allowed in between; the cursor does not move)."""
        found: list[Any] = []

        def arrived() -> bool:
            found[:] = [
                m["args"][0]
                for m in self.room_events()[self.cursor :]
                if m["event"] == event and where(m["args"][0])
            ][:1]
            return bool(found)

        wait_until(arrived, timeout, f"{event} on {self}")
        return found[0]

    def skip_all(self) -> None:
        """Move the cursor past everything received so far."""
        self.cursor = len(self.room_events())


def _lines(events: list[tuple[str, str]]) -> str:
    return "\n".join(f"  {event} {raw}" for event, raw in events)


class Browsers:
    """The Kitsu client processes of one test, all closed at its end."""

    def __init__(self) -> None:
        self.clients: list[JsClient] = []

    def tabs(self, server: ServerHandle, person_id: str | None = None, count: int = 1) -> list[Tab]:
        """``count`` sockets of one person (one Node process) on ``server``; not waited for."""
        person_id = person_id or new_id()
        token = make_token(server.secret_key, sub=person_id)
        config: dict[str, Any] = {"auth": {"token": token}}
        if count > 1:
            config["count"] = count
        client = JsClient(server.url, **config)
        self.clients.append(client)
        return [Tab(client, server, person_id, i if count > 1 else None) for i in range(count)]

    def tab(self, server: ServerHandle, person_id: str | None = None) -> Tab:
        """One connected socket of ``person_id`` (a new person by default) on ``server``."""
        (tab,) = self.tabs(server, person_id)
        tab.wait_connected()
        return tab

    def close(self) -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(JsClient.close, self.clients))
        self.clients.clear()


def wait_acks(sent: list[tuple[Tab, str | None, Any]], timeout: float = 20.0) -> None:
    """Every (tab, ack id, what was sent) has been acknowledged: the server handled it."""

    clients = {tab.client for tab, _, _ in sent}

    def missing() -> list[str]:
        for client in clients:
            client.drain()
        acked = {m["id"] for client in clients for m in client.seen if m["type"] == "ack"}
        return [f"{tab}: {str(what)[:200]}" for tab, ack, what in sent if ack not in acked]

    try:
        wait_until(lambda: not missing(), timeout, "ACKs")
    except AssertionError:
        raise AssertionError("not acknowledged:\n" + "\n".join(missing())) from None


def wait_all_connected(tabs: list[Tab]) -> None:
    for tab in tabs:
        tab.wait_connected()


# --- steps and checks shared by the tests ------------------------------------------------


def expect_all(tabs: list[Tab], *expected: tuple[str, object]) -> None:
    for tab in tabs:
        tab.expect_next(*expected)


def people_updated(room: str, people: list[str]) -> tuple[str, dict[str, object]]:
    return PEOPLE_UPDATED, people_reply(room, people)


def open_in_turn(room: str, tabs: list[Tab], people: list[str]) -> None:
    """Each tab opens the room; everyone already there is told who is in session.

    Before the next tab opens, the instances of the tabs still to open have heard this open's
    broadcast: one that reached an instance only after its tab was in the room would be told
    to that tab too (in Zou's cluster as in ours), a second people-updated the test did not
    ask for."""
    for count, tab in enumerate(tabs, 1):
        # each instance once, in order (a ServerHandle is compared by value, not hashed)
        others = list(
            {id(t.server): t.server for t in tabs[count:] if t.server is not tab.server}.values()
        )
        heard = [room_emits_heard(server) for server in others]
        tab.open(room)
        expect_all(tabs[:count], people_updated(room, people))
        for server, before in zip(others, heard, strict=True):
            wait_until(
                partial(_heard_more, server, before),
                15,
                f"port {server.port} to hear the open from port {tab.server.port}",
            )


def _heard_more(server: ServerHandle, before: float) -> bool:
    return room_emits_heard(server) > before


def room_emits_heard(server: ServerHandle) -> float:
    """Room emits the instance received from the other instances (each one is timed)."""
    return metric(server, "zou_events_publish_delay_seconds_count")


def relay_payload(room: str, user_id: str, relay: str) -> dict[str, object]:
    """What Kitsu sends with a relay (plus fields nobody filters: relays are verbatim)."""
    data: dict[str, object] = {"local_id": new_id(), "user_id": user_id}
    if "panzoom" in relay:
        data.update(x=0.25, y=-12.5, zoom=1.75)
    else:
        data.update(
            time=3.2,
            obj={"id": new_id(), "type": "path", "path": [["M", 1, 2], ["L", 3, 4]]},
            laser=True,
        )
    return {"playlist_id": room, "data": data, "zz_extra": {"b": 1, "a": [None, False]}}


def on_all(tabs: list[Tab], send: Callable[[Tab], str | None]) -> None:
    """Send from every tab at once, then wait until the server has handled every event."""
    wait_acks([(tab, send(tab), "") for tab in tabs])


def updates_from(tab: Tab, sender_id: str) -> list[dict[str, Any]]:
    """The room-updated answers ``tab`` received for the sender whose local id is given."""
    return [p for p in tab.payloads(ROOM_UPDATED) if (p["local_id"] or "").startswith(sender_id)]


# --- metrics ------------------------------------------------------------------------------


def metric(server: ServerHandle, name: str, **labels: str) -> float:
    """A sample of the instance's /metrics (0 when absent), e.g.
    ``metric(s, "zou_events_room_events_refused_total", event="join", reason="too_large")``."""
    for family in text_string_to_metric_families(server.get_text("/metrics")):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


REFUSED = "zou_events_room_events_refused_total"
RATE_LIMIT_HITS = "zou_events_rate_limit_hits_total"


def refused(server: ServerHandle, event: str, reason: str) -> float:
    """Refusals of the client event ``event`` (full name) for ``reason`` on this instance."""
    return metric(server, REFUSED, event=event.removeprefix(PREFIX), reason=reason)


# --- fuzzing ------------------------------------------------------------------------------

NON_OBJECTS: list[Any] = [None, 0, -1.5, "", "x", True, [], [{}], [None, 1]]
JUNK: list[Any] = [
    None,
    True,
    0,
    -1.5e308,
    2**60,
    "",
    "x" * 200,
    [],
    {},
    [1, [2, [3, {"a": None}]]],
    {"$gt": "", "nested": {"deeper": [True, {"x": "y"}]}},
]


def bad_room_ids(room: str) -> list[Any]:
    """playlist_id values Zou would take as a room (or as "every socket") and we refuse."""
    return [0, 1.5, True, None, [], [room], {"id": room}, "", "\n", "x" * 65, "a\u0000b"]


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([rng.randint(-(2**63), 2**63), rng.uniform(-1e9, 1e9), 0])
    if kind == 3:
        return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(40)))
    if kind == 4:
        return rng.choice(list(ROOM_TEMPLATE))
    if kind == 5:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {str(random_json(rng, 4)): random_json(rng, depth + 1) for _ in range(rng.randrange(5))}


def fuzz_events(room: str, seeded: str, rng: random.Random) -> list[tuple[str, list[Any]]]:
    """(event, arguments) pairs: every client event with non-objects and bad room ids; every
    state field with junk, in updates of ``room`` and in joins seeding ``seeded``; junk
    second arguments; nested and large relays; random objects. Nothing Engine.IO refuses."""
    events: list[tuple[str, list[Any]]] = []
    for event in CLIENT_EVENTS:
        events += [(event, [value]) for value in NON_OBJECTS]
        events += [(event, [{"playlist_id": bad}]) for bad in bad_room_ids(room)]
        events.append((event, []))
    for name in ROOM_TEMPLATE:
        for junk in JUNK:
            events.append((ROOM_UPDATED, [{"playlist_id": room, name: junk}]))
            events.append((JOIN, [{"playlist_id": seeded, name: junk}]))
        events.append((ROOM_UPDATED, [{"playlist_id": room, "comparing": {name: JUNK[-1]}}]))
    valid = {"playlist_id": room, "local_id": "fuzz#1"}
    events += [(ROOM_UPDATED, [valid, junk]) for junk in ["yes", 1, {}, [], None]]
    events.append((ROOM_UPDATED, [valid, True, "third", {"fourth": 4}]))
    for relay in RELAYS:
        # past the room rules' 100 levels (refused with an ACK), within the packet decoder's
        # bound (strict_json.MAX_DEPTH: deeper packets are dropped before any handler)
        events.append((relay, [{"playlist_id": room, "data": nested(110)}]))
        events.append((relay, [{"playlist_id": room, "data": "z" * 200_000}]))
        events.append((relay, [{"playlist_id": room}, "extra", 3]))
    for _ in range(100):
        payload = random_json(rng, 4) if rng.random() < 0.2 else {}
        if isinstance(payload, dict):
            payload.update({rng.choice(list(ROOM_TEMPLATE)): random_json(rng) for _ in range(3)})
            payload["playlist_id"] = rng.choice([room, seeded])
        events.append((rng.choice(CLIENT_EVENTS), [payload]))
    rng.shuffle(events)
    return events


def _is_number(value: object) -> bool:
    """What JavaScript reads back exactly: finite floats, integers within ±(2^53 - 1)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**53


def _is(*kinds: str) -> Callable[[object], bool]:
    checks: dict[str, Callable[[object], bool]] = {
        "null": lambda v: v is None,
        "bool": lambda v: isinstance(v, bool),
        "number": _is_number,
        "text": lambda v: isinstance(v, str) and len(v) <= 128,
    }
    return lambda value: any(checks[kind](value) for kind in kinds)


# What a stored state may hold (docs/rooms.md, "Validation decisions").
FIELD_CHECKS: dict[str, Callable[[object], bool]] = {
    "user_id": _is("text"),
    "local_id": _is("text", "null"),
    "is_playing": _is("bool", "null"),
    "current_entity_id": _is("text", "null"),
    "current_entity_index": _is("number", "null"),
    "current_preview_file_id": _is("text", "null"),
    "current_preview_file_index": _is("number", "null"),
    "current_frame": _is("number", "null"),
    "is_repeating": _is("bool", "null"),
    "is_annotations_displayed": _is("bool", "null"),
    "is_zoom_enabled": _is("bool", "null"),
    "is_waveform_displayed": _is("bool", "null"),
    "is_laser_mode": _is("bool", "null"),
    "handle_in": _is("number", "null"),
    "handle_out": _is("number", "null"),
    "speed": _is("number", "null"),
}
COMPARING_CHECKS: dict[str, Callable[[object], bool]] = {
    "enable": _is("bool", "null"),
    "task_type": _is("text", "null"),
    "revision": _is("text", "number", "null"),
    "mode": _is("text", "null"),
    "comparison_preview_index": _is("number", "null"),
}


def assert_well_formed(payload: dict[str, Any], room: str) -> None:
    """A room-updated payload as Kitsu can use it: Zou's keys in Zou's order, sane values."""
    state = dict(payload)
    if list(state)[:1] == ["only_newcomer"]:
        assert isinstance(state.pop("only_newcomer"), bool), payload
    assert list(state) == list(ROOM_TEMPLATE), payload
    assert state["playlist_id"] == room, payload
    people = state["people"]
    assert all(isinstance(p, str) for p in people) and len(set(people)) == len(people), payload
    bad = [name for name, check in FIELD_CHECKS.items() if not check(state[name])]
    comparing = state["comparing"]
    assert isinstance(comparing, dict), payload
    assert set(comparing) <= set(COMPARING_CHECKS), payload
    bad += [f"comparing.{k}" for k, v in comparing.items() if not COMPARING_CHECKS[k](v)]
    assert not bad, f"bad fields {bad} in {payload}"


@contextmanager
def recursion_limit(limit: int) -> Iterator[None]:
    """Lets this process JSON-encode deeply nested test payloads."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(limit)
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def handler_errors(server: ServerHandle) -> list[str]:
    """Log lines telling of a failure in zou-events' own code: error lines whose traceback
    runs through it, and anything not JSON (what gevent prints when a greenlet dies)."""
    errors = []
    for line in server.logs().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            errors.append(line)
            continue
        if entry.get("level") in ("error", "critical") and "zou_events" in str(entry):
            errors.append(line)
    return errors


# --- a slow Zou API -------------------------------------------------------------------------


class SlowZou:
    """A stand-in for Zou's API that grants access to every playlist after ``delay`` seconds
    (the person check answers at once, with only the fields zou-events reads): it opens the
    window in which a socket may disconnect while its ``open-playlist`` or ``join`` waits."""

    ACCOUNT = {
        "authenticated": True,
        "user": {"active": True, "role": "user", "preview_project_id": None, "is_bot": False},
    }

    PLAYLIST = "/data/playlists/"

    def __init__(self, delay: float) -> None:
        # Requests for each playlist, received and answered: its access checks, and the
        # request for its names that follows the first entry (in the background, so it may
        # come before or after the next access check).
        self.asked: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        counting = threading.Lock()  # requests are served on threads: `+=` alone loses counts
        zou = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                is_playlist = self.path.startswith(SlowZou.PLAYLIST)
                playlist = self.path.removeprefix(SlowZou.PLAYLIST)
                if is_playlist:
                    with counting:
                        zou.asked[playlist] += 1
                    time.sleep(delay)  # the slowness being simulated
                body = json.dumps({} if is_playlist else SlowZou.ACCOUNT).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                if is_playlist:
                    with counting:
                        zou.answered[playlist] += 1

            def log_message(self, *_args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def __enter__(self) -> SlowZou:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.http.shutdown()
        self.http.server_close()
