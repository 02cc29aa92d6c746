"""A private real Redis on a free loopback port, so that faults injected into it (restart,
DEBUG SLEEP, CLIENT PAUSE) disturb no other test; the ``private_redis`` fixture (a pytest
plugin, loaded by tests/conftest.py) gives each test one."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.server import free_port, wait_until


def loopback_env(port: int) -> dict[str, str]:
    """Server variables pointing at a password-less Redis (or proxy) on a loopback port,
    whatever the suite's Redis (suite_redis.py) has."""
    return {"KV_HOST": "127.0.0.1", "KV_PORT": str(port), "KV_PASSWORD": ""}


class RedisServer:
    def __init__(self, *extra_args: str) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="zou-events-redis-"))
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return loopback_env(self.port)

    def client(self, db: int = 0, **options: object) -> redis.Redis:
        return redis.Redis(port=self.port, db=db, **options)  # type: ignore[arg-type]

    def start(self) -> None:
        """Start, loading the dump of a previous life if ``save_and_stop`` left one."""
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
        )
        probe = self.client(socket_timeout=1)
        wait_until(lambda: self._answers(probe), 10, "private redis")

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    def save_and_stop(self) -> None:
        """Stop as a production Redis with persistence does: the data survives a restart."""
        self.client().save()
        self.stop()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis of the test's own, DEBUG enabled for the fault injections."""
    server = RedisServer("--enable-debug-command", "local")
    server.start()
    yield server
    server.remove()
