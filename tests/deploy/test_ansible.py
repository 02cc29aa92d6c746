"""The Ansible collection's role and playbook: lint, syntax, the distributions' variables, and
argument checks that fail before any change. Playbooks run from the built and installed
collection (harness.installed_collection).

The real runs (check mode, converge, idempotence, upgrade) are in test_e2e.py, against a real
systemd in a container.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from tests.deploy.harness import (
    ANSIBLE_DIR,
    PLAYBOOK,
    ROOT,
    deploy_tool,
    installed_collection,
    run_playbook,
    run_tool,
)
from tests.deploy.test_units import render_role

ROLE_DIR = ANSIBLE_DIR / "roles" / "zou_events"


def test_ansible_lint_passes_with_the_production_profile() -> None:
    # Offline, ansible-lint does not install the collection it lints: the playbook's role is
    # found in the installed artifact.
    result = run_tool(
        deploy_tool("ansible-lint"), "--offline", collections=installed_collection().path
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Profile 'production' was required, and it passed" in output


def test_yamllint_passes() -> None:
    result = run_tool(deploy_tool("yamllint"), "--strict", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_playbook_syntax() -> None:
    collection = installed_collection()
    result = collection.run(
        deploy_tool("ansible-playbook"),
        "-i",
        collection.root / "inventory/example.yml",
        "--syntax-check",
        PLAYBOOK,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_default_is_in_the_argument_spec() -> None:
    defaults = yaml.safe_load((ROLE_DIR / "defaults/main.yml").read_text())
    spec = yaml.safe_load((ROLE_DIR / "meta/argument_specs.yml").read_text())
    assert set(spec["argument_specs"]["main"]["options"]) == set(defaults)


# The Python of each distribution the role supports (their archives: Ubuntu's cannot be reached
# from this machine, so the Ubuntu variables are tested here, rendered, and not deployed).
SYSTEM_PYTHON = {
    "Debian-12": "3.11",
    "Debian-13": "3.13",
    "Ubuntu-22.04": "3.10",
    "Ubuntu-24.04": "3.12",
}


def platform_choices(tmp_path: Path, platform: str, **overrides: object) -> dict[str, object]:
    """What the role installs the virtualenv with on ``platform`` (tests/deploy/platform.yml)."""
    out = tmp_path / f"{platform}-{len(overrides)}.json"
    result = installed_collection().run(
        deploy_tool("ansible-playbook"),
        ROOT / "tests/deploy/platform.yml",
        "-e",
        json.dumps({"_zou_events_platform": platform, "out": str(out), **overrides}),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(out.read_text())


def test_every_supported_distribution_gets_a_python_zou_events_supports(tmp_path: Path) -> None:
    requires = SpecifierSet(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    )
    role_vars = yaml.safe_load((ROLE_DIR / "vars/main.yml").read_text())
    assert set(role_vars["_zou_events_platforms"]) == set(SYSTEM_PYTHON)
    assert {p.stem for p in (ROLE_DIR / "vars").glob("*-*.yml")} == set(SYSTEM_PYTHON)
    # The preflight's minimum is requires-python's.
    assert requires == SpecifierSet(f">={role_vars['_zou_events_python_minimum']}")
    for platform, version in SYSTEM_PYTHON.items():
        assert platform_choices(tmp_path, platform) == {
            "python": "/usr/bin/python3",
            "packages": ["python3-venv"],
        }, platform
        assert requires.contains(version), f"{platform}'s Python {version} is not supported"
    # Zou's setup guide on Ubuntu 22.04: Python 3.12 from the deadsnakes PPA.
    deadsnakes = {"python": "/usr/bin/python3.12", "packages": ["python3.12-venv"]}
    assert (
        platform_choices(
            tmp_path,
            "Ubuntu-22.04",
            zou_events_python=deadsnakes["python"],
            zou_events_python_packages=deadsnakes["packages"],
        )
        == deadsnakes
    )


def test_an_unsupported_distribution_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        AssertionError, match="Debian-11 is not supported; the role knows Debian-12"
    ):
        platform_choices(tmp_path, "Debian-11")


def test_the_galaxy_platforms_are_the_supported_distributions() -> None:
    platforms = yaml.safe_load((ROLE_DIR / "meta/main.yml").read_text())["galaxy_info"]["platforms"]
    releases = {"bookworm": "12", "trixie": "13", "jammy": "22.04", "noble": "24.04"}
    declared = {f"{p['name']}-{releases[v]}" for p in platforms for v in p["versions"]}
    assert declared == set(SYSTEM_PYTHON)


def refused(tmp_path: Path, *extra_vars: str) -> str:
    """Runs the playbook on this host, where it must stop before changing anything."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "zou_events": {
                    "hosts": {
                        "localhost": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                        }
                    }
                }
            }
        )
    )
    args = [arg for var in extra_vars for arg in ("-e", var)]
    result = run_playbook(inventory, "--check", *args)
    output = result.output
    assert result.returncode != 0, output
    assert "changed=0" in output
    return output


def test_arguments_of_the_wrong_type_are_refused(tmp_path: Path) -> None:
    output = refused(tmp_path, "zou_events_pip_spec=zou-events==0.1.0", "zou_events_instances=two")
    assert "Validating arguments against arg spec" in output
    assert "zou_events_instances" in output


def test_zou_insecure_default_secret_and_a_missing_wheel_are_refused(tmp_path: Path) -> None:
    output = refused(
        tmp_path, "zou_events_pip_spec=zou-events==0.1.0", "zou_events_secret_key=mysecretkey"
    )
    assert "insecure default SECRET_KEY is refused" in output
    output = refused(tmp_path, f"zou_events_wheel={tmp_path}/zou_events-9-py3-none-any.whl")
    assert "zou_events_wheel must be a zou_events-<version>-*.whl file" in output


class NginxRouting:
    """The rendered nginx files, evaluated as nginx does: the map from ``$arg_sid`` to an
    upstream (regex keys in order, else the default), and each upstream's servers."""

    def __init__(self, files: Path) -> None:
        text = (files / "nginx/conf.d/zou-events-upstream.conf").read_text()
        [(self.variable, body)] = re.findall(
            r"^map \$arg_sid (\$\w+) \{\n(.*?)^\}", text, re.M | re.S
        )
        entries = re.findall(r"^\s+(\S+) (\S+);$", body, re.M)
        self.default = dict(entries).pop("default")
        self.routes = [(key.removeprefix("~"), name) for key, name in entries if key != "default"]
        self.upstreams = {
            name: re.findall(r"^\s+server (\S+?)[ ;]", block, re.M)
            for name, block in re.findall(r"^upstream (\S+) \{\n(.*?)^\}", text, re.M | re.S)
        }
        self.location = (files / "nginx/snippets/zou-events.conf").read_text()

    def servers(self, sid: str) -> list[str]:
        """Where a request with ``sid`` (empty: a handshake) may go."""
        name = next((n for key, n in self.routes if re.search(key, sid)), self.default)
        return self.upstreams[name]


def tag_of(host: str) -> str:
    """The role's default instance tag of an inventory host."""
    return hashlib.sha1(host.encode()).hexdigest()[:6]


def env_tag(files: Path) -> str:
    [tag] = re.findall(
        r'^ZOU_EVENTS_INSTANCE_TAG="(.*)"$', (files / "etc/zou-events.env").read_text(), re.M
    )
    return tag


@pytest.mark.parametrize("instances", [1, 3])
def test_nginx_sends_each_session_to_its_instance_and_balances_handshakes(
    tmp_path: Path, instances: int
) -> None:
    files = render_role(tmp_path, zou_events_instances=instances, zou_events_base_port=6001)
    nginx = NginxRouting(files)
    tag = env_tag(files)  # what the instances put in their session ids
    assert tag == tag_of("localhost")
    ports = range(6001, 6001 + instances)
    everyone = [f"127.0.0.1:{port}" for port in ports]
    for port in ports:
        assert nginx.servers(f"{tag}-{port}.Ab_cD-eF0123456789xyz") == [f"127.0.0.1:{port}"]
    # Handshakes, and ids naming no instance here (forged, another deployment's, garbage): the
    # balanced upstream, whose instance answers 400 "Invalid session".
    for sid in ("", f"{tag}-9999.x", f"x{tag}-6001.x", f"{tag}-6001", "%2e", "a" * 300):
        assert nginx.servers(sid) == everyone, sid
    assert "hash" not in (files / "nginx/conf.d/zou-events-upstream.conf").read_text()
    assert f"proxy_pass http://{nginx.variable};" in nginx.location
    assert "proxy_next_upstream error timeout http_503;" in nginx.location
    assert 'proxy_set_header Connection "upgrade";' in nginx.location


def multi_host_inventory(tmp_path: Path, **hosts: dict[str, object]) -> str:
    """nginx on ``localhost``, serving the instances of ``hosts`` (never contacted)."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "localhost": {
                            "ansible_connection": "local",
                            "zou_events_nginx_hosts": list(hosts),
                        },
                        **hosts,
                    },
                    "vars": {"zou_events_instances": 2},
                }
            }
        )
    )
    return str(inventory)


def test_nginx_routes_to_instances_on_several_hosts(tmp_path: Path) -> None:
    inventory = multi_host_inventory(
        tmp_path,
        # A wildcard bind: reached at the inventory's address.
        **{"events-a.studio": {"ansible_host": "10.0.0.11", "zou_events_bind_host": "0.0.0.0"}},
        events_b={"zou_events_bind_host": "10.0.0.12", "zou_events_instance_tag": "b2"},
        events_c={
            "zou_events_nginx_address": "fd00::13",
            "zou_events_base_port": 7001,
            "zou_events_instances": 1,
        },
    )
    nginx = NginxRouting(render_role(tmp_path / "files", inventory))
    instances = {
        f"{tag_of('events-a.studio')}-5001": "10.0.0.11:5001",
        f"{tag_of('events-a.studio')}-5002": "10.0.0.11:5002",
        "b2-5001": "10.0.0.12:5001",
        "b2-5002": "10.0.0.12:5002",
        f"{tag_of('events_c')}-7001": "[fd00::13]:7001",
    }
    for name, server in instances.items():
        assert nginx.servers(f"{name}.Ab_cD-eF0123456789xyz") == [server]
    assert sorted(nginx.servers("")) == sorted(instances.values())
    assert nginx.servers("zz-5001.Ab_cD-eF0123456789xyz") == nginx.servers("")


def test_hosts_nginx_cannot_reach_or_tell_apart_are_refused(tmp_path: Path) -> None:
    loopback = multi_host_inventory(tmp_path, events_a={}, events_b={})  # default bind: loopback
    with pytest.raises(AssertionError, match="cannot reach the instances of events_a"):
        render_role(tmp_path / "loopback", loopback)
    twins = multi_host_inventory(
        tmp_path,
        events_a={"zou_events_bind_host": "10.0.0.11", "zou_events_instance_tag": "same"},
        events_b={"zou_events_bind_host": "10.0.0.12", "zou_events_instance_tag": "same"},
    )
    with pytest.raises(AssertionError, match="needs a zou_events_instance_tag of its own"):
        render_role(tmp_path / "twins", twins)
