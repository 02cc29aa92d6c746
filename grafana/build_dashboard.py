"""Generate the zou-events Grafana dashboard, shipped in the Ansible role
(ansible/roles/zou_events/files/dashboards/zou-events.json).

The JSON is committed; regenerate it after editing this file (dev extra installed):

    python grafana/build_dashboard.py          # rewrite the JSON
    python grafana/build_dashboard.py --check  # exit 1 when the committed JSON is stale

Every query filters on the `job`, `host` and `instance` variables and goes through the
`datasource` variable, so the file provisions as is (no `__inputs`, which only the import wizard
resolves). The latency panels read the recording rules of files/prometheus/rules.yml.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from string import ascii_uppercase
from typing import TypeVar

from grafana_foundation_sdk.builders import (
    bargauge,
    common,
    dashboard,
    prometheus,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models import prometheus as prometheus_models

from zou_events.metrics import ROOM_SIZE_BUCKETS

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "ansible" / "roles" / "zou_events" / "files" / "dashboards" / "zou-events.json"
UID = "zou-events"
DATASOURCE = models.DataSourceRef(type_val="prometheus", uid="${datasource}")
SELECTOR = 'job=~"$job", host=~"$host", instance=~"$instance"'
ZOU_API_FAILURES = 'outcome=~"error|timeout|circuit_open"'


def series(metric: str, *matchers: str) -> str:
    """A selector restricted to the chosen jobs and instances."""
    return f"{metric}{{{', '.join((SELECTOR, *matchers))}}}"


def rate(metric: str, *matchers: str) -> str:
    return f"rate({series(metric, *matchers)}[$__rate_interval])"


def quantile(q: float, histogram: str, by: str = "") -> str:
    """From the per-instance bucket rates recorded every evaluation (files/prometheus/rules.yml):
    a dashboard refresh reads one series per bucket and instance instead of raw buckets."""
    labels = f"{by}, le" if by else "le"
    level = "instance_endpoint_le" if "endpoint" in by else "instance_le"
    recorded = series(f"{level}:{histogram}_bucket:rate5m")
    return f"histogram_quantile({q}, sum by ({labels}) ({recorded}))"


class PrometheusAnnotation(models.AnnotationQuery):
    """An annotation query with the Prometheus datasource's own fields, which the SDK's
    generic model lacks: each series point becomes an event titled and tagged from labels."""

    def __init__(self, name: str, color: str, expr: str, title: str, text: str) -> None:
        super().__init__(name=name, datasource=DATASOURCE, enable=True, icon_color=color, expr=expr)
        self.title_format = title
        self.text_format = text

    def to_json(self) -> dict[str, object]:
        return {
            **super().to_json(),
            "step": "1m",
            "titleFormat": self.title_format,
            "textFormat": self.text_format,
            "tagKeys": "host,instance",
            "useValueForTime": False,
        }


def annotations() -> list[PrometheusAnnotation]:
    """Restarts (a new process start time) and deploys (a version an instance did not run
    5 minutes earlier), drawn on every panel."""
    by = "by (job, host, instance, version)"
    return [
        PrometheusAnnotation(
            "Restarts",
            "orange",
            f"changes({series('process_start_time_seconds')}[2m]) > 0",
            "Restart",
            "{{instance}} restarted",
        ),
        PrometheusAnnotation(
            "Deploys",
            "purple",
            f"count {by} ({series('zou_events_build_info')})"
            f" unless count {by} ({series('zou_events_build_info')} offset 5m)",
            "Deploy",
            "{{instance}} runs {{version}}",
        ),
    ]


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str
    table: bool = False  # an instant query in table format, one row per series


Panel = Builder[models.Panel]
P = TypeVar("P", bound=Panel)


def with_queries(panel: P, title: str, description: str, queries: list[Query]) -> P:
    panel.title(title).description(description).datasource(DATASOURCE)
    for index, query in enumerate(queries):
        target = (
            prometheus.Dataquery()
            .expr(query.expr)
            .legend_format(query.legend)
            .ref_id(ascii_uppercase[index])
            .datasource(DATASOURCE)
        )
        if query.table:
            target.instant().format(prometheus_models.PromQueryFormat.TABLE)
        panel.with_target(target)
    return panel


def graph(
    title: str,
    description: str,
    unit: str,
    *queries: Query,
    width: int = 12,
    stacked: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .unit(unit)
        .min(0)
        .fill_opacity(10)
        .span(width)
        .height(8)
        .legend(
            common.VizLegendOptions()
            .show_legend(True)
            .display_mode(common_models.LegendDisplayMode.LIST)
        )
        .tooltip(
            common.VizTooltipOptions()
            .mode(common_models.TooltipDisplayMode.MULTI)
            .sort(common_models.SortOrder.DESCENDING)
        )
    )
    if stacked:
        panel.stacking(common.StackingConfig().mode(common_models.StackingMode.NORMAL))
    return with_queries(panel, title, description, list(queries))


def with_limit_lines(panel: timeseries.Panel) -> timeseries.Panel:
    """Series whose legend ends in "limit" drawn as dashed lines without fill."""
    return panel.override_by_regexp(
        ".* limit$",
        [
            models.DynamicConfigValue("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
            models.DynamicConfigValue("custom.fillOpacity", 0),
        ],
    )


def single(title: str, description: str, query: Query, unit: str = "none") -> stat.Panel:
    panel = (
        stat.Panel()
        .unit(unit)
        .span(3)
        .height(4)
        .graph_mode(common_models.BigValueGraphMode.AREA)
        # Grafana's default thresholds would turn any value above 80 red.
        .color_scheme(
            dashboard.FieldColor().mode(models.FieldColorModeId.FIXED).fixed_color("blue")
        )
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    return with_queries(panel, title, description, [query])


def states(
    title: str, description: str, names: dict[int, tuple[str, str]], query: Query
) -> statetimeline.Panel:
    """A per-instance timeline of a state code; `names` maps each code to (text, colour)."""
    mapping = models.ValueMap(
        options={
            str(code): models.ValueMappingResult(text=text, color=colour, index=index)
            for index, (code, (text, colour)) in enumerate(names.items())
        }
    )
    panel = (
        statetimeline.Panel()
        .span(12)
        .height(6)
        .mappings([mapping])
        .show_value(common_models.VisibilityMode.NEVER)
        .merge_values(True)
    )
    return with_queries(panel, title, description, [query])


def overview() -> list[Panel]:
    return [
        single(
            "Instances up",
            "Instances Prometheus scraped successfully at the last scrape.",
            Query(f"sum({series('up')})", "up"),
        ),
        single(
            "Instances ready",
            "Instances answering 200 on /ready: subscribed to Redis and not draining.",
            Query(f"sum({series('zou_events_ready')})", "ready"),
        ),
        single(
            "Instances seen in Redis",
            "Live instances according to their heartbeats in Redis. Lower than 'Instances up' "
            "means an instance cannot reach Redis; higher means one is not scraped. Reported by "
            "the live instance with the smallest id: 0 when it is not among the selected ones.",
            Query(f"sum({series('zou_events_instances_live')})", "live"),
        ),
        single(
            "Versions",
            "Number of instances running each zou-events version.",
            Query(f"count by (version) ({series('zou_events_build_info')})", "{{version}}"),
        ).text_mode(common_models.BigValueTextMode.VALUE_AND_NAME),
        single(
            "Connected sockets",
            "Socket.IO connections across the selected instances, all namespaces.",
            Query(f"sum({series('zou_events_connected_sockets')})", "sockets"),
        ),
        single(
            "Connected people",
            "Distinct people connected to /events, summed over the selected instances (a person "
            "whose tabs are served by two instances counts twice).",
            Query(f"sum({series('zou_events_connected_people')})", "people"),
        ),
        single(
            "Open review rooms",
            "Review rooms (playlists opened in a review session) open in the cluster.",
            Query(f"sum({series('zou_events_rooms_open')})", "rooms"),
        ),
        single(
            "People in review rooms",
            "People taking part in a review session across the cluster.",
            Query(f"sum({series('zou_events_room_people')})", "people"),
        ),
        single(
            "Deliveries /s",
            "Event packets queued to sockets per second, all instances.",
            Query(f"sum({rate('zou_events_deliveries_total')})", "deliveries"),
            unit="ops",
        ),
        states(
            "Instance state",
            "Ready: the instance takes new clients. Draining: it is shutting down and hands its "
            "clients over to the other instances. Not ready: it has no Redis subscription.",
            {0: ("not ready", "red"), 1: ("ready", "green"), 2: ("draining", "orange")},
            # ready is 0 while draining, so the sum names the three states
            Query(
                f"{series('zou_events_ready')} + 2 * {series('zou_events_draining')}",
                "{{instance}}",
            ),
        ).span(21),  # beside the ninth stat, which wraps to the second line
    ]


def connections() -> list[Panel]:
    return [
        graph(
            "Connected sockets by namespace and transport",
            "Where clients are connected. Kitsu starts with HTTP long-polling and upgrades to "
            "WebSocket, so 'polling' should stay small.",
            "short",
            Query(
                f"sum by (namespace, transport) ({series('zou_events_connected_sockets')})",
                "{{namespace}} {{transport}}",
            ),
            stacked=True,
        ),
        with_limit_lines(
            graph(
                "Sockets per instance and their limit",
                "Balance across instances, against ZOU_EVENTS_MAX_SOCKETS: over it new clients are "
                "refused with 'over_capacity'.",
                "short",
                Query(
                    f"sum by (instance) ({series('zou_events_connected_sockets')})", "{{instance}}"
                ),
                Query(series("zou_events_limit", 'limit="max_sockets"'), "{{instance}} limit"),
            )
        ),
        graph(
            "Connections accepted /s by namespace",
            "Namespace connections accepted after authentication.",
            "ops",
            Query(
                f"sum by (namespace) ({rate('zou_events_connections_accepted_total')})",
                "{{namespace}}",
            ),
            width=6,
        ),
        graph(
            "Connections refused /s by reason",
            "Why clients were turned away: token problems, Zou unavailable, capacity or drain, "
            "no namespace joined in time (connect_timeout); long-polling POSTs refused "
            "(too large, body timeout, undecodable, refused by Engine.IO); and HTTP requests "
            "refused before the application (request line or head too large, malformed).",
            "ops",
            Query(
                f"sum by (reason) ({rate('zou_events_connections_refused_total')})", "{{reason}}"
            ),
            Query(
                f"sum by (reason) ({rate('zou_events_polling_requests_refused_total')})",
                "polling {{reason}}",
            ),
            Query(
                f"sum by (reason) ({rate('zou_events_http_requests_refused_total')})",
                "http {{reason}}",
            ),
            Query(
                f"sum by (reason) ({rate('zou_events_connections_closed_before_request_total')})",
                "no request {{reason}}",
            ),
            width=6,
            stacked=True,
        ),
        graph(
            "Refused share of connection attempts",
            "Refusals over all connection attempts; the ZouEventsConnectionRefusalsHigh alert "
            "fires above 25 %.",
            "percentunit",
            Query(
                f"sum({rate('zou_events_connections_refused_total')}) / "
                f"(sum({rate('zou_events_connections_accepted_total')}) + "
                f"sum({rate('zou_events_connections_refused_total')}))",
                "refused",
            ),
            width=6,
        ),
        graph(
            "Disconnects /s by reason",
            "Why sockets went away: the client left, missed pings, its token expired or was "
            "revoked, it was rate limited or too slow, or the server shut down.",
            "ops",
            Query(f"sum by (reason) ({rate('zou_events_disconnects_total')})", "{{reason}}"),
            width=6,
            stacked=True,
        ),
        graph(
            "Clients cut /s by reason",
            "Sessions and WebSockets cut for what their client sent (over the inbound budget, "
            "too big, a WebSocket protocol error, no Engine.IO packet) or did not read, "
            "counted even when they never joined a namespace.",
            "ops",
            Query(f"sum by (reason) ({rate('zou_events_sockets_cut_total')})", "{{reason}}"),
            width=6,
            stacked=True,
        ),
    ]


def delivery() -> list[Panel]:
    return [
        graph(
            "Events from Redis /s by family",
            "Messages Zou published, by event family (the part of the event name before ':').",
            "ops",
            Query(f"sum by (family) ({rate('zou_events_redis_messages_total')})", "{{family}}"),
            stacked=True,
        ),
        graph(
            "Deliveries /s by namespace",
            "Event packets queued to sockets: one event reaches every socket of its room.",
            "ops",
            Query(f"sum by (namespace) ({rate('zou_events_deliveries_total')})", "{{namespace}}"),
            stacked=True,
        ),
        graph(
            "Delivery latency",
            "From a message's arrival from Redis to its write on the last WebSocket recipient.",
            "s",
            Query(quantile(0.5, "zou_events_delivery_seconds"), "p50"),
            Query(quantile(0.99, "zou_events_delivery_seconds"), "p99"),
            Query(quantile(0.99, "zou_events_delivery_seconds", "instance"), "p99 {{instance}}"),
            width=8,
        ),
        graph(
            "Publish delay",
            "From publication by a zou-events instance (review-room events carry a timestamp) "
            "to arrival here: Redis and network delay.",
            "s",
            Query(quantile(0.5, "zou_events_publish_delay_seconds"), "p50"),
            Query(quantile(0.99, "zou_events_publish_delay_seconds"), "p99"),
            width=8,
        ),
        graph(
            "Dropped messages /s",
            "Messages from Redis that could not be used, by reason (malformed JSON, pickled "
            "payloads, unknown methods: a publisher bug), and client packets that could not be "
            "decoded (a broken or hostile client).",
            "ops",
            Query(
                f"sum by (reason) ({rate('zou_events_redis_messages_dropped_total')})",
                "{{reason}}",
            ),
            Query(f"sum({rate('zou_events_client_packets_dropped_total')})", "client packets"),
            width=8,
        ),
        graph(
            "Connection recovery /s",
            "Browsers that reconnected and asked for their session back, by outcome "
            "(recovered: missed events replayed; expired: away longer than the window or the "
            "buffer holds; unknown_pid; refused: bad token or another person's session), and "
            "the events replayed to them. Expect a burst at each deploy (the drain).",
            "ops",
            Query(f"sum by (outcome) ({rate('zou_events_recoveries_total')})", "{{outcome}}"),
            Query(f"sum({rate('zou_events_recovery_replayed_events_total')})", "events replayed"),
            width=8,
        ),
        with_limit_lines(
            graph(
                "Replay buffer age",
                "Age of the oldest broadcast kept for replay, per instance: below the window "
                "(dashed) under load, the buffer's bounds in messages or bytes are what limit "
                "recovery.",
                "s",
                Query(series("zou_events_recovery_buffer_age_seconds"), "{{instance}}"),
                Query(
                    series("zou_events_limit", 'limit="recovery_window_seconds"'),
                    "{{instance}} window limit",
                ),
                width=8,
            )
        ),
        graph(
            "Replay buffer size",
            "Broadcasts kept for replay per instance, in messages and in bytes as read from "
            "Redis (the worker holds about 3.5 times as much).",
            "short",
            Query(series("zou_events_recovery_buffer_messages"), "messages {{instance}}"),
            Query(series("zou_events_recovery_buffer_bytes"), "bytes {{instance}}"),
            width=8,
        ),
    ]


def live_reviews() -> table.Panel:
    """One row per open review room, from the reporting instance's per-room series (capped by
    ZOU_EVENTS_METRICS_ROOMS_MAX); `max by` hides a reporter change-over's duplicate."""
    named = (
        f"{series('zou_events_review_room_people')} * on (job, instance, room)"
        f" group_left (project, playlist) {series('zou_events_review_room_info')}"
    )
    opened = series("zou_events_review_room_opened_timestamp_seconds")
    columns = {"project": "Production", "playlist": "Playlist", "room": "Room id"}
    values = {"Value #A": "People", "Value #B": "Sockets", "Value #C": "Open for"}
    panel = (
        table.Panel()
        .span(24)
        .height(8)
        .no_value("No review room open")
        .with_transformation(models.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            models.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True},
                    "indexByName": {name: i for i, name in enumerate([*columns, *values])},
                    "renameByName": {**columns, **values},
                },
            )
        )
        .override_by_name("Open for", [models.DynamicConfigValue("unit", "s")])
        .sort_by([common.TableSortByFieldState().display_name("People").desc(True)])
    )
    return with_queries(
        panel,
        "Live reviews",
        "Each open review room: production and playlist (from Zou's API, known once someone "
        "entered the room), people, sockets that joined it and how long it has been open. At "
        "most ZOU_EVENTS_METRICS_ROOMS_MAX rooms (the most attended); compare with Open review "
        "rooms.",
        [
            Query(f"max by (room, project, playlist) ({named})", "{{room}}", table=True),
            Query(f"max by (room) ({series('zou_events_review_room_sockets')})", "{{room}}", True),
            Query(f"time() - max by (room) ({opened})", "{{room}}", table=True),
        ],
    )


def review_sessions() -> list[Panel]:
    return [
        live_reviews(),
        graph(
            "Review rooms, people and sockets",
            "Open rooms and people in them across the cluster; sockets that joined a room on the "
            "selected instances (one person may have several).",
            "short",
            Query(f"sum({series('zou_events_rooms_open')})", "open rooms"),
            Query(f"sum({series('zou_events_room_people')})", "people in rooms"),
            Query(f"sum({series('zou_events_room_sockets')})", "sockets in rooms"),
            width=8,
        ),
        with_queries(
            bargauge.Panel().span(8).height(8).min(0).unit("short"),
            "Rooms by number of people",
            "How full the open review rooms are right now.",
            [
                Query(
                    f"sum({series('zou_events_rooms_by_size', 'size=' + json.dumps(size))})", size
                )
                for size in ROOM_SIZE_BUCKETS
            ],
        ),
        graph(
            "Room events /s by type",
            "Review-session actions sent by clients: joins, annotations, playback sync.",
            "ops",
            Query(f"sum by (event) ({rate('zou_events_room_events_total')})", "{{event}}"),
            width=8,
            stacked=True,
        ),
        graph(
            "Room events refused /s",
            "Review-session actions refused, by event and reason (no access, room not open, "
            "payload too large, rate limited, store unavailable).",
            "ops",
            Query(
                f"sum by (event, reason) ({rate('zou_events_room_events_refused_total')})",
                "{{event}}: {{reason}}",
            ),
        ),
        graph(
            "Client events over the rate limit /s",
            "Client events dropped by the per-connection rate limit, by instance.",
            "ops",
            Query(
                f"sum by (instance) ({rate('zou_events_rate_limit_hits_total')})", "{{instance}}"
            ),
        ),
    ]


def zou_api_and_redis() -> list[Panel]:
    return [
        graph(
            "Zou API requests /s by outcome",
            "Token and playlist checks asked of Zou's API, including cache hits.",
            "ops",
            Query(
                f"sum by (endpoint, outcome) ({rate('zou_events_zou_api_requests_total')})",
                "{{endpoint}} {{outcome}}",
            ),
            width=8,
            stacked=True,
        ),
        graph(
            "Zou API failures /s",
            "Errors, timeouts and calls skipped by the open circuit breaker: clients are refused "
            "with 'zou_unavailable' meanwhile.",
            "ops",
            Query(
                f"sum by (endpoint, outcome) "
                f"({rate('zou_events_zou_api_requests_total', ZOU_API_FAILURES)})",
                "{{endpoint}} {{outcome}}",
            ),
            width=8,
        ),
        graph(
            "Zou API latency",
            "Latency of Zou API requests by endpoint.",
            "s",
            Query(
                quantile(0.5, "zou_events_zou_api_request_seconds", "endpoint"), "p50 {{endpoint}}"
            ),
            Query(
                quantile(0.99, "zou_events_zou_api_request_seconds", "endpoint"), "p99 {{endpoint}}"
            ),
            width=8,
        ),
        states(
            "Redis subscription",
            "Whether each instance is subscribed to Zou's Redis channel; while it is not, its "
            "clients receive no events.",
            {0: ("lost", "red"), 1: ("subscribed", "green")},
            Query(series("zou_events_redis_subscribed"), "{{instance}}"),
        ),
        graph(
            "Redis re-subscriptions",
            "Re-subscriptions after a lost Redis connection, and restarts of the subscriber by "
            "its watchdog (its loop died or stopped turning: a bug), per interval.",
            "short",
            Query(
                f"sum by (instance) "
                f"(increase({series('zou_events_redis_reconnects_total')}[$__rate_interval]))",
                "{{instance}}",
            ),
            Query(
                f"sum by (instance, reason) (increase("
                f"{series('zou_events_redis_subscriber_restarts_total')}[$__rate_interval]))",
                "{{instance}} restarted ({{reason}})",
            ),
        ).draw_style(common_models.GraphDrawStyle.BARS),
    ]


def process() -> list[Panel]:
    return [
        graph(
            "Resident memory",
            "Resident set size of each instance's worker.",
            "bytes",
            Query(series("process_resident_memory_bytes"), "{{instance}}"),
            width=6,
        ),
        with_limit_lines(
            graph(
                "Open file descriptors and limit",
                "One descriptor per WebSocket: at the limit, accept() fails.",
                "short",
                Query(series("process_open_fds"), "{{instance}} open"),
                Query(series("process_max_fds"), "{{instance}} limit"),
                width=6,
            )
        ),
        graph(
            "CPU",
            "CPU time per second; one gevent worker uses at most one core (100 %).",
            "percentunit",
            Query(rate("process_cpu_seconds_total"), "{{instance}}"),
            width=6,
        ),
        graph(
            "Python GC collections /s",
            "Garbage collections by generation; generation 2 pauses the whole event loop.",
            "ops",
            Query(
                f"sum by (instance, generation) ({rate('python_gc_collections_total')})",
                "{{instance}} gen {{generation}}",
            ),
            width=6,
        ),
        graph(
            "Event loop stopped by full GC passes",
            "Share of the time the event loop stood still in full garbage collection passes. "
            "Held to at most 5 % by the worker (each pass holds the next for 19 times its "
            "duration); each pass stops every socket's deliveries for its duration.",
            "percentunit",
            Query(
                f"sum by (instance) ({rate('zou_events_gc_full_pass_seconds_sum')})",
                "{{instance}}",
            ),
            width=6,
        ),
        graph(
            "Event loop lag",
            "How late a ready greenlet runs (p99). Over ZOU_EVENTS_ADMISSION_MAX_LAG (1 s) new "
            "sessions wait their turn: the worker is saturated.",
            "s",
            Query(quantile(0.99, "zou_events_event_loop_lag_seconds", "instance"), "{{instance}}"),
            width=6,
        ),
        graph(
            "New sessions waiting for admission",
            "Handshakes held back by the new-session rate or the loop lag, waiting their turn "
            "(up to ZOU_EVENTS_ADMISSION_MAX_WAIT, then 503), and the mean wait of those let in. "
            "Non-zero only during a reconnect storm.",
            "short",
            Query(f"sum by (instance) ({series('zou_events_admission_waiting')})", "{{instance}}"),
            Query(
                f"sum by (instance) ({rate('zou_events_admission_wait_seconds_sum')}) / "
                f"sum by (instance) ({rate('zou_events_admission_wait_seconds_count')})",
                "{{instance}} mean wait (s)",
            ),
            width=6,
        ),
    ]


def build() -> models.Dashboard:
    board = (
        dashboard.Dashboard("Zou events")
        .uid(UID)
        .description("Kitsu/Zou real-time event stream: clients, delivery, review sessions.")
        .tags(["zou-events", "kitsu"])
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("30s")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
        .with_variable(label_variable("job", "label_values(zou_events_build_info, job)", "Job"))
        # Targets without a host label (a hand-written scrape job) have no host to list: its
        # "All" matches any value, the job and instance variables still restrict the series.
        .with_variable(
            label_variable(
                "host", 'label_values(zou_events_build_info{job=~"$job"}, host)', "Host"
            ).all_value(".*")
        )
        .with_variable(
            label_variable(
                "instance",
                'label_values(zou_events_build_info{job=~"$job", host=~"$host"}, instance)',
                "Instance",
            )
        )
    )
    for annotation in annotations():
        board.annotation(Built(annotation))
    # The first rows answer "is it healthy", the collapsed ones help explain why not.
    rows: list[tuple[str, bool, list[Panel]]] = [
        ("Overview", False, overview()),
        ("Connections", False, connections()),
        ("Delivery", False, delivery()),
        ("Review sessions", False, review_sessions()),
        ("Zou API and Redis", True, zou_api_and_redis()),
        ("Process", True, process()),
    ]
    for title, collapsed, panels in rows:
        row = dashboard.Row(title).collapsed(collapsed)
        if collapsed:
            for panel in panels:
                row.with_panel(panel)
            board.with_row(row)
        else:
            board.with_row(row)
            for panel in panels:
                board.with_panel(panel)
    model = board.build()
    number_panels(model)
    return model


@dataclass(frozen=True)
class Built(Builder[models.AnnotationQuery]):
    """An already built model, for the builders' methods that take a builder."""

    model: models.AnnotationQuery

    def build(self) -> models.AnnotationQuery:
        return self.model


def label_variable(name: str, query: str, label: str) -> dashboard.QueryVariable:
    # No custom "All" value: Grafana then expands "All" to the listed values, so process_*
    # series of other jobs scraped by the same Prometheus stay out.
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .current(models.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def number_panels(model: models.Dashboard) -> None:
    """Unique panel ids in layout order (the SDK leaves them unset)."""
    panel_id = 0
    for panel in model.panels or []:
        panel_id += 1
        panel.id_val = panel_id
        for child in getattr(panel, "panels", None) or []:
            panel_id += 1
            child.id_val = panel_id


def render() -> str:
    return json.dumps(build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON is stale")
    text = render()
    if parser.parse_args().check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT.name} is stale: run python grafana/build_dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
