"""A ZOU_EVENTS_* variable that is no setting (a typo, the commonest misconfiguration) is
named at start, with the closest setting, by the server's log and by `zou-events check`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.server import start_server

TYPO, MEANT = "ZOU_EVENTS_MAX_SOCKET", "ZOU_EVENTS_MAX_SOCKETS"
VALUE = "value-that-may-be-a-secret"


def test_a_server_start_warns_about_an_unknown_variable() -> None:
    with start_server({TYPO: VALUE}) as server:
        logs = server.logs()  # `serve` logs before gunicorn starts: all there once ready
    records = [json.loads(line) for line in logs.splitlines() if line.strip()]
    [warning] = [r for r in records if r.get("event") == "unknown variable ignored"]
    assert (warning["level"], warning["variable"], warning["did_you_mean"]) == (
        "warning",
        TYPO,
        MEANT,
    )
    assert VALUE not in logs


def test_check_names_an_unknown_variable_and_still_passes() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ZOU_EVENTS_")}
    result = subprocess.run(
        [sys.executable, "-m", "zou_events.cli", "check"],
        env={
            **env,
            "SECRET_KEY": "k" * 64,
            "ZOU_EVENTS_MODE": "standalone",
            "ZOU_EVENTS_ZOU_API_URL": "",
            TYPO: VALUE,
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"configuration: {TYPO} is no setting, ignored (did you mean {MEANT}?)" in (
        result.stdout.splitlines()
    )
    assert VALUE not in result.stdout + result.stderr
