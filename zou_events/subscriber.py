"""The Redis subscription: reads Zou's channel, survives Redis restarts, reports its state."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import gevent
import redis
import structlog

from zou_events import metrics
from zou_events.fanout import Fanout
from zou_events.messages import DroppedMessage, Emit, decode

log = structlog.get_logger("zou_events.subscriber")

_BACKOFF_FIRST, _BACKOFF_MAX = 0.5, 10.0
_HEALTH_CHECK_SECONDS = 5.0  # a silent channel is pinged this often to spot a dead link
# In a burst the Redis buffer never runs dry: give the event loop a turn this often, so that
# the outboxes write what the messages so far queued and the sockets' readers run.
_TURN_SECONDS = 0.005


class Subscriber:
    """Runs in its own greenlet; ``subscribed`` is what /ready reports."""

    def __init__(
        self,
        connect: Callable[[], redis.Redis],
        channel: str,
        fanout: Fanout,
    ) -> None:
        self._connect = connect
        self.channel = channel
        self.fanout = fanout
        self.subscribed = False
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run_forever)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
        self._set_subscribed(False)

    def _set_subscribed(self, value: bool) -> None:
        self.subscribed = value
        metrics.redis_subscribed.set(1 if value else 0)

    def _run_forever(self) -> None:
        backoff = _BACKOFF_FIRST
        lost_at: float | None = None
        while True:
            try:
                self._listen(on_subscribed=functools.partial(self._log_subscribed, lost_at))
            except (redis.RedisError, OSError) as error:
                if self.subscribed or lost_at is None:
                    lost_at = time.monotonic()
                    log.warning(
                        "redis subscription lost, retrying",
                        channel=self.channel,
                        error=str(error),
                        retry_in=backoff,
                    )
                self._set_subscribed(False)
                gevent.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
                metrics.redis_reconnects.inc()
            else:
                backoff = _BACKOFF_FIRST

    def _log_subscribed(self, lost_at: float | None) -> None:
        self._set_subscribed(True)
        if lost_at is None:
            log.info("subscribed to redis", channel=self.channel)
        else:
            log.info(
                "redis subscription restored",
                channel=self.channel,
                outage_seconds=round(time.monotonic() - lost_at, 3),
            )

    def _listen(self, on_subscribed: Callable[[], None]) -> None:
        client = self._connect()
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(self.channel)
            last_traffic = last_ping = last_turn = time.monotonic()
            while True:
                message = pubsub.get_message(timeout=_HEALTH_CHECK_SECONDS)
                now = time.monotonic()
                if message is None:
                    if now - last_traffic > 3 * _HEALTH_CHECK_SECONDS:
                        raise redis.ConnectionError("no answer from Redis to pings")
                    if now - last_ping >= _HEALTH_CHECK_SECONDS:
                        pubsub.ping()
                        last_ping = now
                    continue
                last_traffic = now
                kind = message["type"]
                if kind == "subscribe":
                    on_subscribed()
                elif kind == "message":
                    self.handle(message["data"], now)
                    if now - last_turn >= _TURN_SECONDS:
                        gevent.sleep(0)
                        last_turn = time.monotonic()
        finally:
            pubsub.close()
            client.close()

    def handle(self, raw: bytes, arrived: float) -> None:
        """One message from the channel; bad ones are dropped with a log line and a counter."""
        try:
            message = decode(raw)
        except DroppedMessage as dropped:
            metrics.redis_messages_dropped.labels(dropped.reason).inc()
            log.warning("dropped redis message", reason=dropped.reason, detail=str(dropped))
            return
        if message is None or message.host_id == self.fanout.host_id:
            return  # our own room emits were delivered locally already
        if isinstance(message, Emit):
            metrics.redis_messages.labels(metrics.event_family(message.event)).inc()
            if message.published_at is not None:
                metrics.publish_delay_seconds.observe(max(0.0, time.time() - message.published_at))
            try:
                self.fanout.deliver(message, arrived)
            except (TypeError, ValueError) as error:  # arguments JSON cannot encode
                metrics.redis_messages_dropped.labels("bad_field").inc()
                log.warning("dropped redis message", reason="bad_field", detail=str(error))
        else:
            self.fanout.apply_room_change(message)
