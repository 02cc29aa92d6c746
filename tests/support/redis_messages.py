"""Messages on Zou's Redis channel written as text, to publish what json.dumps cannot build
(nesting past the recursion limit) or what a well-behaved publisher would not (NaN)."""

from __future__ import annotations

import json


def emit(event: str, data: str) -> str:
    """A message as Zou publishes it (python-socketio 5.16), ``data`` as raw JSON text."""
    return (
        f'{{"method":"emit","event":"{event}","data":{data},"binary":false,'
        '"namespace":"/events","room":null,"skip_sid":null,"callback":null,"host_id":"zou"}'
    )


def room_change(method: str, sid: str | None, room: str | None) -> str:
    """An ``enter_room``, ``leave_room`` or ``close_room`` of python-socketio's manager."""
    return json.dumps(
        {"method": method, "sid": sid, "room": room, "namespace": "/events", "host_id": "zou"}
    )


def nested(depth: int) -> str:
    """A JSON array nested ``depth`` levels deep."""
    return "[" * depth + "1" + "]" * depth
