"""Token buckets: per-connection limits on client room events, and the one bucket type
every rate limit of the project uses (inbound.py meters each socket's traffic with it).

Kitsu itself throttles room updates to 5/s and streams annotation strokes, so the default
room bucket (50 events/s sustained, bursts of 200) never refuses a real client; a flooding
one gets its excess dropped, and is disconnected if it keeps flooding.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved; starts full."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self, cost: float = 1.0, now: float | None = None) -> bool:
        """Take ``cost`` tokens if there are that many; False (nothing taken) otherwise."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


@dataclass
class _Bucket:
    tokens: TokenBucket
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
            bucket = self._buckets[sid] = _Bucket(TokenBucket(self.per_second, self.burst))
        if bucket.tokens.take(1, now):
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
