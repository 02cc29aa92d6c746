"""The fan-out's physical floor: a bare loop of non-blocking ``send()``s of one pre-built
frame to N loopback sockets, against which zou-events' CPU per delivery is read.

    python -m bench.send_floor [--sockets 1000] [--rate 20] [--duration 10]
                               [--results bench/results/<run>.json]

A reader process (pinned to CPU 1, as the load client) drains every socket; the senders run
on CPU 0 (as the server), one after the other over the same sockets, at the steady
scenario's pace (``rate`` messages a second, each to every socket): a C loop
(bench/send_floor.c, built with ``cc``) and a Python loop over plain ``socket.socket``
objects. The frame is the one zou-events sends in the steady scenario (an event with its
payload and recovery offset, in one WebSocket text frame). Reported per loop: deliveries
per second of CPU (the process's user + system time, not wall time), and the wall time of
one pass over all the sockets: the floor of the fan-out's share of the last recipient's
latency. With ``--results``, the steady rounds of a ``bench.run`` are set beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engineio import packet as eio_packet
from socketio import packet as sio_packet

from bench.publisher import EVENT, PROJECT_ID
from zou_events.transport.frames import message_frame

C_SOURCE = Path(__file__).with_name("send_floor.c")


def steady_frame() -> bytes:
    """The WebSocket frame of one steady-scenario event, offset included."""
    payload = {"project_id": PROJECT_ID, "n": 123, "t": time.time()}
    offset = "x" * 16  # a recovery offset's length (zou_events/recovery/window.py)
    event = sio_packet.Packet(sio_packet.EVENT, [EVENT, payload, offset], "/events")
    return message_frame(eio_packet.Packet(eio_packet.MESSAGE, event.encode()).encode())


def read_all(port: int, count: int) -> None:
    """The reader process: connect ``count`` sockets, drain them until each ends, print the
    bytes read."""
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    print("connected", flush=True)
    selector = selectors.DefaultSelector()
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, sock)
    total, open_sockets = 0, count
    while open_sockets:
        for key, _events in selector.select():
            sock = key.data
            data = sock.recv(1 << 16)
            if data:
                total += len(data)
            else:
                selector.unregister(sock)
                sock.close()
                open_sockets -= 1
    print(total, flush=True)


def python_loop(
    sockets: list[socket.socket], frame: bytes, rate: float, messages: int
) -> dict[str, Any]:
    """The Python floor: the same loop as the C one, over non-blocking sockets."""
    sent = refused = 0
    passes = []
    cpu_before = time.process_time()
    start = time.monotonic()
    for message in range(messages):
        delay = start + message / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        begun = time.perf_counter()
        for sock in sockets:
            try:
                if sock.send(frame) == len(frame):
                    sent += 1
                else:
                    refused += 1
            except BlockingIOError:
                refused += 1
        passes.append(time.perf_counter() - begun)
    cpu = time.process_time() - cpu_before
    return {"cpu_seconds": cpu, "sent": sent, "refused": refused, "pass_seconds": passes}


def c_loop(
    sockets: list[socket.socket], frame: bytes, rate: float, messages: int
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as build:
        binary = Path(build) / "send_floor"
        subprocess.run(["cc", "-O2", "-o", str(binary), str(C_SOURCE)], check=True)
        fds = [sock.fileno() for sock in sockets]
        command = [str(binary), str(rate), str(messages), frame.hex(), *map(str, fds)]
        done = subprocess.run(command, pass_fds=fds, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def summary(name: str, result: dict[str, Any]) -> dict[str, Any]:
    passes = sorted(result["pass_seconds"])
    return {
        "loop": name,
        "deliveries": result["sent"],
        "refused": result["refused"],
        "cpu_seconds": result["cpu_seconds"],
        "deliveries_per_cpu_second": result["sent"] / result["cpu_seconds"],
        "us_per_delivery": result["cpu_seconds"] / result["sent"] * 1e6,
        "pass_ms_p50": statistics.median(passes) * 1e3,
        "pass_ms_p99": passes[min(len(passes) - 1, int(0.99 * len(passes)))] * 1e3,
    }


def steady_rounds(results: Path) -> list[dict[str, Any]]:
    """zou-events' and the others' CPU per delivery in the steady rounds of a bench.run."""
    document = json.loads(results.read_text())
    steady = document["summary"].get("steady", {})
    return [
        {
            "loop": f"{server} (steady, bench.run)",
            "cpu_seconds_per_100k": numbers["cpu_seconds_per_100k"],
            "deliveries_per_cpu_second": 1e5 / numbers["cpu_seconds_per_100k"],
            "us_per_delivery": numbers["cpu_seconds_per_100k"] / 1e5 * 1e6,
        }
        for server, numbers in steady.items()
        if "rounds" in numbers and numbers["cpu_seconds_per_100k"]  # not the ratios
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per loop")
    parser.add_argument("--sender-cpu", type=int, default=0)
    parser.add_argument("--reader-cpu", type=int, default=1)
    parser.add_argument("--results", type=Path, help="a bench.run JSON to compare with")
    parser.add_argument("--reader", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.reader is not None:
        read_all(args.reader, args.sockets)
        return 0
    os.sched_setaffinity(0, {args.sender_cpu})  # inherited by the C loop
    listener = socket.create_server(("127.0.0.1", 0), backlog=args.sockets)
    port = listener.getsockname()[1]
    command = [sys.executable, "-m", "bench.send_floor", "--sockets", str(args.sockets)]
    reader = subprocess.Popen([*command, "--reader", str(port)], stdout=subprocess.PIPE, text=True)
    os.sched_setaffinity(reader.pid, {args.reader_cpu})
    sockets = [listener.accept()[0] for _ in range(args.sockets)]
    assert reader.stdout is not None
    assert reader.stdout.readline().strip() == "connected"
    for sock in sockets:
        sock.setblocking(False)
    frame = steady_frame()
    messages = round(args.rate * args.duration)
    results = [
        summary("C send() loop", c_loop(sockets, frame, args.rate, messages)),
        summary("Python send() loop", python_loop(sockets, frame, args.rate, messages)),
    ]
    for sock in sockets:
        sock.close()
    read = int(reader.stdout.readline())
    reader.wait()
    sent = sum(result["deliveries"] for result in results)
    print(
        f"{args.sockets} loopback sockets, {args.rate:g} messages/s, {len(frame)}-byte frame,"
        f" {messages} messages per loop; the reader got {read} of {sent * len(frame)} bytes"
    )
    for result in results:
        print(
            f"{result['loop']:>22}: {result['deliveries_per_cpu_second']:>9,.0f} deliveries"
            f" per CPU second ({result['us_per_delivery']:.2f} µs each), one pass over"
            f" {args.sockets} sockets {result['pass_ms_p50']:.2f} ms (p99"
            f" {result['pass_ms_p99']:.2f} ms), refused {result['refused']}"
        )
    if args.results:
        floor = results[0]["us_per_delivery"]
        for other in steady_rounds(args.results):
            print(
                f"{other['loop']:>22}: {other['deliveries_per_cpu_second']:>9,.0f} deliveries"
                f" per CPU second ({other['us_per_delivery']:.2f} µs each,"
                f" {other['us_per_delivery'] / floor:.2f}x the C loop's)"
            )
    return 0 if read == sent * len(frame) else 1


if __name__ == "__main__":
    sys.exit(main())
