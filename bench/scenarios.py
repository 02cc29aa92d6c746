"""One measured round of each scenario against one server: steady fan-out, burst, idle hold,
reconnect storm."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench import procs
from bench.latency import percentiles
from bench.load_client import Connected, LoadClient
from bench.publisher import Publisher
from bench.servers import ServerUnderTest, warnings

SETTLE_SECONDS = 1.0  # lets the worker finish handshakes and free their buffers before RSS reads
PERCENTILES = (50, 99, 99.9)

# Publishes a scenario's events; returns how many, and the wall time of the first send.
Publish = Callable[[Publisher], tuple[int, float]]


@dataclass(frozen=True)
class Setup:
    """Where the processes run and how patient the load client is."""

    client_cpus: set[int] | None
    connect_concurrency: int = 200
    connect_timeout: float = 60.0
    handshake_timeout: float = 10.0


@dataclass
class Round:
    server: str
    scenario: str
    kitsu_client: str | None  # what opened the Kitsu tabs (socketio, wire); None: raw sockets
    clients_wanted: int
    clients_joined: int
    connect_failures: dict[str, int]
    connect_retries: dict[str, int]
    connect_seconds: float
    # The worker's CPU over the connect phase (handshakes, authentication, upgrades), per
    # socket joined: meaningful on a busy machine, where connect_seconds is not.
    connect_cpu_ms_per_socket: float | None
    # Over the connect phase, in cores: the worker's and the load client's CPU. A client
    # near 1.0 is itself what bounds a storm's time, not the server.
    connect_server_cpu_share: float | None
    connect_client_cpu_share: float | None
    # Connections dropped by the kernel's full accept queues meanwhile (the machine's count)
    connect_listen_overflows: int
    connect_upgraded: int  # Kitsu-style sockets that reached WebSocket
    events: int
    expected_deliveries: int
    deliveries: int
    complete: bool
    latency: dict[str, float | None]
    max_latency: float
    drain_seconds: float | None
    deliveries_per_second: float | None
    window_seconds: float  # from the first publish until the last delivery or the timeout
    server_cpu_seconds: float
    cpu_seconds_per_100k: float | None
    client_cpu_share: float  # of one core, over the measured window: ~1.0 means client-bound
    # CPU used by everything else (Redis, the publisher, other work on the machine), in cores:
    # well above ~0.1 means the machine was not quiet and the round is suspect.
    other_cpu_share: float
    # Time the server's and the client's main threads waited for a CPU while runnable: the
    # part of the latency that other processes on the same CPU caused.
    server_runqueue_wait_seconds: float
    client_runqueue_wait_seconds: float
    rss_empty_bytes: int
    rss_idle_bytes: int
    rss_per_idle_connection: float | None
    # Worker CPU while the sockets sat idle (pings and their answers), in µs per socket per
    # second; None when the scenario has no idle window.
    idle_cpu_us_per_socket_second: float | None = None
    disconnects: dict[str, int] = field(default_factory=dict)
    # Events that not every socket received: how many, and the first ones (sequence, count).
    short_event_count: int = 0
    short_events: list[tuple[int, int]] = field(default_factory=list)
    server_warnings: list[str] = field(default_factory=list)  # last lines of its log


def _round(
    server: ServerUnderTest,
    scenario: str,
    setup: Setup,
    clients: int,
    publish: Publish,
    drain_timeout: float,
    concurrency: int | None = None,
    source_addresses: int = 0,
    idle_seconds: float = 0.0,
    kitsu_client: str | None = None,
) -> Round:
    """Start the server, connect ``clients`` sockets (raw WebSockets, or Kitsu tabs opened by
    ``kitsu_client``), leave them idle ``idle_seconds``, publish, wait for every delivery."""
    publisher = Publisher()
    with server.running(clients) as running:
        time.sleep(SETTLE_SECONDS)
        rss_empty = procs.rss_bytes(running.worker_pid)
        connect_cpu_before = procs.cpu_seconds(running.worker_pid)
        with LoadClient(
            running.port,
            running.tokens,
            clients,
            setup.client_cpus,
            concurrency or setup.connect_concurrency,
            # Admission control lets a few hundred new sessions in per second: 10k take a while.
            max(setup.connect_timeout, clients / 100),
            setup.handshake_timeout,
            kitsu_client,
            source_addresses,
        ) as client:
            connect_client_cpu_before = procs.cpu_seconds(client.pid)
            overflows_before = procs.listen_overflows()
            connected: Connected = client.wait_connected()
            overflows = procs.listen_overflows() - overflows_before
            connect_cpu = procs.cpu_seconds(running.worker_pid) - connect_cpu_before
            connect_client_cpu = procs.cpu_seconds(client.pid) - connect_client_cpu_before
            time.sleep(SETTLE_SECONDS)
            rss_idle = procs.rss_bytes(running.worker_pid)
            idle_cpu = None
            if idle_seconds:
                idle_cpu_before = procs.cpu_seconds(running.worker_pid)
                time.sleep(idle_seconds)
                idle_cpu = procs.cpu_seconds(running.worker_pid) - idle_cpu_before
            client.reset()
            cpu_before = procs.cpu_seconds(running.worker_pid)
            client_cpu_before = procs.cpu_seconds(client.pid)
            busy_before = procs.machine_busy_seconds()
            server_wait_before = procs.runqueue_wait_seconds(running.worker_pid)
            client_wait_before = procs.runqueue_wait_seconds(client.pid)
            started = time.monotonic()
            events, first_send = publish(publisher)
            complete = client.wait_for(events, drain_timeout)
            elapsed = time.monotonic() - started
            server_cpu = procs.cpu_seconds(running.worker_pid) - cpu_before
            client_cpu = procs.cpu_seconds(client.pid) - client_cpu_before
            other_cpu = procs.machine_busy_seconds() - busy_before - server_cpu - client_cpu
            server_wait = procs.runqueue_wait_seconds(running.worker_pid) - server_wait_before
            client_wait = procs.runqueue_wait_seconds(client.pid) - client_wait_before
            report = client.report(events)
        server_warnings = warnings(running.log)
    publisher.close()
    deliveries = report["received"]
    last = report["last_receive"]
    drain = last - first_send if last is not None else None
    joined = connected.joined
    return Round(
        server=server.name,
        scenario=scenario,
        kitsu_client=kitsu_client,
        clients_wanted=clients,
        clients_joined=joined,
        connect_failures=connected.failures,
        connect_retries=connected.retries,
        connect_seconds=connected.seconds,
        connect_cpu_ms_per_socket=connect_cpu / joined * 1e3 if joined else None,
        connect_server_cpu_share=_share(connect_cpu, connected.seconds),
        connect_client_cpu_share=_share(connect_client_cpu, connected.seconds),
        connect_listen_overflows=overflows,
        connect_upgraded=connected.upgraded,
        events=events,
        expected_deliveries=events * joined,
        deliveries=deliveries,
        complete=complete,
        latency=percentiles(report["histogram"], report["buckets_per_e"], PERCENTILES),
        max_latency=report["max_latency"],
        drain_seconds=drain,
        deliveries_per_second=deliveries / drain if drain else None,
        window_seconds=elapsed,
        server_cpu_seconds=server_cpu,
        cpu_seconds_per_100k=server_cpu / deliveries * 1e5 if deliveries else None,
        client_cpu_share=client_cpu / elapsed,
        other_cpu_share=other_cpu / elapsed,
        server_runqueue_wait_seconds=server_wait,
        client_runqueue_wait_seconds=client_wait,
        rss_empty_bytes=rss_empty,
        rss_idle_bytes=rss_idle,
        rss_per_idle_connection=(rss_idle - rss_empty) / joined if joined else None,
        idle_cpu_us_per_socket_second=(
            idle_cpu / joined / idle_seconds * 1e6 if idle_cpu is not None and joined else None
        ),
        disconnects=report["disconnects"],
        short_event_count=len(report["short_events"]),
        short_events=report["short_events"][:20],
        server_warnings=server_warnings,
    )


def _share(cpu_seconds: float, wall_seconds: float) -> float | None:
    return cpu_seconds / wall_seconds if wall_seconds > 0 else None


def steady(
    server: ServerUnderTest, setup: Setup, clients: int, rate: float, duration: float
) -> Round:
    """``clients`` sockets, ``rate`` events/s for ``duration`` s: fan-out latency under load."""

    def publish(publisher: Publisher) -> tuple[int, float]:
        first = time.time()
        return publisher.steady(rate, duration), first

    return _round(server, "steady", setup, clients, publish, drain_timeout=10.0)


def burst(
    server: ServerUnderTest, setup: Setup, clients: int, events: int, timeout: float
) -> Round:
    """``events`` published at once to ``clients`` sockets: time until the last delivery."""

    def publish(publisher: Publisher) -> tuple[int, float]:
        sent = publisher.burst(events)
        return events, sent

    return _round(server, "burst", setup, clients, publish, drain_timeout=timeout)


def _few_events(publisher: Publisher) -> tuple[int, float]:
    """5 events over 2.5 s: every socket connected before must receive them all."""
    first = time.time()
    return publisher.steady(rate=2, duration=2.5), first


def idle(
    server: ServerUnderTest,
    setup: Setup,
    clients: int,
    concurrency: int,
    scenario: str = "idle",
    source_addresses: int = 0,
    idle_seconds: float = 0.0,
) -> Round:
    """Hold ``clients`` idle sockets (memory per connection, and CPU over ``idle_seconds``),
    then check they all still hear."""
    return _round(
        server,
        scenario,
        setup,
        clients,
        _few_events,
        drain_timeout=30.0,
        concurrency=concurrency,
        source_addresses=source_addresses,
        idle_seconds=idle_seconds,
    )


def storm(
    server: ServerUnderTest,
    setup: Setup,
    clients: int,
    kitsu_client: str = "socketio",
    source_addresses: int = 0,
) -> Round:
    """``clients`` Kitsu tabs (socket.io-client: cookie, polling handshake, then upgrade)
    reconnecting at once, as after a restart: time until all joined, failures, CPU per
    connect; then 5 events that every one must receive. ``kitsu_client``: "socketio" runs
    socket.io-client, "wire" its requests on raw sockets (the load client then costs less).
    ``source_addresses``: the tabs' connections spread over that many 127.x.y.z addresses
    (0: all from one, whose ~28,000 ephemeral ports a storm's ~50,000 short connections
    reuse within TIME_WAIT's minute)."""
    return _round(
        server,
        "storm",
        setup,
        clients,
        _few_events,
        drain_timeout=30.0,
        concurrency=clients,
        kitsu_client=kitsu_client,
        source_addresses=source_addresses,
    )
