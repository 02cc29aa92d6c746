"""The release artifacts: zou-events' sdist and wheel (`python -m build`, `twine check`), and the
Ansible collection (`ansible-galaxy collection build`, installed into an empty path). The
deployment tests install both: test_e2e.py deploys the wheel with the installed collection."""

from __future__ import annotations

import json
import re
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.deploy.harness import (
    ANSIBLE_DIR,
    COLLECTION,
    ROLE,
    ROOT,
    Release,
    artifact_members,
    build_release,
    deploy_tool,
    installed_collection,
    run_tool,
)

VERSION = re.search(
    r'^__version__ = "([^"]+)"$', (ROOT / "zou_events/__init__.py").read_text(), re.M
)[1]


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    return build_release(tmp_path_factory.mktemp("release"))


def test_the_version_is_written_once() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    # The collection is versioned as the release it deploys; ansible-galaxy needs it literally.
    assert yaml.safe_load((ANSIBLE_DIR / "galaxy.yml").read_text())["version"] == VERSION
    assert f"\n## {VERSION}\n" in (ANSIBLE_DIR / "CHANGELOG.md").read_text()


def test_sdist_and_wheel_pass_twine_check(release: Release) -> None:
    assert release.sdist.name == f"zou_events-{VERSION}.tar.gz"
    assert release.wheel.name == f"zou_events-{VERSION}-py3-none-any.whl"
    result = run_tool(deploy_tool("twine"), "check", "--strict", release.sdist, release.wheel)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_wheel_built_from_the_sdist_has_the_package_and_its_documentation(
    release: Release,
) -> None:
    with tarfile.open(release.sdist) as sdist:
        in_sdist = {Path(*Path(name).parts[1:]).as_posix() for name in sdist.getnames()}
    with zipfile.ZipFile(release.wheel) as wheel:
        in_wheel = set(wheel.namelist())
        metadata = wheel.read(f"zou_events-{VERSION}.dist-info/METADATA").decode()
        entry_points = wheel.read(f"zou_events-{VERSION}.dist-info/entry_points.txt").decode()
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "zou_events").rglob("*.py")}
    docs = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")}
    assert modules | docs | {"README.md", "pyproject.toml"} <= in_sdist
    assert modules <= in_wheel
    data = f"zou_events-{VERSION}.data/data/share/doc/zou-events"
    # The systemd units' Documentation= points at these.
    assert {f"{data}/{Path(d).name}" for d in docs | {"README.md"}} <= in_wheel
    assert "zou-events = zou_events.cli:main" in entry_points
    assert f"\nVersion: {VERSION}\n" in metadata
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert f"\nRequires-Python: {SpecifierSet(requires)}\n" in metadata
    assert "\nLicense-Expression: AGPL-3.0-or-later\n" in metadata


def test_the_collection_installs_with_its_dashboard_and_rules() -> None:
    collection = installed_collection()
    members = artifact_members(collection.artifact)
    assert collection.artifact.name == f"{COLLECTION.replace('.', '-')}-{VERSION}.tar.gz"
    manifest = json.loads((collection.root / "MANIFEST.json").read_text())["collection_info"]
    assert (manifest["namespace"], manifest["name"], manifest["version"]) == (
        *COLLECTION.split("."),
        VERSION,
    )
    assert {"README.md", "CHANGELOG.md", "meta/runtime.yml", "playbooks/deploy.yml"} <= members
    role = collection.root / "roles/zou_events"
    for shipped in ANSIBLE_DIR.glob("roles/zou_events/files/**/*"):
        if shipped.is_file():
            path = shipped.relative_to(ANSIBLE_DIR / "roles/zou_events")
            assert (role / path).read_bytes() == shipped.read_bytes(), path
    assert list(role.glob("files/dashboards/*.json")), "the Grafana dashboard ships in the role"
    assert list(role.glob("files/prometheus/*.yml")), "the Prometheus rules ship in the role"
    # Development files stay out.
    assert not {"ansible.cfg", ".ansible-lint", ".yamllint"} & members
    runtime = yaml.safe_load((collection.root / "meta/runtime.yml").read_text())
    core = run_tool(deploy_tool("ansible"), "--version").stdout.split("core ")[1].split("]")[0]
    assert Version(core) in SpecifierSet(runtime["requires_ansible"])


def test_the_installed_role_documents_its_arguments() -> None:
    collection = installed_collection()
    result = collection.run(deploy_tool("ansible-doc"), "-t", "role", "--json", ROLE)
    assert result.returncode == 0, result.stdout + result.stderr
    options = json.loads(result.stdout)[ROLE]["entry_points"]["main"]["options"]
    defaults = yaml.safe_load((ANSIBLE_DIR / "roles/zou_events/defaults/main.yml").read_text())
    assert set(options) == set(defaults)
