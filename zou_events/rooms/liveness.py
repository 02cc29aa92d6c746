"""Instance liveness in the cluster: heartbeats, reaping dead instances, cluster numbers.

Every instance renews its heartbeat, publishes its own counters and reaps the presence held
by instances whose heartbeat expired (a SIGKILLed instance cannot clean up), telling each
affected room. The instance with the smallest id among the live ones reports the cluster's
room gauges; the others export 0, so summing a gauge over instances never double-counts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent
import redis
import structlog

from zou_events import metrics
from zou_events.rooms import InstanceRegistry, OpenRoom, PeopleChange, RoomStore
from zou_events.rooms.store import summarise

log = structlog.get_logger("zou_events.rooms.liveness")

ROOM_SIZE_BOUNDS = ((1, "1"), (2, "2"), (5, "3-5"), (10, "6-10"), (20, "11-20"))


def size_bucket(people: int) -> str:
    for bound, label in ROOM_SIZE_BOUNDS:
        if people <= bound:
            return label
    return "21+"


class Liveness:
    def __init__(
        self,
        instance_id: str,
        registry: InstanceRegistry,
        store: RoomStore,
        interval: float,
        counters: Callable[[], dict[str, Any]],
        announce: Callable[[list[PeopleChange]], None],
        presumed_dead: Callable[[], None],
        show_rooms: Callable[[list[OpenRoom]], None],
        mode: str,
    ) -> None:
        self.instance_id = instance_id
        self.registry = registry
        self.store = store
        self.interval = interval
        self.ttl = 3 * interval
        self._counters = counters
        self._announce = announce
        self._presumed_dead = presumed_dead
        self._show_rooms = show_rooms  # the live-reviews series (live_rooms.py)
        self.mode = mode
        self._greenlet: gevent.Greenlet | None = None
        self._registered = False

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run_forever)

    def _run_forever(self) -> None:
        while True:
            try:
                self.tick()
            except Exception as error:  # Redis down: the next tick tries again
                log.warning("liveness tick failed", error=str(error))
            gevent.sleep(self.interval)

    def tick(self) -> None:
        if not self._registered:
            # A previous life under the same id may have left presence behind.
            self._announce(self.store.release_instance(self.instance_id))
            self.registry.heartbeat(self.instance_id, self.ttl)
            self._registered = True
            # Registering late (Redis was unreachable at start): sockets that opened rooms in
            # the meantime were just released (or reaped by others, as held by an instance
            # without a heartbeat), so they must open and join again. A no-op at a normal start.
            self._presumed_dead()
        elif not self.registry.heartbeat(self.instance_id, self.ttl):
            log.warning("this instance was presumed dead by the cluster; rejoining")
            self._presumed_dead()
        self.registry.publish_instance_stats(self.instance_id, self._counters(), self.ttl)
        changes = self.store.reap_dead_instances()
        if changes:
            log.info("reaped presence of dead instances", rooms=len(changes))
            self._announce(changes)
        self._report()

    def _report(self) -> None:
        cluster = self.registry.cluster_stats()
        reporter = min(cluster.instances, default=self.instance_id) == self.instance_id
        rooms = self.store.rooms() if reporter else []
        stats = summarise(rooms)
        self._show_rooms(rooms)
        metrics.instances_live.set(len(cluster.instances) if reporter else 0)
        metrics.rooms_open.set(stats.rooms)
        metrics.room_people.set(stats.people)
        sizes = dict.fromkeys(metrics.ROOM_SIZE_BUCKETS, 0)
        for people, count in stats.people_per_room.items():
            if people > 0:
                sizes[size_bucket(people)] += count
        for label, count in sizes.items():
            metrics.rooms_by_size.labels(label).set(count)

    def stats(self) -> dict[str, Any]:
        """/stats: cluster-wide and exact, the live instances' own counters (this one's
        fresh) summed; the rooms from the store."""
        counters = self._counters()
        instance = {"id": self.instance_id, "mode": self.mode}
        try:
            cluster = self.registry.cluster_stats().updated(self.instance_id, counters)
            rooms = self.store.stats()
        except (redis.RedisError, OSError) as error:
            log.warning("cluster stats unavailable", error=str(error))
            return {**counters, "instance": instance, "cluster": "unavailable"}
        return {
            **cluster.totals,
            "instances": cluster.instances,
            "rooms": rooms.rooms,
            "people_in_rooms": rooms.people,
            "sockets_in_rooms": rooms.sockets,
            "instance": instance,
        }

    def stop(self) -> None:
        """Shutdown, after the drain: stop heartbeating. What this instance's sockets held in
        rooms is kept until the heartbeat expires and another instance (or the next worker,
        after a reload) reaps it, so that the drained clients find their rooms intact."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
