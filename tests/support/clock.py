"""A clock the test moves, in place of the ``time`` module a module under test reads
(``monkeypatch.setattr(module, "time", clock)``: that module's view only, not the process's)."""

from __future__ import annotations


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
