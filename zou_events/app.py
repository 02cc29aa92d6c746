"""Assembly of one instance: each part gets what it needs as it is built (wiring only).

gunicorn loads ``zou_events.app:create_app()`` in its (single) gevent worker, after gevent
has patched the standard library.
"""

from __future__ import annotations

import functools
import gc
import os
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from zou_events import bus as buses
from zou_events import gc_budget, logs, metrics, redis_link
from zou_events.admission import Admission, AdmissionMiddleware, StartResponse, WsgiApp
from zou_events.authenticator import Authenticator
from zou_events.bus import Bus
from zou_events.config import RESOLVED_MODE_ENV, Settings, exported_limits, load_settings
from zou_events.connections import ConnectionHandlers, Kicks
from zou_events.drain import Drain, Readiness
from zou_events.fanout import Fanout
from zou_events.http_routes import HttpRoutes
from zou_events.live_rooms import LiveRoomsExport
from zou_events.loop_lag import LoopLag
from zou_events.messages import max_message_bytes
from zou_events.metrics_listener import ListenerRouter
from zou_events.rooms.handlers import RoomHandlers
from zou_events.rooms.limits import RateLimiter
from zou_events.rooms.liveness import Liveness
from zou_events.rooms.names import RoomNamer
from zou_events.sd_notify import ReadyNotifier
from zou_events.sessions import Sessions
from zou_events.transport.server import EventServer
from zou_events.waiting_room import WaitingRoom
from zou_events.zou_api import ZouApi

log = structlog.get_logger("zou_events.app")


class Instance:
    """One instance, wired: the WSGI application gunicorn serves, ``start``ed once, and
    ``drain``ed by the SIGTERM hook (gunicorn_config.py)."""

    def __init__(self, settings: Settings, bus: Bus) -> None:
        # Unique per process: after a reload the new worker must not release what the old
        # one's sockets still hold (it is reaped once the old heartbeat expires).
        self.instance_id = f"{settings.instance_id}:{os.getpid()}"
        zou = (
            ZouApi(settings.zou_api_url, settings.zou_api_timeout, settings.zou_api_cache_seconds)
            if settings.zou_api_url
            else None
        )
        authenticator = Authenticator(
            settings.secret_key,
            bus.is_revoked,
            zou,
            revocation_bound=settings.revocation_check_interval,
        )
        sio = EventServer(
            settings, connect_answer=bus.recovery.connect_answer, vouches=authenticator.vouches
        )
        fanout = Fanout(sio, bus.host_id, bus.publish, bus.recovery)
        subscription = bus.subscription(fanout)
        kicks = Kicks(sio)
        sessions = Sessions(
            kick=kicks.kick,
            revoked=bus.revoked,
            sweep_interval=settings.revocation_check_interval,
            still_valid=authenticator.still_valid if zou is not None else None,
        )
        rooms = RoomHandlers(
            sio,
            sessions,
            fanout,
            bus.store,
            zou,
            RateLimiter(
                settings.room_events_per_second,
                settings.room_events_burst,
                kick_after_refusals=5 * settings.room_events_burst,
            ),
            settings.room_payload_max_bytes,
            self.instance_id,
            RoomNamer(zou, bus.names) if zou is not None and settings.metrics_rooms_max else None,
        )
        connections = ConnectionHandlers(
            sio, authenticator, sessions, kicks, [rooms.socket_gone], bus.recovery
        )
        liveness = Liveness(
            self.instance_id,
            bus.registry,
            bus.store,
            settings.heartbeat_seconds,
            counters=connections.counters,
            announce=rooms.announce,
            presumed_dead=rooms.cut_room_sockets,
            show_rooms=LiveRoomsExport(
                metrics.review_rooms, bus.names, settings.metrics_rooms_max
            ).show,
            mode=bus.mode,
        )
        readiness = Readiness(subscription)
        notifier = ReadyNotifier(readiness.is_ready)  # systemd's READY=1
        loop_lag = LoopLag()
        admission = Admission(
            settings.max_sockets,
            settings.new_sessions_per_second,
            settings.new_sessions_burst,
            socket_count=sio.placed_sessions,
            draining=readiness.is_draining,
            loop_lag=loop_lag.current,
            max_lag=settings.admission_max_lag,
            unjoined_full=sio.pending.full,
        )
        gauges = (readiness, sio, rooms, sessions)  # each refreshes its own when scraped
        http = HttpRoutes(
            readiness.is_ready, liveness.stats, _each(g.refresh_gauges for g in gauges)
        )
        self.drain = Drain(
            readiness,
            sio,
            sessions,
            kicks,
            settings.graceful_timeout,
            stop_first=notifier.stop,
            stop_after=(subscription.stop, liveness.stop),
        )
        served = sio.wsgi_app(http, settings.max_payload_bytes, settings.request_body_timeout)
        waiting_room = WaitingRoom(admission, settings.admission_queue, settings.admission_max_wait)
        app: WsgiApp = AdmissionMiddleware(served, waiting_room.admit, sio.is_open_session)
        if settings.metrics_listener is not None:
            app = ListenerRouter(app, http, settings.metrics_listener[1])
        self._app = app
        self.start = _each(
            (
                subscription.start,
                sessions.start,
                liveness.start,
                loop_lag.start,
                notifier.start,
                functools.partial(sio.pending.start, overloaded=admission.overloaded),
            )
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        return self._app(environ, start_response)


def _each(steps: Iterable[Callable[[], None]]) -> Callable[[], None]:
    steps = tuple(steps)

    def run() -> None:
        for step in steps:
            step()

    return run


def _export_limits(settings: Settings) -> None:
    derived = {"redis_message_max_bytes": max_message_bytes(settings.room_payload_max_bytes)}
    for name, value in {**exported_limits(settings), **derived}.items():
        metrics.limits.labels(name).set(value)


def create_app() -> Instance:
    """The WSGI application of one instance (called once per worker)."""
    settings = load_settings()
    logs.configure(settings.log_level, settings.log_format, settings.access_log)
    mode = os.environ.get(RESOLVED_MODE_ENV) or redis_link.resolve_mode(settings)
    bus = buses.connect(settings, mode)
    instance = Instance(settings, bus)
    _export_limits(settings)
    instance.start()
    # What start-up made (modules, classes, settings) lives as long as the worker: frozen,
    # the collector's full passes never walk it again. With 1,000 sockets that is 57,000 of
    # the 93,000 objects such a pass walked, and it stops the event loop (every delivery
    # waits): 28-37 ms before, 8-9 ms after.
    gc.freeze()
    # ... and what the worker makes from now on is walked by full passes within a budget.
    gc_budget.install(metrics.gc_full_pass_seconds.observe)
    log.info(
        "instance started",
        mode=bus.mode,
        instance_id=instance.instance_id,
        redis=bus.describe(),
        zou_api=settings.zou_api_url or "disabled",
    )
    return instance
