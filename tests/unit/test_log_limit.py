"""The misbehaviour log limiter: N lines per (event, reason) per interval, the rest counted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from structlog.testing import capture_logs

from zou_events.log_limit import LogLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Timers:
    """Callbacks scheduled by the limiter, run when the test moves the clock past them."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.pending: list[tuple[float, Callable[[], None]]] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> None:
        self.pending.append((self.clock.now + delay, callback))

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        due = [cb for at, cb in self.pending if at <= self.clock.now]
        self.pending = [(at, cb) for at, cb in self.pending if at > self.clock.now]
        for callback in due:
            callback()


def make(lines: int = 3, interval: float = 10.0) -> tuple[LogLimiter, Timers]:
    clock = Clock()
    timers = Timers(clock)
    return LogLimiter(lines, interval, clock=clock, schedule=timers), timers


def lines(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == event]


log = structlog.get_logger("test")


def test_a_flood_writes_n_lines_then_one_count_when_the_interval_ends() -> None:
    limiter, timers = make(lines=3)
    with capture_logs() as logs:
        written = [limiter.log(log, "warning", "bad packet", reason="x", n=n) for n in range(1000)]
        assert written == [True] * 3 + [False] * 997
        assert [entry["n"] for entry in lines(logs, "bad packet")] == [0, 1, 2]
        assert lines(logs, "similar log lines suppressed") == []
        timers.advance(10.0)
    (summary,) = lines(logs, "similar log lines suppressed")
    assert summary["suppressed"] == 997
    assert summary["suppressed_event"] == "bad packet" and summary["reason"] == "x"
    assert summary["log_level"] == "warning"
    assert len(timers.pending) == 0  # one timer per flooded interval, not one per line


def test_each_event_and_reason_has_its_own_budget() -> None:
    limiter, _ = make(lines=1)
    with capture_logs() as logs:
        for _ in range(5):
            limiter.log(log, "info", "refused", reason="a")
            limiter.log(log, "info", "refused", reason="b")
            limiter.log(log, "info", "dropped", reason="a")
    assert len(logs) == 3


def test_the_next_interval_writes_again_and_nothing_is_lost_or_counted_twice() -> None:
    limiter, timers = make(lines=2, interval=10.0)
    with capture_logs() as logs:
        for _ in range(5):  # 2 written, 3 suppressed
            limiter.log(log, "info", "refused", reason="a")
        timers.advance(4.0)
        for _ in range(5):  # same interval: 5 more suppressed
            limiter.log(log, "info", "refused", reason="a")
        timers.advance(6.0)  # interval over: one count of 8
        for _ in range(3):  # new interval: 2 written, 1 suppressed
            limiter.log(log, "info", "refused", reason="a")
        timers.advance(10.0)
    assert len(lines(logs, "refused")) == 4
    counts = [entry["suppressed"] for entry in lines(logs, "similar log lines suppressed")]
    assert counts == [8, 1]


def test_a_line_allowed_before_the_timer_ran_reports_the_count_first() -> None:
    """The interval has ended but its timer has not fired yet (a busy loop): the next
    allowed line writes the count first, and the late timer does not write it again."""
    limiter, timers = make(lines=1, interval=10.0)
    with capture_logs() as logs:
        limiter.log(log, "info", "refused", reason="a")
        limiter.log(log, "info", "refused", reason="a")
        timers.clock.now += 11.0  # the timer is due but has not run
        limiter.log(log, "info", "refused", reason="a")
        timers.advance(0.0)
    assert [entry["event"] for entry in logs] == [
        "refused",
        "similar log lines suppressed",
        "refused",
    ]
    assert logs[1]["suppressed"] == 1


def test_quiet_reasons_write_every_line() -> None:
    limiter, timers = make(lines=3, interval=10.0)
    with capture_logs() as logs:
        for _ in range(10):
            limiter.log(log, "info", "refused", reason="a")
            timers.advance(5.0)  # two per interval: under the budget
    assert len(lines(logs, "refused")) == 10
    assert lines(logs, "similar log lines suppressed") == []
