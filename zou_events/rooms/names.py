"""The names of review rooms (playlist and production), for the live-reviews panel.

zou-events has no account of its own on Zou's API: a room's names are asked with the token of
a person who enters it, just after Zou allowed them in, in the background so the entry never
waits. They are shared through Redis, because the instance that reports the cluster's rooms
is rarely the one that served the entrant. Names are asked again once per ``refresh`` seconds
at most per room and instance (a renamed playlist shows after the next entry), and kept for
``keep`` seconds after the last answer: a review lasts hours without anyone entering.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Protocol

import gevent
import redis
import structlog

from zou_events.zou_api import RoomNames, TtlCache, ZouUnavailable, clean_name

log = structlog.get_logger("zou_events.rooms.names")


class NamesStore(Protocol):
    def remember(self, room_id: str, names: RoomNames, ttl: float) -> None: ...

    def lookup(self, room_ids: list[str]) -> dict[str, RoomNames]:
        """The known names of these rooms (unknown ones are left out)."""


class RedisNamesStore:
    def __init__(self, client: redis.Redis, prefix: str = "zou-events:") -> None:
        """``client`` must decode responses (``decode_responses=True``)."""
        self._client = client
        self._prefix = f"{prefix}room-names:"

    def remember(self, room_id: str, names: RoomNames, ttl: float) -> None:
        value = json.dumps({"playlist": names.playlist, "project": names.project})
        self._client.set(self._prefix + room_id, value, px=max(1, round(ttl * 1000)))

    def lookup(self, room_ids: list[str]) -> dict[str, RoomNames]:
        if not room_ids:
            return {}
        stored = self._client.mget([self._prefix + room_id for room_id in room_ids])
        return {
            room_id: names
            for room_id, raw in zip(room_ids, stored, strict=True)
            if (names := _decode(raw)) is not None
        }


def _decode(raw: str | bytes | None) -> RoomNames | None:
    """Redis is shared: what it holds is validated like any input."""
    try:
        fields = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    playlist, project = clean_name(fields.get("playlist")), clean_name(fields.get("project"))
    return RoomNames(playlist, project) if playlist and project else None


class MemoryNamesStore:
    """Standalone mode: the one instance."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._names: dict[str, tuple[float, RoomNames]] = {}  # room -> (until, names)

    def remember(self, room_id: str, names: RoomNames, ttl: float) -> None:
        now = self._clock()
        self._names = {r: entry for r, entry in self._names.items() if entry[0] > now}
        self._names[room_id] = (now + ttl, names)

    def lookup(self, room_ids: list[str]) -> dict[str, RoomNames]:
        now = self._clock()
        found = ((room_id, self._names.get(room_id)) for room_id in room_ids)
        return {room_id: entry[1] for room_id, entry in found if entry and entry[0] > now}


class NamesSource(Protocol):
    def room_names(self, token: str, playlist_id: str) -> RoomNames | None: ...


class RoomNamer:
    """Learns the names of the rooms people enter, at most once per ``refresh`` seconds per
    room on this instance."""

    def __init__(
        self, source: NamesSource, store: NamesStore, refresh: float = 600.0, keep: float = 86400.0
    ) -> None:
        self._source = source
        self._store = store
        self._keep = keep
        self._recent: TtlCache[bool] = TtlCache(refresh, max_entries=10_000)

    def entered(self, room_id: str, token: str) -> None:
        if self._recent.get(room_id):
            return
        self._recent.put(room_id, True)
        gevent.spawn(self._learn, room_id, token)

    def _learn(self, room_id: str, token: str) -> None:
        try:
            names = self._source.room_names(token, room_id)
            if names is not None:
                self._store.remember(room_id, names, self._keep)
        except (ZouUnavailable, redis.RedisError, OSError) as error:
            self._recent.forget(room_id)  # the next entrant tries again
            log.info("room names unavailable", error=str(error))
