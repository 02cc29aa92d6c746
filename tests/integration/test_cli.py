"""The zou-events command line: check, publish, stats (issue 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.js_client import JsClient
from tests.support.redis_server import RedisServer, loopback_env
from tests.support.round_robin_proxy import RoundRobinProxy
from tests.support.server import ServerHandle, free_port


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zou_events.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_check_reports_each_dependency_on_one_line(server: ServerHandle) -> None:
    ok = run_cli("check", env=server.env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert [line.split(":")[0] for line in ok.stdout.splitlines()] == [
        "configuration",
        "redis",
        "redis pub/sub",
        "zou api",
    ]
    assert "redis pub/sub: ok (a published message came back" in ok.stdout
    down = run_cli(
        "check",
        env={
            **server.env,
            **loopback_env(free_port()),
            "ZOU_EVENTS_ZOU_API_URL": f"http://127.0.0.1:{free_port()}",
        },
    )
    assert down.returncode == 1
    # Each failure names its exact error type.
    assert "redis: FAILED (ConnectionError: " in down.stdout
    assert "zou api: FAILED (NewConnectionError: " in down.stdout
    assert "redis pub/sub: not checked" in down.stdout
    assert "secret key: not checked" in down.stdout


def test_check_fails_when_published_messages_do_not_come_back(server: ServerHandle) -> None:
    """KV_HOST on a load balancer over two Redis servers: the subscription lands on one,
    publications on the other. Redis answers PING and accepts the subscription, and yet
    nothing Zou publishes would reach the instance."""
    first, second = RedisServer(), RedisServer()
    try:
        first.start()
        second.start()
        with RoundRobinProxy([first.port, second.port]) as proxy:
            result = run_cli("check", env={**server.env, **loopback_env(proxy.port)})
    finally:
        first.remove()
        second.remove()
    assert result.returncode == 1, result.stdout
    assert "redis: ok" in result.stdout
    assert "redis pub/sub: FAILED (PubSubNotDelivered: " in result.stdout


def test_publish_reaches_clients_like_zous_api(server: ServerHandle, token: str) -> None:
    with JsClient(server.url, auth={"token": token}) as client:
        client.wait_type("connect")
        result = run_cli("publish", "project:update", '{"project_id": "p1"}', env=server.env)
        assert result.returncode == 0, result.stderr
        assert client.wait_event("project:update")["args"] == [{"project_id": "p1"}]


def test_publish_refuses_invalid_json(server: ServerHandle) -> None:
    result = run_cli("publish", "main:test", "{nope", env=server.env)
    assert result.returncode == 2 and "invalid" in result.stderr


def test_stats_prints_the_servers_stats(server: ServerHandle) -> None:
    result = run_cli("stats", env=server.env)
    assert result.returncode == 0, result.stderr
    assert "nb_connections" in json.loads(result.stdout)
