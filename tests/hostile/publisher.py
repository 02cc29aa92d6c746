"""The canary's event source, run as its own process (``python -m tests.hostile.publisher
PORT CHANNEL EVENT RATE``) so that the attacks in the test process cannot delay a publish after its
timestamp: publishes like Zou's API (python-socketio's write-only RedisManager) ``EVENT``
with ``{"i": n, "t": wall clock}`` at ``RATE`` per second, and prints each ``n`` once sent.
Stops when its stdin closes."""

from __future__ import annotations

import sys
import threading
import time

import socketio


def main() -> None:
    port, channel, event, rate = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
    manager = socketio.RedisManager(f"redis://127.0.0.1:{port}/2", channel=channel, write_only=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    started = time.monotonic()
    index = 0
    while not stop.wait(max(0.0, started + index / rate - time.monotonic())):
        manager.emit(event, {"i": index, "t": time.time()}, namespace="/events")
        print(index, flush=True)
        index += 1


if __name__ == "__main__":
    main()
