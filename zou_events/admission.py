"""Admission of new Engine.IO sessions: a cap on sockets, on new sessions per second, and on
how far behind the event loop may run.

Beyond any limit the handshake gets HTTP 503 at once (cheap for the worker, and nginx or
the client backs off and retries), while the sockets already connected keep being served.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

OVER_CAPACITY, TOO_FAST, OVERLOADED, DRAINING = (
    "over_capacity",
    "too_fast",
    "overloaded",
    "draining",
)


def is_new_session(environ: dict[str, Any]) -> bool:
    """An Engine.IO handshake: a /socket.io request that carries no session id yet."""
    return environ.get("PATH_INFO", "").startswith("/socket.io") and "sid=" not in environ.get(
        "QUERY_STRING", ""
    )


class Admission:
    def __init__(
        self,
        max_sockets: int,
        per_second: float,
        burst: int,
        socket_count: Callable[[], int],
        draining: Callable[[], bool],
        loop_lag: Callable[[], float],
        max_lag: float,
    ) -> None:
        self.max_sockets = max_sockets
        self.per_second = per_second
        self.burst = burst
        self._socket_count = socket_count
        self._draining = draining
        self._loop_lag = loop_lag
        self.max_lag = max_lag
        self._tokens = float(burst)
        self._updated = time.monotonic()

    def refusal(self) -> str | None:
        """Why a new session must be refused now, or None to admit it."""
        if self._draining():
            return DRAINING
        if self._socket_count() >= self.max_sockets:
            return OVER_CAPACITY
        if self._loop_lag() > self.max_lag:
            # The worker is saturated: a session admitted now would wait its turn at every
            # step, and a client that gives up after 20 s retries, adding to the queue.
            return OVERLOADED
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.per_second)
        self._updated = now
        if self._tokens < 1:
            return TOO_FAST
        self._tokens -= 1
        return None
