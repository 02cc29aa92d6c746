"""Authenticated sockets of /events: who they are, and cutting them when their token dies.

A socket is cut at its token's ``exp`` (one event-loop timer per socket, lighter than a
greenlet waiting for it; the kick gets a greenlet when it fires: its transport ends, so the
client reconnects with its current cookie) and within one sweep interval of its token being
revoked, not only at its next message as in Zou:

- person tokens are revoked in Zou's Redis store: one batched MGET per sweep;
- bot and person_api tokens are revoked in Zou's database, which only Zou's API reads: each
  distinct token is asked of Zou once per sweep, a few at a time. When Zou cannot answer
  (down, slow, circuit open) the sockets stay: a Zou outage must not cut every bot at once
  (and refuse their reconnections until Zou is back); a token revoked meanwhile is cut at
  the first sweep Zou answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import structlog
from gevent.pool import Pool

from zou_events import metrics
from zou_events.auth import Identity
from zou_events.zou_api import ZouUnavailable

log = structlog.get_logger("zou_events.sessions")

RevokedLookup = Callable[[list[str]], set[str]]  # jtis -> the revoked ones
StillValid = Callable[[Identity], bool]  # Zou's word now; raises ZouUnavailable
Kick = Callable[[str, Identity, str], None]  # (sid, its identity, reason)
_SWEEP_BATCH = 1000
RECHECK_CONCURRENCY = 4  # requests to Zou's API at once per sweep (its pool holds 20)


class Sessions:
    def __init__(
        self,
        kick: Kick,
        revoked: RevokedLookup | None,
        sweep_interval: float,
        still_valid: StillValid | None = None,
    ) -> None:
        """``revoked`` reads Zou's Redis store (None: no store); ``still_valid`` asks Zou's
        API about the tokens the store cannot tell (None: no API configured)."""
        self._kick = kick
        self._revoked = revoked
        self._still_valid = still_valid
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
            timer.start(gevent.spawn, self.kick, sid, "token_expired")
            self._timers[sid] = timer

    def kick(self, sid: str, reason: str) -> None:
        """Disconnect ``sid``, if still here, on the server's initiative (``reason``: metrics)."""
        identity = self._identities.get(sid)
        if identity is not None:
            self._kick(sid, identity, reason)

    def refresh_gauges(self) -> None:
        metrics.connected_people.set(len({i.person_id for i in self._identities.values()}))

    def remove(self, sid: str) -> Identity | None:
        timer = self._timers.pop(sid, None)
        if timer is not None:
            timer.close()
        return self._identities.pop(sid, None)

    def start(self) -> None:
        if self._revoked is not None or self._still_valid is not None:
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
        """Disconnects the sockets of tokens revoked in Zou; returns how many."""
        in_store: list[tuple[str, Identity]] = []
        by_zou: list[tuple[str, Identity]] = []
        for sid, identity in self.items():
            if identity.identity_type == "person" and self._revoked is not None:
                in_store.append((sid, identity))
            elif self._still_valid is not None:
                by_zou.append((sid, identity))
        kicked = self._sweep_zou(by_zou) if by_zou else 0  # never raises: first
        return kicked + (self._sweep_store(in_store) if in_store else 0)

    def _sweep_store(self, sockets: list[tuple[str, Identity]]) -> int:
        assert self._revoked is not None
        kicked = 0
        for start in range(0, len(sockets), _SWEEP_BATCH):
            batch = sockets[start : start + _SWEEP_BATCH]
            revoked = self._revoked([identity.jti for _, identity in batch])
            for sid, identity in batch:
                if identity.jti in revoked:
                    self.kick(sid, "token_revoked")
                    kicked += 1
        return kicked

    def _sweep_zou(self, sockets: list[tuple[str, Identity]]) -> int:
        """One question per distinct token, RECHECK_CONCURRENCY at a time; fails open."""
        still_valid = self._still_valid
        assert still_valid is not None
        tokens: dict[str, Identity] = {}
        for _, identity in sockets:
            tokens.setdefault(identity.jti, identity)

        def ask(identity: Identity) -> tuple[str, bool | None]:
            try:
                return identity.jti, still_valid(identity)
            except ZouUnavailable:
                return identity.jti, None  # unknown: the sockets stay

        answers = dict(Pool(RECHECK_CONCURRENCY).imap_unordered(ask, tokens.values()))
        unknown = sum(1 for valid in answers.values() if valid is None)
        if unknown:
            log.warning("zou api cannot tell, tokens kept", tokens=unknown)
        kicked = 0
        for sid, identity in sockets:
            if answers.get(identity.jti) is False:
                self.kick(sid, "token_revoked")
                kicked += 1
        return kicked
