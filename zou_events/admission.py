"""Admission of new Engine.IO sessions: a cap on sockets, on new sessions per second, and on
how far behind the event loop may run.

While draining or full, a handshake gets HTTP 503 at once (nginx or the client tries
elsewhere or later); beyond the rate or the lag bound it waits its turn first
(``waiting_room.py``). The sockets already connected keep being served meanwhile.
Whether a request is new is decided on the session table, never on the query string's
shape: only a ``sid`` naming an open session of this process makes a request an old one.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from zou_events import metrics
from zou_events.rooms.limits import TokenBucket

ENGINEIO_PATH = "/socket.io/"  # engineio's own prefix test: anything else is not Engine.IO

OVER_CAPACITY, TOO_FAST, OVERLOADED, UNJOINED, DRAINING, ABANDONED = (
    "over_capacity",
    "too_fast",
    "overloaded",
    "unjoined",  # too many sessions have not joined a namespace yet (pending_sessions.py)
    "draining",
    "abandoned",  # the client hung up while its handshake waited its turn
)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Admission:
    """``socket_count`` counts the sessions that joined a namespace, and those whose
    handshake carried a valid token: the others are bounded by the new-session rate and
    pending_sessions.MAX_PENDING, and closed after ZOU_EVENTS_CONNECT_TIMEOUT."""

    def __init__(
        self,
        max_sockets: int,
        per_second: float,
        burst: int,
        socket_count: Callable[[], int],
        draining: Callable[[], bool],
        loop_lag: Callable[[], float],
        max_lag: float,
        unjoined_full: Callable[[], bool] = lambda: False,
    ) -> None:
        self.max_sockets = max_sockets
        self._socket_count = socket_count
        self._draining = draining
        self._loop_lag = loop_lag
        self.max_lag = max_lag
        self._unjoined_full = unjoined_full
        self._sessions = TokenBucket(per_second, burst)

    @property
    def per_second(self) -> float:
        return self._sessions.rate

    def overloaded(self) -> bool:
        return self._loop_lag() > self.max_lag

    def refusal(self) -> str | None:
        """Why a new session must be refused now, or None to admit it."""
        return self.lasting_refusal() or self.passing_refusal()

    def lasting_refusal(self) -> str | None:
        """A reason that waiting a few seconds would not lift."""
        if self._draining():
            return DRAINING
        if self._socket_count() >= self.max_sockets:
            return OVER_CAPACITY
        return None

    def passing_refusal(self) -> str | None:
        """A reason that lifts as the worker catches up; None takes a token of the rate."""
        if self.overloaded():
            # The worker is saturated: a session admitted now would wait its turn at every
            # step, and a client that gives up after 20 s retries, adding to the queue.
            return OVERLOADED
        if self._unjoined_full():
            # Sessions are opened faster than their clients join: a slow client is held
            # back rather than having its sessions closed before it joins.
            return UNJOINED
        return None if self._sessions.take() else TOO_FAST


class AdmissionMiddleware:
    """WSGI: a request to Engine.IO that names no open session of this process is a new
    session (engineio ignores an empty ``sid``, and an unknown one gets no session either):
    it is admitted, perhaps after waiting its turn, or answered 503 with the reason."""

    def __init__(
        self,
        app: WsgiApp,
        admit: Callable[[Callable[[], bool]], str | None],
        is_open: Callable[[str], bool],
    ):
        self.app = app
        self._admit = admit  # None, or why not (the waiting room's admit)
        self._is_open = is_open

    def is_new_session(self, environ: dict[str, Any]) -> bool:
        if not environ.get("PATH_INFO", "").startswith(ENGINEIO_PATH):
            return False
        sid = first_sid(environ.get("QUERY_STRING", ""))
        return sid is None or not self._is_open(sid)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self.is_new_session(environ):
            refusal = self._admit(client_connected(environ.get("gunicorn.socket")))
            if refusal is not None:
                metrics.connections_refused.labels(refusal).inc()
                start_response(
                    "503 SERVICE UNAVAILABLE",
                    [("Retry-After", "1"), ("Content-Type", "text/plain")],
                )
                return [refusal.encode()]
        return self.app(environ, start_response)


def first_sid(query: str) -> str | None:
    """The query string's ``sid`` as engineio reads it (``parse_qs``: the first non-blank
    value). Without ``%`` or ``+`` nothing is decoded, and the plain scan below finds what
    ``parse_qs`` would at a sixth of its cost (every request of a connect comes here)."""
    if "%" in query or "+" in query:
        values = parse_qs(query).get("sid")
        return values[0] if values else None
    for field in query.split("&"):
        name, _, value = field.partition("=")
        if name == "sid" and value:
            return value
    return None


def client_connected(sock: socket.socket | None) -> Callable[[], bool]:
    """Whether the client of a request is still connected: its socket not at end of stream.
    Data it sent meanwhile (a pipelined request) stays in the socket, only peeked at."""

    def still_there() -> bool:
        if sock is None:
            return True
        timeout = sock.gettimeout()
        sock.settimeout(0.0)  # gevent's socket would otherwise wait for data
        try:
            return sock.recv(1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            return True  # nothing to read: still connected
        except OSError:
            return False  # reset
        finally:
            sock.settimeout(timeout)

    return still_there
