"""The table of docs/configuration.md, written from the settings table in config.py.

``python -m zou_events.config_doc [docs/configuration.md]`` rewrites the part between the
markers; a unit test fails while the committed file differs from what this would write.
"""

from __future__ import annotations

import sys
from pathlib import Path

from zou_events.config import table

BEGIN = "<!-- settings table: written by `python -m zou_events.config_doc`, do not edit -->"
END = "<!-- end of settings table -->"
DEFAULT_PATH = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def markdown_table() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for _, row in table():
        meaning = row.doc
        if row.limit:
            meaning += f' Exported as `zou_events_limit{{limit="{row.limit}"}}`.'
        cells = (f"`{row.env}`", row.shown_default, meaning)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


def with_table(document: str) -> str:
    """``document`` with the text between the markers replaced by the current table."""
    head, begin, rest = document.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"the markers {BEGIN!r} and {END!r} are missing")
    return f"{head}{BEGIN}\n{markdown_table()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEFAULT_PATH
    path.write_text(with_table(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
