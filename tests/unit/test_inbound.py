"""The inbound budget of a session (zou_events/inbound.py) on engineio's and python-socketio's
real objects: token buckets, the metering of polling packets, what counts as an Engine.IO
packet, and bounds on binary attachments."""

from __future__ import annotations

import engineio
import pytest
from engineio import packet as eio_packet
from engineio.socket import Socket
from socketio import packet as sio_packet

from zou_events import inbound
from zou_events.inbound import InboundLimits, InboundMeter
from zou_events.limits import TokenBucket


def test_token_bucket_starts_full_refills_at_its_rate_and_caps_at_its_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=5)
    start = bucket.updated
    assert all(bucket.take(1, start) for _ in range(5))
    assert not bucket.take(1, start)
    assert bucket.take(1, start + 0.1)  # one token back after 0.1 s at 10/s
    assert not bucket.take(1, start + 0.1)
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
