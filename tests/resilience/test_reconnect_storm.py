"""Reconnect storms against one instance (issue 7).

5,000 sockets drop at once and reconnect as Kitsu's socket.io-client does (polling
handshake, CONNECT, WebSocket upgrade; backoff 0.5-1.5 s then doubling), three times in a
row. Admission answers 503 beyond its new-session rate (default limits): the clients back
off and retry, and every one gets back every time, with no "Invalid session" and no
refusal; the worker's memory after the third storm is within 10 % of what it was after the
first.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import urllib3

from tests.resilience.support import (
    LoadClient,
    cpu_seconds,
    metric,
    raise_fd_limit,
    rss_bytes,
    worker_pid,
)
from tests.support.server import ServerHandle, start_server, wait_until
from tests.support.tokens import make_token

STORM_SOCKETS = 5000
PEOPLE = 100  # distinct person tokens among the sockets
HANDSHAKE = "/socket.io/?EIO=4&transport=polling"
STORMS = 3
# Seconds for every socket to be back: 5000 connects at about 2 ms of worker CPU each take
# 10 s at least; a 2-core machine shared with the load client paces them to 40-55 s
# (admission on event-loop lag).
BACK_WITHIN = 90.0
# An attempt the client gave up on (no answer in 20 s, or a network error) may leave a session
# it never polls: the server closes it at its ping timeout (default 25 + 20 s).
ORPHANS_EXPIRE_WITHIN = 25 + 20 + 15.0


def server_sockets(server: ServerHandle, transport: str) -> float:
    return metric(
        server, f'zou_events_connected_sockets{{namespace="/events",transport="{transport}"}}'
    )


def settled(server: ServerHandle, count: int) -> bool:
    """The server holds exactly ``count`` upgraded sockets: the dropped ones are gone."""
    return server_sockets(server, "websocket") == count and server_sockets(server, "polling") == 0


def test_a_burst_of_connects_within_the_admission_limits_is_all_accepted(
    redis_env: dict[str, str],
) -> None:
    count = 300
    with start_server(redis_env) as server:
        tokens = [make_token(server.secret_key) for _ in range(count)]
        with LoadClient(
            [server.url], tokens, count, transport="websocket", reconnect=False
        ) as load:
            stats = load.wait_stats(
                lambda s: s["connected"] + sum(s["connectErrors"].values()) == count,
                30,
                "every connect to be answered",
            )
        assert stats["connectErrors"] == {}
        assert "revocation store unreachable" not in server.logs()


def test_dropped_sockets_free_their_places_at_once(redis_env: dict[str, str]) -> None:
    count = 200
    with start_server({**redis_env, "ZOU_EVENTS_MAX_SOCKETS": str(count)}) as server:
        tokens = [make_token(server.secret_key) for _ in range(count)]
        with LoadClient(
            [server.url], tokens, count, transport="websocket", reconnect=False, ramp_ms=2
        ) as load:
            load.wait_connected(count, 20)
            load.drop()
            wait_until(lambda: settled(server, 0), 10, "the server to see the drops")
        answers = Counter(
            (response.status, response.data[:20] if response.status == 503 else b"")
            for response in (
                urllib3.request("GET", server.url + HANDSHAKE, retries=False) for _ in range(count)
            )
        )
        assert answers == {(200, b""): count}, answers


def test_the_cost_of_a_storm_of_disconnects_grows_linearly(redis_env: dict[str, str]) -> None:
    small, large = 1000, 6000
    raise_fd_limit(2 * large)  # per process: the server and the Node client inherit it
    costs: dict[int, float] = {}
    # What is measured is the disconnects: the connects before them must all be taken, and
    # this client does not retry a refusal. A momentary stall of the loop over admission's
    # lag bound (1 s) during the connects refused a few (seen on this 2-core machine); the
    # lag bound itself is exercised by the storm test below.
    env = {**redis_env, "ZOU_EVENTS_ADMISSION_MAX_LAG": "30"}
    with start_server(env) as server:
        worker = worker_pid(server)
        tokens = [make_token(server.secret_key) for _ in range(PEOPLE)]
        for count in (small, large):
            # Spread below the admission rate (1000/s), so that every connect is taken at once.
            with LoadClient(
                [server.url], tokens, count, transport="websocket", reconnect=False, ramp_ms=5
            ) as load:
                load.wait_connected(count, 60)
                wait_until(lambda c=count: settled(server, c), 20, f"{count} sockets")
                before = cpu_seconds(worker)
                load.drop()
                wait_until(lambda: settled(server, 0), 60, "every disconnect", step=0.5)
                costs[count] = cpu_seconds(worker) - before
    ratio = costs[large] / costs[small]
    print(f"worker CPU for the disconnects: {costs}, ratio {ratio:.1f}")
    assert ratio < 1.5 * large / small, f"{large / small:.0f}x the sockets cost {ratio:.1f}x"


@pytest.mark.slow
def test_three_reconnect_storms_of_5000_sockets(redis_env: dict[str, str]) -> None:
    raise_fd_limit(3 * STORM_SOCKETS)  # per process: the server and the Node client inherit it
    with start_server(redis_env) as server:
        worker = worker_pid(server)
        tokens = [make_token(server.secret_key) for _ in range(PEOPLE)]
        # Kitsu's path (polling, then WebSocket); the first connection is spread over 15 s.
        with LoadClient([server.url], tokens, STORM_SOCKETS, ramp_ms=3) as load:
            load.wait_connected(STORM_SOCKETS, 60)
            rss_after: list[int] = []
            for storm in range(1, STORMS + 1):
                load.reset()
                started = time.monotonic()
                load.drop()
                stats = load.wait_stats(
                    lambda s: s["connects"] == STORM_SOCKETS == s["connected"],
                    BACK_WITHIN,
                    f"every socket back after storm {storm}",
                )
                back_after = time.monotonic() - started
                assert stats["invalidSession"] == 0, stats
                assert stats["connectErrors"] == {} and stats["httpErrors"] == {}, stats
                assert stats["disconnects"] == {"transport close": STORM_SOCKETS}
                wait_until(
                    lambda: settled(server, STORM_SOCKETS),
                    ORPHANS_EXPIRE_WITHIN,
                    f"the server to settle after storm {storm} ({stats})",
                )
                rss_after.append(rss_bytes(worker))
                print(
                    f"storm {storm}: back in {back_after:.1f}s, 503 {stats['handshakeRefused']}, "
                    f"abandoned attempts {stats['attemptTimeouts']}, network errors "
                    f"{stats['netErrors']}, RSS {rss_after[-1] / 2**20:.0f} MiB"
                )
        assert rss_after[-1] <= rss_after[0] * 1.10, f"RSS after each storm: {rss_after}"
        assert worker_pid(server) == worker
