"""Start a real zou-events server (gunicorn, one gevent worker) for a test."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import urllib3

from tests.support import suite_redis

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], T], timeout: float, what: str, step: float = 0.05) -> T:
    """Poll ``condition`` until it holds: its value; fail the test with ``what`` after
    ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def isolated_env() -> dict[str, str]:
    """A Redis channel and key prefix of a server's own: no other test, nor a benchmark on
    Zou's channel, reaches its clients or its keys."""
    name = f"zou-events-test-{secrets.token_hex(6)}"
    return {"ZOU_EVENTS_CHANNEL": name, "ZOU_EVENTS_KEY_PREFIX": f"{name}:"}


def http_get(url: str, timeout: float = 2.0) -> urllib3.BaseHTTPResponse | None:
    try:
        return urllib3.request("GET", url, timeout=timeout, retries=False)
    except urllib3.exceptions.HTTPError:
        return None


@dataclass
class ServerHandle:
    port: int
    secret_key: str
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str] = field(repr=False)

    @property
    def channel(self) -> str:
        """The Redis channel it subscribes to: where a test publishes its events."""
        return self.env["ZOU_EVENTS_CHANNEL"]

    @property
    def key_prefix(self) -> str:
        return self.env["ZOU_EVENTS_KEY_PREFIX"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get_json(self, path: str) -> tuple[int, object]:
        response = http_get(self.url + path)
        assert response is not None, f"{path} did not answer"
        return response.status, response.json()

    def get_text(self, path: str) -> str:
        response = http_get(self.url + path)
        assert response is not None, f"{path} did not answer"
        return response.data.decode()

    def is_ready(self) -> bool:
        response = http_get(self.url + "/ready", timeout=1.0)
        return response is not None and response.status == 200

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        os.killpg(self.process.pid, signum)

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait(5)
        if self.process.returncode == 0:  # keep the log of a server that did not stop cleanly
            self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def start_server(
    env: dict[str, str] | None = None,
    wait_ready: bool = True,
    timeout: float = 20.0,
    port: int | None = None,
) -> ServerHandle:
    """``zou-events serve`` on a free loopback port against the suite's Redis.

    Defaults: a random SECRET_KEY, a Redis channel and key prefix of its own (isolated_env),
    the Zou API check disabled, JSON logs to a file.
    """
    port = port or free_port()
    server_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ZOU_EVENTS_", "KV_", "EVENT_STREAM_")) and key != "SECRET_KEY"
    }
    server_env.update(
        {
            "SECRET_KEY": secrets.token_hex(32),
            "EVENT_STREAM_HOST": "127.0.0.1",
            "EVENT_STREAM_PORT": str(port),
            **suite_redis.server_env(),
            **isolated_env(),
            "ZOU_EVENTS_ZOU_API_URL": "",
            "ZOU_EVENTS_LOG_LEVEL": "info",
        }
    )
    server_env.update(env or {})
    with tempfile.NamedTemporaryFile(prefix="zou-events-", suffix=".log", delete=False) as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "zou_events.cli", "serve"],
            cwd=ROOT,
            env=server_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    handle = ServerHandle(port, server_env["SECRET_KEY"], process, Path(log_file.name), server_env)
    try:
        probe = (
            handle.is_ready
            if wait_ready
            else (lambda: http_get(handle.url + "/health") is not None)
        )
        wait_until(
            lambda: process.poll() is not None or probe(), timeout, f"zou-events on port {port}"
        )
        assert process.poll() is None, f"server exited:\n{handle.logs()}"
    except BaseException:
        handle.stop()
        raise
    return handle
