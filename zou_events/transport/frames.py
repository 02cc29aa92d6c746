"""WebSocket server frames (RFC 6455), and frames shared by every recipient of a message.

Server frames are unmasked, so the bytes of a message's frame are the same for every
client: the fan-out builds them once per message, and the delivery metric is observed when
the last recipient's copy has been handed to the kernel.
"""

from __future__ import annotations

import struct
import time

from zou_events import metrics

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def encode_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One final, unmasked server frame."""
    length = len(payload)
    first = 0x80 | opcode
    if length < 126:
        header = struct.pack("!BB", first, length)
    elif length < 65536:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + payload


def message_frame(message: str | bytes) -> bytes:
    if isinstance(message, str):
        return encode_frame(message.encode("utf-8"), OP_TEXT)
    return encode_frame(bytes(message), OP_BINARY)


class SharedFrame:
    """A frame built once for a message that many sockets send, with delivery tracking:
    ``remaining`` counts the copies that waited in an outbox and are not yet handed to the
    kernel (those written at once by the fan-out never count: one call per message, not
    per socket)."""

    __slots__ = ("arrived", "frame", "remaining")

    def __init__(self, message: str | bytes, arrived: float) -> None:
        self.frame = message_frame(message)
        self.arrived = arrived
        self.remaining = 0

    def handed(self) -> None:
        """The fan-out gave the frame to all its recipients, ``remaining`` of which wait in
        their outboxes (each counted down by ``written``). None waiting: delivered now."""
        if not self.remaining:
            metrics.delivery_seconds.observe(time.monotonic() - self.arrived)

    def written(self) -> None:
        """One waiting copy went to the kernel."""
        if self.remaining > 0:
            self.remaining -= 1
            if self.remaining == 0:
                metrics.delivery_seconds.observe(time.monotonic() - self.arrived)


# A message that reaches a socket through engineio's queue comes to the driver as the
# encoded form of its Engine.IO packet: that text (or bytes) carries its shared frame along.
class _SharedText(str):
    shared: SharedFrame


class _SharedBytes(bytes):
    shared: SharedFrame


def share_frame(message: str | bytes, arrived: float) -> tuple[str | bytes, SharedFrame]:
    """The frame of ``message``, about to be sent to many WebSockets, built once; and
    ``message`` carrying it (an equal str or bytes for everything else that reads it)."""
    shared = SharedFrame(message, arrived)
    framed = _SharedText(message) if isinstance(message, str) else _SharedBytes(message)
    framed.shared = shared
    return framed, shared


def shared_frame_of(message: str | bytes) -> SharedFrame | None:
    return message.shared if isinstance(message, _SharedText | _SharedBytes) else None
