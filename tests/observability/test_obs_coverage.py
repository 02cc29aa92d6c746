"""Dashboard and alerts against the real exposition: no unknown metric, no forgotten family."""

from __future__ import annotations

import re
from fnmatch import fnmatch

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import zou_events.metrics  # noqa: F401  (registers the zou_events_* families)
from tests.observability.promql import (
    DOC,
    SYNTHETIC,
    alert_rules,
    annotation_queries,
    dashboard_queries,
    metric_names,
    recording_rules,
)

# Sample names of each family type in the text format (a labelled family exposes no sample
# until a label set is used, as zou_events_limit before the app sets its limits).
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
}


@pytest.fixture(scope="module")
def families() -> dict[str, set[str]]:
    """Family name -> the sample names it exposes."""
    exposition = generate_latest(REGISTRY).decode()
    return {
        family.name: {family.name + suffix for suffix in SUFFIXES[family.type]}
        for family in text_string_to_metric_families(exposition)
    }


def used_names() -> dict[str, set[str]]:
    """Metric name -> where it is used."""
    uses: dict[str, set[str]] = {}
    sources = [(f"panel {q.panel!r}", q.expr) for q in dashboard_queries() + annotation_queries()]
    sources += [(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]
    sources += [(f"rule {rule['record']}", rule["expr"]) for rule in recording_rules()]
    for where, expr in sources:
        for name in metric_names(expr):
            uses.setdefault(name, set()).add(where)
    return uses


def intentionally_unshown() -> set[str]:
    """The name or pattern opening each bullet of the doc's "Intentionally not shown"."""
    text = DOC.read_text()
    section = re.search(r"^## Intentionally not shown\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, f"{DOC.name} has no 'Intentionally not shown' section"
    return set(re.findall(r"^- `([\w*]+)`", section.group(1), re.M))


def listed(names: set[str], patterns: set[str]) -> bool:
    return any(fnmatch(name, pattern) for name in names for pattern in patterns)


def test_every_used_metric_is_exported(families: dict[str, set[str]]) -> None:
    recorded = {rule["record"] for rule in recording_rules()}
    exported = set().union(*families.values()) | SYNTHETIC | recorded
    unknown = {name: sorted(where) for name, where in used_names().items() if name not in exported}
    assert not unknown


def test_every_zou_events_family_is_shown_alerted_or_listed(
    families: dict[str, set[str]],
) -> None:
    used = set(used_names())
    unshown = intentionally_unshown()
    ours = {name: names for name, names in families.items() if name.startswith("zou_events_")}
    assert ours
    forgotten = [
        name for name, names in ours.items() if not names & used and not listed(names, unshown)
    ]
    assert not forgotten, f"show, alert on, or list in {DOC.name}: {forgotten}"
    exported = set().union(*families.values())
    stale = {pattern for pattern in unshown if not listed(exported, {pattern})}
    assert not stale, f"{DOC.name} lists what is not exported: {stale}"
    contradicted = {pattern for pattern in unshown if listed(used, {pattern})}
    assert not contradicted, f"{DOC.name} lists as not shown what is used: {contradicted}"
