"""Browsers behind a proxy that drops the port (Zou's nginx block: `Host $host`), with Kitsu's
socket.io-client sending the headers a browser and that proxy send (issue 11).

Node's polling transport always writes its own ``Host`` (with the port), so the polling case
carries the proxy's host in ``X-Forwarded-Host``; the WebSocket transport sends ``Host`` as
given, which is exactly what nginx forwards.
"""

from __future__ import annotations

import json

import pytest

from tests.support.js_client import JsClient
from tests.support.server import ServerHandle, wait_until
from tests.support.tokens import make_token

KITSU = "http://kitsu.test:8080"  # Kitsu served on a non-default port


def refused(server: ServerHandle) -> float:
    prefix = 'zou_events_connections_refused_total{reason="origin"} '
    [line] = [line for line in server.get_text("/metrics").splitlines() if line.startswith(prefix)]
    return float(line.split()[-1])


def refusal_log_lines(server: ServerHandle, origin: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("origin") == origin]


@pytest.mark.parametrize(
    ("transports", "proxy_headers"),
    [
        (["websocket"], {"Host": "kitsu.test"}),  # what nginx's `Host $host` forwards
        (["polling", "websocket"], {"X-Forwarded-Host": "kitsu.test"}),
    ],
)
def test_kitsu_on_another_port_behind_a_proxy_that_drops_it_connects(
    server: ServerHandle, transports: list[str], proxy_headers: dict[str, str]
) -> None:
    headers = {"Origin": KITSU, **proxy_headers}
    token = make_token(server.secret_key)
    with JsClient(server.url, auth={"token": token}, headers=headers, transports=transports) as js:
        js.wait_type("connect")
        if transports[0] == "polling":
            assert js.wait_type("upgrade")["transport"] == "websocket"


def test_a_foreign_origin_is_refused_counted_and_logged_once(server: ServerHandle) -> None:
    foreign = "http://evil.test:8080"
    before = refused(server)
    token = make_token(server.secret_key)
    for transports in (["websocket"], ["polling"]):
        headers = {"Origin": foreign, "Host": "kitsu.test", "X-Forwarded-Host": "kitsu.test"}
        with JsClient(
            server.url, auth={"token": token}, headers=headers, transports=transports
        ) as js:
            js.wait_type("connect_error")
    assert refused(server) == before + 2
    wait_until(lambda: bool(refusal_log_lines(server, foreign)), 5, "the refusal's log line")
    [line] = refusal_log_lines(server, foreign)
    assert line["admit_with"] == f"ZOU_EVENTS_CORS_ALLOWED_ORIGINS={foreign}"
