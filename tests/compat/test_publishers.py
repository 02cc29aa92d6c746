"""Messages published by every JSON-era python-socketio Zou has used are delivered (issue 4).

Each version publishes from its own virtualenv (scripts/setup.d/55-publishers.sh) with the
write-only RedisManager, exactly as Zou's API does.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import websocket

from tests.support import suite_redis
from tests.support.server import ServerHandle, start_server
from tests.support.tokens import make_token

CACHE = Path(
    os.environ.get("ZOU_EVENTS_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zou-events"
)
PUBLISH = """
import sys
import socketio
manager = socketio.RedisManager(sys.argv[2], channel=sys.argv[3], write_only=True)
manager.emit("project:update", {"project_id": "p", "n": [1, 2.5, None]}, namespace="/events")
if sys.argv[1] == "binary":
    manager.emit("file:chunk", {"name": "a", "blob": b"\\x00\\x01"}, namespace="/events")
"""


@pytest.fixture(scope="module")
def server() -> ServerHandle:
    with start_server() as handle:
        yield handle


@pytest.mark.parametrize(
    ("version", "binary"),
    [("5.14.1", False), ("5.15.0", True), ("5.16.2", True)],  # binary came with 5.14.3
)
def test_messages_from_each_publisher_version(
    server: ServerHandle, version: str, binary: bool
) -> None:
    python = CACHE / f"publisher-socketio-{version}" / "bin" / "python"
    if not python.exists():
        subprocess.run(["bash", "scripts/setup.d/55-publishers.sh"], check=True, timeout=600)
    token = make_token(server.secret_key)
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket",
        # a Bearer header, as gazu: frames without connection state recovery's offsets
        header=[f"Authorization: Bearer {token}"],
        timeout=10,
    )
    try:
        ws.recv()
        ws.send("40/events,")
        ws.recv()
        published = subprocess.run(
            [
                str(python),
                "-c",
                PUBLISH,
                "binary" if binary else "text",
                suite_redis.url(suite_redis.EVENTS_DB),
                server.channel,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert published.returncode == 0, published.stderr
        assert ws.recv() == '42/events,["project:update",{"project_id":"p","n":[1,2.5,null]}]'
        if binary:
            assert ws.recv() == (
                '451-/events,["file:chunk",{"name":"a","blob":{"_placeholder":true,"num":0}}]'
            )
            assert ws.recv() == b"\x00\x01"
    finally:
        ws.close()
