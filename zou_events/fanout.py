"""The hot path: one decoded emit to every local recipient socket, and local emits to the
other instances.

The server finds the recipients and encodes the packet once for all of them
(transport/delivery.py). No Redis round trip, lock or per-recipient allocation beyond a
list append happens here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import socketio
import structlog

from zou_events import metrics
from zou_events.messages import DroppedMessage, Emit, RoomChange
from zou_events.strict_json import STRICT

log = structlog.get_logger("zou_events.fanout")

Publisher = Callable[[bytes], None]


class Fanout:
    """Delivers emits to this instance's sockets and, for room emits, to the cluster."""

    def __init__(self, server: socketio.Server, host_id: str) -> None:
        self.server = server
        self.host_id = host_id
        self.publish: Publisher | None = None  # set when a Redis channel is available

    def deliver(self, emit: Emit, arrived: float) -> int:
        """Send ``emit`` to the matching local sockets; returns the number of recipients."""
        rooms = emit.room if isinstance(emit.room, list) else [emit.room]
        eio_sids = self.server.recipients(emit.namespace, rooms, emit.skip_sids)
        if not eio_sids:
            return 0
        delivered = self.server.broadcast(
            eio_sids, emit.namespace, [emit.event, *emit.args], arrived
        )
        if emit.namespace in metrics.NAMESPACES:
            metrics.deliveries.labels(emit.namespace).inc(delivered)
        return delivered

    def apply_room_change(self, change: RoomChange) -> None:
        """Room membership and disconnects published by other instances.

        python-socketio's manager keeps each socket in a room named by its sid and every
        connected socket in the room ``None``: entering or closing a sid room raises, and
        leaving or closing one of them (or ``None``) silences sockets. Such changes are
        refused (DroppedMessage) before the manager sees them.
        """
        manager = self.server.manager
        if change.method != "disconnect":
            if change.room is None:
                raise DroppedMessage("no_room", f"{change.method} without a room")
            if manager.is_sid_room(change.namespace, change.room):
                raise DroppedMessage("sid_room", f"{change.method} of a socket's own room")
        if change.method == "close_room":
            manager.close_room(change.room, change.namespace)
            return
        if change.sid is None or not manager.is_connected(change.sid, change.namespace):
            return  # not ours (Zou publishes leave_room with a person id as sid: a no-op)
        if change.method == "enter_room":
            manager.enter_room(change.sid, change.namespace, change.room)
        elif change.method == "leave_room":
            manager.leave_room(change.sid, change.namespace, change.room)
        else:
            self.server.disconnect(change.sid, namespace=change.namespace, ignore_queue=True)

    def emit(self, event: str, data: Any, namespace: str, room: str | None) -> None:
        """Emit from a local handler: deliver here, then to the other instances."""
        emit = Emit(
            event=event,
            args=[data],
            namespace=namespace,
            room=room,
            skip_sids=(),
            host_id=self.host_id,
            published_at=None,
        )
        self.deliver(emit, time.monotonic())
        if self.publish is not None:
            self.publish(self.encode_for_cluster(emit))

    def encode_for_cluster(self, emit: Emit) -> bytes:
        """python-socketio 5.16's message format, plus our publication time."""
        message = {
            "method": "emit",
            "event": emit.event,
            "data": emit.args,
            "binary": False,
            "namespace": emit.namespace,
            "room": emit.room,
            "skip_sid": None,
            "callback": None,
            "host_id": self.host_id,
            "zou_events_published_at": time.time(),
        }
        return STRICT.dumps(message, separators=(",", ":")).encode()  # no NaN, ever
