"""Pytest plugin: the real Zou 1.0.97 stack, built once per test session and torn down at the end.

Load it with ``-p tests.support.zou_fixtures`` or from a conftest's ``pytest_plugins``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.support.zou_stack import ROOT, ZOU_VENV, ZouStack

SETUP_SCRIPT = ROOT / "scripts" / "setup.d" / "50-zou.sh"


def _ensure_zou_venv() -> None:
    """Installs Zou's virtualenv on first use (about a minute), as ``make setup`` does."""
    if (ZOU_VENV / "bin" / "zou").exists():
        return
    subprocess.run(["bash", str(SETUP_SCRIPT)], check=True, timeout=900, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def zou_stack() -> Iterator[ZouStack]:
    _ensure_zou_venv()
    with ZouStack() as stack:
        yield stack
