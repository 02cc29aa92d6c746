"""The origin rule: the origin's host against Host / X-Forwarded-Host, ports ignored (issue 11)."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from zou_events import log_limit, metrics
from zou_events.origin import OriginPolicy, host_of, request_hosts


@pytest.fixture(autouse=True)
def fresh_log_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refusal lines share the process's misbehaviour budget: each test starts with its own."""
    monkeypatch.setattr(log_limit, "_misbehaviour", log_limit.LogLimiter())


def environ(host: str | None = None, forwarded: str | None = None) -> dict[str, Any]:
    env: dict[str, Any] = {}
    if host is not None:
        env["HTTP_HOST"] = host
    if forwarded is not None:
        env["HTTP_X_FORWARDED_HOST"] = forwarded
    return env


def refused_count() -> float:
    return metrics.connections_refused.labels("origin")._value.get()


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("kitsu.example.com", "kitsu.example.com"),
        ("Kitsu.Example.COM:8080", "kitsu.example.com"),
        ("kitsu.example.com.", "kitsu.example.com"),
        ("kitsu.example.com.:443", "kitsu.example.com"),
        ("http://kitsu.example.com:8080", "kitsu.example.com"),
        ("https://KITSU.example.com", "kitsu.example.com"),
        ("[::1]:8080", "::1"),
        ("http://[2001:DB8::1]:8080", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("192.0.2.7:5001", "192.0.2.7"),
        ("", None),
        ("null", "null"),  # a host named "null": the Origin of a sandboxed page never matches one
        ("http://", None),
        ("[::1", None),
        ("http://kitsu.example.com:99999", "kitsu.example.com"),
    ],
)
def test_host_of(value: str, host: str | None) -> None:
    assert host_of(value) == host


def test_request_hosts_gathers_host_and_every_forwarded_host() -> None:
    env = environ("127.0.0.1:5001", "kitsu.example.com:8080, proxy.internal ,")
    assert request_hosts(env) == {"127.0.0.1", "kitsu.example.com", "proxy.internal"}
    assert request_hosts({}) == set()


@pytest.mark.parametrize(
    ("origin", "env"),
    [
        # Zou's nginx block: Host $host drops the port Kitsu is served on.
        ("http://kitsu.example.com:8080", environ("kitsu.example.com")),
        ("http://kitsu.example.com", environ("kitsu.example.com:8080")),
        ("https://kitsu.example.com", environ("kitsu.example.com")),  # TLS ended by nginx
        ("http://KITSU.example.com:8080", environ("kitsu.example.com.")),
        ("http://[::1]:8080", environ("[::1]")),
        ("http://kitsu.example.com:8080", environ("127.0.0.1:5001", "kitsu.example.com")),
        # Proxies in a chain: the browser's host is one of the forwarded values.
        ("http://kitsu.example.com:8080", environ("10.0.0.2", "edge.internal, kitsu.example.com")),
    ],
)
def test_same_host_is_accepted_whatever_the_port(origin: str, env: dict[str, Any]) -> None:
    assert OriginPolicy(())(origin, env)


@pytest.mark.parametrize(
    ("origin", "env"),
    [
        ("http://evil.example.net:8080", environ("kitsu.example.com")),
        ("http://kitsu.example.com.evil.net", environ("kitsu.example.com")),
        ("http://example.com", environ("kitsu.example.com")),
        ("null", environ("kitsu.example.com")),
        ("null", environ("null")),  # a sandboxed page or a file has no host
        ("http://[::2]:8080", environ("[::1]:8080")),
        ("http://kitsu.example.com", environ()),
        ("http://kitsu.example.com", environ("[bad")),
    ],
)
def test_other_hosts_are_refused_and_counted(origin: str, env: dict[str, Any]) -> None:
    before = refused_count()
    assert not OriginPolicy(())(origin, env)
    assert refused_count() == before + 1


def test_the_allow_list_admits_exact_origins_and_star_admits_all() -> None:
    policy = OriginPolicy(("https://kitsu.example.com", "http://Review.Example.com:8080"))
    elsewhere = environ("events.internal")
    assert policy("https://kitsu.example.com", elsewhere)
    assert policy("http://review.example.com:8080", elsewhere)
    assert not policy("http://kitsu.example.com", elsewhere)  # another scheme: another origin
    assert not policy("http://review.example.com:9090", elsewhere)
    assert OriginPolicy(("*",))("http://anything.example", elsewhere)


def test_a_refused_origin_is_logged_once_with_the_setting_that_admits_it() -> None:
    policy = OriginPolicy((), remember=2)
    env = environ("kitsu.example.com")
    with capture_logs() as logs:
        for _ in range(3):
            policy("http://other.example.com:8080", env)
        policy("http://third.example.com", env)
    assert len(logs) == 2
    assert logs[0]["origin"] == "http://other.example.com:8080"
    assert logs[0]["host"] == "kitsu.example.com"
    assert logs[0]["admit_with"] == "ZOU_EVENTS_CORS_ALLOWED_ORIGINS=http://other.example.com:8080"


def test_memory_of_logged_origins_is_bounded() -> None:
    policy = OriginPolicy((), remember=2)
    env = environ("kitsu.example.com")
    with capture_logs() as logs:
        for origin in ("http://a.test", "http://b.test", "http://c.test", "http://a.test"):
            policy(origin, env)
        policy("http://" + "x" * 10_000 + ".test", env)
    # a.test was forgotten when c.test came, so it is logged again; the long one is cut.
    assert [entry["origin"][:13] for entry in logs] == [
        "http://a.test",
        "http://b.test",
        "http://c.test",
        "http://a.test",
        "http://xxxxxx",
    ]
    assert len(logs[-1]["origin"]) <= 200
    assert len(policy._logged) == 2


def test_no_origin_is_not_a_browser_and_not_a_refusal() -> None:
    """engineio asks the policy for its CORS headers even when a request has no Origin (gazu,
    desktop apps): nothing to allow, nothing counted."""
    before = refused_count()
    with capture_logs() as logs:
        assert not OriginPolicy(())(None, environ("kitsu.example.com"))
    assert refused_count() == before and logs == []


def test_a_client_varying_its_origin_cannot_flood_the_logs() -> None:
    policy = OriginPolicy(())
    before = refused_count()
    with capture_logs() as logs:
        for i in range(50):
            policy(f"http://o{i}.example.net", environ("kitsu.example.com"))
    assert refused_count() == before + 50  # every refusal counted, not every one logged
    assert len(logs) == log_limit.LINES_PER_INTERVAL
