"""The systemd units (shipped and rendered by the role) and the role's other files, on the host.

`systemd-analyze verify` exits 0 even on unknown keys and unparsable values, so its stderr must
be empty; `security --threshold` is on a 0-100 scale (15 is an exposure of 1.5).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.harness import ROOT, deploy_tool, installed_collection

SYSTEMD_DIR = ROOT / "systemd"
MAX_EXPOSURE = 1.5
INSTANCE = "5001"

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def as_instances(unit_dir: Path, work: Path) -> list[str]:
    """The units of ``unit_dir`` as systemd loads them: a template through an instance link."""
    work.mkdir(parents=True, exist_ok=True)
    names = []
    for unit in sorted(unit_dir.iterdir()):
        if unit.suffix not in {".service", ".socket", ".target"}:
            continue
        shutil.copy2(unit, work / unit.name)
        if "@." in unit.name:
            instance = unit.name.replace("@.", f"@{INSTANCE}.")
            (work / instance).symlink_to(unit.name)
            names.append(instance)
        else:
            names.append(unit.name)
    return names


def check_units(unit_dir: Path, work: Path) -> None:
    names = as_instances(unit_dir, work)
    assert any(name.endswith(".service") for name in names)
    for name in names:
        result = analyze("verify", f"./{name}", cwd=work)
        assert result.returncode == 0 and result.stderr == "", f"{name}: {result.stderr}"
    for name in (n for n in names if n.endswith(".service")):
        result = analyze(
            "security", "--offline=yes", f"--threshold={int(MAX_EXPOSURE * 10)}", name, cwd=work
        )
        exposure = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
        assert exposure, result.stdout + result.stderr
        assert result.returncode == 0, f"{name}: exposure {exposure.group(1)} > {MAX_EXPOSURE}"


def render_role(out: Path, inventory: str = "localhost,", **overrides: Any) -> Path:
    """The files the role writes, rendered by its own tasks (of the installed collection) into
    ``out`` (for the inventory's host ``localhost``)."""
    for sub in ("systemd", "nginx/conf.d", "nginx/snippets"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    extra = {
        "_zou_events_systemd_dir": str(out / "systemd"),
        "zou_events_config_dir": str(out / "etc"),
        "zou_events_nginx_upstream_file": str(out / "nginx/conf.d/zou-events-upstream.conf"),
        "zou_events_nginx_location_file": str(out / "nginx/snippets/zou-events.conf"),
        "zou_events_nginx_service": "",
        "zou_events_prometheus_config_dir": str(out / "prometheus"),
        "zou_events_prometheus_service": "",
        # A file of its own, not a block in a prometheus.yml (there is none here).
        "zou_events_prometheus_job_in": "scrape_config_files",
        "zou_events_manage_service": False,
        **overrides,
    }
    result = installed_collection().run(
        deploy_tool("ansible-playbook"),
        "-i",
        inventory,
        ROOT / "tests/deploy/render.yml",
        "-e",
        json.dumps(extra),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def unit_body(path: Path) -> str:
    """A unit from its [Unit] line on: the header comments differ by design."""
    text = path.read_text()
    return text[text.index("[Unit]") :]


SECRET = 'a"b$c`d\\e #f g'


@pytest.fixture(scope="module")
def default_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The role's files with its defaults."""
    return render_role(tmp_path_factory.mktemp("default"))


@pytest.fixture(scope="module")
def custom_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_role(
        tmp_path_factory.mktemp("custom"),
        zou_events_instances=3,
        zou_events_base_port=6001,
        zou_events_socket_activation=True,
        zou_events_bind_host="0.0.0.0",
        zou_events_zou_env_file="",
        zou_events_worker_connections=50000,
        zou_events_graceful_timeout=10,
        zou_events_install_dir="/srv/zou-events",
        zou_events_secret_key=SECRET,
        zou_events_kv_host="redis.internal",
        zou_events_extra_env={"ZOU_EVENTS_ACCESS_LOG": "true"},
    )


def test_shipped_units_verify_cleanly_and_are_hardened(tmp_path: Path) -> None:
    check_units(SYSTEMD_DIR, tmp_path)


def unit_values(text: str, key: str) -> list[str]:
    """Every value of ``key`` in a unit file, space-separated lists split."""
    return [v for line in re.findall(rf"^{key}=(.*)$", text, re.MULTILINE) for v in line.split()]


def test_service_is_ready_only_when_its_worker_says_so_and_waits_for_the_clock() -> None:
    service = (SYSTEMD_DIR / "zou-events@.service").read_text()
    # READY=1 comes from the worker (a child of the main process) once subscribed to Redis.
    assert unit_values(service, "Type") == ["notify"]
    assert unit_values(service, "NotifyAccess") == ["all"]
    assert unit_values(service, "TimeoutStartSec") == ["60"]
    # time-sync.target is passive: ordered after, never pulled in (systemd.special(7)).
    assert "time-sync.target" in unit_values(service, "After")
    for key in ("Wants", "Requires", "BindsTo"):
        assert "time-sync.target" not in unit_values(service, key)


def test_documentation_points_at_the_docs_the_package_installs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data_files = pyproject["tool"]["setuptools"]["data-files"]["share/doc/zou-events"]
    installed = {Path(f).name for pattern in data_files for f in ROOT.glob(pattern)}
    for name in ("zou-events@.service", "zou-events@.socket"):
        uris = unit_values((SYSTEMD_DIR / name).read_text(), "Documentation")
        assert uris, name
        for uri in uris:
            directory, _, page = uri.removeprefix("file:").rpartition("/")
            assert directory == "/opt/zou-events/venv/share/doc/zou-events", uri
            assert page in installed, uri


def test_role_units_are_the_shipped_units_with_the_defaults(default_files: Path) -> None:
    for name in ("zou-events@.service", "zou-events@.socket", "zou-events.target"):
        rendered = unit_body(default_files / "systemd" / name)
        rendered = rendered.replace(str(default_files / "etc"), "/etc/zou-events")
        assert rendered == unit_body(SYSTEMD_DIR / name), name


def test_role_units_with_other_settings_verify_cleanly_and_are_hardened(
    custom_files: Path, tmp_path: Path
) -> None:
    service = (custom_files / "systemd" / "zou-events@.service").read_text()
    assert "LimitNOFILE=51024" in service
    assert "TimeoutStopSec=25" in service
    assert "/etc/zou/zou.env" not in service
    assert "/srv/zou-events/venv/bin/zou-events serve" in service
    assert "ListenStream=%i" in (custom_files / "systemd" / "zou-events@.socket").read_text()
    check_units(custom_files / "systemd", tmp_path)


def test_environment_file_is_secret_and_quoted_for_systemd(custom_files: Path) -> None:
    env_file = custom_files / "etc" / "zou-events.env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    lines = dict(
        line.split("=", 1)
        for line in env_file.read_text().splitlines()
        if line and not line.startswith("#")
    )
    # systemd's double quotes: \ " $ and ` escaped, everything else literal.
    assert lines["SECRET_KEY"] == '"a\\"b\\$c\\`d\\\\e #f g"'
    assert lines["KV_HOST"] == '"redis.internal"'
    assert lines["EVENT_STREAM_HOST"] == '"0.0.0.0"'
    assert lines["ZOU_EVENTS_ACCESS_LOG"] == '"true"'
    assert "KV_PASSWORD" not in lines  # empty: Zou's own value applies


def test_prometheus_job_reads_the_targets_of_every_host(custom_files: Path, tmp_path: Path) -> None:
    job = yaml.safe_load((custom_files / "prometheus/scrape_configs/zou-events.yml").read_text())
    [config] = job["scrape_configs"]
    assert config["job_name"] == "zou-events"  # the alert rules select this job name
    [pattern] = config["file_sd_configs"][0]["files"]
    [targets_file] = Path(pattern).parent.glob(Path(pattern).name)
    groups = yaml.safe_load(targets_file.read_text())
    # A wildcard bind is scraped on loopback; each instance is labelled by host name and port.
    assert [g["targets"] for g in groups] == [
        ["127.0.0.1:6001"],
        ["127.0.0.1:6002"],
        ["127.0.0.1:6003"],
    ]
    assert [g["labels"]["instance"] for g in groups] == [
        "localhost:6001",
        "localhost:6002",
        "localhost:6003",
    ]
    promtool = shutil.which("promtool")
    if promtool:  # Debian's prometheus package, installed by the observability tests' setup
        config_file = tmp_path / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(job))
        result = subprocess.run(
            [promtool, "check", "config", str(config_file)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_example_environment_names_are_documented() -> None:
    documented = (ROOT / "docs/configuration.md").read_text()
    example = (SYSTEMD_DIR / "zou-events.env.example").read_text()
    names = re.findall(r"^#?([A-Z][A-Z0-9_]+)=", example, re.MULTILINE)
    assert names
    for name in names:
        assert f"`{name}`" in documented, name
