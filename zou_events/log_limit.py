"""Rate-limited log lines for client misbehaviour: a flood of bad input must not flood the logs.

Each (event, reason) pair may write ``LINES_PER_INTERVAL`` lines per ``INTERVAL_SECONDS``;
the lines over that are counted, and one line ``similar log lines suppressed`` with the
count (``suppressed``) is written when the interval ends. Metrics count every occurrence
anyway: the logs only need enough lines to show what happened, and to whom.

Use it for every log line a client can cause at will::

    from zou_events.log_limit import log_misbehaviour

    log_misbehaviour(log, "warning", "dropped client packet", reason="undecodable", sid=sid)

``reason`` must come from a fixed set in the code (like a metrics label), never from the
client: the limiter keeps one small entry per (event, reason).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent

LINES_PER_INTERVAL = 10
INTERVAL_SECONDS = 10.0
_MAX_KEYS = 1024  # a guard against a caller passing unbounded reasons: they share one key
_OVERFLOW = ("misbehaviour", "other")

Schedule = Callable[[float, Callable[[], None]], Any]  # (delay, callback)


@dataclass
class _Window:
    started: float
    lines: int = 0
    suppressed: int = 0
    flush_pending: bool = False


class LogLimiter:
    def __init__(
        self,
        lines_per_interval: int = LINES_PER_INTERVAL,
        interval: float = INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        schedule: Schedule = gevent.spawn_later,
    ) -> None:
        self.lines_per_interval = lines_per_interval
        self.interval = interval
        self._clock = clock
        self._schedule = schedule
        self._windows: dict[tuple[str, str], _Window] = {}

    def log(self, logger: Any, level: str, event: str, *, reason: str, **fields: Any) -> bool:
        """Write ``event`` at ``level`` with ``reason`` unless over the budget of this
        (event, reason); True when written."""
        key = (event, reason)
        if key not in self._windows and len(self._windows) >= _MAX_KEYS:
            key = _OVERFLOW
        now = self._clock()
        window = self._windows.get(key)
        if window is None or now - window.started >= self.interval:
            if window is not None and window.suppressed:
                self._flush(logger, level, key)  # its timer has not run yet
            window = self._windows[key] = _Window(
                started=now, flush_pending=window is not None and window.flush_pending
            )
        if window.lines < self.lines_per_interval:
            window.lines += 1
            getattr(logger, level)(event, reason=reason, **fields)
            return True
        window.suppressed += 1
        if not window.flush_pending:
            window.flush_pending = True
            delay = max(0.0, window.started + self.interval - now)
            self._schedule(delay, lambda: self._timer_fired(logger, level, key))
        return False

    def _timer_fired(self, logger: Any, level: str, key: tuple[str, str]) -> None:
        window = self._windows.get(key)
        if window is not None:
            window.flush_pending = False
        self._flush(logger, level, key)

    def _flush(self, logger: Any, level: str, key: tuple[str, str]) -> None:
        window = self._windows.get(key)
        if window is None or not window.suppressed:
            return
        count, window.suppressed = window.suppressed, 0
        event, reason = key
        getattr(logger, level)(
            "similar log lines suppressed",
            suppressed=count,
            suppressed_event=event,
            reason=reason,
            interval_seconds=self.interval,
        )


_misbehaviour = LogLimiter()


def log_misbehaviour(logger: Any, level: str, event: str, *, reason: str, **fields: Any) -> bool:
    """Log a line a client can cause at will (bad packets, refusals), rate-limited per
    (event, reason) for the whole process; True when written."""
    return _misbehaviour.log(logger, level, event, reason=reason, **fields)
