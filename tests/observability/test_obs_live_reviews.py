"""The live-reviews panel against a real Prometheus and the real Zou API: two instances of one
cluster, each with its metrics listener, Kitsu users (logged in to Zou) in two review rooms.
The panel's own queries list the room with Zou's production and playlist names, its people,
sockets and age, capped at ZOU_EVENTS_METRICS_ROOMS_MAX; the series go when the room closes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import socketio

from tests.observability.prometheus_server import Prometheus, Sample, running_prometheus
from tests.observability.promql import dashboard_queries, substitute
from tests.support.server import (
    ServerHandle,
    free_port,
    http_get,
    isolated_env,
    start_server,
    wait_until,
)
from tests.support.zou_stack import ZouStack

JOB = "zou-events-live-reviews"
POLLING = "/socket.io/?EIO=4&transport=polling"
PANEL = "Live reviews"


@pytest.fixture(scope="module")
def cluster(zou_stack: ZouStack) -> Iterator[list[tuple[ServerHandle, int]]]:
    """Two instances (and their metrics ports) asking the real Zou API, listing one room."""
    env = {
        **isolated_env(),
        "SECRET_KEY": zou_stack.secret_key,
        "ZOU_EVENTS_ZOU_API_URL": zou_stack.url,
        "ZOU_EVENTS_HEARTBEAT_SECONDS": "1",
        "ZOU_EVENTS_METRICS_ROOMS_MAX": "1",
    }
    with ExitStack() as stack:
        instances = []
        for _ in range(2):
            metrics_port = free_port()
            server = start_server({**env, "ZOU_EVENTS_METRICS_PORT": str(metrics_port)})
            instances.append((stack.enter_context(server), metrics_port))
        yield instances


@pytest.fixture(scope="module")
def prometheus(
    cluster: list[tuple[ServerHandle, int]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    targets = [f"127.0.0.1:{metrics_port}" for _, metrics_port in cluster]
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), JOB, targets) as server:
        yield server


def reviewer(server: ServerHandle, token: str, room: str) -> socketio.Client:
    """A Kitsu tab that opens and joins a review room."""
    client = socketio.Client(reconnection=False)
    client.connect(
        server.url,
        headers={"Authorization": f"Bearer {token}"},
        namespaces=["/events"],
        transports=["websocket"],
    )
    for event in ("open-playlist", "join"):
        client.emit(f"preview-room:{event}", {"playlist_id": room}, namespace="/events")
    return client


def panel_rows(prometheus: Prometheus, cluster: list[tuple[ServerHandle, int]]) -> list[Sample]:
    """The panel's queries as Grafana sends them, merged by room as its transformation does."""
    instances = "|".join(f"127.0.0.1:{metrics_port}" for _, metrics_port in cluster)
    variables = {"job": JOB, "host": ".*", "instance": instances}
    queries = [q for q in dashboard_queries() if q.panel == PANEL]
    assert [q.ref_id for q in queries] == ["A", "B", "C"]
    people, sockets, age = (prometheus.query(substitute(q.expr, variables)) for q in queries)
    by_room = {s["metric"]["room"]: {"room": s["metric"]["room"]} for s in people}
    for sample in people:
        row = by_room[sample["metric"]["room"]]
        row.update(
            # Prometheus drops empty labels: names not known yet
            project=sample["metric"].get("project", ""),
            playlist=sample["metric"].get("playlist", ""),
            people=float(sample["value"][1]),
        )
    for column, samples in (("sockets", sockets), ("age", age)):
        for sample in samples:
            by_room.setdefault(sample["metric"]["room"], {})[column] = float(sample["value"][1])
    return list(by_room.values())


def names_from_zou(zou: ZouStack, token: str, playlist_id: str) -> tuple[str, str]:
    playlist = zou.api("GET", f"/data/playlists/{playlist_id}", token).json()
    project = zou.api("GET", f"/data/projects/{playlist['project_id']}", token).json()
    return project["name"], playlist["name"]


def test_the_panel_lists_the_most_attended_room_with_zous_names_until_it_closes(
    zou_stack: ZouStack, cluster: list[tuple[ServerHandle, int]], prometheus: Prometheus
) -> None:
    (first, _), (second, _) = cluster
    seed = zou_stack.seed
    admin, member = zou_stack.login("admin")[0], zou_stack.login("member")[0]
    project, playlist = names_from_zou(zou_stack, admin, seed.playlist_id)
    started = time.time()
    tabs = [
        reviewer(first, member, seed.playlist_id),  # two people, over both instances
        reviewer(second, admin, seed.playlist_id),
        reviewer(first, admin, seed.client_playlist_id),  # one person: over the cap of 1
    ]
    try:
        expected = {
            "room": seed.playlist_id,
            "project": project,
            "playlist": playlist,
            "people": 2.0,
            "sockets": 2.0,
        }

        def listed() -> bool:
            rows = panel_rows(prometheus, cluster)
            return len(rows) == 1 and expected.items() <= rows[0].items()

        wait_until(listed, 30, "the room listed with Zou's names", step=0.5)
        (row,) = panel_rows(prometheus, cluster)
        assert 0 <= row["age"] <= time.time() - started + 2  # Redis's clock, whole seconds
        total = prometheus.query(f'sum(zou_events_rooms_open{{job="{JOB}"}})')
        assert float(total[0]["value"][1]) == 2  # both rooms open, one listed
    finally:
        for tab in tabs:
            tab.disconnect()
    wait_until(lambda: panel_rows(prometheus, cluster) == [], 30, "the rooms gone", step=0.5)


def test_metrics_listener_serves_monitoring_only_and_the_main_port_no_metrics(
    cluster: list[tuple[ServerHandle, int]], prometheus: Prometheus
) -> None:
    server, metrics_port = cluster[0]
    listener = f"http://127.0.0.1:{metrics_port}"
    status = {
        (where, path): getattr(http_get(base + path), "status", None)
        for where, base in (("main", server.url), ("listener", listener))
        for path in ("/metrics", "/health", "/ready", "/stats", POLLING)
    }
    assert status == {
        ("main", "/metrics"): 404,
        ("main", "/health"): 200,
        ("main", "/ready"): 200,
        ("main", "/stats"): 200,
        ("main", POLLING): 200,
        ("listener", "/metrics"): 200,
        ("listener", "/health"): 200,
        ("listener", "/ready"): 200,
        ("listener", "/stats"): 404,
        ("listener", POLLING): 404,
    }
    up = prometheus.query(f'up{{job="{JOB}"}} == 1')
    assert {s["metric"]["instance"] for s in up} == {f"127.0.0.1:{p}" for _, p in cluster}
