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
_REGISTRY_SIZE = 512


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
    """A frame built once for a message that many sockets send, with delivery tracking."""

    __slots__ = ("arrived", "frame", "message", "remaining")

    def __init__(self, message: str | bytes, arrived: float, recipients: int) -> None:
        self.message = message
        self.frame = message_frame(message)
        self.arrived = arrived
        self.remaining = recipients

    def written(self) -> None:
        """One recipient's copy went to the kernel."""
        if self.remaining > 0:
            self.remaining -= 1
            if self.remaining == 0:
                metrics.delivery_seconds.observe(time.monotonic() - self.arrived)


# id(message) -> shared frame, for messages that reach a socket through engineio's queue;
# the entry keeps the message alive, so the id stays unique.
_registry: dict[int, SharedFrame] = {}


def share_frame(message: str | bytes, arrived: float, recipients: int) -> SharedFrame:
    """Build the frame of ``message``, about to be sent to ``recipients`` WebSockets."""
    shared = _registry[id(message)] = SharedFrame(message, arrived, recipients)
    if len(_registry) > _REGISTRY_SIZE:
        del _registry[next(iter(_registry))]
    return shared


def shared_frame_of(message: str | bytes) -> SharedFrame | None:
    shared = _registry.get(id(message))
    return shared if shared is not None and shared.message is message else None
