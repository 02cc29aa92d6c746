"""Authenticated sockets of /events: who they are, and cutting them when their token dies.

A socket is cut at its token's ``exp`` (one event-loop timer per socket, lighter than a
greenlet waiting for it; the kick gets a greenlet when it fires: its transport ends, so the
client reconnects with its current cookie) and within one sweep interval of its ``jti``
being revoked in Zou's Redis store (one batched MGET per sweep), not only at its next
message as in Zou.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import structlog

from zou_events.auth import Identity

log = structlog.get_logger("zou_events.sessions")

RevokedLookup = Callable[[list[str]], set[str]]  # jtis -> the revoked ones
Kick = Callable[[str, str], None]  # (sid, reason)
_SWEEP_BATCH = 1000


class Sessions:
    def __init__(self, kick: Kick, revoked: RevokedLookup | None, sweep_interval: float) -> None:
        self._kick = kick
        self._revoked = revoked
        self._sweep_interval = sweep_interval
        self._identities: dict[str, Identity] = {}
        self._timers: dict[str, Any] = {}  # sid -> the event loop's timer watcher
        self._sweeper: gevent.Greenlet | None = None

    def __len__(self) -> int:
        return len(self._identities)

    def get(self, sid: str) -> Identity | None:
        return self._identities.get(sid)

    def items(self) -> Iterable[tuple[str, Identity]]:
        return list(self._identities.items())

    def add(self, sid: str, identity: Identity) -> None:
        self._identities[sid] = identity
        if identity.expires_at is not None:
            delay = max(0.0, identity.expires_at - time.time())
            timer = gevent.get_hub().loop.timer(delay)
            timer.start(gevent.spawn, self._kick, sid, "token_expired")
            self._timers[sid] = timer

    def remove(self, sid: str) -> Identity | None:
        timer = self._timers.pop(sid, None)
        if timer is not None:
            timer.close()
        return self._identities.pop(sid, None)

    def start(self) -> None:
        if self._revoked is not None:
            self._sweeper = gevent.spawn(self._sweep_forever)

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.kill(block=False)

    def _sweep_forever(self) -> None:
        while True:
            gevent.sleep(self._sweep_interval)
            try:
                self.sweep()
            except Exception as error:  # Redis down: try again next round
                log.warning("revocation sweep failed", error=str(error))

    def sweep(self) -> int:
        """Disconnects the sockets of person tokens revoked in Zou; returns how many."""
        assert self._revoked is not None
        persons = [(sid, i) for sid, i in self.items() if i.identity_type == "person"]
        kicked = 0
        for start in range(0, len(persons), _SWEEP_BATCH):
            batch = persons[start : start + _SWEEP_BATCH]
            revoked = self._revoked([identity.jti for _, identity in batch])
            for sid, identity in batch:
                if identity.jti in revoked:
                    self._kick(sid, "token_revoked")
                    kicked += 1
        return kicked
