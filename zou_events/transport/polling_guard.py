"""Every Engine.IO long-polling request gets an answer, within a bounded time.

engineio reads a POST body with no time limit, and when it refuses a POST (a packet type a
client may not send, a body over maxPayload) it closes the session with ``close(wait=True)``,
which waits for the client's next GET to collect the CLOSE packet: a client that only POSTs
never sends one, so the refused request was never answered and its connection stayed open
for good. Hence two boundaries:

- ``EngineIOServer``: engineio's server whose refusals close the session without waiting,
  so engineio answers every request it refuses (HTTP 400) at once;
- ``PollingGuard``: a POST body is read here, under maxPayload and
  ZOU_EVENTS_REQUEST_BODY_TIMEOUT, checked to decode as an Engine.IO payload, and handed to
  engineio from memory (whose own decoding error would answer 200 and log a traceback).

A connection that stops sending its request head is gunicorn's: the gevent worker reads each
head under its keep-alive timeout, and after a refused body it drains what is left under the
same timeout before closing the connection.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

import engineio
import gevent
import structlog
from engineio.payload import Payload

from zou_events import metrics
from zou_events.admission import ENGINEIO_PATH, StartResponse, WsgiApp
from zou_events.log_limit import log_misbehaviour

log = structlog.get_logger("zou_events.transport.polling_guard")

TOO_LARGE, BODY_TIMEOUT, INVALID_BODY, BAD_REQUEST = (
    "too_large",
    "body_timeout",
    "invalid_body",
    "bad_request",
)


class EngineIOServer(engineio.Server):
    def disconnect(self, sid: str | None = None) -> None:
        """Close without waiting for a client to collect the CLOSE packet: engineio calls
        this from the very request it refuses, which must then be answered."""
        for eio_sid in [sid] if sid is not None else list(self.sockets):
            socket = self.sockets.pop(eio_sid, None)
            if socket is not None:
                socket.close(wait=False, reason=self.reason.SERVER_DISCONNECT)


class PollingGuard:
    """WSGI, in front of engineio: polling POST bodies bounded in size, time and shape."""

    def __init__(self, app: WsgiApp, max_bytes: int, body_timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.body_timeout = body_timeout

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        is_post = environ.get("REQUEST_METHOD") == "POST"
        if not is_post or not environ.get("PATH_INFO", "").startswith(ENGINEIO_PATH):
            return self.app(environ, start_response)
        body, refusal = self._read_body(environ)
        if refusal is None and not _decodes(body):
            refusal = INVALID_BODY
        if refusal is not None:
            return _refuse(start_response, refusal, len(body))
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, _counting_refusals(start_response))

    def _read_body(self, environ: dict[str, Any]) -> tuple[bytes, str | None]:
        declared = environ.get("CONTENT_LENGTH")
        if declared and int(declared) > self.max_bytes:
            return b"", TOO_LARGE
        body = None
        with gevent.Timeout(self.body_timeout, False):
            # No Content-Length: a chunked body, read up to one byte past the limit.
            body = environ["wsgi.input"].read(int(declared) if declared else self.max_bytes + 1)
        if body is None:
            return b"", BODY_TIMEOUT
        if len(body) > self.max_bytes:
            return b"", TOO_LARGE
        if declared and len(body) < int(declared):
            return body, INVALID_BODY  # the client closed before the end of its body
        return body, None


def _decodes(body: bytes) -> bool:
    try:
        Payload(encoded_payload=body.decode("utf-8"))
    except (ValueError, TypeError, KeyError, IndexError, RecursionError):
        return False
    return True


def _refuse(start_response: StartResponse, reason: str, size: int) -> list[bytes]:
    metrics.polling_requests_refused.labels(reason).inc()
    log_misbehaviour(log, "info", "polling request refused", reason=reason, size=size)
    status = "408 REQUEST TIMEOUT" if reason == BODY_TIMEOUT else "400 BAD REQUEST"
    start_response(status, [("Content-Type", "text/plain")])
    return [reason.encode()]


def _counting_refusals(start_response: StartResponse) -> StartResponse:
    """engineio's own refusals (an unknown or closed session, a packet type a client may
    not send) are counted too."""

    def counting(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        if status.startswith("400"):
            metrics.polling_requests_refused.labels(BAD_REQUEST).inc()
        return start_response(status, headers, *args)

    return counting
