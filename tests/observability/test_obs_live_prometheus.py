"""A real Prometheus (Debian's binary) scraping two running instances after some traffic:
every dashboard and alert expression returns data of the expected shape through its HTTP API,
and the alert rules load and evaluate."""

from __future__ import annotations

import math
import queue
import re
from collections.abc import Iterator
from typing import Any

import pytest
import socketio

from tests.conftest import ZouPublisher
from tests.observability.prometheus_server import Prometheus, Sample, running_prometheus
from tests.observability.promql import (
    ALERT_JOB,
    ALERTS,
    RECORDING_RULES,
    alert_rules,
    annotation_queries,
    dashboard_queries,
    selectors,
    substitute,
)
from tests.support.server import (
    ServerHandle,
    isolated_env,
    start_server,
    wait_until,
)
from tests.support.tokens import make_token
from zou_events import __version__


@pytest.fixture(scope="module")
def instances() -> Iterator[list[ServerHandle]]:
    """Two instances forming a cluster of their own: a channel and key prefix no other test
    run shares, so one of them is the reporter of the cluster-wide gauges (refreshed every
    heartbeat)."""
    env = {**isolated_env(), "ZOU_EVENTS_HEARTBEAT_SECONDS": "1"}
    with start_server(env) as first, start_server(env) as second:
        yield [first, second]


@pytest.fixture(scope="module")
def prometheus(
    instances: list[ServerHandle], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    targets = [f"127.0.0.1:{s.port}" for s in instances]
    directory = tmp_path_factory.mktemp("prometheus")
    with running_prometheus(directory, ALERT_JOB, targets, [ALERTS, RECORDING_RULES]) as server:
        yield server


@pytest.fixture(scope="module")
def traffic(instances: list[ServerHandle], prometheus: Prometheus) -> Iterator[None]:
    """On each instance: one WebSocket client that receives an event, one refused client; the
    first client opens and joins a review room (the live-reviews panel lists it)."""
    inbox: queue.Queue[str] = queue.Queue()
    clients = []
    try:
        for server in instances:
            client = socketio.Client(reconnection=False)
            client.on("task:update", lambda _data: inbox.put("task:update"), namespace="/events")
            client.connect(
                server.url,
                headers={"Authorization": f"Bearer {make_token(server.secret_key)}"},
                namespaces=["/events"],
                transports=["websocket"],
            )
            clients.append(client)
            with pytest.raises(socketio.exceptions.ConnectionError):
                socketio.Client(reconnection=False).connect(
                    server.url,
                    headers={"Authorization": "Bearer not-a-token"},
                    namespaces=["/events"],
                    transports=["websocket"],
                )
        ZouPublisher(instances[0].channel).emit("task:update", {"task_id": "t1"})
        for _ in instances:
            inbox.get(timeout=10)
        for event in ("open-playlist", "join"):
            clients[0].emit(f"preview-room:{event}", {"playlist_id": "p1"}, namespace="/events")
        listed = f'zou_events_review_room_people{{job="{ALERT_JOB}", room="p1"}} == 1'
        wait_until(lambda: bool(prometheus.query(listed)), 20, "the review room scraped")
        scraped = f'zou_events_delivery_seconds_count{{job="{ALERT_JOB}"}} > 0'
        wait_until(
            lambda: len(prometheus.query(scraped)) == len(instances), 20, "deliveries scraped"
        )
        cluster = f'sum(zou_events_instances_live{{job="{ALERT_JOB}"}}) == {len(instances)}'
        wait_until(lambda: bool(prometheus.query(cluster)), 20, "both instances seen in Redis")
        # the latency panels read the recording rules, evaluated every second here
        recorded = (
            "sum by (instance) (instance_le:zou_events_delivery_seconds_bucket:rate5m"
            f'{{job="{ALERT_JOB}", le="+Inf"}}) > 0'
        )
        wait_until(
            lambda: len(prometheus.query(recorded)) == len(instances), 20, "deliveries recorded"
        )
        yield
    finally:
        for client in clients:
            client.disconnect()


def ports_pattern(instances: list[ServerHandle]) -> str:
    return "|".join(f"127.0.0.1:{s.port}" for s in instances)


def value(sample: Sample) -> float:
    return float(sample["value"][1])


def test_every_dashboard_query_returns_series_its_legend_can_name(
    instances: list[ServerHandle], prometheus: Prometheus, traffic: None
) -> None:
    variables = {"job": ALERT_JOB, "host": ".*", "instance": ports_pattern(instances)}
    problems = []
    for query in dashboard_queries():
        result = prometheus.query(substitute(query.expr, variables))
        legend_labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", query.legend))
        if not result:
            problems.append(f"{query.panel} {query.ref_id}: no data")
        for sample in result:
            if missing := legend_labels - set(sample["metric"]):
                problems.append(f"{query.panel} {query.ref_id}: no label {missing}")
            value(sample)  # a number, NaN included (no observation yet)
    assert not problems


def test_dashboard_values_reflect_the_cluster_and_the_traffic(
    instances: list[ServerHandle], prometheus: Prometheus, traffic: None
) -> None:
    variables = {"job": ALERT_JOB, "host": ".*", "instance": ports_pattern(instances)}
    results = {
        (q.panel, q.ref_id): prometheus.query(substitute(q.expr, variables))
        for q in dashboard_queries()
    }

    def single(panel: str, ref_id: str = "A") -> float:
        (sample,) = results[panel, ref_id]
        return value(sample)

    assert single("Instances up") == 2
    assert single("Instances ready") == 2
    assert [(s["metric"]["version"], value(s)) for s in results["Versions", "A"]] == [
        (__version__, 2)
    ]
    assert single("Connected sockets") >= 2
    assert single("Deliveries /s") > 0
    assert sum(value(s) for s in results["Connections refused /s by reason", "A"]) > 0
    p50, p99 = single("Delivery latency", "A"), single("Delivery latency", "B")
    assert 0 <= p50 <= p99 < 5, (p50, p99)
    per_instance = results["Delivery latency", "C"]
    assert len(per_instance) == 2 and all(math.isfinite(value(s)) for s in per_instance)
    # cluster-wide gauges: one instance reports them, so sum() counts the cluster once
    reporters = prometheus.query(f'zou_events_instances_live{{job="{ALERT_JOB}"}} > 0')
    assert [value(s) for s in reporters] == [2]
    assert single("Instances seen in Redis") == 2
    sockets_limit = results["Sockets per instance and their limit", "B"]
    assert len(sockets_limit) == 2 and all(value(s) > 0 for s in sockets_limit)


def test_annotations_mark_each_instance_deployed_and_none_restarted(
    instances: list[ServerHandle], prometheus: Prometheus, traffic: None
) -> None:
    """Both instances started within the last 5 minutes: a deploy each, with its version
    (the legend), and no restart (their start times never changed)."""
    variables = {"job": ALERT_JOB, "host": ".*", "instance": ports_pattern(instances)}
    results = {
        q.panel: prometheus.query(substitute(q.expr, variables)) for q in annotation_queries()
    }
    deploys = results["annotation Deploys"]
    assert sorted(s["metric"]["instance"] for s in deploys) == sorted(
        f"127.0.0.1:{s.port}" for s in instances
    )
    assert {s["metric"]["version"] for s in deploys} == {__version__}
    assert results["annotation Restarts"] == []


def test_alerts_are_quiet_and_see_both_instances(
    instances: list[ServerHandle], prometheus: Prometheus, traffic: None
) -> None:
    expected = {f"127.0.0.1:{s.port}" for s in instances}
    for rule in alert_rules():
        assert prometheus.query(rule["expr"]) == [], rule["alert"]
        for name, matchers in selectors(rule["expr"]):
            seen = {s["metric"]["instance"] for s in prometheus.query(name + matchers)}
            assert seen == expected, (rule["alert"], name)


def test_alert_rules_load_and_evaluate(prometheus: Prometheus, traffic: None) -> None:
    def rules() -> list[dict[str, Any]]:
        return [r for g in prometheus.api("rules", type="alert")["groups"] for r in g["rules"]]

    wait_until(
        lambda: all(not r["lastEvaluation"].startswith("0001") for r in rules()),
        10,
        "a rule evaluation",
        step=0.2,
    )
    loaded = rules()
    assert [r["name"] for r in loaded] == [r["alert"] for r in alert_rules()]
    for rule in loaded:
        assert rule["health"] == "ok" and not rule.get("lastError"), rule
        assert rule["state"] == "inactive", rule
