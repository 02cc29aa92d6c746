"""Structured logs: one JSON object per line, bound fields, never a token (issue 5)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from socket import socket, socketpair

import pytest

from tests.conftest import ZouPublisher
from tests.support.js_client import JsClient
from tests.support.server import free_port, http_get, start_server, wait_until
from tests.support.tokens import make_token

REQUIRED = ("event", "level", "timestamp", "logger")
OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_every_line_is_json_with_bound_fields_and_no_secret() -> None:
    with start_server({"ZOU_EVENTS_ACCESS_LOG": "true"}) as server:
        zou_publisher = ZouPublisher(server.channel)
        person = "0d5f4c1e-1111-4222-8333-444455556666"
        token = make_token(server.secret_key, sub=person)
        expired = make_token(server.secret_key, sub=person, lifetime=-10)
        with JsClient(server.url, cookie=f"access_token_cookie={token}") as kitsu:
            kitsu.wait_type("connect")
            kitsu.emit("preview-room:open-playlist", {"playlist_id": "playlist-1"})
            kitsu.wait_event("preview-room:room-people-updated")
            seen = len(kitsu.seen)
            kitsu.emit("preview-room:room-updated", {"no": "playlist id"})
            # A socket's room events are handled in order: the answer to this one proves the
            # refused one was handled before the socket closes.
            kitsu.emit("preview-room:open-playlist", {"playlist_id": "playlist-1"})
            people = "preview-room:room-people-updated"
            kitsu.wait_for(lambda message: message.get("event") == people, since=seen)
            zou_publisher.emit("main:test", {})
            kitsu.wait_event("main:test")
        with JsClient(server.url, auth={"token": expired}) as refused:
            refused.wait_type("connect_error")
        with JsClient(server.url, cookie=f"access_token_cookie={expired}") as refused:
            refused.wait_type("connect_error")
        output = server.logs()
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines, "the server logged nothing"
    records = [json.loads(line) for line in lines]  # every line parses
    for record in records:
        assert all(field in record for field in REQUIRED), record
    by_event = {record["event"]: record for record in records}
    accepted = by_event["connection accepted"]
    assert accepted["person_id"] == person and accepted["namespace"] == "/events"
    assert accepted["sid"]
    refused_room = by_event["room event refused"]
    assert refused_room["person_id"] == person and refused_room["sid"] == accepted["sid"]
    assert refused_room["reason"] == "invalid_payload"
    assert any(r["logger"] == "gunicorn.access" and r.get("path") for r in records)
    assert any(r["logger"] == "gunicorn.error" for r in records)
    for secret in (token, expired, token.split(".")[2], "access_token_cookie="):
        assert secret not in output


def _records(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def _documented_recipes() -> list[str]:
    """The jq programs of docs/operations.md's "Where to look", as written there."""
    return re.findall(r"jq -cR '([^']+)'", OPERATIONS.read_text().split("## ", 2)[1])


def _jq(recipe: str, output: str) -> list[dict[str, object]]:
    """A recipe, run by jq itself over the lines `journalctl -o cat` prints."""
    jq = shutil.which("jq")
    if jq is None:
        pytest.skip("jq missing: run scripts/setup.d/71-jq.sh")
    result = subprocess.run(
        [jq, "-cR", recipe], input=output, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return _records(result.stdout)


def _configuration_error_output() -> str:
    """What `zou-events serve` writes when its configuration is unusable (exit code 2)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZOU_EVENTS_", "JOURNAL"))}
    result = subprocess.run(
        [sys.executable, "-m", "zou_events.cli", "serve"],
        env={**env, "SECRET_KEY": "k" * 32, "EVENT_STREAM_PORT": "not-a-port"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    return result.stdout + result.stderr


def test_documented_jq_recipes_read_every_line_configuration_errors_included() -> None:
    """docs/operations.md's recipes (everything not routine, one kind of line) over a failed
    start, a running instance whose Zou API is down, and a traceback on stderr."""
    with start_server({"ZOU_EVENTS_ZOU_API_URL": f"http://127.0.0.1:{free_port()}"}) as server:
        token = make_token(server.secret_key)
        with JsClient(server.url, auth={"token": token}) as refused:
            refused.wait_type("connect_error")
        output = _configuration_error_output() + server.logs()
    records = _records(output)  # every line is JSON, the configuration error's too
    config_error = next(r for r in records if r["event"] == "configuration error")
    assert config_error["level"] == "error" and "EVENT_STREAM_PORT" in str(config_error["error"])
    # what an interpreter that dies before its logging is set up prints on stderr
    output += "Traceback (most recent call last):\nModuleNotFoundError: No module named 'x'\n"
    not_routine, one_kind = _documented_recipes()
    not_info = _jq(not_routine, output)
    assert not_info == [r for r in records if r["level"] != "info"]
    assert config_error in not_info
    unreachable = _jq(one_kind, output)
    assert unreachable and all(r["level"] == "warning" for r in unreachable)


def _serve_into_stream(env: dict[str, str], port: int) -> tuple[subprocess.Popen[bytes], socket]:
    """`zou-events serve` whose stdout is a stream socket announced in JOURNAL_STREAM, as
    systemd connects a unit's stdout to journald; returns the process and our end."""
    ours, theirs = socketpair()
    stat = os.fstat(theirs.fileno())
    server_env = {k: v for k, v in os.environ.items() if not k.startswith("ZOU_EVENTS_")}
    server_env.update(env)
    server_env.update(
        {
            "JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}",
            "EVENT_STREAM_HOST": "127.0.0.1",
            "EVENT_STREAM_PORT": str(port),
            "ZOU_EVENTS_ZOU_API_URL": "",
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "zou_events.cli", "serve"],
        env=server_env,
        stdout=theirs.fileno(),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    theirs.close()
    return process, ours


def _read_all(stream: socket) -> str:
    with stream, stream.makefile("rb") as reader:
        return reader.read().decode()


def test_lines_to_the_journal_carry_their_syslog_priority() -> None:
    """With JOURNAL_STREAM naming stdout, each JSON line starts with `<priority>` (journald
    files it and strips it): warnings `<4>`, errors `<3>`, info `<6>`, gunicorn's lines too."""
    port = free_port()
    process, stream = _serve_into_stream(
        {"SECRET_KEY": "k" * 32, "ZOU_EVENTS_MODE": "standalone"}, port
    )
    try:
        ready = f"http://127.0.0.1:{port}/ready"
        wait_until(
            lambda: process.poll() is not None or getattr(http_get(ready), "status", 0) == 200,
            20,
            "the instance ready",
        )
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(20)
    failed, failed_stream = _serve_into_stream({"SECRET_KEY": ""}, free_port())
    failed.wait(20)
    assert failed.returncode == 2
    lines = [line for line in (_read_all(stream) + _read_all(failed_stream)).splitlines() if line]
    priorities = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}
    seen = set()
    for line in lines:
        match = re.fullmatch(r"<([0-7])>(\{.*\})", line)
        assert match, line
        record = json.loads(match[2])
        assert int(match[1]) == priorities[str(record["level"])], line
        seen.add((record["logger"], record["level"]))
    assert ("zou_events.cli", "warning") in seen  # standalone mode
    assert ("zou_events.config", "error") in seen  # SECRET_KEY missing
    assert any(logger == "gunicorn.error" for logger, _ in seen)
