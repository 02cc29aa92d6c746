"""A WebSocket echo server on the project's driver (zou_events/transport/websocket.py), for
Autobahn|Testsuite's fuzzing client; gunicorn's gevent worker runs it as it runs zou-events:

    gunicorn -k gevent -w 1 -b 127.0.0.1:PORT tests.autobahn.echo_app:app
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

from zou_events.transport.websocket import WebSocket

MAX_PAYLOAD = 64 * 2**20  # section 9 sends messages of up to 16 MiB
SEND_LIMITS = (10**6, 2**31)  # what the outbox may hold: the client reads all it is sent
_SERVER = SimpleNamespace(max_http_buffer_size=MAX_PAYLOAD)  # what the driver reads of engineio's


class Echo:
    """The connection's receiver: every message goes back as it came."""

    def __init__(self, _owner: Any, ws: WebSocket) -> None:
        self.ws = ws

    def received(self, message: str | bytes) -> bool:
        self.ws.send(message)
        return True

    def ended(self) -> None:
        pass


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    return WebSocket(None, _SERVER, SEND_LIMITS, receiver=Echo)(environ, start_response)
