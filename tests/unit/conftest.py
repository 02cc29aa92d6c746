"""Fixtures of the unit tests of Zou's API client and its users."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.clock import Clock
from tests.support.scripted_zou import AUTHENTICATED, ScriptedZou, account
from zou_events import zou_api


@pytest.fixture
def zou_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """zou_api's clock only (its cache's ages, its circuit breaker's cool-down)."""
    clock = Clock()
    monkeypatch.setattr(zou_api, "time", clock)
    return clock


@pytest.fixture
def zou(zou_clock: Clock) -> Iterator[ScriptedZou]:
    """A scripted Zou API that knows every token's person, active."""
    with ScriptedZou({AUTHENTICATED: (200, account())}) as scripted:
        yield scripted
