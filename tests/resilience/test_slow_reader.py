"""A socket that stops reading during 10,000 events (issue 7; test_limits.py checks that it
is cut and that the others get everything): the worker's memory stays bounded by the send
queue limit, and the other clients' delivery latency does not suffer."""

from __future__ import annotations

import socket

import websocket

from tests.resilience.support import (
    LoadClient,
    PeakRss,
    metric,
    publish_paced,
    rss_bytes,
    worker_pid,
)
from tests.support.redis_server import RedisServer
from tests.support.server import ServerHandle, start_server, wait_until
from tests.support.tokens import make_token

READERS = 10
EVENTS = 10_000
RATE = 1000  # events/s
PADDING = 4000  # bytes per event: 40 MB published, which an unbounded queue would keep
QUEUE_MAX_BYTES = 4 * 2**20
BASELINE_EVENTS = 2000


def stalled_socket(server: ServerHandle, token: str) -> websocket.WebSocket:
    """A connected /events socket with a tiny receive buffer that will never read again."""
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket",
        header=[f"Cookie: access_token_cookie={token}"],
        sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),),
        timeout=10,
    )
    ws.recv()  # Engine.IO open
    ws.send("40/events,")
    assert ws.recv().startswith("40/events,")
    return ws


def p99_ms(load: LoadClient, event: str, count: int) -> float:
    stats = load.wait_stats(
        lambda s: s["events"].get(event) == count * READERS, 60, f"every {event} event"
    )
    assert stats["outOfOrder"] == 0 and stats["gaps"] == 0
    return stats["latencyMs"]["p99"]


def test_stalled_reader_keeps_memory_bounded_and_others_latency(
    private_redis: RedisServer, redis_env: dict[str, str]
) -> None:
    env = {**redis_env, "ZOU_EVENTS_SEND_QUEUE_MAX_BYTES": str(QUEUE_MAX_BYTES)}
    publisher = private_redis.client(db=2)
    with start_server(env) as server:
        worker = worker_pid(server)
        tokens = [make_token(server.secret_key) for _ in range(READERS)]
        with LoadClient([server.url], tokens, READERS, transport="websocket") as load:
            load.wait_connected(READERS, 20)
            publish_paced(publisher, server.channel, "baseline", BASELINE_EVENTS, RATE, PADDING)
            baseline = p99_ms(load, "baseline", BASELINE_EVENTS)
            load.reset()

            before = rss_bytes(worker)
            stalled = stalled_socket(server, tokens[0])
            with PeakRss(worker) as rss:
                publish_paced(publisher, server.channel, "load", EVENTS, RATE, PADDING)
                with_stalled = p99_ms(load, "load", EVENTS)
            stalled.sock.close()
            slow_cut = 'zou_events_disconnects_total{namespace="/events",reason="slow_consumer"}'
            wait_until(lambda: metric(server, slow_cut) == 1, 10, "the stalled socket to be cut")

        growth = rss.peak - before
        print(f"p99 {baseline:.1f} ms -> {with_stalled:.1f} ms; RSS +{growth / 2**20:.1f} MiB")
        # The stalled socket's queue is capped at 4 MiB; an unbounded one would keep the
        # 40 MB published (the packets it holds are alive). The rest is the readers' traffic.
        assert growth < 6 * QUEUE_MAX_BYTES, f"RSS grew by {growth / 2**20:.1f} MiB"
        # Loose: a reader blocking delivery would add seconds, not the load's jitter.
        assert with_stalled <= max(3 * baseline, baseline + 250), (baseline, with_stalled)
