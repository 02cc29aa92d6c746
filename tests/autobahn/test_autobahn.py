"""Autobahn|Testsuite's fuzzing client, the standard RFC 6455 conformance suite, against an
echo server on the project's WebSocket driver (echo_app.py): every case of sections 1-7, 9
and 10 passes (issue 13). Sections 12 and 13 test compression, which is not negotiated.

wstest runs under Python 2.7, in the .venv-autobahn that scripts/setup.d/80-autobahn.sh makes.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ROOT, free_port, wait_until

WSTEST = ROOT / ".venv-autobahn" / "bin" / "wstest"
CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
AGENT = "zou-events"
# INFORMATIONAL: cases whose outcome the RFC leaves open (7.1.6, 7.13.x), reported only
PASSING = {"OK", "INFORMATIONAL"}


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def echo_port(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    with (tmp_path / "echo.log").open("wb") as log:
        process = subprocess.Popen(
            [
                *(
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-k",
                    "gevent",
                    "-w",
                    "1",
                    "--no-control-socket",
                ),
                *("-b", f"127.0.0.1:{port}", "--pythonpath", str(ROOT)),
                "tests.autobahn.echo_app:app",
            ],
            cwd=tmp_path,  # not zou-events' gunicorn.conf.py
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_until(lambda: process.poll() is not None or port_open(port), 20, "the echo server")
        assert process.poll() is None, (tmp_path / "echo.log").read_text()
        yield port
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_every_case_of_the_fuzzing_client_passes(tmp_path: Path, echo_port: int) -> None:
    assert WSTEST.exists(), "run scripts/setup.d/80-autobahn.sh"
    reports = tmp_path / "reports"
    spec = {
        "outdir": str(reports),
        "servers": [{"agent": AGENT, "url": f"ws://127.0.0.1:{echo_port}"}],
        "cases": CASES,
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    run = subprocess.run(
        [str(WSTEST), "-m", "fuzzingclient", "-s", "spec.json"],
        cwd=tmp_path,
        capture_output=True,
        timeout=1700,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads((reports / "index.json").read_text())[AGENT]
    assert len(results) > 250  # every case of those sections ran
    failed = {
        case: (result["behavior"], result["behaviorClose"])
        for case, result in results.items()
        if result["behavior"] not in PASSING or result["behaviorClose"] not in PASSING
    }
    assert not failed, failed
