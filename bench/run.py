"""Fan-out benchmark: zou-events against Zou 1.0.97's stream and socket.io on Node.js.

    .venv/bin/python -m bench.run            # the full run recorded in docs/benchmarks.md
    .venv/bin/python -m bench.run --quick    # a smoke run of every scenario, under a minute

Scenarios: (a) steady: N clients, R events/s for D s, rounds interleaved ours/Zou/Node...;
(b) burst: E events published at once to M clients, time until the last delivery;
(c) idle: how many idle connections one worker holds, their memory, and whether they still
receive events; (d) storm: Kitsu-style tabs (socket.io-client: cookie, polling handshake,
upgrade) all reconnecting at once; (e) idle50k: 50,000 idle sockets from source addresses
spread over 127.0.0.0/8, their memory and CPU, and delivery to all. Zou runs (a)-(c) only:
past its 1,000 connections its handshakes hang. Prints a table, issue 2's targets against
Zou and the same comparisons against Node.js; writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import machine, procs, report, scenarios
from bench.load_client import KITSU_CLIENTS
from bench.scenarios import Round, Setup
from bench.servers import NodeServer, OurServer, ServerUnderTest, ZouServer

RESULTS = Path(__file__).with_name("results")
ROOT = Path(__file__).resolve().parents[1]


def _cpus(raw: str) -> set[int] | None:
    return None if raw == "none" else {int(cpu) for cpu in raw.split(",")}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (< 1 minute)")
    parser.add_argument(
        "--servers",
        default="ours,zou,node",
        help="any of ours,zou,node,ours-no-recovery,ours-no-admission,node-backlog-2048 "
        "(default the first three)",
    )
    parser.add_argument("--scenarios", default="steady,burst,idle,storm,idle50k")
    parser.add_argument("--rounds", type=int, default=5, help="steady rounds per server")
    parser.add_argument("--clients", type=int, default=1000, help="steady: clients")
    parser.add_argument("--rate", type=float, default=20.0, help="steady: events per second")
    parser.add_argument("--duration", type=float, default=15.0, help="steady: seconds per round")
    parser.add_argument("--burst-clients", type=int, default=500)
    parser.add_argument("--burst-events", type=int, default=2000)
    parser.add_argument("--burst-timeout", type=float, default=180.0, help="seconds to drain")
    parser.add_argument("--idle-clients", type=int, default=10_000, help="idle: for zou-events")
    parser.add_argument(
        "--zou-idle-clients", type=int, default=2000, help="idle: for Zou (its cap is 1,000)"
    )
    parser.add_argument("--storm-clients", type=int, default=10_000, help="storm: Kitsu tabs")
    parser.add_argument(
        "--storm-client",
        choices=KITSU_CLIENTS,
        default="socketio",
        help="storm: socket.io-client itself, or its requests on raw sockets (cheaper)",
    )
    parser.add_argument(
        "--storm-source-addresses",
        type=int,
        default=0,
        help="storm: spread the tabs over that many 127.x.y.z sources (default one address)",
    )
    parser.add_argument("--idle50k-clients", type=int, default=50_000, help="idle50k: sockets")
    parser.add_argument(
        "--source-addresses", type=int, default=64, help="idle50k: 127.x.y.z sources"
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=30.0, help="idle50k: CPU window (> 1 ping)"
    )
    parser.add_argument("--handshake-timeout", type=float, default=10.0, help="seconds")
    parser.add_argument("--server-cpus", default="0", help="CPUs of the server worker, or none")
    parser.add_argument("--client-cpus", default="1", help="CPUs of the load client, or none")
    parser.add_argument("--output", type=Path, default=None, help="JSON path")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.clients, args.duration, args.handshake_timeout = 1, 200, 2.0, 3.0
        args.burst_clients, args.burst_events, args.burst_timeout = 100, 200, 30.0
        args.idle_clients, args.zou_idle_clients = 1000, 1100
        args.storm_clients, args.idle50k_clients, args.idle_seconds = 500, 2000, 3.0
    return args


def build_servers(names: list[str], cpus: set[int] | None) -> list[ServerUnderTest]:
    known: dict[str, Callable[[], ServerUnderTest]] = {
        "ours": lambda: OurServer(cpus),
        "ours-no-recovery": lambda: OurServer(cpus, recovery=False),
        "ours-no-admission": lambda: OurServer(cpus, admission=False),
        "zou": lambda: ZouServer(cpus),
        "node": lambda: NodeServer(cpus),
        "node-backlog-2048": lambda: NodeServer(cpus, backlog=2048),
    }
    return [known[name]() for name in names]


def run(args: argparse.Namespace, servers: list[ServerUnderTest]) -> list[Round]:
    # Past its 1,000 connections Zou's handshakes hang: this is how long a client waits.
    setup = Setup(client_cpus=_cpus(args.client_cpus), handshake_timeout=args.handshake_timeout)
    wanted = args.scenarios.split(",")
    rounds: list[Round] = []

    def record(result: Round) -> None:
        rounds.append(result)
        print("\n".join(report.rows(result)), file=sys.stderr, flush=True)

    print(report.HEADER, file=sys.stderr)
    if "steady" in wanted:
        for _ in range(args.rounds):
            for server in servers:  # interleaved: ours, Zou, Node.js, ours, Zou, Node.js...
                record(scenarios.steady(server, setup, args.clients, args.rate, args.duration))
    if "burst" in wanted:
        for server in servers:
            record(
                scenarios.burst(
                    server, setup, args.burst_clients, args.burst_events, args.burst_timeout
                )
            )
    if "idle" in wanted:
        for server in servers:
            if isinstance(server, ZouServer):
                # All at once: past its 1,000 connections, Zou's handshakes wait until timeout.
                record(scenarios.idle(server, setup, args.zou_idle_clients, args.zou_idle_clients))
            else:
                record(scenarios.idle(server, setup, args.idle_clients, concurrency=500))
    # Zou's stream holds 1,000 sockets (above): neither of these would tell more.
    others = [server for server in servers if not isinstance(server, ZouServer)]
    if "storm" in wanted:
        for server in others:
            record(
                scenarios.storm(
                    server,
                    setup,
                    args.storm_clients,
                    args.storm_client,
                    args.storm_source_addresses,
                )
            )
    if "idle50k" in wanted:
        for server in others:
            record(
                scenarios.idle(
                    server,
                    setup,
                    args.idle50k_clients,
                    concurrency=500,
                    scenario="idle50k",
                    source_addresses=args.source_addresses,
                    idle_seconds=args.idle_seconds,
                )
            )
    return rounds


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.datetime.now(datetime.UTC)
    # Each of the server and the load client holds every socket, plus its own files.
    wanted_files = max(args.idle_clients, args.idle50k_clients) + 5000
    open_files = procs.raise_open_files_limit(wanted_files)
    if open_files < wanted_files:
        print(
            f"WARNING: open files limited to {open_files} per process (hard limit, and no"
            f" right to raise it): the idle rounds stop near that many sockets.",
            file=sys.stderr,
        )
    checkout_before = machine.checkout(ROOT)
    servers = build_servers(args.servers.split(","), _cpus(args.server_cpus))
    try:
        rounds = run(args, servers)
    finally:
        for server in servers:
            server.close()
    checks = report.targets(rounds, args.idle_clients)
    beyond = report.versus(rounds, report.NODE, 1.0)
    print()
    print(report.table(rounds))
    print("\nIssue 2's targets (against Zou 1.0.97):")
    print(report.targets_text(checks))
    if beyond:
        print("\nBeyond the issue (against socket.io on Node.js):")
        print(report.targets_text(beyond))
    checkout_after = machine.checkout(ROOT)
    if checkout_after != checkout_before:
        print("\nWARNING: zou_events/ changed during the run: rounds measured different code.")
    noisy = report.disturbed(rounds)
    if noisy:
        print(
            f"\nWARNING: the machine was not quiet: in {len(noisy)} of {len(rounds)} rounds the"
            " server waited for its CPU (column 'CPU wait ms'); rerun on a quiet machine."
        )
    output = args.output or RESULTS / f"{started:%Y%m%dT%H%M%SZ}.json"
    record = {
        "started": started.isoformat(),
        "command": " ".join(["python -m bench.run", *(argv or sys.argv[1:])]),
        "arguments": {k: str(v) for k, v in vars(args).items()},
        "open_files_limit": open_files,
        "pinning": {"server_cpus": args.server_cpus, "client_cpus": args.client_cpus},
        "checkout": {"before": checkout_before, "after": checkout_after},
        "machine": machine.describe({s.name: s.versions() for s in servers}),
        "summary": report.summarize(rounds),
        "targets": checks,
        "beyond": beyond,
        "disturbed_rounds": noisy,
    }
    report.write_json(output, record, rounds)
    print(f"\nresults: {os.path.relpath(output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
