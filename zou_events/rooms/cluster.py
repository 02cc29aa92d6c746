"""Live instances and their own counters, for the cluster-wide /stats and metrics.

An instance is live while its heartbeat key exists (it expires ``ttl`` seconds after the
last heartbeat). Each instance also publishes its counters with a TTL; ``cluster_stats``
returns those of live instances and their sums. What a dead instance held in rooms is
released by the room store's ``reap_dead_instances``, which reads the same keys.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from zou_events.rooms.keys import LUA_KEYS, Keys


@dataclass(frozen=True)
class ClusterStats:
    instances: dict[str, dict[str, Any]]  # live instance id -> its last published counters
    totals: dict[str, Any]  # the numbers of every live instance summed, nested dicts merged

    def updated(self, instance_id: str, counters: Mapping[str, Any]) -> ClusterStats:
        """These stats with ``instance_id``'s counters replaced by fresher ones."""
        return _cluster_stats({**self.instances, instance_id: dict(counters)})


class InstanceRegistry(Protocol):
    def heartbeat(self, instance_id: str, ttl: float) -> bool:
        """Keep the instance live for ``ttl`` seconds. False when it was not live just before
        (first start, or a pause longer than ``ttl``): what it held in rooms may have been
        reaped, so it should make its sockets open and join again."""

    def publish_instance_stats(
        self, instance_id: str, stats: Mapping[str, Any], ttl: float
    ) -> None: ...

    def cluster_stats(self) -> ClusterStats: ...


def _is_count(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _sum_into(totals: dict[str, Any], counters: Mapping[str, Any]) -> None:
    """Adds numbers and merges nested dicts; values whose shape differs (instances of two
    versions during an upgrade) are skipped rather than failing the whole answer."""
    for key, value in counters.items():
        if isinstance(value, Mapping):
            if isinstance(totals.setdefault(key, {}), dict):
                _sum_into(totals[key], value)
        elif _is_count(value) and _is_count(current := totals.get(key, 0)):
            totals[key] = current + value


def _cluster_stats(instances: dict[str, dict[str, Any]]) -> ClusterStats:
    totals: dict[str, Any] = {}
    for counters in instances.values():
        _sum_into(totals, counters)
    return ClusterStats(instances=instances, totals=totals)


def _ttl_ms(ttl: float) -> int:
    return max(1, round(ttl * 1000))


_HEARTBEAT = (
    LUA_KEYS
    + """
local id = ARGV[2]
local alive = instance_key(id, 'alive')
local was_live = redis.call('EXISTS', alive)
redis.call('SET', alive, '1', 'PX', ARGV[3])
redis.call('SADD', INSTANCES, id)
return was_live
"""
)

_LIVE_STATS = (
    LUA_KEYS
    + """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', INSTANCES)) do
  if redis.call('EXISTS', instance_key(id, 'alive')) == 1 then
    out[#out + 1] = {id, redis.call('GET', instance_key(id, 'stats')) or '{}'}
  end
end
return out
"""
)


class RedisInstanceRegistry:
    def __init__(self, client: redis.Redis, prefix: str = "zou-events:") -> None:
        """``client`` must decode responses (``decode_responses=True``)."""
        self._client = client
        self._keys = Keys(prefix)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._live_stats = client.register_script(_LIVE_STATS)

    def heartbeat(self, instance_id: str, ttl: float) -> bool:
        # a script: the reaper must not run between the liveness check and the renewal
        args: list[str | int] = [self._keys.prefix, instance_id, _ttl_ms(ttl)]
        return bool(self._heartbeat(keys=[], args=args))

    def publish_instance_stats(
        self, instance_id: str, stats: Mapping[str, Any], ttl: float
    ) -> None:
        key = self._keys.instance(instance_id, "stats")
        self._client.set(key, json.dumps(stats), px=_ttl_ms(ttl))

    def cluster_stats(self) -> ClusterStats:
        reply = self._live_stats(keys=[], args=[self._keys.prefix])
        return _cluster_stats({instance_id: _counters(raw) for instance_id, raw in reply})


def _counters(raw: str) -> dict[str, Any]:
    try:
        counters = json.loads(raw)
    except ValueError:
        return {}
    return counters if isinstance(counters, dict) else {}


class MemoryInstanceRegistry:
    """Standalone mode: the one instance, with the same expiry rules."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._alive_until: dict[str, float] = {}
        self._stats: dict[str, tuple[float, dict[str, Any]]] = {}  # id -> (until, counters)

    def heartbeat(self, instance_id: str, ttl: float) -> bool:
        now = self._clock()
        was_live = self._alive_until.get(instance_id, now) > now
        self._alive_until[instance_id] = now + ttl
        return was_live

    def publish_instance_stats(
        self, instance_id: str, stats: Mapping[str, Any], ttl: float
    ) -> None:
        self._stats[instance_id] = (self._clock() + ttl, json.loads(json.dumps(stats)))

    def cluster_stats(self) -> ClusterStats:
        now = self._clock()
        live = [instance_id for instance_id, until in self._alive_until.items() if until > now]
        instances = {}
        for instance_id in live:
            until, counters = self._stats.get(instance_id, (now, {}))
            instances[instance_id] = counters if until > now else {}
        return _cluster_stats(instances)
