"""The package's one boundary around library internals (issue 12): python-engineio's and
python-socketio's internals are touched in zou_events/transport/ alone, so that upgrading
past the pins means auditing that package only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "zou_events"
# python-socketio's room bidict, engineio's session table and its table of async drivers
INTERNALS = re.compile(r"_fwdm|eio\.sockets|_async")


def test_library_internals_are_reached_from_transport_only() -> None:
    modules = [p for p in PACKAGE.rglob("*.py") if "transport" not in p.relative_to(PACKAGE).parts]
    assert len(modules) > 30  # the package is where this test thinks it is
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in modules
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if INTERNALS.search(line)
    ]
    assert offenders == []


def test_the_boundary_is_where_the_internals_are() -> None:
    """The pattern still finds what it looks for (it would pass vacuously otherwise)."""
    transport = "".join(p.read_text() for p in (PACKAGE / "transport").glob("*.py"))
    assert INTERNALS.search(transport)


def test_the_worker_class_imports_nothing_gevent_must_patch_first() -> None:
    """gunicorn's master imports the worker class before the worker process patches the
    standard library: urllib3 or redis imported then keep their own references to the
    unpatched ``ssl`` (gevent's MonkeyPatchWarning), and Zou's API over HTTPS would block
    the event loop. (gunicorn itself imports ``ssl``, as gevent expects.)"""
    code = (
        "import sys, zou_events.gunicorn_worker, zou_events.gunicorn_config;"
        "print(sorted(m for m in ('urllib3', 'redis', 'engineio') if m in sys.modules))"
    )
    env = {**os.environ, "SECRET_KEY": "a-key-for-this-import-only"}
    imported = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "[]"
