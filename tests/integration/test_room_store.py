"""The room store through both implementations, then the Redis one under concurrency,
instance death and reaping, against the suite's real Redis (DB 5, one key prefix per test)."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gevent
import pytest
import redis

from tests.support import suite_redis
from tests.support.server import wait_until
from zou_events.rooms import (
    MemoryInstanceRegistry,
    MemoryRoomStore,
    PeopleChange,
    RedisInstanceRegistry,
    RedisRoomStore,
    RoomStats,
    RoomStore,
    rules,
)
from zou_events.rooms.names import MemoryNamesStore, RedisNamesStore, RoomNamer
from zou_events.zou_api import MAX_NAME_CHARS, RoomNames, ZouUnavailable, clean_name

DB = 5
P, Q = "playlist-p", "playlist-q"
A, B, C = "person-a", "person-b", "person-c"

KITSU_JOIN = {
    "user_id": A,
    "playlist_id": P,
    "is_playing": True,
    "current_entity_id": "entity-1",
    "current_entity_index": 1,
    "current_preview_file_id": "preview-1",
    "current_preview_file_index": 0,
    "current_frame": 12,
    "is_repeating": False,
    "is_laser_mode": False,
    "is_annotations_displayed": True,
    "is_waveform_displayed": False,
    "is_zoom_enabled": False,
    "handle_in": None,
    "handle_out": None,
    "speed": 2,
    "comparing": {
        "enable": True,
        "task_type": "task-type-1",
        "revision": "2",
        "mode": "overlay",
        "comparison_preview_index": 0,
    },
}


def connect() -> redis.Redis:
    return suite_redis.client(DB, decode_responses=True)


@pytest.fixture(scope="module")
def client() -> Iterator[redis.Redis]:
    connection = connect()
    yield connection
    connection.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    value = f"zou-events-test:{uuid.uuid4().hex}:"
    yield value
    keys = list(client.scan_iter(f"{value}*"))
    if keys:
        client.delete(*keys)


def keys_of(client: redis.Redis, prefix: str) -> set[str]:
    return {key.removeprefix(prefix) for key in client.scan_iter(f"{prefix}*")}


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, client: redis.Redis, prefix: str) -> RoomStore:
    if request.param == "memory":
        return MemoryRoomStore()
    return RedisRoomStore(client, prefix)


def as_set(changes: list[PeopleChange]) -> dict[str, list[str]]:
    """Changes by room; each room must be reported once."""
    rooms = [change.room_id for change in changes]
    assert len(rooms) == len(set(rooms)), changes
    return {change.room_id: change.people for change in changes}


# Behaviour shared by both stores


def test_open_returns_people_and_close_leaves_nothing(store: RoomStore) -> None:
    assert store.open(P, "s1", "i1") == []
    assert store.is_opener(P, "s1")
    assert not store.is_opener(P, "s2")
    assert not store.is_opener(Q, "s1")
    assert store.stats() == RoomStats(rooms=1, openers=1, people_per_room={0: 1})
    store.close(P, "s1")
    assert not store.is_opener(P, "s1")
    assert store.stats() == RoomStats()


def test_open_of_a_populated_room_shows_who_is_in_session(store: RoomStore) -> None:
    store.join(P, "s1", "i1", A, KITSU_JOIN)
    store.join(P, "s2", "i2", B, {})
    assert store.open(P, "s3", "i1") == [A, B]


def test_first_joiner_seeds_the_state_later_joiners_do_not(store: RoomStore) -> None:
    store.open(P, "s1", "i1")
    people, state = store.join(P, "s1", "i1", A, KITSU_JOIN)
    expected = rules.room_state(P, [A], rules.status_update(KITSU_JOIN, A))
    assert people == [A]
    assert state == expected
    assert list(state) == list(rules.empty_room())

    other = {**KITSU_JOIN, "current_frame": 99, "is_playing": False, "speed": 1}
    people, state = store.join(P, "s2", "i2", B, other)
    assert people == [A, B]
    assert state == {**expected, "people": [A, B]}


def test_state_round_trips_with_key_order_and_types(store: RoomStore) -> None:
    payload = {**KITSU_JOIN, "comparing": {"mode": "overlay", "enable": True}, "speed": 0.5}
    _, state = store.join(P, "s1", "i1", A, payload)
    assert list(state["comparing"]) == ["mode", "enable"]
    assert state["speed"] == 0.5 and isinstance(state["speed"], float)
    assert state["current_frame"] == 12 and isinstance(state["current_frame"], int)


def test_join_without_open_counts_and_joining_twice_changes_nothing(store: RoomStore) -> None:
    store.join(P, "s1", "i1", A, KITSU_JOIN)
    people, _ = store.join(P, "s1", "i1", A, KITSU_JOIN)
    assert people == [A]
    assert store.stats() == RoomStats(rooms=1, people=1, sockets=1, people_per_room={1: 1})
    assert not store.is_opener(P, "s1")


def test_update_is_a_whitelist_replace(store: RoomStore) -> None:
    store.open(P, "s1", "i1")
    store.join(P, "s1", "i1", A, KITSU_JOIN)
    state = store.update(P, {"playlist_id": P, "local_id": "loc#1", "room_seq": 1}, B)
    assert state is not None
    assert state == {
        **rules.empty_room(),
        "playlist_id": P,
        "user_id": B,
        "local_id": "loc#1",
        "people": [A],
        "current_frame": 12,
        "speed": 2,
        "comparing": KITSU_JOIN["comparing"],
    }


def test_update_of_a_room_nobody_opened_stores_nothing(
    store: RoomStore, client: redis.Redis, prefix: str
) -> None:
    assert store.update(P, KITSU_JOIN, A) is None
    assert store.stats() == RoomStats()
    assert keys_of(client, prefix) == set()


def test_update_before_anyone_joined_then_first_join_reseeds(store: RoomStore) -> None:
    store.open(P, "s1", "i1")
    state = store.update(P, {"playlist_id": P, "speed": 3, "is_playing": True}, A)
    assert state is not None and state["people"] == [] and state["speed"] == 3
    _, state = store.join(P, "s1", "i1", A, {"playlist_id": P})
    assert state["is_playing"] is False  # seeded by the joiner (whitelist replace)
    assert state["speed"] == 3  # kept when absent, as in Zou


def test_last_person_leaving_forgets_the_state(store: RoomStore) -> None:
    store.open(P, "s1", "i1")
    store.join(P, "s1", "i1", A, KITSU_JOIN)
    assert store.leave(P, "s1") == []
    assert store.is_opener(P, "s1")
    _, state = store.join(P, "s1", "i1", A, {"playlist_id": P})
    assert state == {**rules.empty_room(), "playlist_id": P, "user_id": A, "people": [A]}


def test_leave_keeps_order_and_reports_people(store: RoomStore) -> None:
    for sid, person in (("s1", A), ("s2", B), ("s3", C)):
        store.join(P, sid, "i1", person, {})
    assert store.leave(P, "s2") == [A, C]
    assert store.leave(P, "s2") == [A, C]  # not joined any more: unchanged
    assert store.leave(Q, "s1") == []  # no such room
    assert store.join(P, "s2", "i1", B, {})[0] == [A, C, B]


def test_close_keeps_presence(store: RoomStore) -> None:
    store.open(P, "s1", "i1")
    store.join(P, "s1", "i1", A, {})
    store.close(P, "s1")
    assert not store.is_opener(P, "s1")
    assert store.open(P, "s2", "i1") == [A]


def test_two_tabs_of_one_person(store: RoomStore) -> None:
    store.open(P, "tab1", "i1")
    store.open(P, "tab2", "i2")
    assert store.join(P, "tab1", "i1", A, KITSU_JOIN)[0] == [A]
    assert store.join(P, "tab2", "i2", A, KITSU_JOIN)[0] == [A]
    store.join(P, "s3", "i1", B, {})
    assert store.stats().sockets == 3
    assert store.leave(P, "tab1") == [A, B]  # still there through tab2, in place
    assert store.disconnect("tab1") == []
    assert store.disconnect("tab2") == [PeopleChange(P, [B])]


def test_a_tab_that_never_joined_does_not_remove_its_person(store: RoomStore) -> None:
    store.open(P, "a1", "i1")
    store.join(P, "a1", "i1", A, {})
    store.open(P, "a2", "i1")
    assert store.disconnect("a2") == []
    assert store.open(P, "b1", "i1") == [A]


def test_disconnect_reports_the_rooms_whose_people_changed(store: RoomStore) -> None:
    store.open(P, "s1", "i1")
    store.join(P, "s1", "i1", A, {})
    store.join(Q, "s1", "i1", A, {})
    store.join(Q, "s2", "i1", B, {})
    store.open("only-opened", "s1", "i1")
    assert as_set(store.disconnect("s1")) == {P: [], Q: [B]}
    assert not store.is_opener("only-opened", "s1")
    assert store.stats() == RoomStats(rooms=1, people=1, sockets=1, people_per_room={1: 1})
    assert store.disconnect("s1") == []
    assert store.disconnect("never-seen") == []


def test_release_instance_forgets_its_sockets_only(store: RoomStore) -> None:
    store.join(P, "x1", "dead", A, {})
    store.join(P, "y1", "live", B, {})
    store.open(Q, "x2", "dead")
    store.join(Q, "x1", "dead", A, {})
    store.join(Q, "y2", "live", A, {})
    assert as_set(store.release_instance("dead")) == {P: [B]}
    assert store.stats() == RoomStats(rooms=2, people=2, sockets=2, people_per_room={1: 2})
    assert store.release_instance("dead") == []


def test_stats_count_rooms_people_sockets_and_sizes(store: RoomStore) -> None:
    store.open("r0", "o1", "i1")
    store.join("r1", "s1", "i1", A, {})
    for sid, person in (("s2", A), ("s3", A), ("s4", B)):
        store.join("r2", sid, "i1", person, {})
    store.open("r2", "s2", "i1")
    assert store.stats() == RoomStats(
        rooms=3, people=3, sockets=4, openers=2, people_per_room={0: 1, 1: 1, 2: 1}
    )


def test_rooms_list_each_room_with_its_counts_and_opening_time(store: RoomStore) -> None:
    before = time.time()
    store.open("r0", "o1", "i1")
    store.join("r1", "s1", "i1", A, {})
    store.join("r1", "s2", "i1", B, {})
    store.open("r1", "s2", "i1")
    after = time.time()
    rooms = {room.room_id: room for room in store.rooms()}
    assert {r: (o.people, o.sockets, o.openers) for r, o in rooms.items()} == {
        "r0": (0, 0, 1),
        "r1": (2, 2, 1),
    }
    for room in rooms.values():  # Redis's clock, in whole seconds
        assert room.opened_at is not None and int(before) <= room.opened_at <= after
    store.disconnect("o1")  # its last opener gone, the room is gone
    assert [room.room_id for room in store.rooms()] == ["r1"]


def test_hostile_payloads_are_stored_as_defaults(store: RoomStore) -> None:
    huge = "x" * 1_000_000
    junk = {name: {"nested": [huge]} for name in rules.empty_room()}
    junk |= {"local_id": huge, "comparing": [huge]}
    for payload in (None, [1, 2], huge, junk):
        _, state = store.join(P, "s1", "i1", A, payload)
        assert state == {**rules.empty_room(), "playlist_id": P, "user_id": A, "people": [A]}
        state = store.update(P, payload, A)
        assert state == {**rules.empty_room(), "playlist_id": P, "user_id": A, "people": [A]}
        store.leave(P, "s1")


def test_room_ids_with_separators_do_not_collide(store: RoomStore) -> None:
    store.join("a:people", "s1", "i1", A, {})
    store.join("a", "s2", "i1", B, {})
    store.open("a:openers", "s3", "i1")
    assert store.open("a", "s4", "i1") == [B]
    assert store.open("a:people", "s5", "i1") == [A]
    assert store.open("a:openers", "s6", "i1") == []


# Redis only: nothing left behind


def test_no_keys_left_once_everyone_is_gone(client: redis.Redis, prefix: str) -> None:
    store = RedisRoomStore(client, prefix)
    registry = RedisInstanceRegistry(client, prefix)
    registry.heartbeat("i1", 30)
    store.open(P, "s1", "i1")
    store.join(P, "s1", "i1", A, KITSU_JOIN)
    store.join(P, "s2", "i1", B, KITSU_JOIN)
    store.open(Q, "s2", "i1")
    store.update(P, KITSU_JOIN, A)
    store.leave(P, "s1")
    store.close(P, "s1")
    store.disconnect("s2")
    assert keys_of(client, prefix) == {"instances", "instance:i1:alive"}
    store.release_instance("i1")
    assert client.pttl(f"{prefix}instance:i1:alive") > 0  # the heartbeat expires by itself


def test_key_layout(client: redis.Redis, prefix: str) -> None:
    store = RedisRoomStore(client, prefix)
    store.open(P, "s1", "i1")
    store.join(P, "s1", "i1", A, KITSU_JOIN)
    assert keys_of(client, prefix) == {
        "rooms",
        "instances",
        f"room:{P}:state",
        f"room:{P}:people",
        f"room:{P}:sockets",
        f"room:{P}:openers",
        f"room:{P}:opened",
        "socket:s1",
        "instance:i1:sockets",
    }
    assert client.hgetall(f"{prefix}socket:s1") == {P: "i1"}
    assert client.hgetall(f"{prefix}room:{P}:sockets") == {"s1": A}


# Two instances at once (the memory store is shared by threads instead)


@pytest.fixture(params=["memory", "redis"])
def two_stores(request: pytest.FixtureRequest, prefix: str) -> list[RoomStore]:
    """Two stores on separate connections, as two instances would have."""
    if request.param == "memory":
        shared = MemoryRoomStore()
        return [shared, shared]
    return [RedisRoomStore(connect(), prefix), RedisRoomStore(connect(), prefix)]


def run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Runs work(0..count-1) on as many threads, released at the same moment."""
    barrier = threading.Barrier(count)

    def start(index: int) -> Any:
        barrier.wait()
        return work(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(start, range(count)))


def test_concurrent_members_on_two_instances_lose_nothing(
    two_stores: list[RoomStore], client: redis.Redis, prefix: str
) -> None:
    stores = two_stores
    persons = [f"person-{n}" for n in range(12)]
    sockets = [(f"sid-{n}", persons[n % len(persons)], n % 2) for n in range(36)]
    leaving = {sid for sid, _, _ in sockets[::3]}
    payloads: dict[str, dict[str, Any]] = {}
    returned: list[tuple[str, dict[str, Any]]] = []
    lock = threading.Lock()

    def member(index: int) -> None:
        sid, person, instance = sockets[index]
        store = stores[instance]
        store.open(P, sid, f"i{instance}")
        store.join(P, sid, f"i{instance}", person, {"playlist_id": P, "current_frame": index})
        for seq in range(8):
            local_id = f"{sid}#{seq}"
            payload = {
                "playlist_id": P,
                "local_id": local_id,
                "current_frame": index * 100 + seq,
                "current_entity_index": index,
                "current_preview_file_index": seq,
                "is_playing": seq % 2 == 0,
                "speed": seq,
            }
            state = store.update(P, payload, person)
            with lock:
                payloads[local_id] = {**payload, "user_id": person}
                returned.append((local_id, state))
        if sid in leaving:
            store.leave(P, sid)
            store.close(P, sid)

    run_together(len(sockets), member)

    def consistent(local_id: str, state: dict[str, Any]) -> None:
        sent = payloads[local_id]
        for name in ("user_id", "current_frame", "current_entity_index", "is_playing", "speed"):
            assert state[name] == sent[name], (local_id, name)

    for local_id, state in returned:  # each update is atomic: never a mix of two payloads
        consistent(local_id, state)
    present = {person for sid, person, _ in sockets if sid not in leaving}
    people, final = stores[0].join(P, "late", "i0", "late-person", {})
    assert set(people) == present | {"late-person"}
    assert len(people) == len(set(people))
    consistent(final["local_id"], final)
    assert final["people"] == people
    assert stores[1].stats().sockets == len(sockets) - len(leaving) + 1
    for store in stores:
        store.release_instance("i0")
        store.release_instance("i1")
    assert stores[0].stats() == RoomStats()
    assert keys_of(client, prefix) == set()


def test_concurrent_first_joiners_seed_exactly_once(two_stores: list[RoomStore]) -> None:
    stores = two_stores
    count = 24

    def joiner(index: int) -> dict[str, Any]:
        payload = {"playlist_id": P, "current_frame": index, "current_entity_index": index}
        return stores[index % 2].join(P, f"s{index}", f"i{index % 2}", f"p{index}", payload)[1]

    states = run_together(count, joiner)
    seeds = {(state["current_frame"], state["current_entity_index"]) for state in states}
    assert len(seeds) == 1  # every join answered the same, untorn, state
    seed = seeds.pop()[0]
    assert all(state["user_id"] == f"p{seed}" for state in states)
    assert len(stores[0].open(P, "x", "i0")) == count


def test_concurrent_disconnects_and_joins_keep_presence_exact(
    two_stores: list[RoomStore],
) -> None:
    stores = two_stores
    for n in range(20):
        stores[n % 2].join(P, f"old{n}", f"i{n % 2}", f"p{n % 5}", {})

    def churn(index: int) -> list[PeopleChange]:
        store = stores[index % 2]
        if index < 20:
            return store.disconnect(f"old{index}")
        store.join(P, f"new{index}", f"i{index % 2}", f"q{index % 4}", {})
        return []

    run_together(40, churn)
    people = stores[0].open(P, "watcher", "i0")
    assert sorted(people) == sorted(f"q{n}" for n in range(4))


# Redis only: instance death and the registry


def test_dead_instance_is_reaped_and_its_rooms_told(client: redis.Redis, prefix: str) -> None:
    live_store = RedisRoomStore(connect(), prefix)
    dead_store = RedisRoomStore(connect(), prefix)
    registry = RedisInstanceRegistry(client, prefix)
    assert registry.heartbeat("live", 30) is False  # first start
    assert registry.heartbeat("dead", 1) is False
    dead_store.join(P, "d1", "dead", A, KITSU_JOIN)
    dead_store.join(P, "d2", "dead", B, {})
    dead_store.join(Q, "d1", "dead", A, {})
    live_store.join(P, "l1", "live", C, {})
    live_store.join(P, "l2", "live", B, {})
    live_store.open("R", "d3", "dead")

    assert live_store.reap_dead_instances() == []  # still live
    changes = wait_until(live_store.reap_dead_instances, 10, "the dead instance reaped")
    assert as_set(changes) == {P: [B, C], Q: []}  # B stays, in place, through l2
    assert set(registry.cluster_stats().instances) == {"live"}
    assert live_store.reap_dead_instances() == []
    assert not any(key.startswith(("socket:d", "instance:dead")) for key in keys_of(client, prefix))
    assert live_store.stats() == RoomStats(rooms=1, people=2, sockets=2, people_per_room={2: 1})


def test_concurrent_reapers_report_each_room_once(client: redis.Redis, prefix: str) -> None:
    registry = RedisInstanceRegistry(client, prefix)
    stores = [RedisRoomStore(connect(), prefix) for _ in range(4)]
    registry.heartbeat("dead", 0.3)
    registry.heartbeat("dead2", 0.3)
    rooms = [f"room-{n}" for n in range(10)]
    for n, room in enumerate(rooms):
        stores[0].join(room, f"x{n}", "dead" if n % 2 else "dead2", f"p{n}", {})
    wait_until(lambda: not registry.cluster_stats().instances, 10, "the instance expired")

    results = run_together(len(stores), lambda index: stores[index].reap_dead_instances())
    reported = list(itertools.chain.from_iterable(results))
    assert as_set(reported) == {room: [] for room in rooms}
    assert keys_of(client, prefix) == set()


def test_heartbeat_says_when_the_instance_was_not_live(client: redis.Redis, prefix: str) -> None:
    registry = RedisInstanceRegistry(client, prefix)
    assert registry.heartbeat("i1", 0.3) is False
    assert registry.heartbeat("i1", 0.3) is True
    wait_until(lambda: not registry.cluster_stats().instances, 10, "the instance expired")
    assert registry.heartbeat("i1", 30) is False


def test_cluster_stats_sum_live_instances(client: redis.Redis, prefix: str) -> None:
    registry = RedisInstanceRegistry(client, prefix)
    for instance, count in (("i1", 3), ("i2", 4), ("gone", 100)):
        if instance != "gone":  # its heartbeat expired, its counters not yet
            registry.heartbeat(instance, 30)
        counters = {"nb_connections": count, "namespaces": {"/": 1, "/events": count}}
        registry.publish_instance_stats(instance, counters, 30)
    registry.heartbeat("quiet", 30)  # live, nothing published yet
    stats = registry.cluster_stats()
    assert set(stats.instances) == {"i1", "i2", "quiet"}
    assert stats.instances["quiet"] == {}
    assert stats.totals == {"nb_connections": 7, "namespaces": {"/": 2, "/events": 7}}


def test_cluster_stats_skip_counters_of_another_shape(client: redis.Redis, prefix: str) -> None:
    registry = RedisInstanceRegistry(client, prefix)
    registry.heartbeat("old", 30)
    registry.heartbeat("new", 30)
    registry.publish_instance_stats("old", {"a": 1, "b": 2, "flag": True}, 30)
    registry.publish_instance_stats("new", {"a": {"x": 1}, "b": 3, "name": "n"}, 30)
    assert registry.cluster_stats().totals in ({"a": 1, "b": 5}, {"a": {"x": 1}, "b": 5})


def test_memory_registry_follows_the_same_rules() -> None:
    now = [100.0]
    registry = MemoryInstanceRegistry(clock=lambda: now[0])
    assert registry.heartbeat("i1", 10) is False
    registry.publish_instance_stats("i1", {"nb_connections": 2}, 5)
    now[0] += 4
    assert registry.heartbeat("i1", 10) is True
    assert registry.cluster_stats().totals == {"nb_connections": 2}
    now[0] += 2
    assert registry.cluster_stats().instances == {"i1": {}}  # counters expired
    now[0] += 20
    assert registry.cluster_stats().instances == {}
    assert registry.heartbeat("i1", 10) is False


# The names of rooms (live reviews): what Redis holds is validated like any input; Zou is
# asked once per refresh and room, and again after it could not answer.


NAMES = RoomNames(playlist="Dailies 12", project="Big Buck Bunny")


def test_names_are_printable_and_bounded() -> None:
    assert clean_name("  Dailies\x00 12\n ") == "Dailies 12"
    assert clean_name("é" * 500) == "é" * MAX_NAME_CHARS
    for unusable in (None, 12, ["a"], "", " \x07 "):
        assert clean_name(unusable) is None


def test_redis_store_shares_names_and_refuses_what_is_not_names(
    client: redis.Redis, prefix: str
) -> None:
    store = RedisNamesStore(client, prefix)
    store.remember("r1", NAMES, ttl=60)
    assert RedisNamesStore(client, prefix).lookup(["r1", "unknown"]) == {"r1": NAMES}
    assert 0 < client.pttl(f"{prefix}room-names:r1") <= 60_000
    hostile = {
        "not-json": "{",
        "a-list": "[1, 2]",
        "not-text": json.dumps({"playlist": 3, "project": "P"}),
        "blank": json.dumps({"playlist": " ", "project": "P"}),
        "long": json.dumps({"playlist": "x" * 10_000, "project": "P\x1b[31m"}),
    }
    for room, raw in hostile.items():
        client.set(f"{prefix}room-names:{room}", raw)
    assert store.lookup(list(hostile)) == {
        "long": RoomNames(playlist="x" * MAX_NAME_CHARS, project="P[31m")
    }
    assert store.lookup([]) == {}


def test_memory_store_forgets_names_after_their_time() -> None:
    now = [0.0]
    store = MemoryNamesStore(clock=lambda: now[0])
    store.remember("r1", NAMES, ttl=10)
    now[0] = 9.0
    assert store.lookup(["r1"]) == {"r1": NAMES}
    now[0] = 10.5
    assert store.lookup(["r1"]) == {}


class ScriptedSource:
    """Zou's answers in order: names, or ZouUnavailable (the real API is exercised by
    tests/observability/test_obs_live_reviews.py)."""

    def __init__(self, *answers: RoomNames | Exception | None) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, str]] = []

    def room_names(self, token: str, playlist_id: str) -> RoomNames | None:
        self.asked.append((token, playlist_id))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_namer_asks_once_per_room_and_again_after_zou_failed() -> None:
    source = ScriptedSource(ZouUnavailable("timeout"), NAMES)
    store = MemoryNamesStore()
    namer = RoomNamer(source, store, refresh=600, keep=3600)
    namer.entered("r1", "token-a")
    gevent.wait(timeout=5)
    assert store.lookup(["r1"]) == {}  # Zou did not answer: the next entrant asks again
    namer.entered("r1", "token-b")
    gevent.wait(timeout=5)
    namer.entered("r1", "token-c")  # known: not asked again within the refresh period
    gevent.wait(timeout=5)
    assert source.asked == [("token-a", "r1"), ("token-b", "r1")]
    assert store.lookup(["r1"]) == {"r1": NAMES}
