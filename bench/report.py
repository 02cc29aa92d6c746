"""Summaries, the issue's targets, the printed table and the JSON record of one run."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.scenarios import Round

OURS, ZOU, NODE = "zou-events", "zou", "node"
# zou-events with connection state recovery off: the hot path's cost of offsets (issue 14)
NO_RECOVERY = "zou-events-no-recovery"
# zou-events without admission control: how fast the worker itself takes a storm
NO_ADMISSION = "zou-events-no-admission"
OTHERS = (ZOU, NODE, NO_RECOVERY, NO_ADMISSION)
STORM_SECONDS_MAX = 15.0  # issue 13: a 10,000-tab storm connected within this on this machine


def _by(rounds: list[Round], scenario: str, server: str) -> list[Round]:
    return [r for r in rounds if r.scenario == scenario and r.server == server]


def _cpu_per_100k(rounds: list[Round]) -> float | None:
    deliveries = sum(r.deliveries for r in rounds)
    return sum(r.server_cpu_seconds for r in rounds) / deliveries * 1e5 if deliveries else None


def _ratio(theirs: float | None, ours: float | None) -> float | None:
    return theirs / ours if theirs is not None and ours else None


def _ratios(ours: dict[str, Any], theirs: dict[str, Any], other: str) -> dict[str, Any]:
    """``other``'s numbers over ours where lower is better, ours over theirs for rates."""
    lower_is_better = (
        "p50_median",
        "p99_median",
        "drain_seconds",
        "cpu_seconds_per_100k",
        "rss_per_idle_connection",
        "connect_seconds",
        "connect_cpu_ms_per_socket",
        "idle_cpu_us_per_socket_second",
    )
    return {
        f"{other}_over_ours": {key: _ratio(theirs[key], ours[key]) for key in lower_is_better},
        f"ours_over_{other}": {
            "deliveries_per_second": _ratio(
                ours["deliveries_per_second"], theirs["deliveries_per_second"]
            )
        },
    }


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.mean(known) if known else None


def summarize(rounds: list[Round]) -> dict[str, Any]:
    """Per scenario and server: the headline numbers, aggregated over rounds."""
    summary: dict[str, Any] = {}
    for scenario in ("steady", "burst", "idle", "storm", "idle50k"):
        per_server = {}
        for server in (OURS, *OTHERS):
            chosen = _by(rounds, scenario, server)
            if not chosen:
                continue
            p99s = [r.latency["p99"] for r in chosen if r.latency["p99"] is not None]
            p50s = [r.latency["p50"] for r in chosen if r.latency["p50"] is not None]
            rates = [r.deliveries_per_second for r in chosen if r.deliveries_per_second]
            drains = [r.drain_seconds for r in chosen if r.drain_seconds is not None]
            rss = [r.rss_per_idle_connection for r in chosen if r.rss_per_idle_connection]
            per_server[server] = {
                "rounds": len(chosen),
                "all_complete": all(r.complete for r in chosen),
                "clients_joined": min(r.clients_joined for r in chosen),
                "p50_median": statistics.median(p50s) if p50s else None,
                "p99_median": statistics.median(p99s) if p99s else None,
                "p99_worst": max(p99s) if p99s else None,
                "deliveries_per_second": statistics.mean(rates) if rates else None,
                "drain_seconds": statistics.median(drains) if drains else None,
                "cpu_seconds_per_100k": _cpu_per_100k(chosen),
                "rss_per_idle_connection": statistics.mean(rss) if rss else None,
                "connect_seconds": max(r.connect_seconds for r in chosen),
                "connect_failures": sum(sum(r.connect_failures.values()) for r in chosen),
                "connect_retries": sum(sum(r.connect_retries.values()) for r in chosen),
                "connect_cpu_ms_per_socket": _mean(r.connect_cpu_ms_per_socket for r in chosen),
                "idle_cpu_us_per_socket_second": _mean(
                    r.idle_cpu_us_per_socket_second for r in chosen
                ),
                "client_cpu_share_max": max(r.client_cpu_share for r in chosen),
                "other_cpu_share_max": max(r.other_cpu_share for r in chosen),
            }
        for other in OTHERS:
            if OURS in per_server and other in per_server:
                per_server.update(_ratios(per_server[OURS], per_server[other], other))
        if per_server:
            summary[scenario] = per_server
    return summary


def versus(rounds: list[Round], other: str, share: float) -> dict[str, dict[str, Any]]:
    """Ours against ``other``: p99 below theirs in each steady round; CPU per delivery and
    burst drain time at most ``share`` of theirs. Each check says whether it is met and
    gives the numbers that decide it."""
    result: dict[str, dict[str, Any]] = {}
    ours, theirs = _by(rounds, "steady", OURS), _by(rounds, "steady", other)
    if ours and theirs:
        pairs = [(a.latency["p99"], b.latency["p99"]) for a, b in zip(ours, theirs, strict=False)]
        result[f"steady_p99_below_{other}_each_round"] = {
            "met": all(a is not None and b is not None and a < b for a, b in pairs)
            and all(r.complete for r in ours),
            "p99_pairs_seconds": pairs,
        }
        cpu_ours, cpu_theirs = _cpu_per_100k(ours), _cpu_per_100k(theirs)
        result[f"steady_cpu_per_delivery_at_most_{share:g}x_{other}"] = {
            "met": None not in (cpu_ours, cpu_theirs) and cpu_ours <= cpu_theirs * share,
            "cpu_seconds_per_100k": [cpu_ours, cpu_theirs],
        }
    ours, theirs = _by(rounds, "burst", OURS), _by(rounds, "burst", other)
    if ours and theirs:
        # A server that did not drain within the timeout took at least that long.
        drain_ours = max(r.drain_seconds or float("inf") for r in ours)
        drain_theirs = min(r.drain_seconds or float("inf") for r in theirs)
        result[f"burst_drain_at_most_{share:g}x_{other}"] = {
            "met": all(r.complete for r in ours) and drain_ours <= drain_theirs * share,
            "drain_seconds": [drain_ours, drain_theirs],
            f"{other}_complete": all(r.complete for r in theirs),
        }
    ours, theirs = _by(rounds, "storm", OURS), _by(rounds, "storm", other)
    if ours and theirs:
        # Everyone connected, none given up, in at most their time (and 15 s here).
        connect_ours = max(r.connect_seconds for r in ours)
        connect_theirs = min(r.connect_seconds for r in theirs)
        failures = sum(sum(r.connect_failures.values()) for r in ours)
        result[f"storm_connected_within_{other}_time"] = {
            "met": failures == 0
            and all(r.clients_joined == r.clients_wanted and r.complete for r in ours)
            and connect_ours <= min(connect_theirs, STORM_SECONDS_MAX),
            "connect_seconds": [connect_ours, connect_theirs],
            "failures": failures,
            "cpu_ms_per_connect": [
                _mean(r.connect_cpu_ms_per_socket for r in ours),
                _mean(r.connect_cpu_ms_per_socket for r in theirs),
            ],
        }
    return result


def targets(rounds: list[Round], idle_clients: int) -> dict[str, dict[str, Any]]:
    """Issue 2's floors: against Zou's stream, and 10,000 idle sockets on one worker."""
    result = versus(rounds, ZOU, 0.5)
    ours = _by(rounds, "idle", OURS)
    if ours:
        held = min(r.clients_joined for r in ours)
        result["one_worker_holds_idle_connections"] = {
            "met": held >= idle_clients and all(r.complete for r in ours),
            "held": held,
            "wanted": idle_clients,
            "all_received_events": all(r.complete for r in ours),
        }
    return result


# A round is disturbed when the server waited for its CPU more than this share of the
# window, or when everything else on the machine (Redis and the publisher included) used more
# than this share of a core.
DISTURBED_WAIT_SHARE = 0.02
DISTURBED_OTHER_SHARE = 0.15


def disturbed(rounds: list[Round]) -> list[int]:
    """Indexes of the rounds during which other processes took the server's CPU.

    Node.js runs its garbage collector and libuv threads on the server's pinned core, so its
    main thread also waits for its own threads: for it only the rest of the machine counts.
    """
    return [
        i
        for i, r in enumerate(rounds)
        if r.other_cpu_share > DISTURBED_OTHER_SHARE
        or (
            r.server != NODE
            and r.server_runqueue_wait_seconds > DISTURBED_WAIT_SHARE * r.window_seconds
        )
    ]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


HEADER = (
    f"{'scenario':<8} {'server':<10} {'joined':>7} {'deliveries':>11} {'done':>4} "
    f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'drain s':>8} {'deliv/s':>9} "
    f"{'CPU s/100k':>10} {'KiB/idle':>8} {'client CPU':>10} {'other CPU':>9} {'CPU wait ms':>11}"
)


def rows(r: Round) -> list[str]:
    """One round's line, and a second one when connections failed, retried or dropped."""
    rss = None if r.rss_per_idle_connection is None else r.rss_per_idle_connection / 1024
    lines = [
        f"{r.scenario:<8} {r.server:<10} {r.clients_joined:>7} {r.deliveries:>11,} "
        f"{'yes' if r.complete else 'NO':>4} {_ms(r.latency['p50']):>8} "
        f"{_ms(r.latency['p99']):>8} {_ms(r.max_latency):>8} {_num(r.drain_seconds):>8} "
        f"{_num(r.deliveries_per_second, 0):>9} {_num(r.cpu_seconds_per_100k):>10} "
        f"{_num(rss, 1):>8} {r.client_cpu_share:>10.0%} {r.other_cpu_share:>9.0%} "
        f"{_ms(r.server_runqueue_wait_seconds):>5}/{_ms(r.client_runqueue_wait_seconds):<5}"
    ]
    if r.scenario in ("storm", "idle50k"):
        idle_cpu = r.idle_cpu_us_per_socket_second
        lines.append(
            f"{'':<19} {r.kitsu_client + ' tabs ' if r.kitsu_client else ''}connected "
            f"{r.clients_joined}/{r.clients_wanted} in "
            f"{r.connect_seconds:.1f} s ({r.connect_upgraded} upgraded), worker CPU "
            f"{_num(r.connect_cpu_ms_per_socket)} ms per connect (cores busy: worker "
            f"{_num(r.connect_server_cpu_share)}, load client {_num(r.connect_client_cpu_share)};"
            f" {r.connect_listen_overflows} accept-queue drops)"
            + ("" if idle_cpu is None else f", idle {idle_cpu:.1f} µs CPU per socket-second")
        )
    if r.connect_failures or r.connect_retries or r.disconnects:
        lines.append(
            f"{'':<19} connect failures {r.connect_failures} retries {r.connect_retries}"
            f" disconnects {r.disconnects}"
        )
    if r.short_event_count:
        lines.append(
            f"{'':<19} {r.short_event_count} events not received by every socket, first "
            f"(sequence, receivers): {r.short_events[:5]}"
        )
    if r.server_warnings:
        lines.append(
            f"{'':<19} {len(r.server_warnings)} warning lines, last: {r.server_warnings[-1]}"
        )
    return lines


def table(rounds: list[Round]) -> str:
    return "\n".join([HEADER, "-" * len(HEADER)] + [line for r in rounds for line in rows(r)])


def targets_text(checks: dict[str, dict[str, Any]]) -> str:
    return "\n".join(
        f"{'MET    ' if check['met'] else 'NOT MET'} {name}: "
        + ", ".join(f"{k}={v}" for k, v in check.items() if k != "met")
        for name, check in checks.items()
    )


def write_json(path: Path, record: dict[str, Any], rounds: list[Round]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {**record, "rounds": [asdict(r) for r in rounds]}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
