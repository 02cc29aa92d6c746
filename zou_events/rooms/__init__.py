"""Preview ("review") rooms: Zou's rules (``rules``, pure) and where rooms live (the store:
in memory for standalone mode, in Redis for a cluster), plus the registry of live instances.
See docs/rooms.md."""

from zou_events.rooms.cluster import (
    ClusterStats,
    InstanceRegistry,
    MemoryInstanceRegistry,
    RedisInstanceRegistry,
)
from zou_events.rooms.store import Membership, OpenRoom, PeopleChange, RoomStats, RoomStore
from zou_events.rooms.store_memory import MemoryRoomStore
from zou_events.rooms.store_redis import RedisRoomStore

__all__ = [
    "ClusterStats",
    "InstanceRegistry",
    "Membership",
    "MemoryInstanceRegistry",
    "MemoryRoomStore",
    "OpenRoom",
    "PeopleChange",
    "RedisInstanceRegistry",
    "RedisRoomStore",
    "RoomStats",
    "RoomStore",
]
