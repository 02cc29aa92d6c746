"""The Redis key layout of rooms and instances, in Python and in Lua (one place for both).

Every key starts with the configured prefix (``zou-events:`` by default). Room and socket
keys are deleted when they empty; instance keys expire or are deleted when the instance is
released. The kinds ending each family (state/people/sockets/openers, alive/stats/sockets)
are chosen so that no kind is a suffix of another: ids containing ":" cannot collide.
"""

from __future__ import annotations


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.rooms = f"{prefix}rooms"  # SET of room ids that have people or openers
        self.instances = f"{prefix}instances"  # SET of instance ids that may hold sockets

    def room(self, room: str, kind: str) -> str:
        """kind: state (HASH field -> JSON), people (LIST), sockets (HASH sid -> person),
        openers (SET of sids), opened (STRING: Unix time the room came to exist)."""
        return f"{self.prefix}room:{room}:{kind}"

    def socket(self, sid: str) -> str:
        """HASH room id -> instance id: the rooms a socket opened or joined."""
        return f"{self.prefix}socket:{sid}"

    def instance(self, instance_id: str, kind: str) -> str:
        """kind: alive (STRING, TTL), stats (STRING JSON, TTL), sockets (SET of sids)."""
        return f"{self.prefix}instance:{instance_id}:{kind}"


# The same layout for the scripts; ARGV[1] is always the prefix.
LUA_KEYS = """
local prefix = ARGV[1]
local ROOMS = prefix .. 'rooms'
local INSTANCES = prefix .. 'instances'
local function room_key(room, kind) return prefix .. 'room:' .. room .. ':' .. kind end
local function socket_key(sid) return prefix .. 'socket:' .. sid end
local function instance_key(id, kind) return prefix .. 'instance:' .. id .. ':' .. kind end
"""
