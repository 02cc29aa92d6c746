"""Fixtures of the preview-room tests (test_rooms_e2e.py, test_room_strangers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.rooms_support import Browsers, Cluster, start_cluster


@pytest.fixture(scope="module")
def pair() -> Iterator[Cluster]:
    """Two instances sharing one Redis, for the tests that kill nothing."""
    with start_cluster(2) as cluster:
        yield cluster


@pytest.fixture
def browsers() -> Iterator[Browsers]:
    browsers = Browsers()
    yield browsers
    browsers.close()
