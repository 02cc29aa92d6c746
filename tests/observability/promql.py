"""The dashboard's and the alert rules' PromQL, read from the committed files, for the tests."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "ansible" / "roles" / "zou_events"
DASHBOARD = ROLE / "files" / "dashboards" / "zou-events.json"
ALERTS = ROLE / "files" / "prometheus" / "alerts.yml"
RECORDING_RULES = ROLE / "files" / "prometheus" / "rules.yml"
ALERTS_TEST = Path(__file__).with_name("alerts_test.yml")
EXAMPLE_CONFIG = ROLE / "files" / "prometheus" / "prometheus.example.yml"
DOC = ROOT / "docs" / "observability.md"
RUNBOOK_DOC = ROOT / "docs" / "operations.md"
ALERT_JOB = "zou-events"
# What the shipped rules select and link to; the role replaces both (vars/main.yml).
SHIPPED_SELECTOR = f'job="{ALERT_JOB}"'
RUNBOOK_PAGE = "https://github.com/cgwire/zou-events/blob/main/docs/operations.md"

# Series Prometheus makes itself rather than scraping them.
SYNTHETIC = frozenset({"up"})
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])[a-zA-Z_:][\w:]*(?![\w:])(\s*\()?")
_SELECTOR = re.compile(r"(?<![\w:])([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})")
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass(frozen=True)
class DashboardQuery:
    panel: str
    ref_id: str
    expr: str
    legend: str


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def dashboard_queries() -> list[DashboardQuery]:
    return [
        DashboardQuery(panel["title"], target["refId"], target["expr"], target["legendFormat"])
        for panel in walk_panels(load_dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def annotation_queries() -> list[DashboardQuery]:
    """The dashboard's annotation queries (restarts, deploys), with their text as legend."""
    return [
        DashboardQuery(f"annotation {item['name']}", "", item["expr"], item["textFormat"])
        for item in load_dashboard()["annotations"]["list"]
    ]


def rules_of(path: Path) -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return rules_of(ALERTS)


def recording_rules() -> list[dict[str, Any]]:
    return rules_of(RECORDING_RULES)


def substitute(expr: str, variables: dict[str, str], rate_interval: str = "1m") -> str:
    """What Grafana sends to Prometheus for ``expr`` with these variable values."""
    values = {"__rate_interval": rate_interval, **variables}
    return _VARIABLE.sub(lambda match: values[match.group(1) or match.group(2)], expr)


def metric_names(expr: str) -> set[str]:
    """Metric names selected by ``expr``: identifiers that are neither functions, keywords,
    label names in groupings, matchers nor durations."""
    bare = _GROUPING.sub(" ", _STRING.sub('""', expr))
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", bare)
    return {
        match.group(0)
        for match in _IDENTIFIER.finditer(bare)
        if match.group(1) is None and match.group(0) not in _KEYWORDS
    }


def selectors(expr: str) -> list[tuple[str, str]]:
    """(metric name, matcher block) for every braced selector in ``expr``."""
    return _SELECTOR.findall(_GROUPING.sub(" ", expr))


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool missing: run scripts/setup.d/70-observability.sh")
    return subprocess.run(
        [binary, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )
