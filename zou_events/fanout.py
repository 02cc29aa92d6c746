"""The hot path: one decoded emit to every local recipient socket, and local emits to the
other instances.

The server finds the recipients and encodes the packet once for all of them
(transport/delivery.py). No Redis round trip, lock or per-recipient allocation beyond a
list append happens here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import structlog

from zou_events import metrics
from zou_events.messages import DroppedMessage, Emit, RoomChange, encode_emit
from zou_events.recovery import NO_RECOVERY, NoRecovery, Recovery
from zou_events.transport.server import EventServer

log = structlog.get_logger("zou_events.fanout")

Publisher = Callable[[bytes], None]


class Fanout:
    """Delivers emits to this instance's sockets and, for room emits, to the cluster."""

    def __init__(
        self,
        server: EventServer,
        host_id: str,
        publish: Publisher,
        recovery: Recovery | NoRecovery = NO_RECOVERY,
    ) -> None:
        """``publish`` tells the other instances (bus.py)."""
        self.server = server
        self.host_id = host_id
        self.recovery = recovery
        self.publish = publish

    def deliver(self, emit: Emit, arrived: float, raw: bytes | None = None) -> int:
        """Send ``emit`` to the matching local sockets; returns the number of recipients.
        ``raw``: the message as read from Redis, kept for replay if it is a broadcast."""
        offset = self.recovery.record(raw, emit) if raw is not None else None
        rooms = emit.room if isinstance(emit.room, list) else [emit.room]
        eio_sids = self.server.recipients(emit.namespace, rooms, emit.skip_sids)
        if not eio_sids:
            return 0
        data = [emit.event, *emit.args]
        if offset is None or not self.recovery.offset_sockets:
            delivered = self.server.broadcast(eio_sids, emit.namespace, data, arrived)
        else:
            delivered = self._broadcast_with_offset(eio_sids, emit.namespace, data, offset, arrived)
        if emit.namespace in metrics.NAMESPACES:
            metrics.deliveries.labels(emit.namespace).inc(delivered)
        return delivered

    def _broadcast_with_offset(
        self, eio_sids: list[str], namespace: str, data: list[Any], offset: str, arrived: float
    ) -> int:
        """The offset as a last argument for the sockets that take part in recovery, the
        event as ever for the others (gazu's handlers get every argument): one encoding
        for each group."""
        takes_offsets = self.recovery.offset_sockets
        plain = [eio_sid for eio_sid in eio_sids if eio_sid not in takes_offsets]
        if not plain:
            return self.server.broadcast(eio_sids, namespace, [*data, offset], arrived)
        with_offset = [eio_sid for eio_sid in eio_sids if eio_sid in takes_offsets]
        delivered = self.server.broadcast(plain, namespace, data, arrived)
        if with_offset:
            delivered += self.server.broadcast(with_offset, namespace, [*data, offset], arrived)
        return delivered

    def subscription_started(self) -> None:
        """A new Redis subscription: messages published before it may be missing here, so
        no replay may span it."""
        self.recovery.subscribed()

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
        emit = Emit(event, [data], namespace, room, (), self.host_id, published_at=None)
        self.deliver(emit, time.monotonic())
        self.publish(encode_emit(replace(emit, published_at=time.time())))
