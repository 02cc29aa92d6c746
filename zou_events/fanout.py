"""The hot path: one decoded emit to every local recipient socket.

The Socket.IO packet and the Engine.IO packet are encoded once per message; WebSocket
recipients share one pre-built frame (frames.share_frame), handed straight to their outbox
(outbox.py: a message is written at once, or, in a burst, coalesced with the others of
its event-loop turn into one write per socket). A socket still polling,
or with packets waiting in engineio's own queue (which must keep their order), gets the
packet through engineio's queue. No Redis round trip, lock or per-recipient allocation
beyond a list append happens here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import socketio
import structlog
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from zou_events import metrics
from zou_events.messages import DroppedMessage, Emit, RoomChange
from zou_events.strict_json import STRICT
from zou_events.transport.frames import share_frame
from zou_events.transport.outbox import flusher

log = structlog.get_logger("zou_events.fanout")

Publisher = Callable[[bytes], None]


class Fanout:
    """Delivers emits to this instance's sockets and, for room emits, to the cluster."""

    def __init__(self, server: socketio.Server, host_id: str) -> None:
        self.server = server
        self.host_id = host_id
        self.publish: Publisher | None = None  # set when a Redis channel is available
        self.on_slow_consumer: Callable[[str], None] = lambda eio_sid: None

    def deliver(self, emit: Emit, arrived: float) -> int:
        """Send ``emit`` to the matching local sockets; returns the number of recipients."""
        manager = self.server.manager
        namespace_rooms = manager.rooms.get(emit.namespace)
        if not namespace_rooms:
            return 0
        recipients = self._recipients(namespace_rooms, emit)
        if not recipients:
            return 0
        sockets = self.server.eio.sockets
        direct, queued, slow = [], [], []
        websocket_count = 0
        for eio_sid in recipients:
            socket = sockets.get(eio_sid)
            if socket is None or socket.closing or socket.closed:
                continue
            outbox = getattr(socket, "outbox", None)
            if (outbox is not None and outbox.over_limit()) or socket.queue.over_limit():
                slow.append(eio_sid)
            elif outbox is not None and socket.upgraded and not socket.queue.qsize():
                direct.append(outbox)
            else:
                queued.append(socket)
                websocket_count += socket.upgraded
        packet = self.server.packet_class(
            sio_packet.EVENT, namespace=emit.namespace, data=[emit.event, *emit.args]
        )
        encoded = packet.encode()
        parts = encoded if isinstance(encoded, list) else [encoded]
        eio_packets = [eio_packet.Packet(eio_packet.MESSAGE, part) for part in parts]
        websocket_count += len(direct)
        at_once = bool(direct) and flusher.write_at_once()
        for pkt in eio_packets:
            shared = share_frame(pkt.encode(), arrived, websocket_count)
            frame = shared.frame
            for outbox in direct:
                outbox.put(frame, shared, at_once)
        for socket in queued:
            for pkt in eio_packets:
                socket.send(pkt)
        for eio_sid in slow:
            self.on_slow_consumer(eio_sid)
        delivered = len(direct) + len(queued)
        if emit.namespace in metrics.NAMESPACES:
            metrics.deliveries.labels(emit.namespace).inc(delivered)
        return delivered

    def _recipients(self, namespace_rooms: dict[Any, Any], emit: Emit) -> list[str]:
        rooms = emit.room if isinstance(emit.room, list) else [emit.room]
        # Sockets still being authenticated are in the namespace's rooms already: skip them,
        # or they would receive events before (or without) being accepted.
        pending = self.server.manager.pending_connect.get(emit.namespace, ())
        excluded = set(emit.skip_sids).union(pending) if pending or emit.skip_sids else None
        found: dict[str, str] = {}
        for room in rooms:
            members = namespace_rooms.get(room)
            if members is not None:
                found.update(members._fwdm)
        if excluded:
            return [eio_sid for sid, eio_sid in found.items() if sid not in excluded]
        return list(found.values())

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
