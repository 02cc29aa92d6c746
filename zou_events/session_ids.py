"""Engine.IO session ids that name the instance holding the session.

Every request of a session after the handshake (long-polling, the WebSocket upgrade) carries
its id in the query string (``sid=``), so nginx routes it to the instance named there and
balances only the handshakes, which carry none: no affinity to client addresses. An id is
``<tag>-<port>.<engineio's id>``: engineio's part keeps its 12 random bytes (the id stays
unguessable), the prefix uses only characters that neither socket.io-client's nor
python-engineio's query encoding changes, and ``.`` never occurs in engineio's base64url part,
so the prefix ends unambiguously at the first one.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable

TAG = re.compile(r"[a-z0-9]{1,16}")
TAG_HELP = "1 to 16 lowercase letters and digits"
_DEFAULT_TAG_LENGTH = 6  # 30 bits of a hash: distinct for any realistic number of instances


def default_tag(instance_id: str) -> str:
    """A short tag derived from the instance id, stable across restarts."""
    digest = hashlib.sha256(instance_id.encode()).digest()
    return base64.b32encode(digest).decode("ascii")[:_DEFAULT_TAG_LENGTH].lower()


def parse_tag(raw: str) -> str:
    """A configured tag, or ValueError."""
    if not TAG.fullmatch(raw):
        raise ValueError(raw)
    return raw


def instance_name(tag: str, port: int) -> str:
    """What a session id names: the tag with the port, so one environment file can serve
    every instance of a host."""
    return f"{tag}-{port}"


def tagged(instance: str, generate: Callable[[], str]) -> Callable[[], str]:
    """A generator of ids prefixed with ``instance``, around engineio's own ``generate``."""
    prefix = f"{instance}."
    return lambda: prefix + generate()
