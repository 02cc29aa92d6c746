"""zou-events configured like a real deployment beside the real Zou API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.server import ServerHandle, start_server
from tests.support.zou_stack import ZouStack


@pytest.fixture(scope="module")
def events(zou_stack: ZouStack) -> Iterator[ServerHandle]:
    """Same SECRET_KEY, same Redis, Zou's API URL: what a studio's environment file gives."""
    env = {"SECRET_KEY": zou_stack.secret_key, "ZOU_EVENTS_ZOU_API_URL": zou_stack.url}
    with start_server(env) as handle:
        yield handle
