"""Bounded JSON as browsers read it: what may come in from clients and Redis, what may go out."""

from __future__ import annotations

import json
import math
import sys

import engineio.packet
import pytest
import socketio.packet

from zou_events.config import load_settings
from zou_events.strict_json import MAX_DEPTH, STRICT, BoundedJson, ClientPacket, Refused
from zou_events.transport.server import EventServer


def nested(depth: int, opening: str = "[", closing: str = "]") -> str:
    return opening * depth + "1" + closing * depth


def nested_objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def refusal(text: str | bytes, reader: BoundedJson = STRICT) -> str:
    with pytest.raises(Refused) as refused:
        reader.loads(text)
    assert isinstance(refused.value, ValueError)  # what engineio and python-socketio catch
    return refused.value.reason


@pytest.mark.parametrize(
    "text",
    ["NaN", "[Infinity]", '{"x": -Infinity}', "1e999", "[-1e999]", "1.8e308"],
)
def test_numbers_a_browser_cannot_read_back_are_refused(text: str) -> None:
    assert refusal(text) == "bad_number"


def test_ordinary_numbers_are_read() -> None:
    assert STRICT.loads("[1.5e308, -0.0, 9007199254740993]") == [1.5e308, -0.0, 9007199254740993]
    assert STRICT.loads("9" * 4000) == int("9" * 4000)
    assert refusal("9" * 5000) == "malformed_json"  # Python's own bound on integer digits


@pytest.mark.parametrize("make", [nested, nested_objects])
def test_depth_is_bounded(make: object) -> None:
    assert STRICT.loads(make(MAX_DEPTH)) is not None  # type: ignore[operator]
    assert refusal(make(MAX_DEPTH + 1)) == "too_deep"  # type: ignore[operator]


@pytest.mark.parametrize("depth", [sys.getrecursionlimit() + 10, 200_000])
def test_nesting_past_the_recursion_limit_is_refused_not_raised(depth: int) -> None:
    assert refusal(nested(depth)) == "too_deep"
    assert refusal(nested(depth).encode()) == "too_deep"


def test_many_shallow_containers_are_not_deep() -> None:
    wide = json.dumps({"path": [["M", i, i] for i in range(5000)], "deeper": nested(50)})
    assert len(STRICT.loads(wide)["path"]) == 5000


def test_size_is_bounded() -> None:
    reader = BoundedJson(max_bytes=20)
    assert reader.loads(b'{"a": "' + b"x" * 11 + b'"}') == {"a": "x" * 11}  # 20 bytes
    assert refusal(b'{"a": "' + b"x" * 12 + b'"}', reader) == "too_large"


@pytest.mark.parametrize("text", ["{", "", "[1,]", "'x'", b"\xff\xfe", '["\x01"]'])
def test_malformed_documents_are_refused(text: str | bytes) -> None:
    assert refusal(text) == "malformed_json"


def test_writing_never_emits_nan_or_infinity() -> None:
    assert STRICT.dumps([1, {"a": None}], separators=(",", ":")) == '[1,{"a":null}]'
    for value in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError):
            STRICT.dumps({"x": [value]}, allow_nan=True)


def test_client_packets_are_read_strictly() -> None:
    packet = ClientPacket(encoded_packet='2/events,["preview-room:panzoom-changed",{"x":1.5}]')
    assert packet.data == ["preview-room:panzoom-changed", {"x": 1.5}]
    for data in ('["e",NaN]', '["e",1e999]', nested(MAX_DEPTH + 1)):
        with pytest.raises(ValueError):
            ClientPacket(encoded_packet="2/events," + data)
    with pytest.raises(ValueError):  # nothing a browser cannot parse is ever sent
        ClientPacket(socketio.packet.EVENT, ["e", float("nan")], "/events").encode()


def test_the_server_reads_strictly_without_changing_python_socketio_packets() -> None:
    stock = socketio.packet.Packet.json
    server = EventServer(load_settings({"SECRET_KEY": "k" * 32}))
    assert server.packet_class is ClientPacket
    assert socketio.packet.Packet.json is stock  # python-socketio clients keep theirs
    assert math.isnan(socketio.packet.Packet(encoded_packet='2["e",NaN]').data[1])
    # engineio has one packet class: a non-Socket.IO message nested too deep is kept as text
    # (as any text that is not JSON), for python-socketio to drop, instead of raising
    message = engineio.packet.Packet(encoded_packet="4" + nested(5000))
    assert message.data == nested(5000)
