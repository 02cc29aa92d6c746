"""zou-events configured like a real deployment beside the real Zou API: on Zou's own
channel, where Zou's API publishes (the one exception to a channel per test server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import ZouPublisher
from tests.support.server import ServerHandle, start_server
from tests.support.zou_stack import ZOU_CHANNEL, ZouStack


@pytest.fixture(scope="module")
def events(zou_stack: ZouStack) -> Iterator[ServerHandle]:
    """Same SECRET_KEY, same Redis, Zou's API URL: what a studio's environment file gives."""
    env = {
        "SECRET_KEY": zou_stack.secret_key,
        "ZOU_EVENTS_ZOU_API_URL": zou_stack.url,
        "ZOU_EVENTS_CHANNEL": ZOU_CHANNEL,
    }
    with start_server(env) as handle:
        yield handle


@pytest.fixture(scope="module")
def zou_publisher(events: ServerHandle) -> ZouPublisher:
    """Publishes like Zou's API, on the channel of the module's ``events`` server."""
    return ZouPublisher(events.channel)
