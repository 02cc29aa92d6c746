"""Plain HTTP on the Socket.IO port: /, /stats, /health, /ready, /metrics.

nginx forwards only /socket.io, so these stay private to the host and its monitoring. With a
metrics listener (metrics_listener.py), /metrics moves there, /health and /ready answer on both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import make_wsgi_app

from zou_events import __version__

if TYPE_CHECKING:  # not at run time: gunicorn's master imports this before gevent patches
    from zou_events.admission import WsgiApp

StartResponse = Callable[..., Any]
NOT_FOUND = {"error": "not found"}
JsonView = Callable[[], tuple[int, Any]]

_STATUS = {
    200: "200 OK",
    404: "404 NOT FOUND",
    405: "405 METHOD NOT ALLOWED",
    503: "503 SERVICE UNAVAILABLE",
}


def json_response(start_response: StartResponse, status: int, body: Any) -> Iterable[bytes]:
    payload = json.dumps(body, separators=(",", ":")).encode()
    start_response(
        _STATUS[status],
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [payload]


class HttpRoutes:
    """A tiny WSGI app; ``runtime`` supplies readiness, stats and the pre-scrape refresh."""

    def __init__(
        self,
        is_ready: Callable[[], tuple[bool, str]],
        stats: Callable[[], dict[str, Any]],
        before_scrape: Callable[[], None],
    ) -> None:
        self._is_ready = is_ready
        self._before_scrape = before_scrape
        self._metrics_app: WsgiApp = make_wsgi_app()
        self._views: dict[str, JsonView] = {
            # "api": "Zou" keeps the community healthcheck (grep '"api":"Zou"') working.
            "/": lambda: (200, {"name": "Zou Event stream", "api": "Zou", "version": __version__}),
            "/health": lambda: (200, {"status": "ok"}),
            "/ready": self._ready,
            "/stats": lambda: (200, stats()),
        }

    def _ready(self) -> tuple[int, Any]:
        ready, why = self._is_ready()
        return (200, {"ready": True}) if ready else (503, {"ready": False, "reason": why})

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/metrics" or path in self._views:
            if method not in ("GET", "HEAD"):
                return json_response(start_response, 405, {"error": "method not allowed"})
            if path == "/metrics":
                self._before_scrape()
                return self._metrics_app(environ, start_response)
            status, body = self._views[path]()
            return json_response(start_response, status, body)
        return json_response(start_response, 404, NOT_FOUND)
