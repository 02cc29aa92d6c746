"""The servers under test: zou-events and Zou's stream (one gunicorn master, one worker
each), and a Node.js socket.io server (one process) as the reference beyond Zou.

Each round starts its server fresh and stops it afterwards: every server subscribes to the
same Redis channel, so one left running would receive (and spend CPU on) the others' events.
"""

from __future__ import annotations

import http.client
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bench import machine, procs
from bench.publisher import CHANNEL
from tests.support.server import free_port, start_server, wait_until
from tests.support.tokens import make_token
from tests.support.zou_stack import CAST, EVENT_STREAM_WORKER, ZOU_VENV, ZouStack

NODE_SERVER = Path(__file__).with_name("node") / "server.mjs"
_DEFAULT_MAX_SOCKETS = 18_000  # ZOU_EVENTS_MAX_SOCKETS's default
ACTIVE_CAST = {name for name, (_role, _in_team, active) in CAST.items() if active}


@dataclass(frozen=True)
class Running:
    port: int
    worker_pid: int
    tokens: list[str]  # access tokens the server accepts, reused round-robin by the clients
    log: Path  # the server's output, for the warnings of a round


def warnings(log: Path, limit: int = 20) -> list[str]:
    """The last warning and error lines of a server's log."""
    lines = log.read_text(errors="replace").splitlines()
    return [line for line in lines if _ALARMING.search(line)][-limit:]


_ALARMING = re.compile(r"warning|error|critical|traceback", re.IGNORECASE)


class ServerUnderTest(Protocol):
    name: str

    def versions(self) -> dict[str, str]:
        """The runtime and packages it runs on, for the record."""
        ...

    def running(self, token_count: int) -> AbstractContextManager[Running]:
        """The server started fresh, with ``token_count`` tokens for its clients."""
        ...

    def close(self) -> None:
        """Release what outlives the rounds (Zou's database and API)."""
        ...


class OurServer:
    """zou-events from this checkout, with its shipped gunicorn configuration."""

    def __init__(
        self, cpus: set[int] | None, recovery: bool = True, admission: bool = True
    ) -> None:
        self.cpus = cpus
        self.recovery = recovery
        # Without admission control, a storm measures how fast the worker itself connects:
        # the rate that ZOU_EVENTS_NEW_SESSIONS_PER_SECOND's default derives from.
        self.admission = admission
        # The load client's sockets authenticate by cookie: with recovery on, every event
        # they get carries an offset, and every message read from Redis is kept for replay.
        self.name = "zou-events" + ("" if recovery else "-no-recovery")
        self.name += "" if admission else "-no-admission"

    def versions(self) -> dict[str, str]:
        return machine.python_versions(sys.executable)  # start_server uses this interpreter

    def close(self) -> None:
        pass

    @contextmanager
    def running(self, token_count: int) -> Iterator[Running]:
        secret = secrets.token_hex(32)
        env = {
            "SECRET_KEY": secret,
            "ZOU_EVENTS_LOG_LEVEL": "warning",
            "ZOU_EVENTS_RECOVERY": "true" if self.recovery else "false",
            # the publisher's, Zou's (the test suite gives each server a channel of its own)
            "ZOU_EVENTS_CHANNEL": CHANNEL,
        }
        if not self.admission:  # neither the rate limit nor the event loop's lag refuses
            env["ZOU_EVENTS_NEW_SESSIONS_PER_SECOND"] = env["ZOU_EVENTS_NEW_SESSIONS_BURST"] = (
                "1000000"
            )
            env["ZOU_EVENTS_ADMISSION_MAX_LAG"] = "3600"
        if token_count > _DEFAULT_MAX_SOCKETS:
            # Room for every socket, /metrics and /ready (the defaults stop at 18,000).
            env["ZOU_EVENTS_MAX_SOCKETS"] = str(token_count + 100)
            env["ZOU_EVENTS_WORKER_CONNECTIONS"] = str(token_count + 2000)
        with start_server(env) as handle:
            worker = procs.only_child(handle.process.pid)
            procs.pin(handle.process.pid, self.cpus)
            procs.pin(worker, self.cpus)
            tokens = [make_token(secret, lifetime=3 * 3600) for _ in range(token_count)]
            yield Running(handle.port, worker, tokens, handle.log_path)


class ZouServer:
    """Zou 1.0.97's own ``zou.event_stream``, run as Zou documents it, over a ZouStack.

    The stack (database, seeded persons, Zou's API) lives for the whole benchmark; the
    event stream is started for each round with the stack's environment and the command of
    ``ZouStack.start_event_stream``, which starts it once per stack and cannot stop it.
    """

    name = "zou"

    def __init__(self, cpus: set[int] | None) -> None:
        if not (ZOU_VENV / "bin" / "gunicorn").exists():
            raise RuntimeError("Zou is not installed: run scripts/setup.d/50-zou.sh")
        self.cpus = cpus
        self.stack = ZouStack().start()
        # Zou refuses unknown and inactive persons: tokens for the seeded active ones.
        self.person_ids = [
            person.id for name, person in self.stack.seed.persons.items() if name in ACTIVE_CAST
        ]

    def versions(self) -> dict[str, str]:
        return machine.python_versions(str(self.stack.venv / "bin" / "python"))

    def close(self) -> None:
        self.stack.stop()

    @contextmanager
    def running(self, token_count: int) -> Iterator[Running]:
        port = free_port()
        log = self.stack.workdir / f"event-stream-{port}.log"
        command = [
            str(self.stack.venv / "bin" / "gunicorn"),
            *("--worker-class", EVENT_STREAM_WORKER, "-w", "1"),
            *("-b", f"127.0.0.1:{port}", "zou.event_stream:app"),
        ]
        what = f"Zou's event stream on port {port}"
        started = _started(command, self.stack.env, log, port, what, 60, cwd=self.stack.workdir)
        with started as master:
            worker = procs.only_child(master.pid)
            procs.pin(master.pid, self.cpus)
            procs.pin(worker, self.cpus)
            tokens = [
                make_token(self.stack.secret_key, sub=self.person_ids[i % len(self.person_ids)])
                for i in range(token_count)
            ]
            yield Running(port, worker, tokens, log)


class NodeServer:
    """bench/node/server.mjs: socket.io 4.8 on Node.js, one process, the same token checks."""

    def __init__(self, cpus: set[int] | None, backlog: int | None = None) -> None:
        if not (NODE_SERVER.parent / "node_modules" / "socket.io").exists():
            raise RuntimeError("socket.io is not installed: run scripts/setup.d/30-node.sh")
        self.cpus = cpus
        # Its accept queue: Node.js's default (511) unless given, e.g. gunicorn's 2048 for a
        # storm where the queue, not the server, would bound Node.js.
        self.backlog = backlog
        self.name = "node" if backlog is None else f"node-backlog-{backlog}"

    def versions(self) -> dict[str, str]:
        return machine.node_versions(NODE_SERVER.parent, ("socket.io", "engine.io", "redis"))

    def close(self) -> None:
        pass

    @contextmanager
    def running(self, token_count: int) -> Iterator[Running]:
        port = free_port()
        secret = secrets.token_hex(32)
        log = Path(tempfile.gettempdir()) / f"bench-node-{port}.log"
        env = {**os.environ, "PORT": str(port), "SECRET_KEY": secret}
        if self.backlog is not None:
            env["BACKLOG"] = str(self.backlog)
        try:
            what = f"the Node.js server on port {port}"
            with _started(["node", str(NODE_SERVER)], env, log, port, what, 30) as process:
                procs.pin(process.pid, self.cpus)
                tokens = [make_token(secret, lifetime=3 * 3600) for _ in range(token_count)]
                yield Running(port, process.pid, tokens, log)
        finally:
            log.unlink(missing_ok=True)


@contextmanager
def _started(
    command: list[str],
    env: dict[str, str],
    log: Path,
    port: int,
    what: str,
    timeout: float,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` in its own process group, output to ``log``, once it answers HTTP on
    ``port``; stopped (SIGTERM, then SIGKILL) afterwards."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: process.poll() is not None or _answers(port), timeout, what, step=0.2)
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited:\n{log.read_text()[-3000:]}")
        yield process
    finally:
        _stop_group(process)


def _answers(port: int) -> bool:
    """gunicorn's worker answers HTTP (Zou's stream subscribes to Redis on first connect).

    The connection is closed at once: a kept-alive one would hold one of the worker's 1,000
    connection slots for good.
    """
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/", headers={"Connection": "close"})
        connection.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _stop_group(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """SIGTERM to gunicorn's process group, SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    process.wait(5)
