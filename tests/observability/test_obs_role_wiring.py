"""The role's Prometheus and Grafana wiring, run by Ansible itself (ansible-playbook of the
deployment tools, connection local) into temporary directories laid out like the hosts'.

- Prometheus: the prometheus.yml Debian 12's package installs gets the job and the rules as
  marked blocks, and Debian's Prometheus (2.42, without scrape_config_files) loads it, scrapes a
  running instance labelled by host name and port, and evaluates the retargeted rules.
- Directories that exist keep their owner and mode; a second run changes nothing.
- Prometheus's and Grafana's files go to the inventory host running them (here "monitoring",
  another name for this machine), not to the zou-events host.
- Grafana: no Grafana server can be installed here (Debian has no package), so the rendered
  provisioning file is loaded the way Grafana's file provider reads it (below): with the
  dashboards directory renamed, the dashboard is still found.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.harness import deploy_tool
from tests.observability.prometheus_server import Prometheus, prometheus_process
from tests.observability.promql import ALERTS, RECORDING_RULES, ROOT, alert_rules
from tests.support.server import ServerHandle, start_server, wait_until

# What Debian 12's prometheus package installs; the role must leave the rest of it alone.
DEBIAN_CONFIG = Path("/etc/prometheus/prometheus.yml")
JOB = "kitsu-events"
HOST = "studio-a"
RUNBOOK_PAGE = "https://wiki.example.com/kitsu/zou-events-operations"
# The owner's mode and group of a directory the role also writes into (prometheus.prometheus
# makes its directories root:prometheus 0770).
OWNER_MODE = 0o2750
OWNER_GID = 65534 if os.geteuid() == 0 else os.getgid()
PLAYBOOK = """\
- name: The zou_events role's Prometheus and Grafana tasks
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Prometheus
      ansible.builtin.include_role:
        name: zou_events
        tasks_from: prometheus.yml
    - name: Grafana
      ansible.builtin.include_role:
        name: zou_events
        tasks_from: grafana.yml
"""


@dataclass(frozen=True)
class Wiring:
    prometheus_dir: Path
    provisioning_dir: Path
    dashboards_dir: Path
    instance: ServerHandle
    runs: list[Run]


@dataclass(frozen=True)
class Run:
    recap: dict[str, int]  # of the zou-events host: ok, changed, failed, ...
    output: str


def run_role(work: Path, extra: dict[str, Any]) -> Run:
    """One ansible-playbook run of the play on localhost, with "monitoring" in the inventory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        {
            "ANSIBLE_ROLES_PATH": str(ROOT / "ansible" / "roles"),
            "ANSIBLE_NOCOLOR": "1",
            "PATH": f"{deploy_tool('ansible-playbook').parent}:{env.get('PATH', '/usr/bin:/bin')}",
        }
    )
    result = subprocess.run(
        [
            str(deploy_tool("ansible-playbook")),
            "-i",
            str(work / "inventory.ini"),
            str(work / "playbook.yml"),
            "-e",
            json.dumps(extra),
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    recap = re.search(r"^localhost\s*:(.*)$", result.stdout, re.MULTILINE)
    assert recap, result.stdout
    counts = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", recap.group(1))}
    return Run(counts, result.stdout)


@pytest.fixture(scope="module")
def wiring(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wiring]:
    if not DEBIAN_CONFIG.is_file():
        pytest.skip("Debian's prometheus package missing: run scripts/setup.d/70-observability.sh")
    work = tmp_path_factory.mktemp("role-wiring")
    (work / "playbook.yml").write_text(PLAYBOOK)
    (work / "inventory.ini").write_text(
        "localhost ansible_connection=local\nmonitoring ansible_connection=local\n"
    )
    prometheus_dir = work / "etc-prometheus"
    prometheus_dir.mkdir()
    # The owner's file, its intervals shortened so the test need not wait 15 s per scrape.
    config = DEBIAN_CONFIG.read_text()
    config = re.sub(r"(scrape_interval|evaluation_interval):\s+15s", r"\1: 1s", config)
    (prometheus_dir / "prometheus.yml").write_text(config)
    file_sd = prometheus_dir / "file_sd"
    file_sd.mkdir()
    os.chown(file_sd, 0, OWNER_GID)
    file_sd.chmod(OWNER_MODE)
    provisioning_dir = work / "grafana-provisioning"
    for sub in ("dashboards", "datasources"):
        (provisioning_dir / sub).mkdir(parents=True)
    dashboards_dir = work / "grafana dashboards" / "renamed"
    with start_server() as instance:
        extra = {
            "zou_events_base_port": instance.port,
            "zou_events_instances": 1,
            "zou_events_manage_service": False,
            "zou_events_prometheus_host": "monitoring",
            "zou_events_grafana_host": "monitoring",
            "zou_events_prometheus_config_dir": str(prometheus_dir),
            "zou_events_prometheus_job": JOB,
            "zou_events_prometheus_instance_host": HOST,
            "zou_events_prometheus_runbook_url": RUNBOOK_PAGE,
            "zou_events_prometheus_service": "",
            "zou_events_grafana_provisioning_dir": str(provisioning_dir),
            "zou_events_grafana_dashboards_dir": str(dashboards_dir),
            "zou_events_grafana_datasource": True,
            "zou_events_grafana_datasource_url": "http://prometheus.example.com:9090",
            "zou_events_grafana_service": "",
        }
        runs = [run_role(work, extra), run_role(work, extra)]
        yield Wiring(prometheus_dir, provisioning_dir, dashboards_dir, instance, runs)


def test_a_second_run_changes_nothing(wiring: Wiring) -> None:
    first, second = wiring.runs
    assert first.recap["changed"] > 0 and first.recap["failed"] == 0
    assert second.recap["changed"] == 0, second.output


def test_files_go_to_the_monitoring_host(wiring: Wiring) -> None:
    """Every task writing Prometheus's or Grafana's files runs on the host given for them."""
    output = wiring.runs[0].output
    for task in (
        "Write this host's Prometheus targets",
        "Install the alert and recording rules",
        "Write the zou-events block in prometheus.yml under scrape_configs",
        "Install the dashboards",
        "Write the dashboards provisioning file",
    ):
        section = output.split(f"{task}]", 1)[1].split("TASK [", 1)[0]
        assert "[localhost -> monitoring]" in section, (task, section)


def test_prometheus_yml_gains_the_job_and_rules_and_keeps_the_rest(wiring: Wiring) -> None:
    text = (wiring.prometheus_dir / "prometheus.yml").read_text()
    for line in DEBIAN_CONFIG.read_text().splitlines():
        if "_interval" not in line:
            assert line in text.splitlines()
    for key in ("rule_files", "scrape_configs"):
        assert text.count(f"# BEGIN zou-events {key} (Ansible)") == 1, text
    config = yaml.safe_load(text)
    assert config["rule_files"] == [f"{wiring.prometheus_dir}/rules/zou-events-*.rules"]
    assert [job["job_name"] for job in config["scrape_configs"]] == [JOB, "prometheus", "node"]


def test_existing_directories_keep_their_owner(wiring: Wiring) -> None:
    kept = (wiring.prometheus_dir / "file_sd").stat()
    assert (kept.st_mode & 0o7777, kept.st_gid) == (OWNER_MODE, OWNER_GID)
    created = (wiring.prometheus_dir / "rules").stat()
    assert (created.st_mode & 0o7777, created.st_uid) == (0o755, 0)


def test_installed_rules_select_the_configured_job(wiring: Wiring) -> None:
    for shipped, name in ((ALERTS, "alerts"), (RECORDING_RULES, "rules")):
        installed = (wiring.prometheus_dir / "rules" / f"zou-events-{name}.rules").read_text()
        assert 'job="zou-events"' not in installed
        assert installed.count(f'job="{JOB}"') == shipped.read_text().count('job="zou-events"')
    alerts = (wiring.prometheus_dir / "rules" / "zou-events-alerts.rules").read_text()
    assert alerts.count(f"{RUNBOOK_PAGE}#") == len(alert_rules())


def prometheus_version() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus missing: run scripts/setup.d/70-observability.sh")
    result = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    found = re.search(r"version (\d+\.\d+)", result.stdout + result.stderr)
    assert found, result.stdout
    return found.group(1)


@pytest.fixture(scope="module")
def prometheus(wiring: Wiring, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    directory = tmp_path_factory.mktemp("prometheus")
    with prometheus_process(wiring.prometheus_dir / "prometheus.yml", directory) as server:
        yield server


def test_debian_prometheus_scrapes_the_instance_by_host_name(
    wiring: Wiring, prometheus: Prometheus
) -> None:
    version = prometheus_version()
    debian = Path("/etc/debian_version")
    if debian.is_file() and debian.read_text().startswith("12."):
        assert version == "2.42"  # before scrape_config_files (2.43): the case this covers
    instance = f"{HOST}:{wiring.instance.port}"
    up = f'up{{job="{JOB}", instance="{instance}", host="{HOST}"}} == 1'
    wait_until(lambda: prometheus.query(up), 20, f"{instance} scraped by Prometheus {version}")
    (target,) = [t for t in prometheus.api("targets")["activeTargets"] if t["labels"]["job"] == JOB]
    assert target["scrapeUrl"] == f"http://127.0.0.1:{wiring.instance.port}/metrics"


def test_debian_prometheus_evaluates_the_retargeted_rules(
    wiring: Wiring, prometheus: Prometheus
) -> None:
    groups = {g["name"]: g for g in prometheus.api("rules")["groups"]}
    assert set(groups) == {"zou-events", "zou-events.recording"}
    names = [r["name"] for r in groups["zou-events"]["rules"]]
    assert names == [rule["alert"] for rule in alert_rules()]
    for rule in groups["zou-events"]["rules"]:
        assert f'job="{JOB}"' in rule["query"], rule["name"]
        assert rule["annotations"]["runbook_url"].startswith(f"{RUNBOOK_PAGE}#"), rule["name"]
    recorded = (
        "instance_le:zou_events_event_loop_lag_seconds_bucket:rate5m"
        f'{{job="{JOB}", host="{HOST}", instance="{HOST}:{wiring.instance.port}"}}'
    )
    wait_until(lambda: prometheus.query(recorded), 20, "the recording rules' first series")
    for group in groups.values():
        for rule in group["rules"]:
            assert rule["health"] != "err", rule


def grafana_file_provider(provisioning_dir: Path) -> dict[str, dict[str, Any]]:
    """Dashboards by uid, found as Grafana's file provider finds them (pkg/services/
    provisioning/dashboards: every *.yaml/*.yml of <provisioning>/dashboards with apiVersion 1;
    each provider of type file walks options.path for *.json files holding a dashboard with a
    title). A stand-in for a Grafana server, which cannot be installed here."""
    dashboards: dict[str, dict[str, Any]] = {}
    for config_file in sorted((provisioning_dir / "dashboards").iterdir()):
        if config_file.suffix not in (".yaml", ".yml"):
            continue
        config = yaml.safe_load(config_file.read_text())
        assert config["apiVersion"] == 1, config_file
        for provider in config["providers"]:
            assert provider["type"] == "file" and provider["name"], provider
            for json_file in Path(provider["options"]["path"]).rglob("*.json"):
                board = json.loads(json_file.read_text())
                assert board["title"], json_file
                dashboards[board["uid"]] = board
    return dashboards


def test_a_renamed_dashboards_directory_still_provisions(wiring: Wiring) -> None:
    dashboards = grafana_file_provider(wiring.provisioning_dir)
    assert set(dashboards) >= {"zou-events"}
    assert dashboards["zou-events"]["title"] == "Zou events"
    (provider,) = yaml.safe_load(
        (wiring.provisioning_dir / "dashboards" / "zou-events.yml").read_text()
    )["providers"]
    assert provider["options"]["path"] == str(wiring.dashboards_dir)
    assert provider["folder"] == "Kitsu" and provider["allowUiUpdates"] is False


def test_the_datasource_points_at_the_configured_prometheus(wiring: Wiring) -> None:
    (datasource,) = yaml.safe_load(
        (wiring.provisioning_dir / "datasources" / "zou-events-prometheus.yml").read_text()
    )["datasources"]
    assert datasource["type"] == "prometheus" and datasource["uid"] == "prometheus"
    assert datasource["url"] == "http://prometheus.example.com:9090"
    assert datasource["jsonData"]["timeInterval"] == "15s"
