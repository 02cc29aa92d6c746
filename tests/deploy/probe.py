"""A Socket.IO client for the deployment tests, run as its own process.

It connects to /events (long-polling first, then the WebSocket upgrade, as Kitsu does),
reconnects by itself like Kitsu's client, prints one JSON object per line on stdout for
everything that happens ({"type": "connect"}, {"type": "disconnect"}, {"type": "event",
"event": ..., "data": ...}) and emits what it reads on stdin ({"event": ..., "data": ...}).

Usage: probe.py URL TOKEN
"""

from __future__ import annotations

import json
import sys
from typing import Any

import socketio

NAMESPACE = "/events"


def say(**message: Any) -> None:
    print(json.dumps(message), flush=True)


def main(url: str, token: str) -> None:
    client = socketio.Client(reconnection_delay=0.2, reconnection_delay_max=1.0)

    @client.on("connect", namespace=NAMESPACE)
    def on_connect() -> None:
        say(type="connect", transport=client.transport())

    @client.on("disconnect", namespace=NAMESPACE)
    def on_disconnect(reason: str = "") -> None:
        say(type="disconnect", reason=str(reason))

    @client.on("*", namespace=NAMESPACE)
    def on_event(event: str, *data: Any) -> None:
        say(type="event", event=event, data=list(data))

    client.connect(
        url,
        namespaces=[NAMESPACE],
        headers={"Authorization": f"Bearer {token}"},
        wait_timeout=10,
    )
    for line in sys.stdin:  # until the test closes stdin
        request = json.loads(line)
        client.emit(request["event"], request["data"], namespace=NAMESPACE)
    client.disconnect()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
