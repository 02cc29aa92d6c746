"""One Socket.IO packet to many sockets of this instance: the fan-out's last step.

The Engine.IO packet is encoded once; WebSocket recipients share one pre-built frame
(frames.share_frame), handed straight to each one's outbox as it is found (outbox.py: a
message is written at once, or, in a burst, coalesced with the others of its event-loop
turn into one write per socket). A socket still polling (or probing an upgrade) gets the
packet through engineio's queue. No lock, and no per-recipient allocation or call beyond
the outbox's, happens here.
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
    parts = encoded if isinstance(encoded, list) else [encoded]
    eio_packets = [eio_packet.Packet(eio_packet.MESSAGE, part) for part in parts]
    frames = []
    for pkt in eio_packets:
        # Its cached encoding carries the shared frame through engineio's queue too.
        pkt.encode_cache, shared = share_frame(pkt.encode(), arrived)
        frames.append(shared)
    # Each recipient is written as it is found: the first read while the others are written.
    at_once = flusher.write_at_once()
    direct, queued, slow = 0, [], []
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
                continue
            direct += 1
            for shared in frames:
                if not outbox.put(shared.frame, shared, at_once):
                    shared.remaining += 1  # the outbox counts it down once written
            continue
        outbox = getattr(socket, "outbox", None)  # an upgrade probe's
        if (outbox is not None and outbox.over_limit()) or socket.queue.over_limit():
            slow.append(socket)
        else:
            queued.append(socket)
    if direct:
        for shared in frames:
            shared.handed()
    for socket in queued:
        for pkt in eio_packets:
            socket.send(pkt)
    return direct + len(queued), slow
