"""A property-based fuzzer of Engine.IO packets, Socket.IO packets and WebSocket frames
(issue 10), from clients without and with a token, over WebSocket and long-polling, for 10 s
each under attack_window's bounds. Properties: the instance keeps serving (the window's
bounds), every polling POST is answered within 1 s with 200 or 400, what is refused is
counted, and nothing a client sends makes the server log a traceback.

Reproducible: examples come in chunks of CHUNK, chunk k drawn with the seed
HOSTILE_FUZZ_SEED + k (default 0), no example database, no deadline, no shrinking (the
window's measurements, not one example, are what fails)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
import urllib3
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.hostile.attackers import SEND_TIMEOUT, Tally
from tests.hostile.support import Counted, Instance, Window, attack_window, open_websocket
from tests.support.raw_eio import RECORD_SEPARATOR, Polling
from tests.support.raw_websocket import RawWebSocket, frame

# A chunk cut short by TimeUp is a "failure" to hypothesis, which renders its example.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
CHUNK = 100  # examples per seeded chunk
SEED = int(os.environ.get("HOSTILE_FUZZ_SEED", "0"))
ANSWER_BOUND = 1.0

# --- strategies -----------------------------------------------------------------------

numbers = st.one_of(
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -0.0, 1e308, 2**53 + 1, 10**400]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=30))
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def nested_text(depth: int) -> str:
    return "[" * depth + "0" + "]" * depth


json_texts = st.one_of(
    json_values.map(lambda value: json.dumps(value, allow_nan=True)),  # NaN, Infinity included
    st.integers(100, 5_000).map(nested_text),  # deeper than any bound
    st.text(alphabet='[]{}",:0123456789 eE.-+NaInfityrulse\\', max_size=40),  # almost JSON
)
event_names = st.one_of(
    st.sampled_from(
        [
            "preview-room:open-playlist",
            "preview-room:join",
            "preview-room:room-updated",
            "preview-room:panzoom-changed",
            "preview-room:add-annotation",
            "preview-room:leave",
            "hostile:x",
        ]
    ),
    st.text(max_size=12),
)
namespaces = st.sampled_from(["", "/events,", "/,", "/nope,", "/events", "/" * 3 + ","])
ack_ids = st.one_of(st.just(""), st.integers(0, 2**80).map(str))
attachments = st.one_of(st.just(""), st.integers(0, 10**6).map(lambda n: f"{n}-"))


@st.composite
def socketio_packets(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from("0123456789x"))
    head = kind + (draw(attachments) if kind in "56" else "") + draw(namespaces) + draw(ack_ids)
    if kind in "2356":  # events and acks: an array, often well-formed, fields fuzzed
        body = draw(
            st.one_of(
                st.builds(
                    lambda e, v: json.dumps([e, v], allow_nan=True), event_names, json_values
                ),
                st.builds(
                    lambda e, t: f'["{e}",{t}]',
                    event_names.map(lambda e: e.replace('"', "")),
                    json_texts,
                ),
                json_texts,
            )
        )
    else:
        body = draw(json_texts)
    return "4" + head + body


engineio_packets = st.one_of(
    st.builds(lambda t, body: t + body, st.sampled_from("0123456789x "), st.text(max_size=40)),
    st.sampled_from(["2", "3", "5", "6", "2probe", "3probe", "1", ""]),
)
packets = st.one_of(socketio_packets(), engineio_packets)

frames = st.one_of(
    packets.map(lambda text: frame(text.encode("utf-8", "surrogatepass"))),
    st.builds(  # any frame: opcode, fin, rsv, mask, announced length, bad UTF-8
        lambda payload, opcode, fin, masked, rsv, length: frame(
            payload, opcode, fin=fin, masked=masked, rsv=rsv, length=length
        ),
        st.binary(max_size=300),
        st.integers(0, 15),
        st.booleans(),
        st.sampled_from([True, True, True, False]),  # mostly masked
        st.sampled_from([0, 0, 0, 1, 2, 4, 7]),
        st.one_of(st.none(), st.none(), st.integers(0, 2**63 - 1)),
    ),
)
polling_bodies = st.one_of(
    st.lists(packets, min_size=1, max_size=20).map(
        lambda p: RECORD_SEPARATOR.join(p).encode("utf-8", "surrogatepass")
    ),
    st.binary(max_size=500),
)


def run_chunks(
    window: Window, strategy: st.SearchStrategy[Any], send: Callable[[Any], None]
) -> int:
    """Draw examples of ``strategy`` in seeded chunks and ``send`` each until the window
    ends; returns how many were sent."""
    sent = 0

    for chunk in range(10_000):
        if window.remaining() <= 0:
            return sent

        @seed(SEED + chunk)
        @settings(
            max_examples=CHUNK,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def example(value: Any) -> None:
            nonlocal sent
            if window.remaining() <= 0:
                raise TimeUp
            send(value)
            sent += 1

        try:
            example()
        except TimeUp:
            return sent
    return sent


class TimeUp(Exception):
    """Ends a chunk when the window's time is up (instead of drawing its last examples)."""


class Warmup:
    """Stands for a window during one chunk, before the measured one: hypothesis's first
    draws of a strategy are slow, and would otherwise eat the attack's time."""

    def __init__(self) -> None:
        self.calls = 0

    def remaining(self) -> float:
        self.calls += 1
        return 1.0 if self.calls <= CHUNK else 0.0


def log_tracebacks(instance: Instance, start: int) -> list[str]:
    with instance.server.log_path.open("rb") as log:
        log.seek(start)
        return [line.decode(errors="replace")[:300] for line in log if b'"exception"' in line]


# --- the tests ------------------------------------------------------------------------


@pytest.mark.parametrize("authenticated", [False, True], ids=["no_token", "with_token"])
def test_fuzzed_websocket_frames(instance: Instance, authenticated: bool) -> None:
    tally = Tally()
    connection: list[RawWebSocket] = []
    log_start = instance.server.log_path.stat().st_size

    def send(burst: list[bytes]) -> None:
        if not connection:
            try:
                ws = open_websocket(instance, instance.cookie() if authenticated else None)
            except (OSError, AssertionError):
                tally.add("refused")
                return
            ws.sock.settimeout(SEND_TIMEOUT)
            connection.append(ws)
            tally.add("connections")
        try:
            connection[0].send(b"".join(burst))
            connection[0].sock.setblocking(False)
            while connection[0].sock.recv(65536):  # read what the server answers
                pass
            tally.add("cut")  # the server closed the connection
            connection.pop().close()
        except BlockingIOError:
            connection[0].sock.settimeout(SEND_TIMEOUT)
        except OSError:
            tally.add("cut")
            connection.pop().close()

    expect = [Counted("zou_events_sockets_cut_total")]
    name = f"fuzz websocket {'auth' if authenticated else 'no token'}"
    bursts = st.lists(frames, min_size=1, max_size=16)
    run_chunks(Warmup(), bursts, lambda _: None)
    with attack_window(instance, name, expect) as window:
        sent = run_chunks(window, bursts, send)
        window.notes["attacker"] = {"bursts": sent, **tally.counts, "seed": SEED}
        tracebacks = log_tracebacks(instance, log_start)
        window.check(not tracebacks, f"tracebacks logged: {tracebacks[:3]}")
    for ws in connection:
        ws.close()


@pytest.mark.parametrize("authenticated", [False, True], ids=["no_token", "with_token"])
def test_fuzzed_polling_bodies(instance: Instance, authenticated: bool) -> None:
    tally = Tally()
    session: list[Polling] = []
    slowest = [0.0]
    unexpected: list[str] = []
    log_start = instance.server.log_path.stat().st_size
    headers = {"Cookie": instance.cookie()} if authenticated else {}

    def send(body: bytes) -> None:
        if not session:
            polling = Polling(instance.url, headers)
            if authenticated:
                assert polling.post("40/events,") == 200
            session.append(polling)
        started = time.monotonic()
        response = urllib3.request(
            "POST",
            f"{session[0].base}&sid={session[0].sid}",
            body=body,
            headers={**headers, "Content-Type": "text/plain;charset=UTF-8"},
            timeout=3 * ANSWER_BOUND,
            retries=False,
        )
        slowest[0] = max(slowest[0], time.monotonic() - started)
        tally.add(str(response.status))
        if response.status not in (200, 400):
            unexpected.append(f"{response.status} for {body[:200]!r}")
        if response.status == 400:
            session.pop()  # engineio closed the session

    expect = [Counted("zou_events_polling_requests_refused_total")]
    name = f"fuzz polling {'auth' if authenticated else 'no token'}"
    run_chunks(Warmup(), polling_bodies, lambda _: None)
    with attack_window(instance, name, expect) as window:
        sent = run_chunks(window, polling_bodies, send)
        window.notes["attacker"] = {"posts": sent, **tally.counts, "seed": SEED}
        window.notes["attacker"]["slowest_s"] = round(slowest[0], 3)
        tracebacks = log_tracebacks(instance, log_start)
        window.check(not tracebacks, f"tracebacks logged: {tracebacks[:3]}")
        window.check(not unexpected, f"POSTs answered neither 200 nor 400: {unexpected[:5]}")
        window.check(slowest[0] < ANSWER_BOUND, f"a POST took {slowest[0]:.2f} s to answer")
