"""A Node script run as a child process and driven by JSON lines: ``{"cmd": ...}`` on its
stdin, one JSON object a line on its stdout whose ``type`` names what it reports."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any


class NodeScript:
    close_wait = 5.0  # seconds the script has to exit after "close" before it is killed

    def __init__(self, script: Path, config: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            ["node", str(script), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=script.parent,
        )
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(json.loads(line))

    def _command(self, cmd: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"cmd": cmd}) + "\n")
        self.process.stdin.flush()

    def _ask(self, cmd: str, answer: str, timeout: float = 10.0) -> dict[str, Any]:
        """Send ``cmd``, then the next line of type ``answer`` (other lines are skipped)."""
        self._command(cmd)
        while True:
            line = self._lines.get(timeout=timeout)
            if line["type"] == answer:
                return line

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self._command("close")
                self.process.wait(self.close_wait)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(5)
