"""What an instance shares with the others: the channel of Zou's events and of room changes,
the room store, the registry of live instances, the names of rooms, Zou's store of revoked
tokens, and connection state recovery's suspended sessions.

Two implementations of one interface, the way Centrifuge has a memory and a Redis broker:
``MemoryBus`` for a lone instance (standalone mode: nothing to tell anyone, every store in
memory, no revocation store) and ``RedisBus`` for a cluster. The rest of the package never
asks which mode it runs in.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import redis
import structlog

from zou_events import redis_link
from zou_events.config import AUTH_TOKEN_BLACKLIST_DB_INDEX, KV_EVENTS_DB_INDEX, Settings
from zou_events.messages import max_message_bytes
from zou_events.recovery import (
    NO_RECOVERY,
    NoRecovery,
    Recovery,
    RedisSuspendedSessions,
    ReplayWindow,
)
from zou_events.revocation_batch import RevocationBatcher, RevokedLookup
from zou_events.rooms import (
    InstanceRegistry,
    MemoryInstanceRegistry,
    MemoryRoomStore,
    RedisInstanceRegistry,
    RedisRoomStore,
    RoomStore,
)
from zou_events.rooms.names import MemoryNamesStore, NamesStore, RedisNamesStore
from zou_events.subscriber import Subscriber

if TYPE_CHECKING:
    from zou_events.fanout import Fanout

log = structlog.get_logger("zou_events.bus")

IsRevoked = Callable[[str], bool]  # jti -> revoked in Zou's store


class Subscription(Protocol):
    """The flow of messages from the other instances and Zou's API into the fan-out."""

    @property
    def subscribed(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Bus(Protocol):
    mode: str  # "standalone" or "redis", as /stats and the start log report it
    host_id: str  # this instance on the channel: its own messages come back and are skipped
    store: RoomStore
    registry: InstanceRegistry
    names: NamesStore
    recovery: Recovery | NoRecovery
    is_revoked: IsRevoked | None  # None: no revocation store to read
    revoked: RevokedLookup | None

    def publish(self, data: bytes) -> None:
        """Tell the other instances (a message in python-socketio's message-queue format)."""

    def subscription(self, fanout: Fanout) -> Subscription: ...

    def describe(self) -> str | None:
        """Where the bus is, safe for logs."""


class _Alone:
    """A lone instance hears from nobody, and is never waiting to."""

    subscribed = True

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class MemoryBus:
    mode = "standalone"

    def __init__(self, host_id: str | None = None) -> None:
        self.host_id = host_id or uuid.uuid4().hex
        self.store: RoomStore = MemoryRoomStore()
        self.registry: InstanceRegistry = MemoryInstanceRegistry()
        self.names: NamesStore = MemoryNamesStore()
        # Recovery needs a channel every instance reads alike, and sessions any one finds.
        self.recovery: Recovery | NoRecovery = NO_RECOVERY
        self.is_revoked: IsRevoked | None = None
        self.revoked: RevokedLookup | None = None

    def publish(self, data: bytes) -> None:
        pass  # no other instance

    def subscription(self, fanout: Fanout) -> Subscription:
        return _Alone()

    def describe(self) -> str | None:
        return None


class RedisBus:
    mode = "redis"

    def __init__(self, settings: Settings) -> None:
        self.host_id = uuid.uuid4().hex
        self._settings = settings
        revocation = redis_link.connect(settings, AUTH_TOKEN_BLACKLIST_DB_INDEX, decode=True)
        shared = redis_link.connect(settings, KV_EVENTS_DB_INDEX, decode=True)
        self._events = redis_link.connect(settings, KV_EVENTS_DB_INDEX, decode=False)
        self.store: RoomStore = RedisRoomStore(shared, settings.key_prefix)
        self.registry: InstanceRegistry = RedisInstanceRegistry(shared, settings.key_prefix)
        self.names: NamesStore = RedisNamesStore(shared, settings.key_prefix)
        self.recovery: Recovery | NoRecovery = NO_RECOVERY
        if settings.recovery:
            window = ReplayWindow(
                settings.recovery_window,
                settings.recovery_max_messages,
                settings.recovery_max_bytes,
            )
            self.recovery = Recovery(window, RedisSuspendedSessions(shared, settings.key_prefix))
        lookup = _revoked_lookup(revocation)
        self.revoked: RevokedLookup | None = lookup
        # A reconnect storm's handshakes share MGETs instead of the pool's connections.
        self.is_revoked: IsRevoked | None = RevocationBatcher(lookup).is_revoked

    def publish(self, data: bytes) -> None:
        try:
            self._events.publish(self._settings.channel, data)
        except redis.RedisError as error:
            log.warning("cannot publish to redis", error=str(error))

    def subscription(self, fanout: Fanout) -> Subscription:
        settings = self._settings
        return Subscriber(
            lambda: redis_link.connect(settings, KV_EVENTS_DB_INDEX, decode=False, for_pubsub=True),
            settings.channel,
            fanout,
            max_message_bytes(settings.room_payload_max_bytes),
        )

    def describe(self) -> str | None:
        return self._settings.redis.describe()


def _revoked_lookup(client: redis.Redis) -> RevokedLookup:
    def revoked(jtis: list[str]) -> set[str]:
        return {jti for jti, value in zip(jtis, client.mget(jtis), strict=True) if value == "true"}

    return revoked


def connect(settings: Settings, mode: str) -> Bus:
    """The bus of ``mode`` (redis_link.resolve_mode's answer)."""
    return RedisBus(settings) if mode == "redis" else MemoryBus()
