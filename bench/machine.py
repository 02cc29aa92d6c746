"""The machine and software versions a benchmark ran on, for the record."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = ("gevent", "gunicorn", "python-socketio", "python-engineio", "redis")

_VERSIONS_SCRIPT = f"""
import importlib.metadata as m, json, platform
versions = {{}}
for name in {PACKAGES!r} + ("gevent-websocket", "zou"):
    try:
        versions[name] = m.version(name)
    except m.PackageNotFoundError:
        pass
print(json.dumps({{"python": platform.python_version(), **versions}}))
"""


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def python_versions(python: str) -> dict[str, str]:
    """Python and the server packages' versions as seen by the interpreter ``python``."""
    output = subprocess.run(
        [python, "-c", _VERSIONS_SCRIPT], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return json.loads(output)


def node_versions(project: Path, packages: tuple[str, ...]) -> dict[str, str]:
    """Node.js and the versions of ``packages`` installed in ``project``'s node_modules."""
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    versions = {"node": node.stdout.strip()}
    for name in packages:
        manifest = json.loads((project / "node_modules" / name / "package.json").read_text())
        versions[name] = manifest["version"]
    return versions


def checkout(root: Path) -> dict[str, Any]:
    """The commit and the uncommitted changes of the server's code."""
    # Each round starts the server from the working tree: a change during the run would be
    # measured in some rounds only.

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD"),
        "uncommitted": git("status", "--porcelain", "--", "zou_events", "gunicorn.conf.py"),
    }


def describe(servers: dict[str, dict[str, str]]) -> dict[str, Any]:
    """``servers``: server name -> the versions it runs on."""
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram_gib": round(_ram_gib(), 1),
        "kernel": platform.release(),
        "node": node.stdout.strip(),
        "servers": servers,
    }
