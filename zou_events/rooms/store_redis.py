"""Room store in Redis, shared by every instance: each operation is one atomic Lua script,
so two instances serving two members of a room at once never lose a person or an update."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from typing import Any

import redis

from zou_events.rooms import rules
from zou_events.rooms.keys import Keys
from zou_events.rooms.scripts import SCRIPTS
from zou_events.rooms.store import (
    Membership,
    OpenRoom,
    PeopleChange,
    RoomStats,
    decode_fields,
    encode_fields,
    summarise,
)


class RedisRoomStore:
    def __init__(self, client: redis.Redis, prefix: str = "zou-events:") -> None:
        """``client`` must decode responses (``decode_responses=True``)."""
        self._client = client
        self._keys = Keys(prefix)
        self._scripts = {name: client.register_script(source) for name, source in SCRIPTS.items()}

    def open(self, room_id: str, sid: str, instance_id: str) -> list[str]:
        return list(self._run("open", room_id, sid, instance_id))

    def close(self, room_id: str, sid: str) -> None:
        self._run("close", room_id, sid)

    def is_opener(self, room_id: str, sid: str) -> bool:
        return bool(self._client.sismember(self._keys.room(room_id, "openers"), sid))

    def membership(self, room_id: str, sid: str) -> Membership:
        pipe = self._client.pipeline(transaction=False)
        pipe.sismember(self._keys.room(room_id, "openers"), sid)
        pipe.hexists(self._keys.room(room_id, "sockets"), sid)
        opened, joined = pipe.execute()
        return Membership(opened=bool(opened), joined=bool(joined))

    def join(
        self, room_id: str, sid: str, instance_id: str, person_id: str, payload: object
    ) -> tuple[list[str], dict[str, Any]]:
        update = rules.status_update(payload, person_id)
        people, stored = self._run("join", room_id, sid, instance_id, person_id, *_pairs(update))
        return people, self._state(room_id, people, stored)

    def leave(self, room_id: str, sid: str) -> list[str]:
        return list(self._run("leave", room_id, sid))

    def update(self, room_id: str, payload: object, user_id: str) -> dict[str, Any] | None:
        update = rules.status_update(payload, user_id)
        result = self._run("update", room_id, *_pairs(update))
        if result is None:
            return None
        people, stored = result
        return self._state(room_id, people, stored)

    def disconnect(self, sid: str) -> list[PeopleChange]:
        return _changes(self._run("disconnect", sid))

    def release_instance(self, instance_id: str) -> list[PeopleChange]:
        return _changes(self._run("release", instance_id))

    def reap_dead_instances(self) -> list[PeopleChange]:
        return _changes(self._run("reap"))

    def rooms(self) -> list[OpenRoom]:
        return [
            OpenRoom(room_id, people, sockets, openers, float(opened) if opened else None)
            for room_id, people, sockets, openers, opened in self._run("rooms")
        ]

    def stats(self) -> RoomStats:
        return summarise(self.rooms())

    def _run(self, script: str, *args: str) -> Any:
        return self._scripts[script](keys=[], args=[self._keys.prefix, *args])

    @staticmethod
    def _state(room_id: str, people: list[str], stored: list[str]) -> dict[str, Any]:
        fields = dict(zip(stored[::2], stored[1::2], strict=True))  # HGETALL: flat pairs
        return rules.room_state(room_id, people, decode_fields(fields))


def _pairs(fields: Mapping[str, Any]) -> list[str]:
    return list(chain.from_iterable(encode_fields(fields).items()))


def _changes(reply: list[list[Any]]) -> list[PeopleChange]:
    return [PeopleChange(room_id, people) for room_id, people in reply]
