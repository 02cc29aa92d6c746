"""What each client may send: a budget per Engine.IO session, bounds on binary packets, and
a cap on the event handlers one socket may have running.

Every session gets an ``InboundMeter`` when it connects: two token buckets (rooms/limits.py), one
of packets and one of bytes. The WebSocket driver charges it for every frame it reads
(control frames and fragments included), the polling transport for every Engine.IO packet
of a POST. A session over either bucket is cut (reason ``inbound_flood``): the defaults are
far above what Kitsu sends, review-room bursts included, so only a flood reaches them.

python-socketio starts one greenlet per event; the reader of a socket with
``HANDLERS_PER_SOCKET`` handlers running waits for one of them to finish before it reads
on (backpressure on that client alone), so greenlets cannot pile up.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gevent.lock import BoundedSemaphore

from zou_events.rooms.limits import TokenBucket

# Why a client's connection is cut, as counted (zou_events_sockets_cut_total) and as the
# disconnect reason of its namespaces.
INBOUND_FLOOD = "inbound_flood"  # over its inbound budget
TOO_BIG = "too_big"  # a message, fragmented message or binary packet over maxPayload
PROTOCOL_ERROR = "protocol_error"  # a WebSocket protocol violation (RFC 6455)
BAD_PACKET = "bad_packet"  # a WebSocket message that is no Engine.IO packet
SLOW_CONSUMER = "slow_consumer"  # what is sent to it, control replies too, is not read
CUT_REASONS = (INBOUND_FLOOD, TOO_BIG, PROTOCOL_ERROR, BAD_PACKET, SLOW_CONSUMER)

HANDLERS_PER_SOCKET = 8  # Kitsu's room handlers take a Redis round trip: 8 is plenty
MAX_ATTACHMENTS = 64  # binary attachments one Socket.IO packet may announce

# cut(engineio socket, reason, whole session): False when only a WebSocket that is not yet
# the session's transport (an upgrade probe) is closed, and polling goes on.
Cut = Callable[[Any, str, bool], None]


@dataclass(frozen=True)
class InboundLimits:
    packets_per_second: float
    packets_burst: int
    bytes_per_second: float
    bytes_burst: int


class InboundMeter:
    """One Engine.IO session's inbound budget and its running handlers."""

    __slots__ = ("_bytes", "_handlers", "_packets")

    def __init__(self, limits: InboundLimits) -> None:
        self._packets = TokenBucket(limits.packets_per_second, limits.packets_burst)
        self._bytes = TokenBucket(limits.bytes_per_second, limits.bytes_burst)
        self._handlers: BoundedSemaphore | None = None  # most sockets never send an event

    def charge(self, size: int, packets: int = 1) -> bool:
        """Count ``packets`` carrying ``size`` bytes; False once over the budget (the
        session is then cut, so what a refused charge took does not matter)."""
        return self._packets.take(packets) and self._bytes.take(size)

    @property
    def handlers(self) -> BoundedSemaphore:
        if self._handlers is None:
            self._handlers = BoundedSemaphore(HANDLERS_PER_SOCKET)
        return self._handlers


def install(socket: Any, limits: InboundLimits, cut: Cut) -> InboundMeter:
    """Give an engineio socket its meter, and meter the packets of its polling POSTs (the
    WebSocket driver meters frames itself, before they become packets)."""
    meter = socket.inbound = InboundMeter(limits)
    receive = socket.receive

    def metered_receive(pkt: Any) -> None:
        if socket.closed:  # cut earlier in the same POST: drop the rest of it
            return
        if not socket.upgraded and not meter.charge(_packet_size(pkt)):
            cut(socket, INBOUND_FLOOD, True)
            return
        receive(pkt)

    socket.receive = metered_receive
    return meter


def _packet_size(pkt: Any) -> int:
    data = pkt.data
    if data is None:
        return 0
    if isinstance(data, str | bytes):
        return len(data)
    # JSON engineio parsed from the packet (no Socket.IO client sends that): its text.
    return len(pkt.encode(b64=True))


def is_engineio_packet(message: str | bytes) -> bool:
    """Whether engineio can decode ``message`` as a WebSocket packet: binary, text whose
    first character is an ASCII packet type, or base64 binary (``b``) as a client forcing
    base64 sends it. engineio raises on anything else, even while probing an upgrade,
    which would leave the polling session waiting for the probe's end."""
    if isinstance(message, bytes):
        return True
    if not message:
        return False
    if message[0] == "b":
        try:
            base64.b64decode(message[1:])
        except ValueError:
            return False
        return True
    return "0" <= message[0] <= "9"


def attachments_within(pkt: Any, max_bytes: int) -> bool:
    """Whether a Socket.IO binary packet still waiting for attachments stays within bounds:
    at most MAX_ATTACHMENTS announced, at most ``max_bytes`` (maxPayload) received in all."""
    return pkt.attachment_count <= MAX_ATTACHMENTS and (
        sum(len(a) for a in pkt.attachments) <= max_bytes
    )
