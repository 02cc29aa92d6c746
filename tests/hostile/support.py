"""The harness of the hostile-client suite (issue 10).

An :class:`Instance` is one live zou-events server on its own private Redis, with a canary:
Kitsu's socket.io-client in a Node process (canary.mjs) receiving an event published at
10/s like Zou publishes (publisher.py, another process), each stamped with its publish time.
:func:`attack_window` runs an attack for at least ``seconds`` while it measures the canary's
publish-to-receive latency, times ``/health`` every 0.5 s and samples the worker's RSS, then
asserts the acceptance bounds of issue 10 and that the attack was cut or refused with the
expected counted reason (the delta of a /metrics series).
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.resilience.support import cpu_seconds, rss_bytes, worker_pid
from tests.support.node_script import NodeScript
from tests.support.raw_websocket import EventsSocket, RawWebSocket
from tests.support.redis_server import RedisServer
from tests.support.server import (
    ROOT,
    ServerHandle,
    http_get,
    isolated_env,
    start_server,
    wait_until,
)
from tests.support.tokens import make_token

HERE = Path(__file__).resolve().parent
CANARY_EVENT = "hostile:canary"
CANARY_RATE = 10.0  # events per second (issue 10)
P99_BOUND = 0.25  # seconds, publish to receive
HEALTH_BOUND = 1.0  # seconds
HEALTH_EVERY = 0.5  # seconds between /health probes
RSS_BOUND = 64 * 2**20  # bytes of growth per attacking socket class
ATTACK_SECONDS = 10.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# --- metrics --------------------------------------------------------------------------


def scrape(server: ServerHandle) -> Samples:
    """Every sample of /metrics, keyed by (sample name, label set)."""
    samples: Samples = {}
    for family in text_string_to_metric_families(server.get_text("/metrics")):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str | tuple[str, ...]) -> float:
    """The sum of the samples of ``name`` whose labels have the values of ``labels`` (a
    tuple: any of its values)."""

    def matches(have: frozenset[tuple[str, str]]) -> bool:
        values = dict(have)
        return all(
            values.get(key) in (wanted if isinstance(wanted, tuple) else (wanted,))
            for key, wanted in labels.items()
        )

    return sum(
        value for (sample, have), value in samples.items() if sample == name and matches(have)
    )


def moved(before: Samples, after: Samples) -> dict[str, float]:
    """The counters (``*_total``) that moved between two scrapes, for the report."""
    return {
        f"{name}{dict(sorted(labels))}": after[key] - before.get(key, 0.0)
        for key in after
        for name, labels in [key]
        if name.endswith("_total") and after[key] != before.get(key, 0.0) and name not in QUIET
    }


def lag_over(samples: Samples, seconds: float) -> float:
    """How many of the worker's event-loop lag samples exceeded ``seconds``: a stall of
    the worker itself, as opposed to a machine too loaded to run the canary in time."""
    name = "zou_events_event_loop_lag_seconds"
    under = total(samples, name + "_bucket", le=str(seconds))
    return total(samples, name + "_count") - under


QUIET = {"zou_events_deliveries_total", "zou_events_redis_messages_total"}  # the canary's


@dataclass(frozen=True)
class Counted:
    """The counter that proves the attacker was cut or refused: ``name`` (a sample name, e.g.
    ``zou_events_disconnects_total``) summed over the label sets that include ``labels``."""

    name: str
    labels: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    at_least: float = 1

    def __str__(self) -> str:
        labels = ",".join(
            f'{key}="{"|".join(value) if isinstance(value, tuple) else value}"'
            for key, value in self.labels.items()
        )
        return f"{self.name}{{{labels}}}"


# --- the canary -----------------------------------------------------------------------


class Publisher:
    """publisher.py as a child process; ``last`` is the index of the latest event sent."""

    def __init__(self, redis_port: int, channel: str) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.hostile.publisher",
                str(redis_port),
                channel,
                CANARY_EVENT,
                str(CANARY_RATE),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.last = -1
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.last = int(line)

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class Canary(NodeScript):
    """canary.mjs: one Kitsu socket receiving the publisher's events."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(HERE / "canary.mjs", {"url": url, "token": token, "event": CANARY_EVENT})
        self.sid: str | None = None

    def stats(self) -> dict[str, Any]:
        stats = self._ask("stats", "stats")
        self.sid = stats["sid"] or self.sid
        return stats

    def reset(self) -> None:
        self._ask("reset", "reset")

    def wait_upgraded(self, timeout: float = 20) -> None:
        wait_until(
            lambda: (lambda s: s["connected"] and s["transport"] == "websocket")(self.stats()),
            timeout,
            "the canary to connect and upgrade to WebSocket",
            step=0.2,
        )


# --- the instance ---------------------------------------------------------------------


class Instance:
    """One live zou-events server on a private Redis, its worker pid, and its canary."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.redis = RedisServer()
        self.redis.start()
        # kept across restarts: the publisher's channel stays the server's
        self.env = {**self.redis.env, **isolated_env(), **(env or {})}
        self.restarts = 0
        try:
            self.server = start_server(self.env)
        except BaseException:
            self.redis.remove()
            raise
        self.worker = worker_pid(self.server)
        self.publisher = Publisher(self.redis.port, self.server.channel)
        self.canary = Canary(self.server.url, self.token())
        try:
            self.canary.wait_upgraded()
        except BaseException:
            self.close()
            raise

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def token(self, **claims: Any) -> str:
        return make_token(self.server.secret_key, **claims)

    def cookie(self, **claims: Any) -> str:
        return f"access_token_cookie={self.token(**claims)}"

    def publish(self, message: bytes | str) -> None:
        """A raw message on the channel zou-events subscribes to (as Zou's API would)."""
        self.redis.client(db=2).publish(self.server.channel, message)

    def worker_alive(self) -> bool:
        if self.server.process.poll() is not None:
            return False
        try:
            return worker_pid(self.server) == self.worker
        except AssertionError:
            return False

    def ensure_serving(self) -> None:
        """Start over after an attack that took the worker down, so that the next attack is
        measured on its own (the failed test has already reported the restart)."""
        if self.worker_alive() and self.canary.process.poll() is None:
            return
        self.restarts += 1
        self.canary.close()
        self.server.stop()
        self.server = start_server(self.env)
        self.worker = worker_pid(self.server)
        self.canary = Canary(self.server.url, self.token())
        self.canary.wait_upgraded()

    def close(self) -> None:
        self.canary.close()
        self.publisher.close()
        self.server.stop()
        self.redis.remove()


# --- measurements ---------------------------------------------------------------------


def health_probe(server: ServerHandle) -> float:
    """Seconds /health took to answer 200 (inf when it did not within 3 s)."""
    started = time.monotonic()
    response = http_get(server.url + "/health", timeout=3.0)
    if response is None or response.status != 200:
        return math.inf
    return time.monotonic() - started


class Sampler:
    """Runs ``probe`` every ``interval`` s in a thread until stopped; keeps the results."""

    def __init__(self, probe: Any, interval: float) -> None:
        self.results: list[Any] = []
        self._probe = probe
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            with suppress(OSError, AssertionError):  # the worker is gone: nothing to sample
                self.results.append(self._probe())
            if self._stop.wait(self._interval):
                return

    def stop(self) -> list[Any]:
        self._stop.set()
        self._thread.join(10)
        return self.results


def p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)] if ordered else math.inf


# --- the window -----------------------------------------------------------------------


class Window:
    """What an attack sees inside :func:`attack_window`."""

    def __init__(self, instance: Instance, name: str, seconds: float) -> None:
        self.instance = instance
        self.name = name
        self.seconds = seconds
        self.started = time.monotonic()
        self.deadline = self.started + seconds
        self.notes: dict[str, Any] = {}
        self.failures: list[str] = []

    def check(self, ok: bool, failure: str) -> None:
        """A property of the attack itself, judged with the window's bounds at its end (so
        that one failed test reports every verdict)."""
        if not ok:
            self.failures.append(failure)

    def running(self, limit: int = 10_000_000) -> Iterator[int]:
        """Iterations until the window's time is up (bounded by ``limit`` too)."""
        for count in range(limit):
            if time.monotonic() >= self.deadline:
                return
            yield count

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


@contextmanager
def attack_window(
    instance: Instance,
    name: str,
    expect: Sequence[Counted] = (),
    seconds: float = ATTACK_SECONDS,
) -> Iterator[Window]:
    """Run the ``with`` block (the attack, for at least ``seconds``) under the canary,
    /health and RSS measurements; then assert issue 10's bounds and every ``expect``ed
    counter's growth. Every measurement is printed (``pytest -s``) and, when the
    HOSTILE_REPORT environment variable names a file, appended to it as a JSON line."""
    instance.ensure_serving()
    server, canary = instance.server, instance.canary
    before = scrape(server)
    canary.reset()
    first = instance.publisher.last + 1
    baseline = rss_bytes(instance.worker)
    cpu_before = cpu_seconds(instance.worker)
    attacker_before = resource.getrusage(resource.RUSAGE_SELF)
    rss = Sampler(lambda: rss_bytes(instance.worker), 0.1)
    health = Sampler(lambda: health_probe(server), HEALTH_EVERY)
    window = Window(instance, name, seconds)
    try:
        yield window
    finally:
        elapsed = time.monotonic() - window.started
        last = instance.publisher.last
        health_times = health.stop()
        peaks = rss.stop()
        attacker = resource.getrusage(resource.RUSAGE_SELF)  # this process: the attack
        used = attacker.ru_utime + attacker.ru_stime
        used -= attacker_before.ru_utime + attacker_before.ru_stime
        window.notes["attacker_cpu"] = round(used / elapsed, 2)
        with suppress(OSError):
            window.notes["worker_cpu"] = round(
                (cpu_seconds(instance.worker) - cpu_before) / elapsed, 2
            )
    failures = list(dict.fromkeys(window.failures)) + _judge(
        instance, window, elapsed, first, last, health_times, baseline, peaks
    )
    after = scrape(server) if instance.worker_alive() else {}
    window.notes["moved"] = moved(before, after)
    window.notes["loop_lag_over_100ms"] = lag_over(after, 0.1) - lag_over(before, 0.1)
    counted = {
        str(c): total(after, c.name, **c.labels) - total(before, c.name, **c.labels) for c in expect
    }
    window.notes["counted"] = counted
    failures += [
        f"{c} grew by {counted[str(c)]:g}, expected ≥ {c.at_least:g}"
        for c in expect
        if counted[str(c)] < c.at_least
    ]
    _report(window)
    assert not failures, f"{name}: " + "; ".join(failures) + f"\n{json.dumps(window.notes)}"


def _judge(
    instance: Instance,
    window: Window,
    elapsed: float,
    first: int,
    last: int,
    health_times: list[float],
    baseline: int,
    peaks: list[int],
) -> list[str]:
    failures: list[str] = []
    if elapsed < window.seconds:
        failures.append(f"the attack ran {elapsed:.1f} s, less than {window.seconds:g} s")
    # the canary: every event published during the window, lost ones counting as infinite
    published = set(range(first, last + 1))
    stats: dict[str, Any] = {}

    def all_arrived() -> bool:
        stats.update(instance.canary.stats())
        return published <= set(stats["i"])

    with suppress(AssertionError):  # what never arrives counts as lost
        wait_until(all_arrived, 2 * P99_BOUND + 1, "the canary's last events", step=0.1)
    got = {i: ms / 1000 for i, ms in zip(stats.get("i", []), stats.get("ms", []), strict=True)}
    latencies = [got.get(i, math.inf) for i in sorted(published)]
    worst = p99(latencies)
    lost = sum(1 for i in published if i not in got)
    slowest = sorted(((got.get(i, math.inf), i) for i in published), reverse=True)[:3]
    window.notes["canary_slowest"] = [  # (seconds into the window, ms)
        (round((i - first) / CANARY_RATE, 1), round(s * 1000) if s != math.inf else None)
        for s, i in slowest
    ]
    health_worst = max(health_times, default=math.inf)
    growth = max(peaks, default=baseline) - baseline
    window.notes.update(
        attack=window.name,
        seconds=round(elapsed, 1),
        canary_events=len(published),
        canary_lost=lost,
        canary_p99_ms=round(worst * 1000, 1) if worst != math.inf else None,
        canary_disconnects=stats.get("disconnects", []),
        health_probes=len(health_times),
        health_worst_s=round(health_worst, 3) if health_worst != math.inf else None,
        rss_growth_mb=round(growth / 2**20, 1),
        load=os.getloadavg()[0],
    )
    if len(published) < CANARY_RATE * window.seconds * 0.8:
        failures.append(f"only {len(published)} canary events were published")
    if worst >= P99_BOUND:
        failures.append(f"canary p99 {worst * 1000:.0f} ms (lost {lost}/{len(published)})")
    if stats.get("disconnects"):
        failures.append(f"the canary was disconnected: {stats['disconnects']}")
    if len(health_times) < elapsed / HEALTH_EVERY * 0.5 or health_worst >= HEALTH_BOUND:
        failures.append(f"/health: {len(health_times)} probes, worst {health_worst:.2f} s")
    if not instance.worker_alive():
        failures.append("the worker was restarted or the server died")
    if growth >= RSS_BOUND:
        failures.append(f"worker RSS grew by {growth / 2**20:.0f} MB")
    return failures


def _report(window: Window) -> None:
    line = json.dumps(window.notes)
    print(f"\n[hostile] {line}")
    report = os.environ.get("HOSTILE_REPORT")
    if report:
        with open(report, "a") as file:
            file.write(line + "\n")


# --- raw clients ----------------------------------------------------------------------


class Receiver(EventsSocket):
    def __init__(self, instance: Instance) -> None:
        super().__init__(instance.port, instance.cookie())


def open_websocket(instance: Instance, cookie: str | None, query: str = "") -> RawWebSocket:
    """A raw WebSocket past the Engine.IO open packet; with ``cookie``, connected to
    /events as well."""
    ws = RawWebSocket(instance.port, "EIO=4&transport=websocket" + query, cookie)
    assert ws.status == 101, ws.status
    assert ws.read_text().startswith("0{")
    if cookie is not None:
        ws.send_text("40/events,")
        assert ws.read_text().startswith("40/events,")
    return ws
