"""Fixtures of the hostile-client suite: one live instance with default limits for the whole
suite (its canary keeps running between attacks), and a small-capacity one for the
admission attacks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hostile.support import Instance

SMALL_CAP = 20
SMALL_POOL = 4000  # ZOU_EVENTS_WORKER_CONNECTIONS: silent connections crowd out at half


@pytest.fixture(scope="session")
def instance() -> Iterator[Instance]:
    """A default instance: nothing set but its Redis (and no Zou API, which rooms would ask)."""
    live = Instance()
    yield live
    live.close()


@pytest.fixture(scope="session")
def small_cap() -> Iterator[Instance]:
    """An instance of ZOU_EVENTS_MAX_SOCKETS sockets, its canary being one of them; sessions
    that join no namespace are closed after 5 s, well within an attack's window."""
    live = Instance({"ZOU_EVENTS_MAX_SOCKETS": str(SMALL_CAP), "ZOU_EVENTS_CONNECT_TIMEOUT": "5"})
    yield live
    live.close()


@pytest.fixture(scope="session")
def small_pool() -> Iterator[Instance]:
    """An instance of ZOU_EVENTS_WORKER_CONNECTIONS connections, so that a flood of silent
    connections reaches the crowding bound (half of them) within an attack's window."""
    live = Instance(
        {"ZOU_EVENTS_WORKER_CONNECTIONS": str(SMALL_POOL), "ZOU_EVENTS_MAX_SOCKETS": "3000"}
    )
    yield live
    live.close()
