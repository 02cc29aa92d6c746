"""Admission decided on the session table (issue 10): only a ``sid`` naming an open session
makes a request an old one; everything else reaching Engine.IO is a new session."""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import parse_qs

import pytest
from prometheus_client import REGISTRY

from zou_events.admission import Admission, AdmissionMiddleware, first_sid
from zou_events.waiting_room import WaitingRoom

OPEN_SID = "open-session"


def refused_count(reason: str) -> float:
    sample = "zou_events_connections_refused_total"
    return REGISTRY.get_sample_value(sample, {"reason": reason}) or 0.0


class Recorder:
    def __init__(self) -> None:
        self.status = ""
        self.served: list[dict[str, Any]] = []

    def app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.served.append(environ)
        start_response("200 OK", [])
        return [b"inner"]

    def start_response(self, status: str, _headers: list[tuple[str, str]]) -> None:
        self.status = status


def middleware(recorder: Recorder, max_sockets: int = 10, burst: int = 10) -> AdmissionMiddleware:
    admission = Admission(
        max_sockets,
        per_second=0.001,
        burst=burst,
        socket_count=lambda: 1,
        draining=lambda: False,
        loop_lag=lambda: 0.0,
        max_lag=1.0,
    )
    refuse_at_once = WaitingRoom(admission, capacity=0, max_wait=0.0)
    return AdmissionMiddleware(recorder.app, refuse_at_once.admit, {OPEN_SID}.__contains__)


def environ(path: str, query: str = "") -> dict[str, Any]:
    return {"PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": "GET"}


@pytest.mark.parametrize(
    "query",
    [
        "EIO=4&transport=polling",
        "EIO=4&transport=polling&sid=",  # engineio ignores a blank sid: a handshake
        "EIO=4&transport=polling&xsid=1",
        f"EIO=4&transport=polling&xsid={OPEN_SID}",
        "EIO=4&transport=polling&sid=closed-or-never-opened",
        f"EIO=4&transport=polling&sid=other&sid={OPEN_SID}",  # engineio reads the first
        f"EIO=4&transport=polling&sid={OPEN_SID}x",
    ],
)
def test_requests_naming_no_open_session_are_new(query: str) -> None:
    assert middleware(Recorder()).is_new_session(environ("/socket.io/", query))


@pytest.mark.parametrize(
    "query",
    [
        f"EIO=4&transport=polling&sid={OPEN_SID}",
        f"sid={OPEN_SID}&EIO=4&transport=websocket",
        f"EIO=4&transport=polling&sid={OPEN_SID}&sid=other",
    ],
)
def test_requests_of_an_open_session_are_not_new(query: str) -> None:
    assert not middleware(Recorder()).is_new_session(environ("/socket.io/", query))


def test_the_sid_is_read_as_engineio_reads_it() -> None:
    """first_sid against parse_qs (engineio's reading) over query strings made of the parts
    that matter: separators, blank values, repeats, percent-encoding and plus signs."""
    parts = ["sid", "=", "&", "s", "d", "x", "%", "2", "0", "+", ";", "%73id", "sid=", "EIO=4"]
    rng = random.Random(13)
    for _ in range(50_000):
        query = "".join(rng.choice(parts) for _ in range(rng.randint(0, 12)))
        values = parse_qs(query).get("sid")
        assert first_sid(query) == (values[0] if values else None), query


@pytest.mark.parametrize("path", ["/", "/health", "/metrics", "/socket.iox/", "/api/socket.io/"])
def test_other_paths_are_not_sessions(path: str) -> None:
    assert not middleware(Recorder()).is_new_session(environ(path, "EIO=4"))


def test_a_refused_handshake_gets_503_with_its_reason_and_never_reaches_engineio() -> None:
    recorder = Recorder()
    app = middleware(recorder, max_sockets=1)
    before = refused_count("over_capacity")
    body = app(environ("/socket.io/", "EIO=4&transport=polling&sid="), recorder.start_response)
    assert (recorder.status, body) == ("503 SERVICE UNAVAILABLE", [b"over_capacity"])
    assert recorder.served == []
    assert refused_count("over_capacity") == before + 1


def test_an_open_session_passes_without_spending_the_new_session_budget() -> None:
    recorder = Recorder()
    app = middleware(recorder, burst=1)
    for _ in range(5):
        app(environ("/socket.io/", f"EIO=4&sid={OPEN_SID}"), recorder.start_response)
    assert len(recorder.served) == 5
    app(environ("/socket.io/", "EIO=4&transport=polling"), recorder.start_response)
    assert recorder.status == "200 OK"  # the one token of the burst was still there
    body = app(environ("/socket.io/", "EIO=4&transport=polling"), recorder.start_response)
    assert body == [b"too_fast"]
