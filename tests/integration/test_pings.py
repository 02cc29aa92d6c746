"""Engine.IO pings, sent for every socket by one greenlet (zou_events/transport/pings.py)."""

from __future__ import annotations

import itertools
import time

from tests.support.raw_websocket import RawWebSocket
from tests.support.server import start_server
from tests.support.tokens import make_token

FAST_PINGS = {"ZOU_EVENTS_PING_INTERVAL": "1", "ZOU_EVENTS_PING_TIMEOUT": "1"}
QUERY = "EIO=4&transport=websocket"


def test_a_socket_that_answers_is_pinged_every_interval_and_stays() -> None:
    with start_server(FAST_PINGS) as server:
        cookie = f"access_token_cookie={make_token(server.secret_key)}"
        with RawWebSocket(server.port, QUERY, cookie=cookie) as ws:
            assert ws.read_text().startswith('0{"sid"')
            ws.send_text("40/events,")
            assert ws.read_text().startswith('40/events,{"sid"')
            pings = []
            # Four cycles, several times the ping timeout: still pinged means still open.
            while len(pings) < 4:
                if ws.read_text() == "2":
                    pings.append(time.monotonic())
                    ws.send_text("3")
            gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
            assert all(0.8 < gap < 3 for gap in gaps), gaps  # one interval, not one per PONG


def test_a_socket_that_stops_answering_is_cut_after_the_ping_timeout() -> None:
    with start_server(FAST_PINGS) as server:
        cookie = f"access_token_cookie={make_token(server.secret_key)}"
        with RawWebSocket(server.port, QUERY, cookie=cookie, timeout=10) as ws:
            assert ws.read_text().startswith('0{"sid"')
            ws.send_text("40/events,")
            assert ws.read_text().startswith('40/events,{"sid"')
            started = time.monotonic()
            texts = []
            while True:  # never answers: engineio closes it once the ping timed out
                try:
                    opcode, payload = ws.read_frame()
                except ConnectionError:
                    break
                if opcode == 0x8:
                    break
                texts.append(payload.decode())
            assert texts[0] == "2"
            assert time.monotonic() - started < 10
