"""Decoding python-socketio message-queue messages, every JSON-era format (pure)."""

from __future__ import annotations

import json
import pickle

import pytest

from zou_events.messages import DroppedMessage, Emit, RoomChange, decode


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
