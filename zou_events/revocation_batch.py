"""The revocation checks of concurrent handshakes, asked of Redis together: one MGET.

In a reconnect storm every handshake asked Redis for its token's ``jti`` on a pooled
connection of its own. With thousands at once the pool ran dry, handshakes waited past the
pool's timeout and were refused "try again later", which socket.io-client never retries:
those tabs stayed without events. Here the handshakes that ask while a lookup is being
prepared or is in flight wait for the next one, which takes them all: one connection, one
round trip per batch, whatever the storm.
"""

from __future__ import annotations

from collections.abc import Callable

import gevent
from gevent.event import AsyncResult

RevokedLookup = Callable[[list[str]], set[str]]  # jtis -> the revoked ones (one MGET)

# jtis in one MGET: bounds the command's size and Redis's time on it. A handshake waits for
# the batch in flight and its own, each bounded by Redis's command timeout: no timer of its
# own, which a lagging event loop would fire before the answer it already has.
MAX_BATCH = 1000


class RevocationBatcher:
    def __init__(self, lookup: RevokedLookup) -> None:
        self._lookup = lookup
        self._waiting: list[tuple[str, AsyncResult[bool]]] = []
        self._flusher: gevent.Greenlet[[], None] | None = None

    def is_revoked(self, jti: str) -> bool:
        """Whether Zou's store holds ``jti`` as revoked; raises when it could not be read."""
        answer: AsyncResult[bool] = AsyncResult()
        self._waiting.append((jti, answer))
        if self._flusher is None:
            # Spawned, not run: the handshakes of this turn of the event loop join the batch.
            self._flusher = gevent.spawn(self._flush)
        revoked: bool = answer.get()
        return revoked

    def _flush(self) -> None:
        batch: list[tuple[str, AsyncResult[bool]]] = []
        try:
            while self._waiting:
                batch = self._waiting[:MAX_BATCH]
                del self._waiting[:MAX_BATCH]
                try:
                    revoked = self._lookup(list(dict.fromkeys(jti for jti, _ in batch)))
                except Exception as error:  # each handshake decides what a failure means
                    for _, answer in batch:
                        answer.set_exception(error)
                    continue
                for jti, answer in batch:
                    answer.set(jti in revoked)
        finally:
            self._flusher = None
            # Killed (the worker stopping): nobody may wait for an answer that never comes.
            for _, answer in batch + self._waiting:
                if not answer.ready():
                    answer.set_exception(RuntimeError("revocation check interrupted"))
            self._waiting.clear()
