"""Polling POST bodies bounded in size, time and shape before engineio sees them (issue 10)."""

from __future__ import annotations

import io
from typing import Any

import gevent
import pytest

from zou_events.strict_json import read_engineio_packets_strictly
from zou_events.transport.polling_guard import PollingGuard

MAX_BYTES = 8192

# As in the server (EventServer installs it, process-wide): without this, what these tests
# see would depend on whether another test of the session built a server first.
read_engineio_packets_strictly()


class Stalled:
    """A body whose client stopped sending."""

    def read(self, _size: int) -> bytes:
        gevent.sleep(60)
        return b""


class Inner:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.bodies.append(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
        start_response("200 OK", [])
        return [b"ok"]


def post(body: Any, length: int | None, path: str = "/socket.io/") -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "wsgi.input": io.BytesIO(body) if isinstance(body, bytes) else body,
    }
    if length is not None:
        environ["CONTENT_LENGTH"] = str(length)
    return environ


def call(environ: dict[str, Any], timeout: float = 5.0) -> tuple[str, list[bytes], Inner]:
    inner = Inner()
    statuses: list[str] = []
    body = PollingGuard(inner, MAX_BYTES, timeout)(
        environ, lambda status, _headers: statuses.append(status)
    )
    return statuses[0], list(body), inner


def test_a_valid_body_reaches_engineio_from_memory() -> None:
    payload = b'40/events,{"token":"t"}\x1e42/events,["x"]'
    status, _, inner = call(post(payload, len(payload)))
    assert status == "200 OK"
    assert inner.bodies == [payload]


def test_a_chunked_body_is_read_up_to_the_limit() -> None:
    assert call(post(b"3", None))[0] == "200 OK"
    assert call(post(b"4" + b"x" * MAX_BYTES, None))[:2] == ("400 BAD REQUEST", [b"too_large"])


def test_an_announced_body_over_the_limit_is_refused_unread() -> None:
    stalled = Stalled()  # would block if read
    assert call(post(stalled, MAX_BYTES + 1))[:2] == ("400 BAD REQUEST", [b"too_large"])


def test_a_stalled_body_gets_408_after_the_timeout() -> None:
    with gevent.Timeout(2):
        assert call(post(Stalled(), 10), timeout=0.05)[:2] == (
            "408 REQUEST TIMEOUT",
            [b"body_timeout"],
        )


@pytest.mark.parametrize(
    "payload",
    [b"4\xff", b"", b"x", b"4\x1e", b"\x1e".join([b"3"] * 17)],
)
def test_an_undecodable_or_truncated_body_is_400(payload: bytes) -> None:
    announced = len(payload) if payload else 5  # the empty one: the client closed early
    status, body, inner = call(post(payload, announced))
    assert (status, body, inner.bodies) == ("400 BAD REQUEST", [b"invalid_body"], [])


def test_a_message_nested_past_the_recursion_limit_reaches_engineio() -> None:
    # Engine.IO messages are read with the bounded JSON (strict_json): such a message is no
    # longer an undecodable body but a packet python-socketio refuses, dropped and counted
    # (zou_events_client_packets_dropped_total) while the session goes on.
    payload = b"4" + b"[" * 3000 + b"]" * 3000
    status, _, inner = call(post(payload, len(payload)))
    assert status == "200 OK"
    assert inner.bodies == [payload]


@pytest.mark.parametrize("environ", [post(b"x", 1, path="/metrics"), {"REQUEST_METHOD": "GET"}])
def test_other_requests_pass_untouched(environ: dict[str, Any]) -> None:
    inner_calls: list[dict[str, Any]] = []

    def inner(env: dict[str, Any], start_response: Any) -> list[bytes]:
        inner_calls.append(env)
        return []

    PollingGuard(inner, MAX_BYTES, 1.0)(environ, lambda *_: None)
    assert inner_calls == [environ]
