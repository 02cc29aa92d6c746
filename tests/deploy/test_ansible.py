"""The Ansible role and playbook: lint, syntax, and argument checks that fail before any change.

The real runs (check mode, converge, idempotence, upgrade) are in test_e2e.py, against a real
systemd in a container.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.deploy.harness import ANSIBLE_DIR, deploy_tool, run_tool


def test_ansible_lint_passes_with_the_production_profile() -> None:
    result = run_tool(deploy_tool("ansible-lint"), "--offline")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Profile 'production' was required, and it passed" in output


def test_yamllint_passes() -> None:
    result = run_tool(deploy_tool("yamllint"), "--strict", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_playbook_syntax() -> None:
    result = run_tool(
        deploy_tool("ansible-playbook"),
        "-i",
        "inventory/example.yml",
        "--syntax-check",
        "playbook.yml",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_default_is_in_the_argument_spec() -> None:
    role = ANSIBLE_DIR / "roles" / "zou_events"
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text())
    spec = yaml.safe_load((role / "meta/argument_specs.yml").read_text())
    assert set(spec["argument_specs"]["main"]["options"]) == set(defaults)


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
    result = run_tool(
        deploy_tool("ansible-playbook"), "-i", inventory, "playbook.yml", "--check", *args
    )
    output = result.stdout + result.stderr
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
