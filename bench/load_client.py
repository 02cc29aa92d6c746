"""Drives bench/loadclient.mjs: one Node.js process holding every benchmark WebSocket."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import resource
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("loadclient.mjs")
# Open files the load client keeps for itself (node's own, stdio) below its limit.
SPARE_FILES = 500
# How a Kitsu tab is opened: socket.io-client itself, or its requests written on raw sockets.
KITSU_CLIENTS = ("socketio", "wire")


@dataclass(frozen=True)
class Connected:
    joined: int
    failures: dict[str, int]
    retries: dict[str, int]  # answers that made a socket try again (admission, "try again later")
    seconds: float
    upgraded: int  # Kitsu-style sockets that moved from polling to WebSocket


class LoadClient:
    """``count`` sockets on ``port``'s /events, each authenticated with a cookie token.

    ``kitsu_client``: None for raw WebSockets; otherwise each socket is a Kitsu tab (polling
    handshake, then upgrade to WebSocket, reconnection with its own backoff), opened by
    socket.io-client itself ("socketio") or by the same requests on raw TCP connections
    ("wire"), cheap enough that a storm measures the server, not this client.
    ``source_addresses``: spread the sockets over that many 127.x.y.z source addresses
    (0: the kernel's choice), as one address has only ~28,000 ephemeral ports.
    """

    def __init__(
        self,
        port: int,
        tokens: list[str],
        count: int,
        cpus: set[int] | None,
        concurrency: int = 200,
        connect_timeout: float = 60.0,
        handshake_timeout: float = 10.0,
        kitsu_client: str | None = None,
        source_addresses: int = 0,
    ) -> None:
        if kitsu_client is not None and kitsu_client not in KITSU_CLIENTS:
            raise ValueError(f"kitsu_client must be one of {KITSU_CLIENTS}, not {kitsu_client!r}")
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed (scripts/setup.d/30-node.sh installs it)")
        config = {
            "url": f"ws://127.0.0.1:{port}",
            "tokens": tokens,
            "count": count,
            "concurrency": concurrency,
            "connect_timeout": connect_timeout,
            "handshake_timeout": handshake_timeout,
            "kitsu": kitsu_client is not None,
            "kitsu_client": kitsu_client,
            "source_addresses": source_addresses,
            # Wire tabs open connections faster than they close: past this many open at once,
            # a new one waits, instead of EMFILE counted as the server's refusal.
            "max_connections": resource.getrlimit(resource.RLIMIT_NOFILE)[0] - SPARE_FILES,
        }
        self.connect_timeout = connect_timeout
        self.process = subprocess.Popen(
            # 50,000 sockets' state outgrows Node.js's default heap limit.
            [node, "--max-old-space-size=8192", str(SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            # Pinned before exec, so that node's helper threads inherit the CPU set.
            preexec_fn=None if cpus is None else lambda: os.sched_setaffinity(0, cpus),
        )
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(config) + "\n")
        self.process.stdin.flush()
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _reply(self, kind: str, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"load client: no {kind!r} reply within {timeout:.0f}s") from None
        if line is None:
            raise RuntimeError(f"load client exited ({self.process.wait()}) before {kind!r}")
        message: dict[str, Any] = json.loads(line)
        if message["type"] != kind:
            raise RuntimeError(f"load client: expected {kind!r}, got {message}")
        return message

    def _command(
        self, command: dict[str, Any], reply: str, timeout: float = 30.0
    ) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._reply(reply, timeout)

    def wait_connected(self) -> Connected:
        message = self._reply("connected", self.connect_timeout + 30)
        return Connected(
            message["joined"],
            message["failures"],
            message["retries"],
            message["seconds"],
            message["upgraded"],
        )

    def reset(self) -> None:
        self._command({"cmd": "reset"}, "reset")

    def wait_for(self, per_socket: int, timeout: float) -> bool:
        """True once every joined socket could have received ``per_socket`` events."""
        command = {"cmd": "wait", "per_socket": per_socket, "timeout": timeout}
        reply = self._command(command, "waited", timeout + 30)
        return bool(reply["complete"])

    def report(self, events: int) -> dict[str, Any]:
        """Counts and latencies since the last reset, for events numbered 0..events-1."""
        return self._command({"cmd": "report", "events": events}, "report")

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(RuntimeError, BrokenPipeError):
                self._command({"cmd": "close"}, "closed", 10)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> LoadClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
