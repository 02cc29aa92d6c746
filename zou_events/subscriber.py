"""The Redis subscription: reads Zou's channel, survives Redis restarts, reports its state.

Nothing read from the channel can stop it: each message is decoded and applied inside a
boundary that drops, counts and logs whatever fails. Should the loop stop or stall anyway
(a bug), ``subscribed`` (/ready, the gauge) turns false at once and a watchdog restarts it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import gevent
import redis
import structlog

from zou_events import metrics
from zou_events.fanout import Fanout
from zou_events.log_limit import log_misbehaviour
from zou_events.messages import DEFAULT_MAX_BYTES, DroppedMessage, Emit, decode

log = structlog.get_logger("zou_events.subscriber")

_BACKOFF_FIRST, _BACKOFF_MAX = 0.5, 10.0
_HEALTH_CHECK_SECONDS = 5.0  # a silent channel is pinged this often to spot a dead link
# In a burst the Redis buffer never runs dry: give the event loop a turn this often, so that
# the outboxes write what the messages so far queued and the sockets' readers run.
_TURN_SECONDS = 0.005
# A working loop beats at least every health check; a silent Redis is given up after three.
STALL_SECONDS = 3 * _HEALTH_CHECK_SECONDS
# Retrying, the loop beats around each backoff (10 s at most) and connect (2 s at most).
RESTART_AFTER_SECONDS = 2 * STALL_SECONDS
WATCH_SECONDS = 1.0


class Subscriber:
    """Runs in its own greenlet, watched by another; ``subscribed`` is what /ready reports."""

    def __init__(
        self,
        connect: Callable[[], redis.Redis],
        channel: str,
        fanout: Fanout,
        max_message_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._connect = connect
        self.channel = channel
        self.fanout = fanout
        self.max_message_bytes = max_message_bytes
        self._subscribed = False
        self._beat = time.monotonic()  # the loop's last turn
        self._heard = 0.0  # wall-clock time Redis last answered on the subscription
        self._greenlet: gevent.Greenlet | None = None
        self._watchdog: gevent.Greenlet | None = None

    @property
    def subscribed(self) -> bool:
        """Subscribed, and the loop that says so is alive and turning."""
        greenlet = self._greenlet
        return (
            self._subscribed
            and greenlet is not None
            and not greenlet.dead
            and time.monotonic() - self._beat < STALL_SECONDS
        )

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run_forever)
        self._watchdog = gevent.spawn(self._watch)

    def stop(self) -> None:
        for greenlet in (self._watchdog, self._greenlet):
            if greenlet is not None:
                greenlet.kill(block=False)
        self._set_subscribed(False)

    def _set_subscribed(self, value: bool) -> None:
        self._subscribed = value
        metrics.redis_subscribed.set(1 if value else 0)

    def _watch(self) -> None:
        while True:
            gevent.sleep(WATCH_SECONDS)
            try:
                self.check()
            except Exception:  # the watchdog itself must not die
                log.exception("redis subscriber watchdog failed")

    def check(self) -> None:
        """Export the truthful state; restart a loop that died or stopped turning."""
        metrics.redis_subscribed.set(1 if self.subscribed else 0)
        if self._heard:
            metrics.redis_last_heard_timestamp.set(self._heard)
        greenlet = self._greenlet
        if greenlet is None:
            return
        if greenlet.dead:
            reason = "died"
            error = greenlet.exception
        elif time.monotonic() - self._beat > RESTART_AFTER_SECONDS:
            reason, error = "stalled", None
            greenlet.kill(block=True, timeout=1.0)
        else:
            return
        metrics.redis_subscriber_restarts.labels(reason).inc()
        log.error(
            "redis subscriber stopped, restarting it",
            channel=self.channel,
            reason=reason,
            error=repr(error)[:200] if error is not None else None,
        )
        self._set_subscribed(False)
        self._beat = time.monotonic()
        self._greenlet = gevent.spawn(self._run_forever)

    def _run_forever(self) -> None:
        backoff = _BACKOFF_FIRST
        lost_at: float | None = None
        while True:
            self._beat = time.monotonic()
            try:
                self._listen(on_subscribed=functools.partial(self._log_subscribed, lost_at))
            except (redis.RedisError, OSError) as error:
                if self._subscribed or lost_at is None:
                    lost_at = time.monotonic()
                    log.warning(
                        "redis subscription lost, retrying",
                        channel=self.channel,
                        error=str(error),
                        retry_in=backoff,
                    )
                self._set_subscribed(False)
                self._beat = time.monotonic()
                gevent.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
                metrics.redis_reconnects.inc()
            else:
                backoff = _BACKOFF_FIRST

    def _log_subscribed(self, lost_at: float | None) -> None:
        self._set_subscribed(True)
        self.fanout.subscription_started()
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
                now = self._beat = time.monotonic()
                if message is None:
                    if now - last_traffic > 3 * _HEALTH_CHECK_SECONDS:
                        raise redis.ConnectionError("no answer from Redis to pings")
                    if now - last_ping >= _HEALTH_CHECK_SECONDS:
                        pubsub.ping()
                        last_ping = now
                    continue
                last_traffic = now
                self._heard = time.time()
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
        """One message from the channel, inside a boundary: whatever fails while decoding or
        applying it (a refused message, or any error) drops this message only, with a log
        line and a counter, and the loop goes on."""
        try:
            self._apply(raw, arrived)
        except DroppedMessage as dropped:
            self._dropped(dropped.reason, str(dropped))
        except Exception as error:  # a bug or an input nobody foresaw: not the subscription
            self._dropped("error", f"{type(error).__name__}: {str(error)[:200]}")

    def _apply(self, raw: bytes, arrived: float) -> None:
        message = decode(raw, self.max_message_bytes)
        if message is None or message.host_id == self.fanout.host_id:
            return  # our own room emits were delivered locally already
        if isinstance(message, Emit):
            metrics.redis_messages.labels(metrics.event_family(message.event)).inc()
            if message.published_at is not None:
                metrics.publish_delay_seconds.observe(max(0.0, time.time() - message.published_at))
            self.fanout.deliver(message, arrived, raw)
        else:
            self.fanout.apply_room_change(message)

    @staticmethod
    def _dropped(reason: str, detail: str) -> None:
        metrics.redis_messages_dropped.labels(reason).inc()
        # a publisher gone wrong may send thousands a second: the counter has them all
        log_misbehaviour(log, "warning", "dropped redis message", reason=reason, detail=detail)
