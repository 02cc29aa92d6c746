"""Helpers of the resilience tests: the Node load client, worker memory, metrics, probes."""

from __future__ import annotations

import json
import os
import resource
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from tests.support.node_script import NodeScript
from tests.support.server import ServerHandle, http_get
from zou_events.messages import zou_emit

HERE = Path(__file__).resolve().parent
Stats = dict[str, Any]


def raise_fd_limit(wanted: int) -> None:
    """Raise this process's open-file limit; the servers and Node clients it starts inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    assert target >= wanted, f"RLIMIT_NOFILE hard limit {hard} is below the {wanted} needed"


class LoadClient(NodeScript):
    """Handle on load_client.mjs: ``count`` sockets, aggregated stats on demand."""

    close_wait = 10.0

    def __init__(
        self,
        bases: list[str],
        tokens: list[str],
        count: int,
        transport: str = "upgrade",
        reconnect: bool = True,
        ramp_ms: float = 0,
    ) -> None:
        config = {
            "bases": bases,
            "tokens": tokens,
            "count": count,
            "transport": transport,
            "reconnect": reconnect,
            "rampMs": ramp_ms,
        }
        super().__init__(HERE / "load_client.mjs", config)

    def stats(self, timeout: float = 10.0) -> Stats:
        return self._ask("stats", "stats", timeout)

    def wait_stats(self, condition: Callable[[Stats], bool], timeout: float, what: str) -> Stats:
        """Poll the stats until ``condition`` holds; fail with the last stats after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if condition(stats):
                return stats
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}: {stats}")
            time.sleep(0.2)

    def wait_connected(self, count: int, timeout: float) -> Stats:
        return self.wait_stats(lambda s: s["connected"] == count, timeout, f"{count} connected")

    def drop(self) -> None:
        """Abort every connection from the client side: the sockets reconnect at once."""
        self._command("drop")

    def reset(self) -> None:
        self._command("reset")

    def __enter__(self) -> LoadClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def metric(server: ServerHandle, series: str) -> float:
    """The value of one series of /metrics, e.g. ``zou_events_ready`` or ``name{label="x"}``."""
    for line in server.get_text("/metrics").splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{series} not exported")


def worker_pid(server: ServerHandle) -> int:
    """The gunicorn worker: the only child of the master (``server.process``)."""
    master = server.process.pid
    children = [
        int(pid)
        for task in Path(f"/proc/{master}/task").iterdir()
        for pid in (task / "children").read_text().split()
    ]
    assert len(children) == 1, f"expected one gunicorn worker under {master}, got {children}"
    return children[0]


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PeakRss:
    """Samples a process's RSS in a thread while a ``with`` block runs; ``peak`` in bytes."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = rss_bytes(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def health_seconds(server: ServerHandle, timeout: float = 5.0) -> float:
    """How long /health takes to answer (``timeout`` when it does not)."""
    started = time.monotonic()
    response = http_get(server.url + "/health", timeout=timeout)
    assert response is not None and response.status == 200, "/health did not answer"
    return time.monotonic() - started


def emit_message(event: str, payload: Any, room: str | None = None) -> bytes:
    """A message exactly as Zou's API publishes it."""
    return json.dumps({**zou_emit(event, payload, "zou-api"), "room": room}).encode()


def publish_sequence(
    client: redis.Redis, channel: str, event: str, count: int, start: int = 0
) -> None:
    """Events numbered ``i`` = start..start+count-1, stamped ``t`` with the publish time."""
    pipe = client.pipeline(transaction=False)
    for index in range(start, start + count):
        pipe.publish(channel, emit_message(event, {"i": index, "t": time.time()}))
        if index % 100 == 99:
            pipe.execute()
    pipe.execute()


def publish_paced(
    client: redis.Redis,
    channel: str,
    event: str,
    count: int,
    per_second: float,
    padding: int = 0,
) -> None:
    """Like ``publish_sequence``, spread evenly at ``per_second`` (batches of 10), each
    payload carrying ``padding`` more bytes."""
    pad = "x" * padding
    started = time.monotonic()
    for first in range(0, count, 10):
        pause = started + first / per_second - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # pacing the load, not synchronisation
        pipe = client.pipeline(transaction=False)
        for index in range(first, min(first + 10, count)):
            payload = {"i": index, "t": time.time(), "pad": pad}
            pipe.publish(channel, emit_message(event, payload))
        pipe.execute()


@contextmanager
def sampling(probe: Callable[[], Any], interval: float = 0.05) -> Iterator[list[Any]]:
    """Call ``probe`` every ``interval`` in a thread while the block runs; yields the results."""
    results: list[Any] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            results.append(probe())
            stop.wait(interval)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield results
    finally:
        stop.set()
        thread.join(10)


def ready_status(server: ServerHandle) -> tuple[float, int | None, Any]:
    """(time, status, body) of /ready; status None when nothing answered within 1 s."""
    response = http_get(server.url + "/ready", timeout=1.0)
    if response is None:
        return time.monotonic(), None, None
    return time.monotonic(), response.status, response.json()
