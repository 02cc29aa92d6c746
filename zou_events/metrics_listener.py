"""The optional metrics listener: a second address gunicorn listens on (``bind``, or the
socket unit's second ``ListenStream``) for ``/metrics``, ``/health`` and ``/ready`` only, so
Prometheus on another host can scrape an instance whose Socket.IO port stays on loopback.

Requests are told apart by the local port of their connection (what the client connected to,
not its ``Host`` header). On that port nothing else answers, Socket.IO included; on the
Socket.IO port ``/metrics`` is then refused, so each instance has one scrape target and a
misconfigured second job cannot double every series.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from zou_events.http_routes import NOT_FOUND, StartResponse, json_response

if TYPE_CHECKING:  # not at run time: gunicorn's master imports this before gevent patches
    from zou_events.admission import WsgiApp

MONITORING_PATHS = frozenset({"/metrics", "/health", "/ready"})


def bind_address(address: str, port: int) -> str:
    """gunicorn's form of an address: an IPv6 one goes in brackets."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def local_port(environ: dict[str, Any]) -> int | None:
    """The port the request's connection reached (gunicorn passes its socket)."""
    try:
        return int(environ["gunicorn.socket"].getsockname()[1])
    except (KeyError, AttributeError, OSError, IndexError, TypeError, ValueError):
        return None


class ListenerRouter:
    """Outermost WSGI app: the metrics port reaches ``monitoring`` alone, the others ``app``."""

    def __init__(self, app: WsgiApp, monitoring: WsgiApp, metrics_port: int) -> None:
        self._app = app
        self._monitoring = monitoring
        self._metrics_port = metrics_port

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if local_port(environ) == self._metrics_port:
            if path in MONITORING_PATHS:
                return self._monitoring(environ, start_response)
            return json_response(start_response, 404, NOT_FOUND)
        if path == "/metrics":
            return json_response(start_response, 404, NOT_FOUND)
        return self._app(environ, start_response)
