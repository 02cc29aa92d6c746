"""Summaries, the issue's targets, the printed table and the JSON record of one run."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.scenarios import Round

OURS, ZOU = "zou-events", "zou"


def _by(rounds: list[Round], scenario: str, server: str) -> list[Round]:
    return [r for r in rounds if r.scenario == scenario and r.server == server]


def _cpu_per_100k(rounds: list[Round]) -> float | None:
    deliveries = sum(r.deliveries for r in rounds)
    return sum(r.server_cpu_seconds for r in rounds) / deliveries * 1e5 if deliveries else None


def _ratio(theirs: float | None, ours: float | None) -> float | None:
    return theirs / ours if theirs is not None and ours else None


def summarize(rounds: list[Round]) -> dict[str, Any]:
    """Per scenario and server: the headline numbers, aggregated over rounds."""
    summary: dict[str, Any] = {}
    for scenario in ("steady", "burst", "idle"):
        per_server = {}
        for server in (OURS, ZOU):
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
                "client_cpu_share_max": max(r.client_cpu_share for r in chosen),
                "other_cpu_share_max": max(r.other_cpu_share for r in chosen),
            }
        if OURS in per_server and ZOU in per_server:
            ours, zou = per_server[OURS], per_server[ZOU]
            per_server["zou_over_ours"] = {
                key: _ratio(zou[key], ours[key])
                for key in (
                    "p50_median",
                    "p99_median",
                    "drain_seconds",
                    "cpu_seconds_per_100k",
                    "rss_per_idle_connection",
                )
            }
            per_server["ours_over_zou"] = {
                "deliveries_per_second": _ratio(
                    ours["deliveries_per_second"], zou["deliveries_per_second"]
                )
            }
        if per_server:
            summary[scenario] = per_server
    return summary


def targets(rounds: list[Round], idle_clients: int) -> dict[str, dict[str, Any]]:
    """Issue 2's floors, each with whether it is met and the numbers that decide it."""
    result: dict[str, dict[str, Any]] = {}
    ours, zou = _by(rounds, "steady", OURS), _by(rounds, "steady", ZOU)
    if ours and zou:
        pairs = [(a.latency["p99"], b.latency["p99"]) for a, b in zip(ours, zou, strict=False)]
        result["steady_p99_below_zou_each_round"] = {
            "met": all(a is not None and b is not None and a < b for a, b in pairs)
            and all(r.complete for r in ours),
            "p99_pairs_seconds": pairs,
        }
        cpu_ours, cpu_zou = _cpu_per_100k(ours), _cpu_per_100k(zou)
        result["steady_cpu_per_delivery_at_most_half"] = {
            "met": cpu_ours is not None and cpu_zou is not None and cpu_ours <= cpu_zou / 2,
            "cpu_seconds_per_100k": [cpu_ours, cpu_zou],
        }
    ours, zou = _by(rounds, "burst", OURS), _by(rounds, "burst", ZOU)
    if ours and zou:
        # A server that did not drain within the timeout took at least that long.
        drain_ours = max(r.drain_seconds or float("inf") for r in ours)
        drain_zou = min(r.drain_seconds or float("inf") for r in zou)
        result["burst_drain_at_most_half"] = {
            "met": all(r.complete for r in ours) and drain_ours <= drain_zou / 2,
            "drain_seconds": [drain_ours, drain_zou],
            "zou_complete": all(r.complete for r in zou),
        }
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


# A round is disturbed when the server waited for its CPU more than this share of the window.
DISTURBED_WAIT_SHARE = 0.02


def disturbed(rounds: list[Round]) -> list[int]:
    """Indexes of the rounds during which other processes took the server's CPU."""
    return [
        i
        for i, r in enumerate(rounds)
        if r.server_runqueue_wait_seconds > DISTURBED_WAIT_SHARE * r.window_seconds
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
