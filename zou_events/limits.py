"""Per-connection limits on client room events: a token bucket per socket.

Kitsu itself throttles room updates to 5/s and streams annotation strokes, so the default
bucket (50 events/s sustained, bursts of 200) never refuses a real client; a flooding one
gets its excess dropped, and is disconnected if it keeps flooding.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class _Bucket:
    tokens: float
    updated: float
    refused_in_window: int = 0
    window_started: float = field(default_factory=time.monotonic)


class RateLimiter:
    WINDOW_SECONDS = 10.0

    def __init__(self, per_second: float, burst: int, kick_after_refusals: int) -> None:
        self.per_second = per_second
        self.burst = burst
        self.kick_after_refusals = kick_after_refusals
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, sid: str) -> bool:
        now = time.monotonic()
        bucket = self._buckets.get(sid)
        if bucket is None:
            bucket = self._buckets[sid] = _Bucket(tokens=float(self.burst), updated=now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.per_second)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return True
        if now - bucket.window_started > self.WINDOW_SECONDS:
            bucket.window_started, bucket.refused_in_window = now, 0
        bucket.refused_in_window += 1
        return False

    def refusals(self, sid: str) -> int:
        """Events refused to this socket in the current window."""
        bucket = self._buckets.get(sid)
        return 0 if bucket is None else bucket.refused_in_window

    def should_kick(self, sid: str) -> bool:
        """True once a socket has been refused too often within one window."""
        bucket = self._buckets.get(sid)
        return bucket is not None and bucket.refused_in_window >= self.kick_after_refusals

    def forget(self, sid: str) -> None:
        self._buckets.pop(sid, None)
