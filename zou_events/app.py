"""Assembly of one instance: configuration, Redis links, Socket.IO server, HTTP routes.

gunicorn loads ``zou_events.app:create_app()`` in its (single) gevent worker, after gevent
has patched the standard library.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import redis
import socketio
import structlog

from zou_events import logs, metrics, redis_link
from zou_events.admission import Admission, AdmissionMiddleware
from zou_events.authenticator import Authenticator
from zou_events.config import (
    AUTH_TOKEN_BLACKLIST_DB_INDEX,
    KV_EVENTS_DB_INDEX,
    Settings,
    load_settings,
)
from zou_events.connections import ConnectionHandlers
from zou_events.drain import close_gradually
from zou_events.fanout import Fanout
from zou_events.http_routes import HttpRoutes
from zou_events.loop_lag import LoopLag
from zou_events.messages import max_message_bytes
from zou_events.rooms import (
    InstanceRegistry,
    MemoryInstanceRegistry,
    MemoryRoomStore,
    RedisInstanceRegistry,
    RedisRoomStore,
    RoomStore,
)
from zou_events.rooms.handlers import RoomHandlers
from zou_events.rooms.limits import RateLimiter
from zou_events.rooms.liveness import Liveness
from zou_events.sd_notify import ReadyNotifier
from zou_events.sessions import Sessions
from zou_events.subscriber import Subscriber
from zou_events.transport.inbound import SLOW_CONSUMER
from zou_events.transport.polling_guard import PollingGuard
from zou_events.transport.server import EventServer
from zou_events.zou_api import ZouApi

log = structlog.get_logger("zou_events.app")


class Runtime:
    """Everything one instance runs, wired together."""

    def __init__(self, settings: Settings, mode: str) -> None:
        self.settings = settings
        self.mode = mode
        self.host_id = uuid.uuid4().hex
        # Unique per process: after a reload the new worker must not release what the old
        # one's sockets still hold (it is reaped once the old heartbeat expires).
        self.instance_id = f"{settings.instance_id}:{os.getpid()}"
        self.sio = EventServer(settings)
        self.fanout = Fanout(self.sio, self.host_id)
        self.subscriber: Subscriber | None = None
        revocation: redis.Redis | None = None
        store: RoomStore = MemoryRoomStore()
        registry: InstanceRegistry = MemoryInstanceRegistry()
        if mode == "redis":
            revocation = redis_link.connect(settings, AUTH_TOKEN_BLACKLIST_DB_INDEX, decode=True)
            rooms_client = redis_link.connect(settings, KV_EVENTS_DB_INDEX, decode=True)
            store = RedisRoomStore(rooms_client, settings.key_prefix)
            registry = RedisInstanceRegistry(rooms_client, settings.key_prefix)
            events = redis_link.connect(settings, KV_EVENTS_DB_INDEX, decode=False)
            self.fanout.publish = self._publisher(events)
            self.subscriber = Subscriber(
                lambda: redis_link.connect(
                    settings, KV_EVENTS_DB_INDEX, decode=False, for_pubsub=True
                ),
                settings.channel,
                self.fanout,
                max_message_bytes(settings.room_payload_max_bytes),
            )
        zou = (
            ZouApi(settings.zou_api_url, settings.zou_api_timeout, settings.zou_api_cache_seconds)
            if settings.zou_api_url
            else None
        )
        authenticator = Authenticator(
            settings.secret_key,
            (lambda jti: revocation.get(jti) == "true") if revocation is not None else None,
            zou,
            revocation_bound=settings.revocation_check_interval,
        )
        self.sessions = Sessions(
            kick=lambda sid, reason: self.connections.kick(sid, reason),
            revoked=_revoked_lookup(revocation) if revocation is not None else None,
            sweep_interval=settings.revocation_check_interval,
            still_valid=authenticator.still_valid if zou is not None else None,
        )
        self.connections = ConnectionHandlers(self.sio, authenticator, self.sessions)
        self.rooms = RoomHandlers(
            self.connections,
            self.fanout,
            store,
            zou,
            RateLimiter(
                settings.room_events_per_second,
                settings.room_events_burst,
                kick_after_refusals=5 * settings.room_events_burst,
            ),
            settings.room_payload_max_bytes,
            self.instance_id,
        )
        self.registry = registry
        self.liveness = Liveness(
            self.instance_id,
            registry,
            store,
            settings.heartbeat_seconds,
            counters=self.local_counters,
            announce=self.rooms.announce,
            presumed_dead=self.rooms.cut_room_sockets,
        )
        self.http = HttpRoutes(self.is_ready, self.stats, self.refresh_gauges)
        self.ready_notifier = ReadyNotifier(self.is_ready)  # systemd's READY=1
        self.draining = False
        self.fanout.on_slow_consumer = self._cut_slow_consumer
        self.loop_lag = LoopLag()
        self.admission = Admission(
            settings.max_sockets,
            settings.new_sessions_per_second,
            settings.new_sessions_burst,
            socket_count=self.sio.joined_sessions,
            draining=lambda: self.draining,
            loop_lag=self.loop_lag.current,
            max_lag=settings.admission_max_lag,
        )
        _export_limits(settings)

    def _publisher(self, client: redis.Redis) -> Any:
        channel = self.settings.channel

        def publish(data: bytes) -> None:
            try:
                client.publish(channel, data)
            except redis.RedisError as error:
                log.warning("cannot publish to redis", error=str(error))

        return publish

    def start(self) -> None:
        if self.subscriber is not None:
            self.subscriber.start()
        self.sessions.start()
        self.liveness.start()
        self.loop_lag.start()
        self.ready_notifier.start()
        self.sio.pending.start(overloaded=self.admission.overloaded)

    def is_ready(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining"
        if self.subscriber is not None and not self.subscriber.subscribed:
            return False, "not subscribed to redis"
        return True, ""

    def local_counters(self) -> dict[str, Any]:
        counts = self.connections.counts()
        return {"nb_connections": counts["/events"], "namespaces": counts}

    def stats(self) -> dict[str, Any]:
        """Cluster-wide and exact: live instances' own counters, summed; rooms from the store."""
        instance = {"id": self.instance_id, "mode": self.mode}
        try:
            cluster = self.registry.cluster_stats()
            rooms = self.liveness.store.stats()
        except (redis.RedisError, OSError) as error:
            log.warning("cluster stats unavailable", error=str(error))
            return {**self.local_counters(), "instance": instance, "cluster": "unavailable"}
        instances = {**cluster.instances, self.instance_id: self.local_counters()}
        return {
            "nb_connections": sum(c.get("nb_connections", 0) for c in instances.values()),
            "namespaces": {
                ns: sum(c.get("namespaces", {}).get(ns, 0) for c in instances.values())
                for ns in ("/", "/events")
            },
            "instances": instances,
            "rooms": rooms.rooms,
            "people_in_rooms": rooms.people,
            "sockets_in_rooms": rooms.sockets,
            "instance": instance,
        }

    def refresh_gauges(self) -> None:
        """Per-transport socket counts, computed when scraped rather than on every upgrade."""
        sockets = self.sio.eio.sockets
        ready, _ = self.is_ready()
        metrics.ready.set(1 if ready else 0)
        for namespace in metrics.NAMESPACES:
            members = self.sio.manager.rooms.get(namespace, {}).get(None)
            eio_sids = list(members._fwdm.values()) if members is not None else []
            upgraded = sum(1 for e in eio_sids if getattr(sockets.get(e), "upgraded", False))
            metrics.connected_sockets.labels(namespace, "websocket").set(upgraded)
            metrics.connected_sockets.labels(namespace, "polling").set(len(eio_sids) - upgraded)
        metrics.room_sockets.set(self.rooms.local_sockets())
        metrics.connected_people.set(len({i.person_id for _, i in self.sessions.items()}))

    def drain(self) -> None:
        """SIGTERM: refuse new sessions (503), then close the existing ones gradually."""
        self.ready_notifier.stop()
        self.draining = True
        metrics.draining.set(1)
        metrics.ready.set(0)
        eio_sids = list(self.sio.eio.sockets)
        for sid, _identity in self.sessions.items():
            self.connections.kick_reasons[sid] = "server_shutdown"
        close_gradually(eio_sids, self.sio.end_transport, self.settings.graceful_timeout)
        if self.subscriber is not None:
            self.subscriber.stop()
        self.liveness.stop()

    def _cut_slow_consumer(self, eio_sid: str) -> None:
        """A socket whose send queue is over its limit: cut it, the others go on."""
        socket = self.sio.eio.sockets.get(eio_sid)
        if socket is not None:
            self.sio.cut(socket, SLOW_CONSUMER, True)

    def wsgi_app(self) -> Any:
        inner = socketio.WSGIApp(self.sio, self.http, socketio_path="socket.io")
        guarded = PollingGuard(
            inner, self.settings.max_payload_bytes, self.settings.request_body_timeout
        )
        app = AdmissionMiddleware(guarded, self.admission, self.sio.open_sessions.__contains__)
        app.runtime = self  # type: ignore[attr-defined]  # for the gunicorn SIGTERM hook
        return app


def _export_limits(settings: Settings) -> None:
    for name, value in {
        "max_sockets": settings.max_sockets,
        "worker_connections": settings.worker_connections,
        "new_sessions_per_second": settings.new_sessions_per_second,
        "new_sessions_burst": settings.new_sessions_burst,
        "send_queue_max_messages": settings.send_queue_max_messages,
        "send_queue_max_bytes": settings.send_queue_max_bytes,
        "room_events_per_second": settings.room_events_per_second,
        "room_events_burst": settings.room_events_burst,
        "room_payload_max_bytes": settings.room_payload_max_bytes,
        "max_payload_bytes": settings.max_payload_bytes,
        "inbound_packets_per_second": settings.inbound_packets_per_second,
        "inbound_packets_burst": settings.inbound_packets_burst,
        "inbound_bytes_per_second": settings.inbound_bytes_per_second,
        "inbound_bytes_burst": settings.inbound_bytes_burst,
        "connect_timeout_seconds": settings.connect_timeout,
        "request_body_timeout_seconds": settings.request_body_timeout,
        "redis_message_max_bytes": max_message_bytes(settings.room_payload_max_bytes),
    }.items():
        metrics.limits.labels(name).set(value)


def _revoked_lookup(client: redis.Redis) -> Any:
    def revoked(jtis: list[str]) -> set[str]:
        return {jti for jti, value in zip(jtis, client.mget(jtis), strict=True) if value == "true"}

    return revoked


def create_app() -> Any:
    """The WSGI application of one instance (called once per worker)."""
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format, settings.access_log)
    mode = os.environ.get("ZOU_EVENTS_RESOLVED_MODE") or redis_link.resolve_mode(settings)
    runtime = Runtime(settings, mode)
    runtime.start()
    log.info(
        "instance started",
        mode=mode,
        instance_id=runtime.instance_id,
        redis=settings.redis.describe() if mode == "redis" else None,
        zou_api=settings.zou_api_url or "disabled",
    )
    return runtime.wsgi_app()
