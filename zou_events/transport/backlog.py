"""A bounded view of each socket's send queue.

python-engineio gives every socket an unbounded queue: a client that stops reading would
grow the server's memory forever. Each socket's queue (made by ``EventServer``'s factory
for engineio) counts the messages and bytes waiting; the fan-out cuts a socket whose
backlog is over either limit instead of queueing more for it, so one slow reader never
slows the others.
"""

from __future__ import annotations

from typing import Any

from gevent.queue import JoinableQueue


def _size(packet: Any) -> int:
    data = getattr(packet, "data", None)
    return len(data) if isinstance(data, str | bytes) else 16


class MeteredQueue(JoinableQueue):
    def __init__(self, max_messages: int, max_bytes: int) -> None:
        super().__init__()
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.pending_bytes = 0

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self.pending_bytes += _size(item)
        super().put(item, block, timeout)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        item = super().get(block, timeout)
        self.pending_bytes -= _size(item)
        return item

    def over_limit(self) -> bool:
        return self.qsize() >= self.max_messages or self.pending_bytes >= self.max_bytes
