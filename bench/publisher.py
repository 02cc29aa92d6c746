"""Publishes events on Redis exactly as Zou's API does, stamped with their publication time.

The message is python-socketio's write-only RedisManager format (what Zou's
``socketio.RedisManager(..., write_only=True).emit(event, data, namespace="/events")``
publishes on channel ``flask-socketio``), written with redis-py directly to keep the
publisher cheap. The payload's last key ``t`` is the wall-clock publication time: the load
client subtracts it from its own receive time.
"""

from __future__ import annotations

import json
import time
import uuid

import redis

from zou_events.messages import zou_emit

CHANNEL = "flask-socketio"
EVENT = "bench:fanout"  # the load client counts this event only
PROJECT_ID = "5b9b0a51-2d59-4b47-b4a0-5e7b4bd7c0f1"


class Publisher:
    def __init__(self, redis_url: str = "redis://127.0.0.1:6379/2") -> None:
        self.redis = redis.Redis.from_url(redis_url)
        self.host_id = uuid.uuid4().hex

    def _message(self, sequence: int) -> str:
        payload = {"project_id": PROJECT_ID, "n": sequence, "t": time.time()}
        return json.dumps(zou_emit(EVENT, payload, self.host_id))

    def subscribers(self) -> int:
        return int(self.redis.pubsub_numsub(CHANNEL)[0][1])

    def steady(self, rate: float, duration: float) -> int:
        """``rate`` events/s for ``duration`` s on a fixed schedule; returns the count sent."""
        total = round(rate * duration)
        start = time.monotonic()
        for sequence in range(total):
            delay = start + sequence / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.redis.publish(CHANNEL, self._message(sequence))
        return total

    def burst(self, count: int) -> float:
        """``count`` events back to back in one pipeline; returns the wall time it was sent."""
        pipeline = self.redis.pipeline(transaction=False)
        for sequence in range(count):
            pipeline.publish(CHANNEL, self._message(sequence))
        sent = time.time()
        pipeline.execute()
        return sent

    def close(self) -> None:
        self.redis.close()
