"""Tools of the deployment tests: pinned Ansible tools, wheels, playbook runs, Kitsu's client."""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import queue
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.container import Container

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
JS_DIR = ROOT / "tests" / "js"
ANSIBLE_DIR = ROOT / "ansible"  # the collection's root
COLLECTION = "cgwire_community.zou_events"
PLAYBOOK = f"{COLLECTION}.deploy"
ROLE = f"{COLLECTION}.zou_events"
DEPLOY_VENV = ROOT / ".venv-deploy"
SETUP_HINT = "run scripts/setup.d/60-deploy.sh (or make setup)"
# As scripts/lib.sh defines it.
CACHE_DIR = Path(
    os.environ.get("ZOU_EVENTS_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zou-events"
)


def deploy_tool(name: str) -> Path:
    """An executable of .venv-deploy (ansible-core, ansible-lint, yamllint), or a skip."""
    path = DEPLOY_VENV / "bin" / name
    if not path.exists():
        pytest.skip(f"{name} is not installed: {SETUP_HINT}")
    return path


def tool_env(collections: Path | None = None) -> dict[str, str]:
    """The tools' environment; with ``collections``, Ansible finds the collection there only
    (and the ``ansible`` package's own, for community.docker's connection)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        {
            "PATH": f"{DEPLOY_VENV / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
            "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "NO_COLOR": "1",
            "PY_COLORS": "0",
        }
    )
    if collections:
        env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    return env


def run_tool(
    *cmd: str | Path,
    cwd: Path = ANSIBLE_DIR,
    timeout: float = 300,
    collections: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in cmd],
        cwd=cwd,
        env=tool_env(collections),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class InstalledCollection:
    artifact: Path  # what `ansible-galaxy collection build` made
    path: Path  # the collections path it was installed into

    @property
    def root(self) -> Path:
        return self.path / "ansible_collections" / Path(*COLLECTION.split("."))

    def run(self, *cmd: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """A tool run outside the repository's tree, seeing the installed collection only."""
        return run_tool(*cmd, cwd=self.path, timeout=timeout, collections=self.path)


@functools.cache
def installed_collection() -> InstalledCollection:
    """ansible/ built with `ansible-galaxy collection build` and the artifact installed into an
    empty collections path, once per test session: every playbook of the tests runs from
    there, as a studio's does after `ansible-galaxy collection install`."""
    galaxy = deploy_tool("ansible-galaxy")
    work = Path(tempfile.mkdtemp(prefix="zou-events-collection-"))
    atexit.register(shutil.rmtree, work, True)
    built = run_tool(galaxy, "collection", "build", ANSIBLE_DIR, "--output-path", work / "dist")
    assert built.returncode == 0, built.stdout + built.stderr
    [artifact] = (work / "dist").glob("*.tar.gz")
    installed = run_tool(
        *(galaxy, "collection", "install", "--offline", artifact, "-p", work / "collections"),
        cwd=work,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return InstalledCollection(artifact, work / "collections")


def artifact_members(artifact: Path) -> set[str]:
    with tarfile.open(artifact) as tar:
        return set(tar.getnames())


@dataclass
class PlaybookRun:
    returncode: int
    output: str

    def recap(self, host: str) -> dict[str, int]:
        match = re.search(rf"^{re.escape(host)}\s+:\s+(.*)$", self.output, re.MULTILINE)
        assert match, f"no PLAY RECAP for {host}:\n{self.output[-3000:]}"
        return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}

    def failures(self) -> str:
        """The failed tasks with their errors, else the end of the output."""
        lines = self.output.splitlines()
        starts = [i for i, line in enumerate(lines) if line.startswith(("fatal:", "failed:"))]
        if not starts:
            return "\n".join(lines[-60:])
        return "\n\n".join("\n".join(lines[max(0, i - 12) : i + 2]) for i in starts)

    def changed_tasks(self) -> list[str]:
        """Names of the tasks that reported a change, for a readable failure."""
        names = []
        task = ""
        for line in self.output.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                task = line
            elif line.startswith("changed:"):
                names.append(task)
        return names


def run_playbook(inventory: Path, *args: str, timeout: float = 480) -> PlaybookRun:
    """The collection's playbook, from the installed collection."""
    result = installed_collection().run(
        deploy_tool("ansible-playbook"), "-i", inventory, PLAYBOOK, *args, timeout=timeout
    )
    return PlaybookRun(result.returncode, result.stdout + result.stderr)


# What a release's sdist is made from: a checkout has nothing else the package needs.
RELEASE_SOURCES = ("zou_events", "docs", "pyproject.toml", "README.md")


@dataclass(frozen=True)
class Release:
    sdist: Path
    wheel: Path


def build_release(dest: Path, version: str | None = None) -> Release:
    """The release of this checkout, as `python -m build` makes it: the sdist, then the wheel
    built from that sdist. Built from a copy (the work tree stays clean), with the build backend
    pinned in .venv-deploy rather than fetched; ``version`` replaces the package's version, to
    stand for a newer release."""
    source = dest / "source"
    shutil.rmtree(source, ignore_errors=True)
    for name in RELEASE_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    if version:
        init = source / "zou_events" / "__init__.py"
        init.write_text(
            re.sub(r'__version__ = "[^"]*"', f'__version__ = "{version}"', init.read_text())
        )
    out = dest / "dist"
    shutil.rmtree(out, ignore_errors=True)
    build = subprocess.run(
        [deploy_tool("python"), "-m", "build", "--no-isolation", "--outdir", out, source],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    [sdist] = out.glob("zou_events-*.tar.gz")
    [wheel] = out.glob("zou_events-*.whl")
    return Release(sdist, wheel)


def wheelhouse(wheel: Path, python_version: str) -> Path:
    """Wheels of every dependency at the versions of constraints.txt for the target's Python
    (its full version: redis needs async-timeout below 3.11.3, and Debian 12 has 3.11.2),
    cached by what decides them, so the container installs without any package index.

    pip downloads for the target's version; it evaluates environment markers with its own
    Python (Debian 12's, from .venv-deploy), which at worst adds a wheel the target ignores.
    """
    python = deploy_tool("python")
    key = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes()
        + (ROOT / "constraints.txt").read_bytes()
        + python_version.encode()
    ).hexdigest()[:16]
    house = CACHE_DIR / "deploy" / f"wheelhouse-{key}"
    complete = house.with_suffix(".complete")
    if not complete.exists():
        shutil.rmtree(house, ignore_errors=True)
        subprocess.run(
            [
                *(python, "-m", "pip", "download", "-q", "--disable-pip-version-check"),
                *("--only-binary=:all:", "--python-version", python_version),
                *("-c", ROOT / "constraints.txt", "-d", house, wheel),
            ],
            check=True,
            capture_output=True,
        )
        for own in house.glob("zou_events-*.whl"):
            own.unlink()
        complete.touch()
    return house


class Probe:
    """Kitsu's socket.io-client (tests/js/client.mjs, reconnecting as Kitsu does) run in the
    container's network namespace; its JSON lines are read as they come."""

    def __init__(
        self,
        container: Container,
        url: str,
        token: str | None,
        log_dir: Path,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """``token`` as a bearer header, else ``extra`` (client.mjs's options: a cookie, headers)
        says how the client authenticates."""
        config: dict[str, Any] = {"url": url, "reconnection": True, **(extra or {})}
        if token:
            config["authorization"] = f"Bearer {token}"
        self.stderr = (log_dir / f"client-{time.monotonic_ns()}.log").open("w")
        self.process = subprocess.Popen(
            container.in_network(["node", str(JS_DIR / "client.mjs"), json.dumps(config)]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            cwd=JS_DIR,
        )
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.history: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = json.loads(line)
            self.history.append(message)
            self.inbox.put(message)

    def expect(
        self, what: str, match: Callable[[dict[str, Any]], bool] = bool, timeout: float = 20
    ) -> dict[str, Any]:
        """The next message of type ``what`` (and ``match``); earlier others are passed over."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.inbox.get(timeout=left)
            except queue.Empty:
                break
            if message["type"] == what and match(message):
                return message
        raise AssertionError(f"no {what} within {timeout}s; the client saw {self.history}")

    def expect_event(self, event: str, timeout: float = 20) -> list[Any]:
        """The arguments of the next ``event``."""
        return self.expect("event", lambda m: m["event"] == event, timeout)["args"]

    def connected(self) -> bool:
        states = [m["type"] for m in self.history if m["type"] in {"connect", "disconnect"}]
        return bool(states) and states[-1] == "connect"

    def emit(self, event: str, data: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"emit": event, "args": [data]}) + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # the client closes its socket and exits
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.stderr.close()
