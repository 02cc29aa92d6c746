"""The room store interface, shared by the in-memory and the Redis implementations.

A socket takes part in a room in two independent ways, as in Zou: it *opened* the room
(``open-playlist``: it receives the room's emits and may drive it) and it *joined* it
(``join``: its person is in ``people``). Presence is per socket: a person is in ``people``
while at least one of their sockets has joined. A room exists while it has an opener or a
person; its state is forgotten when its last person leaves (as Zou deletes it).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol


class PeopleChange(NamedTuple):
    """A room whose ``people`` changed, to be told with ``room-people-updated``."""

    room_id: str
    people: list[str]


class OpenRoom(NamedTuple):
    """One room of the store, for the live-reviews metrics."""

    room_id: str
    people: int
    sockets: int  # sockets that joined it
    openers: int  # sockets that opened it
    opened_at: float | None  # Unix time it came to exist (None: created by an older version)


@dataclass(frozen=True)
class RoomStats:
    rooms: int = 0  # rooms with an opener or a person
    people: int = 0  # sum over rooms of len(people)
    sockets: int = 0  # sockets that joined a room (a socket counts once per room)
    openers: int = 0  # sockets that opened a room (once per room)
    people_per_room: dict[int, int] = field(default_factory=dict)  # len(people) -> rooms


class Membership(NamedTuple):
    opened: bool  # the socket opened the room (it receives the room's emits)
    joined: bool  # the socket's person is present through it


class RoomStore(Protocol):
    def open(self, room_id: str, sid: str, instance_id: str) -> list[str]:
        """Record that ``sid`` (held by ``instance_id``) opened the room; its people."""

    def close(self, room_id: str, sid: str) -> None:
        """Forget that ``sid`` opened the room (its presence, if any, stays)."""

    def is_opener(self, room_id: str, sid: str) -> bool: ...

    def membership(self, room_id: str, sid: str) -> Membership:
        """Whether the socket opened and whether it joined the room (one round trip)."""

    def join(
        self, room_id: str, sid: str, instance_id: str, person_id: str, payload: object
    ) -> tuple[list[str], dict[str, Any]]:
        """Add the socket's presence; the first joiner of an empty room seeds the state from
        ``payload``. Returns people and the full state."""

    def leave(self, room_id: str, sid: str) -> list[str]:
        """Remove the socket's presence; returns people (unchanged if it had not joined)."""

    def update(self, room_id: str, payload: object, user_id: str) -> dict[str, Any] | None:
        """Whitelist replace of the state; the new state, or None if the room does not
        exist (nobody opened or joined it) — nothing is then stored."""

    def disconnect(self, sid: str) -> list[PeopleChange]:
        """Forget the socket everywhere; the rooms whose people changed."""

    def release_instance(self, instance_id: str) -> list[PeopleChange]:
        """Forget every socket held by the instance (at its start, after a restart under
        the same id, and at its clean shutdown)."""

    def reap_dead_instances(self) -> list[PeopleChange]:
        """Release every instance whose heartbeat expired; each room is reported once."""

    def rooms(self) -> list[OpenRoom]:
        """Every room with an opener or a person (one round trip)."""

    def stats(self) -> RoomStats: ...


def encode_fields(fields: Mapping[str, Any]) -> dict[str, str]:
    """Stored form of state fields: one JSON value per field (key order then cannot drift).

    ``allow_nan=False``: the rules never let NaN through, and a browser could not parse it.
    """
    return {name: json.dumps(value, allow_nan=False) for name, value in fields.items()}


def decode_fields(stored: Mapping[str, str]) -> dict[str, Any]:
    return {name: json.loads(value) for name, value in stored.items()}


def summarise(rooms: Iterable[OpenRoom]) -> RoomStats:
    people_total = sockets = openers = 0
    sizes: Counter[int] = Counter()
    for room in rooms:
        people_total += room.people
        sockets += room.sockets
        openers += room.openers
        sizes[room.people] += 1
    return RoomStats(
        rooms=sum(sizes.values()),
        people=people_total,
        sockets=sockets,
        openers=openers,
        people_per_room=dict(sorted(sizes.items())),
    )
