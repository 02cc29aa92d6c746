"""HTTP routes and the Engine.IO handshake (issue 2)."""

from __future__ import annotations

import gzip
import json

import urllib3

from tests.support.js_client import JsClient
from tests.support.server import ServerHandle, wait_until


def test_handshake_matches_zou(server: ServerHandle) -> None:
    response = urllib3.request("GET", f"{server.url}/socket.io/?EIO=4&transport=polling")
    assert response.status == 200
    assert "Set-Cookie" not in response.headers
    body = response.data.decode()
    handshake = json.loads(body[1:])
    assert body[0] == "0"
    assert {k: handshake[k] for k in ("upgrades", "pingInterval", "pingTimeout", "maxPayload")} == {
        "upgrades": ["websocket"],
        "pingInterval": 25000,
        "pingTimeout": 20000,
        "maxPayload": 1000000,
    }


def test_engineio_3_is_refused(server: ServerHandle) -> None:
    response = urllib3.request("GET", f"{server.url}/socket.io/?EIO=3&transport=polling")
    assert response.status == 400


def test_foreign_origin_is_refused_same_origin_accepted(server: ServerHandle) -> None:
    base = f"{server.url}/socket.io/?EIO=4&transport=polling"
    foreign = urllib3.request("GET", base, headers={"Origin": "https://evil.example"})
    assert foreign.status == 400
    same = urllib3.request(
        "GET", base, headers={"Origin": "https://kitsu.example", "Host": "kitsu.example"}
    )
    assert same.status == 200


def test_root_keeps_zou_healthchecks_working(server: ServerHandle) -> None:
    response = urllib3.request("GET", server.url + "/")
    assert response.status == 200
    assert b'"api":"Zou"' in response.data
    assert response.json()["name"] == "Zou Event stream"


def test_stats_counts_events_sockets_exactly(server: ServerHandle, token: str) -> None:
    before = server.get_json("/stats")[1]
    with (
        JsClient(server.url, auth={"token": token}) as member,
        JsClient(server.url, namespace="/") as anonymous,
        JsClient(server.url, auth={"token": "garbage"}) as refused,
    ):
        member.wait_type("connect")
        anonymous.wait_type("connect")
        refused.wait_type("connect_error")
        status, stats = server.get_json("/stats")
        assert status == 200
        assert stats["nb_connections"] == before["nb_connections"] + 1
        assert stats["namespaces"]["/"] == before["namespaces"]["/"] + 1
    wait_until(
        lambda: server.get_json("/stats")[1]["nb_connections"] == before["nb_connections"],
        10,
        "nb_connections back to its value before",
    )


def test_health_ready_and_unknown_routes(server: ServerHandle) -> None:
    assert server.get_json("/health") == (200, {"status": "ok"})
    assert server.get_json("/ready") == (200, {"ready": True})
    assert server.get_json("/nope")[0] == 404
    assert urllib3.request("POST", server.url + "/stats").status == 405


def test_metrics_text_and_gzip(server: ServerHandle) -> None:
    plain = urllib3.request("GET", server.url + "/metrics")
    assert plain.status == 200
    assert b"zou_events_connected_sockets" in plain.data
    zipped = urllib3.request(
        "GET", server.url + "/metrics", headers={"Accept-Encoding": "gzip"}, decode_content=False
    )
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert b"zou_events_build_info" in gzip.decompress(zipped.data)
