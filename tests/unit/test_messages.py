"""Decoding python-socketio message-queue messages, every JSON-era format, and the room
changes among them applied to a real server's manager (no I/O)."""

from __future__ import annotations

import json
import pickle

import pytest

from zou_events.bus import MemoryBus
from zou_events.config import load_settings
from zou_events.fanout import Fanout
from zou_events.messages import (
    DEFAULT_MAX_BYTES,
    DroppedMessage,
    Emit,
    RoomChange,
    decode,
    max_message_bytes,
)
from zou_events.transport.server import EventServer


def message(**fields: object) -> bytes:
    base = {"method": "emit", "event": "main:test", "namespace": "/events", "host_id": "h"}
    return json.dumps({**base, **fields}).encode()


@pytest.mark.parametrize(
    ("data", "args"),
    [
        ([{}], [{}]),  # 5.16+: one argument
        ({"a": 1}, [{"a": 1}]),  # 5.14/5.15: the raw argument
        ([{"a": 1}, 2], [{"a": 1}, 2]),  # several arguments
        ("text", ["text"]),
        (None, [None]),
    ],
)
def test_arguments_as_python_socketio_516_reads_them(data: object, args: list[object]) -> None:
    decoded = decode(message(data=data))
    assert isinstance(decoded, Emit) and decoded.args == args


def test_zou_1_0_97_message() -> None:
    raw = (
        b'{"method": "emit", "event": "project:update", "data": [{"project_id": "p"}], '
        b'"binary": false, "namespace": "/events", "room": null, "skip_sid": null, '
        b'"callback": null, "host_id": "afa6dad659d14531aa67a194580b39e3"}'
    )
    assert decode(raw) == Emit(
        event="project:update",
        args=[{"project_id": "p"}],
        namespace="/events",
        room=None,
        skip_sids=(),
        host_id="afa6dad659d14531aa67a194580b39e3",
        published_at=None,
    )


def test_room_changes_and_callbacks() -> None:
    leave = decode(b'{"method":"leave_room","sid":"person-id","room":"P","namespace":"/events"}')
    assert leave == RoomChange("leave_room", "person-id", "/events", "P", None)
    assert decode(b'{"method":"callback","host_id":"x","sid":"s","id":1,"args":[]}') is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{", "malformed_json"),
        (b"\xff", "malformed_json"),
        (pickle.dumps({"method": "emit"}), "pickle"),
        (b"[]", "not_an_object"),
        (message(event=""), "bad_field"),
        (message(room=7), "bad_field"),
        (message(namespace="x" * 1000), "bad_field"),
        (message(skip_sid={"a": 1}), "bad_field"),
        (message(binary=True, data=[]), "bad_field"),
        (message(binary=True, data=[{}, "!!"]), "bad_field"),
        (message(method="exec"), "unknown_method"),
    ],
)
def test_unusable_messages_are_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(DroppedMessage) as refused:
        decode(raw)
    assert refused.value.reason == reason


def nested(depth: int) -> object:
    value: object = "bottom"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"method":"emit","event":"x","data":[{"fps":NaN}]}', "bad_number"),
        (b'{"method":"emit","event":"x","data":[Infinity]}', "bad_number"),
        (b'{"method":"emit","event":"x","data":[1e400]}', "bad_number"),
        (message(data=[nested(300)]), "too_deep"),  # fatal to python-socketio past ~450
        (b'{"data":' * 100_000 + b"1" + b"}" * 100_000, "too_deep"),
        (message(data=["x" * DEFAULT_MAX_BYTES]), "too_large"),
    ],
)
def test_messages_a_browser_could_not_read_are_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(DroppedMessage) as refused:
        decode(raw)
    assert refused.value.reason == reason


def test_size_limit_follows_the_room_payload_limit() -> None:
    big = message(data=["x" * DEFAULT_MAX_BYTES])
    limit = max_message_bytes(room_payload_max_bytes=2 * DEFAULT_MAX_BYTES)
    assert isinstance(decode(big, limit), Emit)
    assert max_message_bytes(room_payload_max_bytes=1024) == DEFAULT_MAX_BYTES


# --- room changes applied to the manager of a real server ----------------------------------


@pytest.fixture
def fanout() -> Fanout:
    bus = MemoryBus("here")
    return Fanout(EventServer(load_settings({"SECRET_KEY": "k" * 32})), bus.host_id, bus.publish)


def connected(fanout: Fanout) -> str:
    eio_sid = fanout.server.eio.generate_id()
    return fanout.server.manager.connect(eio_sid, "/events")


@pytest.mark.parametrize("method", ["enter_room", "leave_room", "close_room"])
def test_room_changes_aimed_at_a_sid_room_are_refused(fanout: Fanout, method: str) -> None:
    alice, bob = connected(fanout), connected(fanout)
    for sid, room in ((alice, bob), (alice, alice), (None, bob)):
        with pytest.raises(DroppedMessage) as refused:
            fanout.apply_room_change(RoomChange(method, sid, "/events", room, "other"))
        assert refused.value.reason == "sid_room"
    manager = fanout.server.manager
    assert manager.get_rooms(alice, "/events") == [alice]
    assert manager.get_rooms(bob, "/events") == [bob]
    assert manager.is_connected(alice, "/events") and manager.is_connected(bob, "/events")


@pytest.mark.parametrize("method", ["enter_room", "leave_room", "close_room"])
def test_room_changes_without_a_room_are_refused(fanout: Fanout, method: str) -> None:
    alice = connected(fanout)
    with pytest.raises(DroppedMessage) as refused:
        fanout.apply_room_change(RoomChange(method, alice, "/events", None, "other"))
    assert refused.value.reason == "no_room"
    assert fanout.server.manager.is_connected(alice, "/events")  # close_room(None) empties it


def test_ordinary_room_changes_are_applied(fanout: Fanout) -> None:
    alice, bob = connected(fanout), connected(fanout)
    manager = fanout.server.manager
    fanout.apply_room_change(RoomChange("enter_room", alice, "/events", "P", "other"))
    fanout.apply_room_change(RoomChange("enter_room", bob, "/events", "P", "other"))
    fanout.apply_room_change(RoomChange("leave_room", "person-id", "/events", "P", "zou"))
    assert sorted(sid for sid, _ in manager.get_participants("/events", "P")) == sorted(
        [alice, bob]
    )
    fanout.apply_room_change(RoomChange("leave_room", bob, "/events", "P", "other"))
    assert [sid for sid, _ in manager.get_participants("/events", "P")] == [alice]
    fanout.apply_room_change(RoomChange("close_room", None, "/events", "P", "other"))
    assert manager.get_rooms(alice, "/events") == [alice]
