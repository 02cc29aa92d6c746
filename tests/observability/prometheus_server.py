"""A real Prometheus (Debian's binary) on a free loopback port, scraping given targets every
second, with its HTTP API for the live observability tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml

from tests.support.server import free_port, wait_until

Sample = dict[str, Any]


@dataclass(frozen=True)
class Prometheus:
    url: str

    def api(self, path: str, **fields: str) -> Any:
        response = urllib3.request(
            "GET", f"{self.url}/api/v1/{path}", fields=fields, timeout=5, retries=False
        )
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[Sample]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        return data["result"]

    def answers(self) -> bool:
        try:
            response = urllib3.request("GET", f"{self.url}/-/ready", timeout=1, retries=False)
        except urllib3.exceptions.HTTPError:
            return False
        return response.status == 200


@contextlib.contextmanager
def prometheus_process(config_file: Path, directory: Path) -> Iterator[Prometheus]:
    """Prometheus run on ``config_file`` (data and log in ``directory``); yields once ready."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus missing: run scripts/setup.d/70-observability.sh")
    port = free_port()
    with (directory / "prometheus.log").open("w") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        wait_until(lambda: process.poll() is not None or server.answers(), 20, "prometheus")
        assert process.poll() is None, (directory / "prometheus.log").read_text()
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


@contextlib.contextmanager
def running_prometheus(
    directory: Path, job: str, targets: list[str], rule_files: list[Path] | None = None
) -> Iterator[Prometheus]:
    """Prometheus scraping ``targets`` as ``job``; yields once every target is up."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in rule_files or []],
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": targets}],
            }
        ],
    }
    config_file = directory / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    with prometheus_process(config_file, directory) as server:
        wait_until(
            lambda: len(server.query(f'up{{job="{job}"}} == 1')) == len(targets),
            20,
            "every target up",
            step=0.2,
        )
        yield server
