"""One Socket.IO packet to many sockets of this instance: the fan-out's last step.

The Engine.IO packet is encoded once; WebSocket recipients share one pre-built frame
(frames.share_frame), handed straight to their outbox (outbox.py: a message is written at
once, or, in a burst, coalesced with the others of its event-loop turn into one write per
socket). A socket still polling (or probing an upgrade) gets the packet through engineio's
queue. No lock or per-recipient allocation beyond a list append happens here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engineio import packet as eio_packet

from zou_events.transport.frames import share_frame
from zou_events.transport.outbox import flusher


def deliver(
    sockets: Mapping[str, Any], eio_sids: Iterable[str], encoded: Any, arrived: float
) -> tuple[int, list[Any]]:
    """Send a Socket.IO packet's ``encoded`` form (a str, or a list for binary packets) to
    the open sockets among ``eio_sids``: (how many got it, the engineio sockets over their
    send-queue limits, which got nothing and are to be cut)."""
    direct, queued, slow = [], [], []
    for eio_sid in eio_sids:
        socket = sockets.get(eio_sid)
        if socket is None or socket.closing or socket.closed:
            continue
        if socket.upgraded:
            # Its queue is its WebSocketSession (websocket_session.py), which holds nothing:
            # only the outbox's limits apply.
            outbox = socket.outbox
            if outbox.over_limit():
                slow.append(socket)
            else:
                direct.append(outbox)
            continue
        outbox = getattr(socket, "outbox", None)  # an upgrade probe's
        if (outbox is not None and outbox.over_limit()) or socket.queue.over_limit():
            slow.append(socket)
        else:
            queued.append(socket)
    parts = encoded if isinstance(encoded, list) else [encoded]
    eio_packets = [eio_packet.Packet(eio_packet.MESSAGE, part) for part in parts]
    at_once = bool(direct) and flusher.write_at_once()
    for pkt in eio_packets:
        # Its cached encoding carries the shared frame through engineio's queue too.
        pkt.encode_cache, shared = share_frame(pkt.encode(), arrived, len(direct))
        for outbox in direct:
            outbox.put(shared.frame, shared, at_once)
    for socket in queued:
        for pkt in eio_packets:
            socket.send(pkt)
    return len(direct) + len(queued), slow
