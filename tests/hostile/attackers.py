"""Attack loops shared by the hostile tests: each runs until its window's time is up,
reconnecting whenever the server cuts it (an attacker does), and tallies what happened."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from tests.hostile.support import Instance, Window, open_websocket
from tests.support.raw_websocket import RawWebSocket, frame

SEND_TIMEOUT = 5.0  # a send the server does not read within this counts as "stalled"


def frames(*texts: str, repeat: int = 1) -> bytes:
    """Client text frames, masked, concatenated (``repeat`` times), for one sendall."""
    return b"".join(frame(text.encode()) for text in texts) * repeat


class Tally:
    """What the attackers of one window saw (thread-safe)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, what: str, count: int = 1) -> None:
        with self._lock:
            self.counts[what] += count


def connect(instance: Instance, cookie: str | None, tally: Tally) -> RawWebSocket | None:
    try:
        ws = open_websocket(instance, cookie)
    except (OSError, AssertionError):
        tally.add("refused")
        return None
    ws.sock.settimeout(SEND_TIMEOUT)
    tally.add("connections")
    return ws


def repeat_until_cut(
    instance: Instance,
    window: Window,
    cookie: str | None,
    attack: Callable[[RawWebSocket], None],
    tally: Tally,
) -> None:
    """Connect, run ``attack`` on the connection until it fails (cut, reset, stalled),
    connect again; until the window ends."""
    for _ in window.running(limit=100_000):
        ws = connect(instance, cookie, tally)
        if ws is None:
            continue
        try:
            while window.remaining() > 0:
                attack(ws)
        except TimeoutError:
            tally.add("stalled")
        except OSError:
            tally.add("cut")
        finally:
            ws.close()


def in_parallel(count: int, run: Callable[[], None]) -> None:
    """``run`` in ``count`` threads at once; re-raises the first failure."""
    with ThreadPoolExecutor(count) as pool:
        for future in [pool.submit(run) for _ in range(count)]:
            future.result()
