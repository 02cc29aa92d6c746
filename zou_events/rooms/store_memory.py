"""Room store in process memory, for standalone mode (one instance, no Redis).

It mirrors the Redis store step by step (same transitions, same JSON-encoded fields) so both
behave identically; a lock makes each operation atomic for threads and greenlets alike.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from zou_events.rooms import rules
from zou_events.rooms.store import (
    Membership,
    OpenRoom,
    PeopleChange,
    RoomStats,
    decode_fields,
    encode_fields,
    summarise,
)


@dataclass
class _Room:
    openers: set[str] = field(default_factory=set)
    sockets: dict[str, str] = field(default_factory=dict)  # joined sid -> person id
    people: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)  # encoded state fields
    opened_at: float = field(default_factory=time.time)

    def state(self, room_id: str) -> dict[str, Any]:
        return rules.room_state(room_id, self.people, decode_fields(self.fields))


class MemoryRoomStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rooms: dict[str, _Room] = {}
        self._links: dict[str, dict[str, str]] = {}  # sid -> {room id: instance id}

    def open(self, room_id: str, sid: str, instance_id: str) -> list[str]:
        with self._lock:
            room = self._link(room_id, sid, instance_id)
            room.openers.add(sid)
            return list(room.people)

    def close(self, room_id: str, sid: str) -> None:
        with self._lock:
            room = self._rooms.get(room_id)
            if room is not None:
                room.openers.discard(sid)
                self._unlink_if_unused(room_id, room, sid)
                self._drop_if_unused(room_id, room)

    def is_opener(self, room_id: str, sid: str) -> bool:
        with self._lock:
            room = self._rooms.get(room_id)
            return room is not None and sid in room.openers

    def membership(self, room_id: str, sid: str) -> Membership:
        with self._lock:
            room = self._rooms.get(room_id)
            if room is None:
                return Membership(opened=False, joined=False)
            return Membership(opened=sid in room.openers, joined=sid in room.sockets)

    def join(
        self, room_id: str, sid: str, instance_id: str, person_id: str, payload: object
    ) -> tuple[list[str], dict[str, Any]]:
        update = encode_fields(rules.status_update(payload, person_id))
        with self._lock:
            room = self._link(room_id, sid, instance_id)
            if not room.people:
                room.fields.update(update)
            room.sockets[sid] = person_id
            room.people = rules.people_after_join(room.people, person_id)
            return list(room.people), room.state(room_id)

    def leave(self, room_id: str, sid: str) -> list[str]:
        with self._lock:
            room = self._rooms.get(room_id)
            if room is None:
                return []
            self._remove_presence(room, sid)
            self._unlink_if_unused(room_id, room, sid)
            self._drop_if_unused(room_id, room)
            return list(room.people)

    def update(self, room_id: str, payload: object, user_id: str) -> dict[str, Any] | None:
        update = encode_fields(rules.status_update(payload, user_id))
        with self._lock:
            room = self._rooms.get(room_id)
            if room is None:
                return None
            room.fields.update(update)
            return room.state(room_id)

    def disconnect(self, sid: str) -> list[PeopleChange]:
        with self._lock:
            changed: set[str] = set()
            self._forget_socket(sid, changed)
            return self._report(changed)

    def release_instance(self, instance_id: str) -> list[PeopleChange]:
        with self._lock:
            changed: set[str] = set()
            held = [sid for sid, links in self._links.items() if instance_id in links.values()]
            for sid in held:
                self._forget_socket(sid, changed)
            return self._report(changed)

    def reap_dead_instances(self) -> list[PeopleChange]:
        """Standalone mode runs one instance: no other instance can die holding sockets."""
        return []

    def rooms(self) -> list[OpenRoom]:
        with self._lock:
            return [
                OpenRoom(
                    room_id, len(room.people), len(room.sockets), len(room.openers), room.opened_at
                )
                for room_id, room in self._rooms.items()
            ]

    def stats(self) -> RoomStats:
        return summarise(self.rooms())

    # Transitions, the same as the Lua helpers of the Redis store; called with the lock held.

    def _link(self, room_id: str, sid: str, instance_id: str) -> _Room:
        self._links.setdefault(sid, {})[room_id] = instance_id
        return self._rooms.setdefault(room_id, _Room())

    def _unlink_if_unused(self, room_id: str, room: _Room, sid: str) -> None:
        """Forget the socket's link to the room once it neither opened nor joined it."""
        if sid in room.openers or sid in room.sockets:
            return
        links = self._links.get(sid, {})
        links.pop(room_id, None)
        if not links:
            self._links.pop(sid, None)

    def _drop_if_unused(self, room_id: str, room: _Room) -> None:
        if not room.openers and not room.people:
            del self._rooms[room_id]

    def _remove_presence(self, room: _Room, sid: str) -> bool:
        """Whether people changed."""
        person_id = room.sockets.pop(sid, None)
        if person_id is None:
            return False
        before = room.people
        room.people = rules.people_after_leave(before, person_id, room.sockets.values())
        if not room.people:
            room.fields.clear()  # Zou deletes the state with the last person
        return room.people != before

    def _forget_socket(self, sid: str, changed: set[str]) -> None:
        """Adds to ``changed`` the rooms whose people changed."""
        for room_id in self._links.pop(sid, {}):
            room = self._rooms[room_id]
            room.openers.discard(sid)
            if self._remove_presence(room, sid):
                changed.add(room_id)
            self._drop_if_unused(room_id, room)

    def _report(self, changed: set[str]) -> list[PeopleChange]:
        return [
            PeopleChange(room_id, list(room.people) if (room := self._rooms.get(room_id)) else [])
            for room_id in changed
        ]
