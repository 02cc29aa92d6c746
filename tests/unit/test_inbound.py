"""The inbound budget of a session (zou_events/transport/inbound.py) on engineio's and
python-socketio's real objects: token buckets, the metering of polling packets, what counts
as an Engine.IO packet, bounds on binary attachments, and the cap on the handlers one
socket runs."""

from __future__ import annotations

import io
import json

import engineio
import gevent
import pytest
from engineio import packet as eio_packet
from engineio.socket import Socket
from gevent.event import Event
from socketio import packet as sio_packet

from zou_events.config import load_settings
from zou_events.rooms.limits import TokenBucket
from zou_events.transport import inbound
from zou_events.transport.inbound import InboundLimits, InboundMeter
from zou_events.transport.server import EventServer


def test_token_bucket_starts_full_refills_at_its_rate_and_caps_at_its_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=5)
    start = bucket.updated
    assert all(bucket.take(1, start) for _ in range(5))
    assert not bucket.take(1, start)
    assert bucket.take(1, start + 0.15)  # one token back after 0.1 s at 10/s
    assert not bucket.take(1, start + 0.15)
    assert not bucket.take(6, start + 100)  # never more than the burst saved
    assert bucket.take(5, start + 100)


def test_meter_refuses_past_either_bucket() -> None:
    by_packets = InboundMeter(InboundLimits(1e-9, 3, 1e9, 10**9))
    assert [by_packets.charge(1) for _ in range(4)] == [True, True, True, False]
    by_bytes = InboundMeter(InboundLimits(1e9, 10**9, 1e-9, 1000))
    assert by_bytes.charge(600)
    assert not by_bytes.charge(600)


class Recorder:
    def __init__(self) -> None:
        self.messages: list[object] = []
        self.cuts: list[tuple[str, bool]] = []

    def cut(self, socket: Socket, reason: str, whole: bool) -> None:
        self.cuts.append((reason, whole))
        socket.close(wait=False, abort=True)


@pytest.fixture
def polling() -> tuple[Socket, Recorder]:
    """An engineio socket on polling, metered, whose messages are recorded."""
    server = engineio.Server(async_mode="gevent", async_handlers=False)  # as socketio's
    recorder = Recorder()
    server.on("message", lambda _sid, data: recorder.messages.append(data))
    socket = Socket(server, "sid")
    socket.connected = True
    inbound.install(socket, InboundLimits(1e-9, 5, 1e9, 10**9), recorder.cut)
    return socket, recorder


def test_polling_packets_past_the_budget_cut_the_session(polling) -> None:
    socket, recorder = polling
    for number in range(8):  # as in one POST: what follows the cut is dropped
        socket.receive(eio_packet.Packet(eio_packet.MESSAGE, data=f"2[{number}]"))
    assert recorder.messages == [f"2[{n}]" for n in range(5)]
    assert recorder.cuts == [(inbound.INBOUND_FLOOD, True)]
    assert socket.closed


def test_upgraded_sockets_are_metered_by_their_websocket_frames(polling) -> None:
    socket, recorder = polling
    socket.upgraded = True
    for _ in range(8):
        socket.receive(eio_packet.Packet(eio_packet.MESSAGE, data="2[]"))
    assert len(recorder.messages) == 8
    assert recorder.cuts == []


def test_packet_data_parsed_as_json_is_charged_by_its_size() -> None:
    server = engineio.Server(async_mode="gevent")
    socket = Socket(server, "sid")
    recorder = Recorder()
    inbound.install(socket, InboundLimits(1e9, 10**9, 1e-9, 1000), recorder.cut)
    socket.receive(eio_packet.Packet(encoded_packet="4" + '{"x":"' + "y" * 2000 + '"}'))
    assert recorder.cuts == [(inbound.INBOUND_FLOOD, True)]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("2probe", True),
        ("42/events,[]", True),
        ("6", True),
        ("9", True),  # engineio decodes it, then ignores the unknown type
        ("bAAEC", True),  # base64 binary, as a client forcing base64 sends it
        (b"\x00\x01", True),
        ("", False),
        ("garbage", False),
        ("٣", False),  # a digit for str.isdigit(), not for int() of engineio... nor ASCII
        ("bnot base64!", False),
    ],
)
def test_what_engineio_can_decode(message: str | bytes, expected: bool) -> None:
    assert inbound.is_engineio_packet(message) is expected
    if expected:
        eio_packet.Packet(encoded_packet=message)  # the check never lets a failure through


def test_attachments_bounded_in_count_and_total_size() -> None:
    announced = sio_packet.Packet(encoded_packet='52-["x",{"_placeholder":true,"num":0}]')
    assert inbound.attachments_within(announced, 1000)
    announced.add_attachment(b"a" * 600)
    assert inbound.attachments_within(announced, 1000)
    announced.attachments.append(b"b" * 600)  # as add_attachment would, before completing
    assert not inbound.attachments_within(announced, 1000)
    too_many = sio_packet.Packet(
        encoded_packet=f'5{inbound.MAX_ATTACHMENTS + 1}-["x",{{"_placeholder":true,"num":0}}]'
    )
    assert not inbound.attachments_within(too_many, 10**9)


class InProcess:
    """The real EventServer, asked through its WSGI entry as gunicorn's worker would."""

    def __init__(self) -> None:
        settings = load_settings({"SECRET_KEY": "k" * 32, "ZOU_EVENTS_ZOU_API_URL": ""})
        self.sio = EventServer(settings)
        body = self.request("GET", handshake=True)
        self.sid = json.loads(body[1:])["sid"]

    def request(self, method: str, body: str = "", handshake: bool = False) -> str:
        query = "EIO=4&transport=polling" + ("" if handshake else f"&sid={self.sid}")
        data = body.encode()
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": "/socket.io/",
            "QUERY_STRING": query,
            "CONTENT_LENGTH": str(len(data)),
            "wsgi.input": io.BytesIO(data),
        }
        statuses: list[str] = []
        response = self.sio.handle_request(environ, lambda status, _h: statuses.append(status))
        assert statuses[0].startswith("200"), statuses
        return b"".join(response).decode()


def test_the_server_runs_at_most_a_few_handlers_per_socket() -> None:
    """python-socketio would start one greenlet per event; past HANDLERS_PER_SOCKET running,
    the reader of that socket (here a polling POST) waits instead."""
    server = InProcess()
    release = Event()
    running = peak = handled = 0

    def slow(_sid: str) -> None:
        nonlocal running, peak, handled
        running += 1
        peak = max(peak, running)
        release.wait()
        running -= 1
        handled += 1

    server.sio.on("slow", slow, namespace="/")
    server.request("POST", "40")
    events = 2 * inbound.HANDLERS_PER_SOCKET
    post = gevent.spawn(server.request, "POST", "\x1e".join(['42["slow"]'] * events))
    gevent.sleep(0.1)
    assert peak == inbound.HANDLERS_PER_SOCKET
    assert not post.ready()  # its reader waits for a slot
    release.set()
    post.join(5)
    assert post.successful()
    gevent.sleep(0.01)
    assert handled == events
    assert peak == inbound.HANDLERS_PER_SOCKET


def test_an_event_its_gate_refuses_gets_an_empty_ack_without_a_slot() -> None:
    """A gate (EventServer.gate) runs as its event is read: an event it refuses is answered
    at once, even while every handler slot of its socket is taken, and is never handled."""
    server = InProcess()
    release = Event()
    handled: list[str] = []
    checked: list[list[object]] = []

    def slow(_sid: str) -> None:
        release.wait()
        handled.append("slow")

    server.sio.on("slow", slow, namespace="/")
    server.sio.on("gated", lambda _sid, *_args: handled.append("gated"), namespace="/")
    server.sio.gate("gated", lambda _sid, args: checked.append(args) and False, namespace="/")
    server.request("POST", "40")
    busy = ['42["slow"]'] * inbound.HANDLERS_PER_SOCKET
    with gevent.Timeout(2):  # a refused event waiting for a slot would block this POST
        server.request("POST", "\x1e".join([*busy, '427["gated",1]']))
    assert checked == [[1]]
    assert "437[]" in server.request("GET").split("\x1e")  # the empty ACK, as Zou answers
    release.set()
    gevent.sleep(0.01)
    assert handled == ["slow"] * inbound.HANDLERS_PER_SOCKET
