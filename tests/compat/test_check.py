"""`zou-events check` against the real Zou 1.0.97 API: the mistakes it must name (issue 11).

Zou answers a token for an unknown person with 401 when it accepts its signature, and with
422 "Signature verification failed" when the key differs: the check tells the two apart.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import suite_redis
from tests.support.server import free_port, http_get, isolated_env, wait_until
from tests.support.zou_stack import ZouStack


def check(
    zou_api_url: str, secret_key: str, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ZOU_EVENTS_", "KV_", "EVENT_STREAM_")) and key != "SECRET_KEY"
    }
    env.update(
        {
            "SECRET_KEY": secret_key,
            **suite_redis.server_env(),
            **isolated_env(),
            "ZOU_EVENTS_ZOU_API_URL": zou_api_url,
        }
    )
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [sys.executable, "-m", "zou_events.cli", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_passes_with_zous_key(zou_stack: ZouStack) -> None:
    result = check(zou_stack.url, zou_stack.secret_key)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "zou api: ok (Zou 1.0.97)" in result.stdout
    assert "secret key: ok (" in result.stdout


def test_check_names_a_secret_key_that_is_not_zous(zou_stack: ZouStack) -> None:
    other_key = secrets.token_hex(32)
    result = check(zou_stack.url, other_key)
    assert result.returncode == 1, result.stdout
    assert "zou api: ok (Zou 1.0.97)" in result.stdout
    assert "secret key: FAILED (SecretKeyMismatch: " in result.stdout
    assert other_key not in result.stdout + result.stderr


@pytest.mark.parametrize("offset", [-300, 300])
def test_check_names_a_clock_that_differs_from_zous(
    zou_stack: ZouStack, tmp_path: Path, offset: int
) -> None:
    """This host's clock five minutes behind or ahead of Zou's (a sitecustomize shifts the
    check's own clock): Zou finds the check's token expired, or not yet valid."""
    (tmp_path / "sitecustomize.py").write_text(
        f"import time\n\n_real = time.time\ntime.time = lambda: _real() + {offset}\n"
    )
    result = check(zou_stack.url, zou_stack.secret_key, pythonpath=tmp_path)
    assert result.returncode == 1, result.stdout
    assert "secret key: FAILED (ClockSkew: " in result.stdout


@pytest.fixture
def pickle_era_zou(zou_stack: ZouStack, tmp_path: Path) -> Iterator[str]:
    """Zou's own API on the stack's database, reporting 0.20.76, the last release whose
    events went to Redis pickled (a sitecustomize sets ``zou.__version__`` before Zou reads
    it). Returns its URL."""
    (tmp_path / "sitecustomize.py").write_text("import zou\n\nzou.__version__ = '0.20.76'\n")
    port = free_port()
    env = {**zou_stack.env, "PYTHONPATH": f"{tmp_path}:{zou_stack.env['PYTHONPATH']}"}
    gunicorn = str(zou_stack.venv / "bin" / "gunicorn")
    process = subprocess.Popen(
        [gunicorn, "-w", "1", "-b", f"127.0.0.1:{port}", "zou.app:app"],
        cwd=zou_stack.workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: process.poll() is not None or http_get(url + "/") is not None,
            60,
            "the pickle-era Zou API",
            step=0.2,
        )
        assert process.poll() is None, "Zou's API exited"
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def test_check_names_a_zou_too_old_to_publish_json(
    zou_stack: ZouStack, pickle_era_zou: str
) -> None:
    result = check(pickle_era_zou, zou_stack.secret_key)
    assert result.returncode == 1, result.stdout
    assert "zou api: FAILED (ZouTooOld: Zou 0.20.76 publishes its events pickled" in result.stdout
    assert "secret key: not checked" in result.stdout
