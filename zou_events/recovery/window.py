"""The replay window: the recent broadcasts of /events, each under an offset that every
instance computes alike.

Zou's messages carry no id, and instances start at different times, so an offset cannot be
a counter. It is a hash of the message's bytes and of its PREDECESSORS predecessors' on the
channel: every instance reads the same channel in the same order, so any instance that read
them all gives the message the same offset, whatever it read before. An offset that occurs
twice in the window (the same five messages twice in a row) is ambiguous and, like an
unknown one, restores nothing: a replay is whole or it does not happen. Several
predecessors, not one, because Zou repeats itself: two updates of the same task publish
the same bytes, and the same two messages twice in a row are common.

Times are wall-clock seconds: they are compared with times measured on other instances.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from zou_events.messages import Emit

_DIGEST_BYTES = 16  # a message's identity, chained into its successors' offsets
PREDECESSORS = 4
_OFFSET_BYTES = 12  # 16 characters of base64: collisions are out of reach in any window


@dataclass(frozen=True, slots=True)
class Entry:
    offset: str
    emit: Emit
    size: int  # bytes of the message as read from Redis
    at: float  # when it was read
    digest: str  # of its bytes (hex): the same message wherever it was read


@dataclass(frozen=True, slots=True)
class Landmark:
    """A message as one instance read it, for another to find it among its own entries."""

    offset: str
    at: float
    digest: str


class ReplayWindow:
    """Bounded in age, messages and bytes; the oldest entries go first."""

    def __init__(
        self,
        seconds: float,
        max_messages: int,
        max_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.seconds = seconds
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: deque[Entry] = deque()
        self._position: dict[str, int] = {}  # offset -> sequence number of its newest entry
        self._repeated: dict[str, int] = {}  # offset -> occurrences beyond the first
        self._first = 0  # sequence number of _entries[0]
        # digests of the messages read before, the newest last; fewer after a reset
        self._previous: deque[bytes] = deque(maxlen=PREDECESSORS)
        self.bytes = 0
        # Every message read since then is here: the start (or last reset), or the reading
        # time of the newest evicted entry.
        self.complete_since = clock()
        # the last message recorded since the reset, evicted or not
        self.newest: Landmark | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, raw: bytes, emit: Emit) -> str:
        """Keep ``emit`` (read from Redis as ``raw``) and return its offset."""
        digest = hashlib.blake2b(raw, digest_size=_DIGEST_BYTES).digest()
        chained = hashlib.blake2b(b"".join(self._previous), digest_size=_OFFSET_BYTES)
        chained.update(digest)
        offset = base64.urlsafe_b64encode(chained.digest()).decode()
        self._previous.append(digest)
        hex_digest = digest.hex()
        if offset in self._position:
            self._repeated[offset] = self._repeated.get(offset, 0) + 1
        self._position[offset] = self._first + len(self._entries)
        now = self._clock()
        self._entries.append(Entry(offset, emit, len(raw), now, hex_digest))
        self.newest = Landmark(offset, now, hex_digest)
        self.bytes += len(raw)
        self._evict(now)
        return offset

    def after(self, offset: str) -> list[Entry] | None:
        """The entries recorded after ``offset``, or None if it is not in the window once
        (too old, evicted, never read here, or ambiguous) and not the last one read."""
        self._evict(self._clock())
        position = self._position.get(offset)
        if position is None and self.newest is not None and self.newest.offset == offset:
            return []  # the last message read here, aged out since: nothing came after it
        if position is None or offset in self._repeated:
            return None
        return list(itertools.islice(self._entries, position - self._first + 1, None))

    def after_landmark(self, landmark: Landmark, margin: float) -> list[Entry] | None:
        """The entries recorded after the one message here with the bytes of ``landmark``
        read within ``margin`` seconds of it (the same message, read here too), or None if
        there is none or more than one."""
        self._evict(self._clock())
        found = [
            index
            for index, entry in enumerate(self._entries)
            if entry.digest == landmark.digest and abs(entry.at - landmark.at) <= margin
        ]
        if len(found) != 1:
            return None
        return list(itertools.islice(self._entries, found[0] + 1, None))

    def entries(self) -> list[Entry]:
        """Every entry, oldest first."""
        self._evict(self._clock())
        return list(self._entries)

    def age(self) -> float:
        """Seconds since the oldest entry was read (0 when empty)."""
        return self._clock() - self._entries[0].at if self._entries else 0.0

    def reset(self) -> None:
        """Forget everything: after a gap in the subscription, messages may be missing, and
        a replay across the gap would be partial."""
        self._entries.clear()
        self._position.clear()
        self._repeated.clear()
        self._first = 0
        self._previous.clear()
        self.bytes = 0
        self.complete_since = self._clock()
        self.newest = None

    def _evict(self, now: float) -> None:
        entries = self._entries
        oldest_kept = now - self.seconds
        while entries and (
            len(entries) > self.max_messages
            or self.bytes > self.max_bytes
            or entries[0].at < oldest_kept
        ):
            gone = entries.popleft()
            self.bytes -= gone.size
            self.complete_since = gone.at
            repeats = self._repeated.get(gone.offset)
            if repeats is None:
                del self._position[gone.offset]
            elif repeats == 1:
                del self._repeated[gone.offset]
            else:
                self._repeated[gone.offset] = repeats - 1
            self._first += 1
