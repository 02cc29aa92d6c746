"""Disconnected sessions that may be recovered, under their private id (``pid``), on any
instance: kept in Redis with a TTL, taken once (GETDEL)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

import redis
import structlog

from zou_events.recovery.window import Landmark

log = structlog.get_logger("zou_events.recovery.sessions")


@dataclass(frozen=True, slots=True)
class Suspended:
    person_id: str
    disconnected_at: float  # wall-clock seconds: compared on another instance
    # the last broadcast its instance had read then, if any
    newest: Landmark | None = None


class SuspendedSessions(Protocol):
    def put(self, pid: str, session: Suspended, ttl: float) -> None: ...

    def take(self, pid: str) -> Suspended | None:
        """The session under ``pid``, removed: a second take finds nothing."""


def _encode(session: Suspended) -> str:
    newest = session.newest
    landmark = [newest.offset, newest.at, newest.digest] if newest is not None else None
    return json.dumps(
        {"person_id": session.person_id, "at": session.disconnected_at, "newest": landmark}
    )


def _decode(value: str) -> Suspended | None:
    """Our own JSON, still checked: a key's value is whatever Redis holds."""
    try:
        fields = json.loads(value)
    except ValueError:
        return None
    if not isinstance(fields, dict):
        return None
    person_id, at, newest = fields.get("person_id"), fields.get("at"), fields.get("newest")
    if not isinstance(person_id, str) or not isinstance(at, int | float):
        return None
    match newest:
        case [str(offset), int(read_at) | float(read_at), str(digest)]:
            return Suspended(person_id, float(at), Landmark(offset, float(read_at), digest))
        case None:
            return Suspended(person_id, float(at))
    return None


class RedisSuspendedSessions:
    """One key per session; the client must use ``decode_responses=True``."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = f"{prefix}recovery:"

    def put(self, pid: str, session: Suspended, ttl: float) -> None:
        self.client.set(self.prefix + pid, _encode(session), ex=max(1, round(ttl)))

    def take(self, pid: str) -> Suspended | None:
        value = self.client.getdel(self.prefix + pid)
        return _decode(value) if isinstance(value, str) else None
