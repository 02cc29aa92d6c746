"""Prometheus metrics of one instance.

One gevent worker per instance, so the default in-process registry is used (it keeps the
process_* and python_gc_* collectors). Labels come from small fixed sets only: never a room,
person, playlist or socket id. Every label set is created at import so series exist at zero.
"""

from __future__ import annotations

import platform

import engineio
import socketio
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info

from zou_events import __version__
from zou_events.live_rooms import LiveRoomsCollector
from zou_events.transport.inbound import CUT_REASONS

NAMESPACES = ("/", "/events")
TRANSPORTS = ("polling", "websocket")
EVENT_FAMILIES = (
    "asset",
    "build-job",
    "chat",
    "comment",
    "concept",
    "edit",
    "episode",
    "main",
    "notification",
    "person",
    "playlist",
    "preview-file",
    "preview-room",
    "project",
    "sequence",
    "shot",
    "task",
    "other",
)
REFUSAL_REASONS = (
    "missing_token",
    "invalid_token",
    "expired",
    "revoked",
    "refresh_token",
    "inactive",
    "unknown_account",
    "two_factor",
    "zou_unavailable",
    "unknown_namespace",
    "over_capacity",
    "too_fast",
    "overloaded",
    "unjoined",
    "draining",
    "abandoned",
    "connect_timeout",
    "origin",
)
DISCONNECT_REASONS = (
    "client",
    "ping_timeout",
    "transport",
    "token_expired",
    "token_revoked",
    "rate_limited",
    "slow_consumer",
    "inbound_flood",
    "too_big",
    "protocol_error",
    "bad_packet",
    "server_shutdown",
    "server",
)
DROP_REASONS = (
    "malformed_json",
    "not_an_object",
    "pickle",
    "unknown_method",
    "bad_field",
    "too_large",
    "too_deep",
    "bad_number",
    "no_room",
    "sid_room",
    "error",
)
SUBSCRIBER_RESTART_REASONS = ("died", "stalled")
POLLING_REFUSALS = ("too_large", "body_timeout", "invalid_body", "bad_request")
# Requests gunicorn answers itself (gunicorn_worker.py, request_head.py).
HTTP_REFUSALS = ("request_line_too_long", "head_too_large", "malformed", "server_error")
# Connections closed before a request (first_request.py, request_head.py).
CLOSED_BEFORE_REQUEST = ("silent", "crowded", "draining", "head_timeout")
ROOM_RELAYS = (
    "add-annotation",
    "update-annotation",
    "remove-annotation",
    "change-version",
    "panzoom-changed",
    "comparison-panzoom-changed",
)
ROOM_EVENTS = ("open-playlist", "close-playlist", "join", "leave", "room-updated", *ROOM_RELAYS)
ROOM_REFUSALS = (
    "invalid_payload",
    "no_access",
    "not_opened",
    "not_in_room",
    "not_connected",
    "preview_account",
    "rate_limited",
    "too_large",
    "store_unavailable",
)
ZOU_API_ENDPOINTS = ("authenticated", "recheck", "playlist", "names")
ZOU_API_OUTCOMES = ("ok", "denied", "error", "timeout", "circuit_open", "cache")
RECOVERY_OUTCOMES = ("recovered", "expired", "unknown_pid", "refused")
ROOM_SIZE_BUCKETS = ("1", "2", "3-5", "6-10", "11-20", "21+")

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

build_info = Info("zou_events_build", "Version of zou-events and of its Socket.IO stack")
build_info.info(
    {
        "version": __version__,
        "python_version": platform.python_version(),
        "socketio_version": getattr(socketio, "__version__", "unknown"),
        "engineio_version": getattr(engineio, "__version__", "unknown"),
    }
)

connected_sockets = Gauge(
    "zou_events_connected_sockets",
    "Sockets connected to a namespace on this instance",
    ["namespace", "transport"],
)
connected_people = Gauge(
    "zou_events_connected_people",
    "Distinct people with a socket on /events of this instance (a person with tabs on two "
    "instances counts on both)",
)
connections_accepted = Counter(
    "zou_events_connections_accepted_total", "Namespace connections accepted", ["namespace"]
)
connections_refused = Counter(
    "zou_events_connections_refused_total", "Namespace connections refused", ["reason"]
)
disconnects = Counter(
    "zou_events_disconnects_total", "Namespace disconnections", ["namespace", "reason"]
)
redis_messages = Counter(
    "zou_events_redis_messages_total", "Emit messages received from Redis", ["family"]
)
redis_messages_dropped = Counter(
    "zou_events_redis_messages_dropped_total",
    "Messages from Redis dropped as unusable",
    ["reason"],
)
polling_requests_refused = Counter(
    "zou_events_polling_requests_refused_total",
    "Long-polling POST requests refused (HTTP 400, or 408 for a body that stopped coming)",
    ["reason"],
)
client_packets_dropped = Counter(
    "zou_events_client_packets_dropped_total",
    "Packets from clients that could not be decoded or were not valid Socket.IO",
)
sockets_cut = Counter(
    "zou_events_sockets_cut_total",
    "Engine.IO sessions or WebSocket connections cut for what their client sent or did not "
    "read, whether or not they had joined a namespace",
    ["reason"],
)
deliveries = Counter(
    "zou_events_deliveries_total", "Event packets queued to sockets", ["namespace"]
)
delivery_seconds = Histogram(
    "zou_events_delivery_seconds",
    "From a message's arrival from Redis to its write on the last WebSocket recipient",
    buckets=LATENCY_BUCKETS,
)
event_loop_lag_seconds = Histogram(
    "zou_events_event_loop_lag_seconds",
    "How late the event loop runs a greenlet that is ready (sampled every 0.1 s)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
http_requests_refused = Counter(
    "zou_events_http_requests_refused_total",
    "HTTP requests gunicorn answered itself: refused heads (400, 414, 431) or a 500",
    ["reason"],
)
connections_closed_before_request = Counter(
    "zou_events_connections_closed_before_request_total",
    "Connections closed without an answer before a whole request head: silent past "
    "ZOU_EVENTS_FIRST_REQUEST_TIMEOUT, crowded out, draining, or a head not finished in time",
    ["reason"],
)
connections_awaiting_first_request = Gauge(
    "zou_events_connections_awaiting_first_request",
    "Connections accepted that have not sent a byte yet (ZOU_EVENTS_FIRST_REQUEST_TIMEOUT)",
)
admission_waiting = Gauge(
    "zou_events_admission_waiting",
    "New sessions waiting their turn for admission (beyond the rate or the lag bound)",
)
admission_wait_seconds = Histogram(
    "zou_events_admission_wait_seconds",
    "How long new sessions let in after a wait waited for their turn",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0),
)
gc_full_pass_seconds = Histogram(
    "zou_events_gc_full_pass_seconds",
    "How long each full garbage collection pass stopped the event loop (gc_budget.py)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
publish_delay_seconds = Histogram(
    "zou_events_publish_delay_seconds",
    "From publication by a zou-events instance to arrival here (room emits carry a timestamp)",
    buckets=LATENCY_BUCKETS,
)
redis_subscribed = Gauge(
    "zou_events_redis_subscribed", "1 while subscribed to the Redis channel, else 0"
)
redis_reconnects = Counter(
    "zou_events_redis_reconnects_total", "Re-subscriptions to Redis after a lost connection"
)
redis_last_heard_timestamp = Gauge(
    "zou_events_redis_last_heard_timestamp_seconds",
    "Unix time at which the subscription last read something from Redis (a message or a ping "
    "answer: every 5 s at least while it works)",
)
redis_subscriber_restarts = Counter(
    "zou_events_redis_subscriber_restarts_total",
    "Restarts of the Redis subscriber by its watchdog (its loop died or stopped turning)",
    ["reason"],
)
room_events = Counter("zou_events_room_events_total", "Client room events received", ["event"])
room_events_refused = Counter(
    "zou_events_room_events_refused_total", "Client room events refused", ["event", "reason"]
)
rate_limit_hits = Counter(
    "zou_events_rate_limit_hits_total", "Client events over the per-connection rate limit"
)
room_sockets = Gauge(
    "zou_events_room_sockets", "Sockets of this instance that opened a review room"
)
rooms_open = Gauge(
    "zou_events_rooms_open",
    "Open review rooms in the cluster (exported by the reporting instance, 0 elsewhere)",
)
room_people = Gauge(
    "zou_events_room_people",
    "People in review rooms in the cluster (exported by the reporting instance, 0 elsewhere)",
)
rooms_by_size = Gauge(
    "zou_events_rooms_by_size",
    "Review rooms by number of people (exported by the reporting instance, 0 elsewhere)",
    ["size"],
)
instances_live = Gauge(
    "zou_events_instances_live",
    "Live instances seen in Redis (exported by the reporting instance, 0 elsewhere)",
)
zou_api_requests = Counter(
    "zou_events_zou_api_requests_total", "Questions asked of Zou's API", ["endpoint", "outcome"]
)
zou_api_seconds = Histogram(
    "zou_events_zou_api_request_seconds",
    "Latency of Zou API requests",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
limits = Gauge(
    "zou_events_limit",
    "Configured limits of this instance (sockets, sessions/s, queue sizes, room event rates)",
    ["limit"],
)
review_rooms = LiveRoomsCollector()  # the open rooms, one set of series each (capped)
REGISTRY.register(review_rooms)
ready = Gauge("zou_events_ready", "1 when the instance reports ready on /ready")
draining = Gauge("zou_events_draining", "1 while the instance drains its sockets on shutdown")
recoveries = Counter(
    "zou_events_recoveries_total",
    "Reconnections that asked for their session back (socket.io-client's pid), by outcome",
    ["outcome"],
)
recovery_replayed = Counter(
    "zou_events_recovery_replayed_events_total", "Events sent again to recovered sockets"
)
recovery_buffer_messages = Gauge(
    "zou_events_recovery_buffer_messages", "Broadcasts kept for replay on this instance"
)
recovery_buffer_bytes = Gauge(
    "zou_events_recovery_buffer_bytes",
    "Bytes (as read from Redis) of the broadcasts kept for replay",
)
recovery_buffer_age = Gauge(
    "zou_events_recovery_buffer_age_seconds", "Age of the oldest broadcast kept for replay"
)


def _initialise_label_sets() -> None:
    for namespace in NAMESPACES:
        connections_accepted.labels(namespace)
        deliveries.labels(namespace)
        for transport in TRANSPORTS:
            connected_sockets.labels(namespace, transport)
        for reason in DISCONNECT_REASONS:
            disconnects.labels(namespace, reason)
    for reason in REFUSAL_REASONS:
        connections_refused.labels(reason)
    for reason in HTTP_REFUSALS:
        http_requests_refused.labels(reason)
    for reason in CLOSED_BEFORE_REQUEST:
        connections_closed_before_request.labels(reason)
    for reason in CUT_REASONS:
        sockets_cut.labels(reason)
    for reason in POLLING_REFUSALS:
        polling_requests_refused.labels(reason)
    for family in EVENT_FAMILIES:
        redis_messages.labels(family)
    for reason in DROP_REASONS:
        redis_messages_dropped.labels(reason)
    for reason in SUBSCRIBER_RESTART_REASONS:
        redis_subscriber_restarts.labels(reason)
    for event in ROOM_EVENTS:
        room_events.labels(event)
        for reason in ROOM_REFUSALS:
            room_events_refused.labels(event, reason)
    for size in ROOM_SIZE_BUCKETS:
        rooms_by_size.labels(size)
    for outcome in RECOVERY_OUTCOMES:
        recoveries.labels(outcome)
    for endpoint in ZOU_API_ENDPOINTS:
        zou_api_seconds.labels(endpoint)
        for outcome in ZOU_API_OUTCOMES:
            zou_api_requests.labels(endpoint, outcome)


_initialise_label_sets()


def event_family(event: str) -> str:
    """The bounded label for an event name: its prefix when known, else "other"."""
    prefix = event.partition(":")[0]
    return prefix if prefix in _FAMILY_SET else "other"


_FAMILY_SET = frozenset(EVENT_FAMILIES)
