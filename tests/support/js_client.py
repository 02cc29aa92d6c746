"""Python handle on tests/js/client.mjs: Kitsu's socket.io-client in a Node process."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

JS_DIR = Path(__file__).resolve().parents[1] / "js"
Message = dict[str, Any]


class JsClient:
    def __init__(self, url: str, **config: Any) -> None:
        self.process = subprocess.Popen(
            ["node", str(JS_DIR / "client.mjs"), json.dumps({"url": url, **config})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=JS_DIR,
        )
        self.seen: list[Message] = []
        self._inbox: queue.Queue[Message] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._inbox.put(json.loads(line))

    def wait_for(
        self, predicate: Callable[[Message], bool], timeout: float = 10.0, since: int = 0
    ) -> Message:
        """The first message (seen from index ``since`` or arriving now) matching ``predicate``."""
        for message in self.seen[since:]:
            if predicate(message):
                return message
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                recent = [str(m)[:300] for m in self.seen[-5:]]
                raise AssertionError(
                    f"no matching message within {timeout}s; {len(self.seen)} seen, last: {recent}"
                )
            try:
                message = self._inbox.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(message)
            if predicate(message):
                return message

    def wait_type(self, kind: str, timeout: float = 10.0) -> Message:
        return self.wait_for(lambda m: m["type"] == kind, timeout)

    def wait_event(self, event: str, timeout: float = 10.0) -> Message:
        return self.wait_for(lambda m: m["type"] == "event" and m["event"] == event, timeout)

    def events(self, name: str | None = None) -> list[Message]:
        self.drain()
        return [m for m in self.seen if m["type"] == "event" and name in (None, m["event"])]

    def drain(self) -> None:
        while True:
            try:
                self.seen.append(self._inbox.get_nowait())
            except queue.Empty:
                return

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        try:
            line = json.dumps(command)
        except RecursionError:
            # Nested deeper than the C encoder goes (1,497 levels on Python 3.12, whatever the
            # recursion limit): the Python encoder follows sys.setrecursionlimit().
            line = "".join(json.JSONEncoder().iterencode(command))
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def emit(self, event: str, *args: Any) -> None:
        self.send(emit=event, args=list(args))

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send(close=True)
                assert self.process.stdin is not None
                self.process.stdin.close()
                self.process.wait(5)
            except (OSError, subprocess.TimeoutExpired, BrokenPipeError):
                self.process.kill()
                self.process.wait(5)

    def __enter__(self) -> JsClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
