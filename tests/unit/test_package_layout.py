"""The package's one boundary around library internals (issue 12): python-engineio's and
python-socketio's internals are touched in zou_events/transport/ alone, so that upgrading
past the pins means auditing that package only."""

from __future__ import annotations

import re
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
