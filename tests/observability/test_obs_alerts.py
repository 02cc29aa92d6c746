"""Alert rules, their unit tests, the example scrape configuration and the provisioning files."""

from __future__ import annotations

import re

import yaml

from tests.observability.promql import (
    ALERT_JOB,
    ALERTS,
    ALERTS_TEST,
    DASHBOARD,
    DOC,
    EXAMPLE_CONFIG,
    GRAFANA,
    alert_rules,
    promtool,
    selectors,
)


def test_rules_are_valid() -> None:
    result = promtool("check", "rules", ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", ALERTS_TEST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases = [
        case
        for group in yaml.safe_load(ALERTS_TEST.read_text())["tests"]
        for case in group["alert_rule_test"]
    ]
    for rule in alert_rules():
        outcomes = [bool(c.get("exp_alerts")) for c in cases if c["alertname"] == rule["alert"]]
        assert True in outcomes and False in outcomes, rule["alert"]


def test_every_alert_is_documented_and_actionable() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", DOC.read_text(), re.MULTILINE)
    }
    for rule in alert_rules():
        assert rule["alert"].startswith("ZouEvents")
        assert rule["for"], rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook"}, rule["alert"]
        anchor = rule["alert"].lower()
        assert f"docs/observability.md#{anchor}" in annotations["runbook"], rule["alert"]
        assert anchor in anchors, f"no section {rule['alert']} in {DOC.name}"


def test_alerts_select_the_example_job() -> None:
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == ALERT_JOB
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:5001", "127.0.0.1:5002"]
    for rule in alert_rules():
        for name, matchers in selectors(rule["expr"]):
            assert f'job="{ALERT_JOB}"' in matchers, (rule["alert"], name)


def test_example_config_is_valid() -> None:
    result = promtool("check", "config", EXAMPLE_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


def test_provisioning_files() -> None:
    (datasource,) = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "zou-events-prometheus.yml").read_text()
    )["datasources"]
    assert datasource["type"] == "prometheus" and datasource["uid"]
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    assert datasource["jsonData"]["timeInterval"] == config["global"]["scrape_interval"]

    (provider,) = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "zou-events.yml").read_text()
    )["providers"]
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False
    path = provider["options"]["path"]
    assert path.startswith("/") and DASHBOARD.name not in path  # a directory of dashboards
