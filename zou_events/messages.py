"""python-socketio message-queue messages: decoding what is read from Redis, and the one
builder of what we publish (pure, no I/O).

Zou's API publishes with python-socketio's write-only RedisManager. Every JSON-era format
is accepted (5.14: ``data`` is the raw argument; 5.14.3/5.15: adds ``binary``; 5.16+:
``data`` is the list of arguments) and read the way python-socketio 5.16+ reads it. The
pickle era (python-socketio <= 5.13, Zou <= 0.20.76) is refused: unpickling data from the
network would let whoever can publish on Redis run code here. JSON is read bounded and as
browsers read it (strict_json.py): what a client could not parse is refused here, once,
rather than passed on to every socket.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from socketio.packet import Packet

from zou_events.strict_json import STRICT, BoundedJson, Refused

_PICKLE_PROTOCOL_2_PLUS = 0x80
MAX_ID_LENGTH = 256
# Zou's events are a few hundred bytes; room events between instances carry a payload of
# ZOU_EVENTS_ROOM_PAYLOAD_MAX_BYTES at most, plus the envelope.
DEFAULT_MAX_BYTES = 2**20
_ENVELOPE_BYTES = 2**16
PUBLISHED_AT = "zou_events_published_at"  # our publishers' addition to the format


def max_message_bytes(room_payload_max_bytes: int) -> int:
    """The largest message read from Redis: 1 MiB, or a room payload and its envelope."""
    return max(DEFAULT_MAX_BYTES, room_payload_max_bytes + _ENVELOPE_BYTES)


class DroppedMessage(Exception):
    """A message that cannot be used; ``reason`` is a metrics label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Emit:
    event: str
    args: list[Any]  # Socket.IO arguments, in order
    namespace: str
    room: str | list[str] | None
    skip_sids: tuple[str, ...]
    host_id: str | None
    published_at: float | None  # set by zou-events publishers only


@dataclass(frozen=True, slots=True)
class RoomChange:
    method: str  # "enter_room", "leave_room", "close_room" or "disconnect"
    sid: str | None
    namespace: str
    room: str | None
    host_id: str | None


Message = Emit | RoomChange


def _optional_str(message: dict[str, Any], key: str) -> str | None:
    value = message.get(key)
    if value is None or (isinstance(value, str) and len(value) <= MAX_ID_LENGTH):
        return value
    raise DroppedMessage("bad_field", f"{key} must be a short string or null")


def _room(message: dict[str, Any]) -> str | list[str] | None:
    room = message.get("room")
    if isinstance(room, list) and all(isinstance(r, str) for r in room):
        return room
    return _optional_str(message, "room")


def _skip_sids(message: dict[str, Any]) -> tuple[str, ...]:
    skip = message.get("skip_sid")
    if skip is None:
        return ()
    if isinstance(skip, str):
        return (skip,)
    if isinstance(skip, list) and all(isinstance(s, str) for s in skip):
        return tuple(skip)
    raise DroppedMessage("bad_field", "skip_sid must be a string, a list of strings or null")


def _arguments(message: dict[str, Any]) -> list[Any]:
    """The emit arguments exactly as python-socketio 5.16's ``_handle_emit`` derives them."""
    data = message.get("data")
    if message.get("binary"):
        if not isinstance(data, list) or not data:
            raise DroppedMessage("bad_field", "binary data must be a non-empty list")
        try:
            attachments = [base64.b64decode(a, validate=True) for a in data[1:]]
        except (binascii.Error, TypeError, ValueError):
            raise DroppedMessage("bad_field", "binary attachments must be base64") from None
        try:
            data = Packet.reconstruct_binary(data[0], attachments)
        except (IndexError, KeyError, TypeError):
            raise DroppedMessage("bad_field", "binary placeholders do not match") from None
    if isinstance(data, list):
        return data  # one element -> one argument, several -> several arguments
    return [data]  # 5.14 and 5.15 published the raw argument


def decode(raw: bytes | str, max_bytes: int = DEFAULT_MAX_BYTES) -> Message | None:
    """Decode one Redis message; None for messages with nothing to do here (callbacks)."""
    if isinstance(raw, bytes) and raw[:1] == bytes([_PICKLE_PROTOCOL_2_PLUS]):
        raise DroppedMessage("pickle", "pickle-encoded message (python-socketio <= 5.13)")
    try:
        message = BoundedJson(max_bytes=max_bytes).loads(raw)
    except Refused as refused:
        raise DroppedMessage(refused.reason, str(refused)) from None
    if not isinstance(message, dict):
        raise DroppedMessage("not_an_object", "message is not a JSON object")
    method = message.get("method")
    namespace = _optional_str(message, "namespace") or "/"
    host_id = _optional_str(message, "host_id")
    if method == "emit":
        event = message.get("event")
        if not isinstance(event, str) or not event:
            raise DroppedMessage("bad_field", "event must be a non-empty string")
        published_at = message.get(PUBLISHED_AT)
        return Emit(
            event=event,
            args=_arguments(message),
            namespace=namespace,
            room=_room(message),
            skip_sids=_skip_sids(message),
            host_id=host_id,
            published_at=published_at if isinstance(published_at, int | float) else None,
        )
    if method in ("enter_room", "leave_room", "close_room", "disconnect"):
        return RoomChange(
            method=method,
            sid=_optional_str(message, "sid"),
            namespace=namespace,
            room=_optional_str(message, "room"),
            host_id=host_id,
        )
    if method == "callback":
        return None  # acknowledgements across hosts: zou-events never asks for one
    raise DroppedMessage("unknown_method", f"unknown method {str(method)[:40]!r}")


def emit_message(emit: Emit) -> dict[str, Any]:
    """``emit`` in python-socketio 5.16's message-queue format (what Zou's API publishes for
    ``events.emit``), with our publication time when it has one: the one builder of it."""
    message = {
        "method": "emit",
        "event": emit.event,
        "data": emit.args,
        "binary": False,
        "namespace": emit.namespace,
        "room": emit.room,
        "skip_sid": list(emit.skip_sids) or None,
        "callback": None,
        "host_id": emit.host_id,
    }
    if emit.published_at is not None:
        message[PUBLISHED_AT] = emit.published_at
    return message


def encode_emit(emit: Emit) -> bytes:
    """``emit`` as published on Redis: compact JSON, never NaN."""
    return STRICT.dumps(emit_message(emit), separators=(",", ":")).encode()


def zou_emit(event: str, payload: Any, host_id: str) -> dict[str, Any]:
    """The message Zou's API publishes for ``events.emit(event, payload)``."""
    return emit_message(Emit(event, [payload], "/events", None, (), host_id, None))
