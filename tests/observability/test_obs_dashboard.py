"""The committed Grafana dashboard, checked offline: structure, variables, PromQL syntax."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.observability.promql import (
    DASHBOARD,
    ROOT,
    annotation_queries,
    dashboard_queries,
    load_dashboard,
    metric_names,
    promtool,
    recording_rules,
    selectors,
    substitute,
    walk_panels,
)

ROWS = [
    "Overview",
    "Connections",
    "Delivery",
    "Review sessions",
    "Zou API and Redis",
    "Process",
]
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
FILTERS = ('job=~"$job"', 'host=~"$host"', 'instance=~"$instance"')


def visible_panels() -> list[dict[str, Any]]:
    return [p for p in walk_panels(load_dashboard()["panels"]) if p["type"] != "row"]


def test_committed_json_is_what_the_generator_builds() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "grafana" / "build_dashboard.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_dashboard_provisions_as_is() -> None:
    board = load_dashboard()
    assert board.get("id") is None
    assert board["uid"] == "zou-events"
    assert board["schemaVersion"] == 41  # Grafana 11.6, the SDK build pinned in pyproject.toml
    assert "__inputs" not in board
    assert "${DS_" not in DASHBOARD.read_text()


def test_variables_datasource_job_host_instance() -> None:
    variables = {v["name"]: v for v in load_dashboard()["templating"]["list"]}
    assert list(variables) == ["datasource", "job", "host", "instance"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "host", "instance"):
        variable = variables[name]
        assert variable["type"] == "query"
        assert variable["datasource"] == DATASOURCE
        assert variable["query"].startswith("label_values(zou_events_build_info")
        assert variable["query"].endswith(f", {name})")
        assert variable["includeAll"] and variable["multi"]
    # "All" must expand to the listed values, not match every job scraped by Prometheus; a
    # host "All" matches targets without a host label too, job and instance still restrict.
    assert "allValue" not in variables["job"] and "allValue" not in variables["instance"]
    assert variables["host"]["allValue"] == ".*"
    assert 'job=~"$job"' in variables["host"]["query"]
    assert 'job=~"$job", host=~"$host"' in variables["instance"]["query"]


def test_annotations_mark_restarts_and_deploys() -> None:
    annotations = {a["name"]: a for a in load_dashboard()["annotations"]["list"]}
    assert set(annotations) == {"Restarts", "Deploys"}
    for annotation in annotations.values():
        assert annotation["datasource"] == DATASOURCE and annotation["enable"]
        assert annotation["titleFormat"] and annotation["textFormat"]
    assert "process_start_time_seconds" in annotations["Restarts"]["expr"]
    assert "{{version}}" in annotations["Deploys"]["textFormat"]


def test_latency_panels_read_the_recording_rules() -> None:
    recorded = {rule["record"] for rule in recording_rules()}
    used = {n for q in dashboard_queries() for n in metric_names(q.expr) if ":" in n}
    assert used == recorded  # every recorded series is drawn, none is missing
    for query in dashboard_queries():
        assert "_bucket{" not in query.expr, query  # no quantile over raw buckets


def test_rows_in_order_each_with_panels() -> None:
    panels = load_dashboard()["panels"]
    rows = [p for p in panels if p["type"] == "row"]
    assert [row["title"] for row in rows] == ROWS
    assert panels[0]["type"] == "row"
    for index, row in enumerate(panels):
        if row["type"] != "row":
            continue
        if row["collapsed"]:
            assert row["panels"], row["title"]
        else:
            following = panels[index + 1 : index + 2]
            assert following and following[0]["type"] != "row", row["title"]


def test_every_panel_is_titled_described_and_uses_the_datasource_variable() -> None:
    panels = visible_panels()
    ids = [p["id"] for p in walk_panels(load_dashboard()["panels"])]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["title"] and panel.get("description"), panel
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)) and all(ref_ids), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]


def test_every_selector_filters_on_job_host_and_instance() -> None:
    for query in dashboard_queries() + annotation_queries():
        found = selectors(query.expr)
        assert found, query
        assert len(found) == len(re.findall(r"\{", query.expr)), query  # no bare metric name
        for name, matchers in found:
            for wanted in FILTERS:
                assert wanted in matchers, (query.panel, name)


def test_every_expression_parses(tmp_path: Path) -> None:
    """promtool is the only PromQL parser here: each expression becomes a recording rule."""
    queries = dashboard_queries() + annotation_queries()
    rules = [
        {
            "record": f"dashboard:panel_{index}",
            "expr": substitute(query.expr, {"job": ".*", "host": ".*", "instance": ".*"}),
        }
        for index, query in enumerate(queries)
    ]
    for rule in rules:
        assert "$" not in rule["expr"], rule
        assert metric_names(rule["expr"]), rule
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_promtool_rejects_a_broken_expression(tmp_path: Path) -> None:
    """The check above would catch a bad expression."""
    path = tmp_path / "broken.yml"
    rule = {"record": "broken", "expr": "rate(zou_events_deliveries_total{[5m])"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "broken", "rules": [rule]}]}))
    assert promtool("check", "rules", path).returncode != 0
