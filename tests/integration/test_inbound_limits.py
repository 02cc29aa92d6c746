"""What one client may send (issue 10, zou_events/transport/inbound.py), against a real
server with the default limits and raw sockets: floods of every kind are cut with a counted
reason while the worker keeps answering, binary attachments are bounded, a garbage upgrade
probe closes only its WebSocket, and a burst as Kitsu's review room sends it is never cut."""

from __future__ import annotations

import contextlib
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from tests.resilience.support import health_seconds, metric, worker_pid
from tests.support.raw_eio import Polling
from tests.support.raw_websocket import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_TEXT,
    RawWebSocket,
    frame,
)
from tests.support.server import ServerHandle, start_server, wait_until
from tests.support.tokens import make_token

PACKETS_BURST = 500  # the default ZOU_EVENTS_INBOUND_PACKETS_BURST
MAX_PAYLOAD = 1_000_000  # the default ZOU_EVENTS_MAX_PAYLOAD_BYTES
WEBSOCKET = "EIO=4&transport=websocket"
REVIEW_BURST = 300  # room events at once: more than Kitsu ever sends (it throttles to 5/s)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    with start_server() as handle:
        yield handle


def cuts(server: ServerHandle, reason: str) -> float:
    return metric(server, f'zou_events_sockets_cut_total{{reason="{reason}"}}')


def events_disconnects(server: ServerHandle, reason: str) -> float:
    series = f'zou_events_disconnects_total{{namespace="/events",reason="{reason}"}}'
    return metric(server, series)


def opened(server: ServerHandle, query: str = WEBSOCKET, cookie: str | None = None) -> RawWebSocket:
    ws = RawWebSocket(server.port, query, cookie)
    assert ws.status == 101
    assert ws.read_text().startswith("0{")
    return ws


def send_in_background(ws: RawWebSocket, data: bytes) -> threading.Thread:
    """Write ``data`` while the test reads; the server may cut the connection meanwhile."""

    def send() -> None:
        with contextlib.suppress(OSError):
            ws.send(data)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def close_code_within(ws: RawWebSocket, seconds: float) -> int | None:
    ws.sock.settimeout(seconds)
    return ws.close_code()


def assert_serving(server: ServerHandle, worker: int) -> None:
    assert worker_pid(server) == worker
    assert health_seconds(server) < 1.0


FLOODS = {
    # (what one frame is, whether the socket joins /events with a token first)
    "websocket_pings": (frame(b"", OP_PING), False),
    "engineio_noops": (frame(b"6"), False),
    "socketio_events": (frame(b'42/events,["flood",1]'), True),
    "events_to_a_namespace_not_joined": (frame(b'42/events,["flood",1]'), False),
}


@pytest.mark.parametrize("kind", FLOODS)
def test_a_flood_of_small_messages_is_cut_while_the_worker_answers(
    server: ServerHandle, kind: str
) -> None:
    one, joins = FLOODS[kind]
    worker = worker_pid(server)
    before = cuts(server, "inbound_flood")
    disconnects = events_disconnects(server, "inbound_flood")
    cookie = f"access_token_cookie={make_token(server.secret_key)}" if joins else None
    with opened(server, cookie=cookie) as ws:
        if joins:
            ws.send_text("40/events,")
            assert ws.read_text().startswith("40/events,")
        sender = send_in_background(ws, one * (10 * PACKETS_BURST))
        assert close_code_within(ws, 10) == 1008
        sender.join(10)
    assert cuts(server, "inbound_flood") == before + 1
    if joins:
        wait_until(
            lambda: events_disconnects(server, "inbound_flood") == disconnects + 1,
            5,
            "the /events disconnect counted as inbound_flood",
        )
    assert "client cut" in server.logs()
    assert "is not connected to namespace" not in server.logs()  # no line per packet
    assert_serving(server, worker)


def test_a_megabyte_in_one_byte_fragments_never_stalls_the_loop(server: ServerHandle) -> None:
    worker = worker_pid(server)
    before = cuts(server, "inbound_flood")
    fragments = [frame(b"4", fin=False)]
    fragments += [frame(b"x", OP_CONTINUATION, fin=False)] * (MAX_PAYLOAD - 2)
    fragments.append(frame(b"x", OP_CONTINUATION))
    with opened(server) as ws:
        sender = send_in_background(ws, b"".join(fragments))
        started = time.monotonic()
        slowest = 0.0
        while sender.is_alive() and time.monotonic() - started < 5:
            slowest = max(slowest, health_seconds(server))
        assert close_code_within(ws, 10) == 1008
        sender.join(10)
    assert slowest < 1.0
    assert cuts(server, "inbound_flood") == before + 1
    assert_serving(server, worker)


def test_a_polling_flood_cuts_the_session(server: ServerHandle) -> None:
    before = cuts(server, "inbound_flood")
    polling = Polling(server.url)
    assert polling.post("40") == 200
    event = '42["flood",1]'
    deadline = time.monotonic() + 15
    while cuts(server, "inbound_flood") == before and time.monotonic() < deadline:
        for _ in range(20):
            polling.post(*[event] * 16)  # engineio's most per POST
    assert cuts(server, "inbound_flood") == before + 1
    assert polling.post(event) == 400  # the session is gone


def test_attachments_past_max_payload_are_dropped_and_cut(server: ServerHandle) -> None:
    before = cuts(server, "too_big")
    with opened(server) as ws:
        ws.send_text("40")
        assert ws.read_text().startswith("40")
        ws.send_text('4560-["upload",{"_placeholder":true,"num":0}]')  # 60 announced
        attachment = frame(b"\0" * (MAX_PAYLOAD // 10), OP_BINARY)
        send_in_background(ws, attachment * 20)
        wait_until(lambda: cuts(server, "too_big") == before + 1, 10, "the cut counted")


def test_too_many_attachments_announced_is_cut_at_once(server: ServerHandle) -> None:
    before = cuts(server, "too_big")
    with opened(server) as ws:
        ws.send_text("40")
        assert ws.read_text().startswith("40")
        ws.send_text('45100000-["upload",{"_placeholder":true,"num":0}]')
        wait_until(lambda: cuts(server, "too_big") == before + 1, 5, "the cut counted")


@pytest.mark.parametrize("probe", [b"", b"garbage", b"bnot base64!"])
def test_a_garbage_upgrade_probe_closes_only_its_websocket(
    server: ServerHandle, probe: bytes
) -> None:
    earlier_lines = len(server.logs().splitlines())
    before = cuts(server, "bad_packet")
    polling = Polling(server.url)
    assert polling.post("40") == 200
    assert polling.get()[0].startswith("40")
    with RawWebSocket(server.port, f"{WEBSOCKET}&sid={polling.sid}") as ws:
        assert ws.status == 101
        ws.send(frame(probe, OP_TEXT))
        assert close_code_within(ws, 5) == 1003
    assert cuts(server, "bad_packet") == before + 1
    # the polling session goes on, and may still upgrade
    assert polling.post('42["still","polling"]') == 200
    with RawWebSocket(server.port, f"{WEBSOCKET}&sid={polling.sid}") as ws:
        ws.send_text("2probe")
        assert ws.read_text() == "3probe"
        ws.send_text("5")
        ws.send(frame(struct.pack("!H", 1000), OP_CLOSE))
        assert close_code_within(ws, 5) == 1000
    ours = server.logs().splitlines()[earlier_lines:]
    assert not [line for line in ours if "Traceback" in line]


def test_a_review_room_burst_is_not_cut(server: ServerHandle) -> None:
    """Far more than Kitsu sends at once (frame sync, annotation strokes): never cut."""
    before = cuts(server, "inbound_flood")
    cookie = f"access_token_cookie={make_token(server.secret_key)}"
    with opened(server, cookie=cookie) as ws:
        ws.send_text("40/events,")
        assert ws.read_text().startswith("40/events,")
        update = b'42/events,["preview-room:room-updated",{"playlist_id":"p","current_frame":1}]'
        ws.send(frame(update) * REVIEW_BURST)
        ws.send(frame(b"3"))  # a pong, and the socket must still be served after all that
        ws.sock.settimeout(2)
        with pytest.raises(TimeoutError):
            ws.read_frame()  # nothing comes back: no close frame
    assert cuts(server, "inbound_flood") == before
