"""JSON as browsers parse it, with bounds: for every message from Redis and every client packet.

Python's reader accepts ``NaN``, ``Infinity`` and ``-Infinity``, reads ``1e999`` as
infinity and nests as deep as its recursion limit; its writer emits those constants back.
A value carrying them, passed on to Kitsu, makes socket.io-client's ``JSON.parse`` fail and
the socket disconnect; a deeply nested one crashes python-socketio's recursive walks
(``data_is_binary``) later, far from where it came in. Here every such value is refused at
the door with a reason (a metrics label), and nothing can be written that a browser would not
read.
"""

from __future__ import annotations

import json
import math
from typing import Any

import engineio.packet
from socketio.packet import Packet

# Kitsu's payloads nest a few levels; python-socketio's recursive walks fail near 450.
# Room payloads are refused past 100 levels (rooms/handlers.py): a packet or a Redis
# message wraps them in two or three more.
MAX_DEPTH = 128


class Refused(ValueError):
    """A document refused; ``reason`` is a metrics label. A ValueError, so that engineio and
    python-socketio, which catch ValueError around their decoding, drop the packet."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999: a browser would read Infinity, and we would write it
        raise Refused("bad_number", "number out of range")
    return value


def _no_constant(name: str) -> Any:
    raise Refused("bad_number", f"{name} is not JSON")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than ``limit`` levels: level by level, no recursion."""
    if value.__class__ is not list and value.__class__ is not dict:
        return False
    level = [value]
    for _ in range(limit):  # after k turns, ``level`` holds the containers at depth k + 1
        level = [
            child
            for item in level
            for child in (item.values() if item.__class__ is dict else item)
            if child.__class__ is list or child.__class__ is dict
        ]
        if not level:
            return False
    return True


# One decoder for all (json.loads builds one per call when given hooks). Integers keep
# Python's own bound (4,300 digits: ValueError), which spares a Python call per integer.
_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)


class BoundedJson:
    """A ``json``-like module (``loads``/``dumps``), as python-socketio's packets expect one."""

    def __init__(self, max_depth: int = MAX_DEPTH, max_bytes: int | None = None) -> None:
        self.max_depth = max_depth
        self.max_bytes = max_bytes

    def loads(self, text: str | bytes, **_options: Any) -> Any:
        if self.max_bytes is not None and len(text) > self.max_bytes:
            raise Refused("too_large", f"{len(text)} bytes, over {self.max_bytes}")
        try:
            value = _DECODER.decode(text.decode() if isinstance(text, bytes) else text)
        except RecursionError:  # the C reader counts its depth: a bounded failure
            raise Refused("too_deep", "nested beyond the recursion limit") from None
        except Refused:
            raise
        except (ValueError, UnicodeDecodeError) as error:
            raise Refused("malformed_json", str(error)[:200]) from None
        # Counting brackets is C-fast; the walk runs only when they could nest too deep.
        if isinstance(text, bytes):
            opening = text.count(b"[") + text.count(b"{")
        else:
            opening = text.count("[") + text.count("{")
        if opening > self.max_depth and _deeper_than(value, self.max_depth):
            raise Refused("too_deep", f"nested deeper than {self.max_depth} levels")
        return value

    @staticmethod
    def dumps(value: Any, **options: Any) -> str:
        """Never writes NaN or Infinity: a ValueError instead."""
        return json.dumps(value, **{**options, "allow_nan": False})


STRICT = BoundedJson()


class ClientPacket(Packet):
    """python-socketio's packet with bounded JSON, given to the server as its ``serializer``.

    A subclass rather than the server's ``json=`` option: that one also sets the JSON module
    of python-socketio's own packet class, for every client and server of the process.
    """

    json = STRICT


def read_engineio_packets_strictly() -> None:
    """engineio reads a message packet that is not Socket.IO (``4[[[...``) as JSON, catching
    ValueError only: nesting past the recursion limit raised out of its WebSocket reader.
    Its packet class is the only one it has, so this is process-wide; what engineio writes
    itself (handshakes, errors) is plain JSON either way."""
    engineio.packet.Packet.json = STRICT
