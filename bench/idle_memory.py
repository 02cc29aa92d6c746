"""Where an idle WebSocket's memory goes: tracemalloc in zou-events's worker, and its RSS.

    .venv/bin/python -m bench.idle_memory --clients 1000           # tracemalloc, top sites
    .venv/bin/python -m bench.idle_memory --clients 10000 --no-trace  # RSS only

Starts zou-events, starts tracing in its worker once it is ready and empty (on a signal, by
bench/tracemalloc_site), snapshots it once bench/loadclient.mjs holds ``--clients`` idle
sockets, and prints what is still allocated per socket: in all, and by the allocating lines
(with the calls that led there) that hold most of it.
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

from bench import procs
from bench.load_client import LoadClient
from tests.support.server import start_server, wait_until
from tests.support.tokens import make_token

SITE = Path(__file__).with_name("tracemalloc_site")
SNAPSHOT_SIGNAL = signal.SIGRTMIN + 3  # as tracemalloc_site/sitecustomize.py
SETTLE_SECONDS = 2.0


def signal_worker(worker: int, directory: Path) -> Path:
    """Start tracing in ``worker``, or take its snapshot: the file it wrote."""
    os.kill(worker, SNAPSHOT_SIGNAL)
    path = directory / f"{worker}.snapshot"
    wait_until(path.exists, 300, "the worker's tracemalloc signal handler")
    return path.rename(directory / f"{time.monotonic_ns()}.snapshot")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.idle_memory")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=8, help="traceback depth traced")
    parser.add_argument("--top", type=int, default=25, help="allocation sites shown")
    parser.add_argument("--no-trace", action="store_true", help="RSS only, untraced")
    args = parser.parse_args(argv)
    procs.raise_open_files_limit()
    directory = Path(tempfile.mkdtemp(prefix="idle-memory-"))
    env = {"ZOU_EVENTS_LOG_LEVEL": "warning"}
    if not args.no_trace:
        path = os.environ.get("PYTHONPATH", "")
        env.update(
            BENCH_TRACEMALLOC_FRAMES=str(args.frames),
            PYTHONPATH=os.pathsep.join(p for p in (str(SITE), path) if p),
            BENCH_TRACEMALLOC_DIR=str(directory),
        )
    with start_server(env, timeout=60) as server:
        worker = procs.only_child(server.process.pid)
        time.sleep(SETTLE_SECONDS)
        rss_empty = procs.rss_bytes(worker)
        if not args.no_trace:
            signal_worker(worker, directory)
        tokens = [make_token(server.secret_key, lifetime=3600) for _ in range(args.clients)]
        with LoadClient(
            server.port,
            tokens,
            args.clients,
            None,
            500 if args.no_trace else 50,  # a traced worker is slow: few handshakes at once
            max(60, args.clients / (50 if args.no_trace else 5)),
            handshake_timeout=10 if args.no_trace else 60,
        ) as client:
            connected = client.wait_connected()
            joined = connected.joined
            if not joined:
                raise SystemExit(f"no socket joined: {connected.failures}\n{server.logs()[-3000:]}")
            time.sleep(SETTLE_SECONDS)
            rss_idle = procs.rss_bytes(worker)
            traced = None if args.no_trace else signal_worker(worker, directory)
            print(f"{joined} idle WebSockets joined of {args.clients}")
            print(f"RSS: {(rss_idle - rss_empty) / joined / 1024:.1f} KiB per socket")
            if traced is not None:
                report(tracemalloc.Snapshot.load(str(traced)), joined, args.top)
    return 0


def report(traced: tracemalloc.Snapshot, sockets: int, top: int) -> None:
    """What was allocated since tracing started and is still held, per socket."""
    traced = traced.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    total = sum(stat.size for stat in traced.statistics("filename"))
    print(f"tracemalloc: {total / sockets / 1024:.2f} KiB per socket")
    for stat in traced.statistics("traceback")[:top]:
        print(
            f"\n{stat.size / sockets:8.0f} B  {stat.count / sockets:5.2f} blocks"
            " per socket, allocated at:"
        )
        for line in stat.traceback.format(limit=4, most_recent_first=True):
            print("    " + line.strip())


if __name__ == "__main__":
    raise SystemExit(main())
