"""Zou's preview-room rules (pure): template, whitelist replace, payloads, hostile values."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zou_events.rooms import rules

P = "c8c1f5a6-0b5e-4e8c-9f2a-1d1c0e6d2a10"
A = "0a2c7b7e-6a2e-4b3c-9d59-3c0e0d4b9f11"
B = "7d9f1b0e-2c3d-4e5f-8a9b-0c1d2e3f4a5b"

TEMPLATE_KEYS = [
    "playlist_id",
    "user_id",
    "local_id",
    "people",
    "is_playing",
    "current_entity_id",
    "current_entity_index",
    "current_preview_file_id",
    "current_preview_file_index",
    "current_frame",
    "is_repeating",
    "is_annotations_displayed",
    "is_zoom_enabled",
    "is_waveform_displayed",
    "is_laser_mode",
    "handle_in",
    "handle_out",
    "speed",
    "comparing",
]
ALWAYS_RESET = {
    "local_id": None,
    "is_playing": False,
    "current_entity_id": None,
    "current_entity_index": None,
    "current_preview_file_id": None,
    "current_preview_file_index": None,
    "is_repeating": None,
    "is_annotations_displayed": False,
    "is_zoom_enabled": False,
    "is_waveform_displayed": False,
    "is_laser_mode": None,
    "handle_in": None,
    "handle_out": None,
}
KEPT_WHEN_ABSENT = ("current_frame", "speed", "comparing")

# What Kitsu's previewRoom.js sends (§3.3): join, then room-updated with its extra fields.
KITSU_JOIN = {
    "user_id": A,
    "playlist_id": P,
    "is_playing": False,
    "current_entity_id": "3f0c2b1a-9d8e-4f7a-b6c5-d4e3f2a1b0c9",
    "current_entity_index": 2,
    "current_preview_file_id": "5e4d3c2b-1a09-48f7-a6b5-c4d3e2f1a0b9",
    "current_preview_file_index": 0,
    "current_frame": 37,
    "is_repeating": False,
    "is_laser_mode": False,
    "is_annotations_displayed": True,
    "is_waveform_displayed": False,
    "is_zoom_enabled": False,
    "handle_in": 12,
    "handle_out": None,
    "speed": 3,
    "comparing": {
        "enable": True,
        "task_type": "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
        "revision": "3",
        "mode": "sidebyside",
        "comparison_preview_index": 0,
    },
}
KITSU_ROOM_UPDATED = {
    **KITSU_JOIN,
    "local_id": "4b1e8f2a-6c3d-4e9b-a7f0-2d5c8e1b3a69#17",
    "room_seq": 17,
    "previous_preview_file_id": None,
}


def wire(value: Any) -> str:
    """JSON as python-socketio writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def first_join(payload: object, person: str = A) -> dict[str, Any]:
    """The state after ``person`` joins an empty room with ``payload``."""
    update = rules.status_update(payload, person)
    return rules.room_state(P, rules.people_after_join([], person), update)


# Template and key order


def test_empty_room_is_zous_template_in_its_key_order() -> None:
    room = rules.empty_room()
    assert list(room) == TEMPLATE_KEYS
    assert room == {
        "playlist_id": None,
        "user_id": None,
        "local_id": None,
        "people": [],
        **ALWAYS_RESET,
        "current_frame": 0,
        "speed": None,
        "comparing": {
            "enable": False,
            "task_type": None,
            "revision": None,
            "mode": "sidebyside",
            "comparison_preview_index": 0,
        },
    }


def test_empty_rooms_share_nothing() -> None:
    first = rules.empty_room()
    first["comparing"]["enable"] = True
    first["people"].append(A)
    assert rules.empty_room()["comparing"]["enable"] is False
    assert rules.empty_room()["people"] == []


# The reference's observed exchange, byte for byte (§1.4)


def test_first_join_of_the_reference_gives_zous_exact_payloads() -> None:
    payload = {
        "playlist_id": P,
        "user_id": A,
        "local_id": "loc-A",
        "is_playing": True,
        "current_frame": 12,
        "speed": 2,
        "comparing": {"enable": True, "mode": "overlay", "junk": 1},
        "foo": "bar",
        "room_seq": 5,
    }
    state = first_join(payload)
    assert wire(rules.people_updated(P, state["people"])) == (
        f'{{"people":["{A}"],"playlist_id":"{P}","id":"{P}"}}'
    )
    assert wire(state) == (
        f'{{"playlist_id":"{P}","user_id":"{A}","local_id":"loc-A","people":["{A}"],'
        '"is_playing":true,"current_entity_id":null,"current_entity_index":null,'
        '"current_preview_file_id":null,"current_preview_file_index":null,"current_frame":12,'
        '"is_repeating":null,"is_annotations_displayed":false,"is_zoom_enabled":false,'
        '"is_waveform_displayed":false,"is_laser_mode":null,"handle_in":null,"handle_out":null,'
        '"speed":2,"comparing":{"enable":true,"mode":"overlay"}}'
    )


def test_room_updated_of_the_reference_gives_zous_exact_payload() -> None:
    stored = rules.status_update(
        {"playlist_id": P, "user_id": A, "is_playing": True, "current_frame": 12, "speed": 2,
         "comparing": {"enable": True, "mode": "overlay", "junk": 1}},
        A,
    )  # fmt: skip
    update = rules.status_update(
        {
            "playlist_id": P,
            "local_id": "loc-A#123",
            "current_frame": 40,
            "speed": "fast",
            "previous_preview_file_id": "x",
        },
        A,
    )
    state = rules.room_state(P, [A, B], {**stored, **update})
    # Zou would say "user_id": null (taken from the payload); here it is the sender's identity.
    assert wire(rules.room_updated(state)) == (
        f'{{"only_newcomer":false,"playlist_id":"{P}","user_id":"{A}","local_id":"loc-A#123",'
        f'"people":["{A}","{B}"],"is_playing":false,"current_entity_id":null,'
        '"current_entity_index":null,"current_preview_file_id":null,'
        '"current_preview_file_index":null,"current_frame":40,"is_repeating":null,'
        '"is_annotations_displayed":false,"is_zoom_enabled":false,'
        '"is_waveform_displayed":false,"is_laser_mode":null,"handle_in":null,"handle_out":null,'
        '"speed":2,"comparing":{"enable":true,"mode":"overlay"}}'
    )


def test_join_reply_has_no_only_newcomer_and_room_updated_reply_has_it_first() -> None:
    state = first_join(KITSU_JOIN)
    assert "only_newcomer" not in state
    reply = rules.room_updated(state)
    assert list(reply) == ["only_newcomer", *TEMPLATE_KEYS]
    assert reply["only_newcomer"] is False


@pytest.mark.parametrize(
    ("argument", "expected"),
    [(True, True), (False, False), (1, False), ("yes", False), (None, False), ({}, False)],
)
def test_only_newcomer_is_the_second_argument_when_a_bool(argument: object, expected: bool) -> None:
    assert rules.room_updated(first_join({}), argument)["only_newcomer"] is expected


def test_people_updated_payload() -> None:
    people = [A, B]
    payload = rules.people_updated(P, people)
    assert list(payload) == ["people", "playlist_id", "id"]
    assert payload == {"people": [A, B], "playlist_id": P, "id": P}
    people.append("x")
    assert payload["people"] == [A, B]


# What Kitsu sends passes unchanged


@pytest.mark.parametrize("payload", [KITSU_JOIN, KITSU_ROOM_UPDATED])
def test_every_value_kitsu_sends_is_stored_unchanged(payload: dict[str, Any]) -> None:
    update = rules.status_update(payload, A)
    for name in TEMPLATE_KEYS:
        if name in payload and name not in ("playlist_id", "people"):
            assert update[name] == payload[name], name
    assert json.dumps(update["comparing"]) == json.dumps(payload["comparing"])  # key order too


def test_kitsu_relays_its_sequence_through_local_id_but_not_room_seq() -> None:
    state = first_join(KITSU_ROOM_UPDATED)
    assert state["local_id"] == KITSU_ROOM_UPDATED["local_id"]
    assert "room_seq" not in state
    assert "previous_preview_file_id" not in state


def test_kitsu_undefined_entity_is_absent_and_null_values_pass() -> None:
    payload = {**KITSU_JOIN, "current_preview_file_id": None, "current_entity_index": None}
    del payload["current_entity_id"]  # entity?.id === undefined: JSON.stringify drops it
    payload["comparing"] = {**KITSU_JOIN["comparing"], "task_type": None, "revision": None,
                            "mode": None}  # fmt: skip
    update = rules.status_update(payload, A)
    assert update["current_entity_id"] is None
    assert update["current_preview_file_id"] is None
    assert update["comparing"] == payload["comparing"]


# Whitelist replace


def test_absent_fields_reset_to_defaults_except_frame_speed_comparing() -> None:
    update = rules.status_update({"playlist_id": P}, A)
    assert update == {"user_id": A, **ALWAYS_RESET}
    for name in KEPT_WHEN_ABSENT:
        assert name not in update


def test_kept_fields_survive_an_update_that_omits_them() -> None:
    stored = rules.status_update(KITSU_ROOM_UPDATED, A)
    stored.update(rules.status_update({"playlist_id": P, "is_playing": True}, B))
    state = rules.room_state(P, [A], stored)
    assert state["current_frame"] == 37
    assert state["speed"] == 3
    assert state["comparing"] == KITSU_JOIN["comparing"]
    assert state["is_playing"] is True
    assert state["handle_in"] is None  # reset
    assert state["user_id"] == B


def test_unknown_keys_are_dropped() -> None:
    update = rules.status_update({**KITSU_ROOM_UPDATED, "foo": "bar", "people": ["x"]}, A)
    assert set(update) == set(TEMPLATE_KEYS) - {"playlist_id", "people"}


def test_user_id_is_the_callers_identity_not_the_clients() -> None:
    assert rules.status_update({"user_id": "someone-else"}, A)["user_id"] == A


def test_comparing_is_filtered_in_the_clients_order_and_not_re_defaulted() -> None:
    comparing = {"mode": "overlay", "junk": 1, "enable": True, "revision": 4}
    update = rules.status_update({"comparing": comparing}, A)
    assert json.dumps(update["comparing"]) == '{"mode": "overlay", "enable": true, "revision": 4}'
    assert rules.status_update({"comparing": {}}, A)["comparing"] == {}


@pytest.mark.parametrize("comparing", [None, "overlay", 3, True, ["enable"]])
def test_comparing_that_is_not_a_dict_is_ignored(comparing: object) -> None:
    assert "comparing" not in rules.status_update({"comparing": comparing}, A)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("enable", "yes"),
        ("enable", 1),
        ("task_type", 12),
        ("task_type", "t" * 129),
        ("revision", {"id": 1}),
        ("revision", True),
        ("mode", ["overlay"]),
        ("comparison_preview_index", "0"),
        ("comparison_preview_index", math.inf),
    ],
)
def test_comparing_values_of_the_wrong_type_are_dropped(key: str, value: object) -> None:
    update = rules.status_update({"comparing": {"mode": "overlay", key: value}}, A)
    assert update["comparing"] == ({"mode": "overlay"} if key != "mode" else {})


@pytest.mark.parametrize("speed", [1, 2, 3, 0.5, 0])
def test_speed_numbers_are_stored(speed: float) -> None:
    assert rules.status_update({"speed": speed}, A)["speed"] == speed


@pytest.mark.parametrize("speed", ["fast", None, True, False, math.nan, math.inf, 2**60, [2]])
def test_speed_other_values_are_ignored(speed: object) -> None:
    assert "speed" not in rules.status_update({"speed": speed}, A)


@pytest.mark.parametrize("frame", [0, 1, 12.5, None])
def test_current_frame_numbers_and_null_are_stored(frame: float | None) -> None:
    assert rules.status_update({"current_frame": frame}, A)["current_frame"] == frame


@pytest.mark.parametrize("frame", ["12", True, math.nan, -math.inf, 2**53, {"f": 1}])
def test_current_frame_other_values_are_ignored(frame: object) -> None:
    assert "current_frame" not in rules.status_update({"current_frame": frame}, A)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("local_id", 12),
        ("local_id", "x" * 129),
        ("local_id", ["a"]),
        ("is_playing", "true"),
        ("is_playing", 1),
        ("is_repeating", 0),
        ("is_annotations_displayed", "false"),
        ("is_zoom_enabled", {}),
        ("is_waveform_displayed", 1.0),
        ("is_laser_mode", "on"),
        ("current_entity_id", 7),
        ("current_entity_id", {"id": "x"}),
        ("current_preview_file_id", True),
        ("current_entity_index", "2"),
        ("current_entity_index", False),
        ("current_preview_file_index", math.nan),
        ("handle_in", "12"),
        ("handle_out", math.inf),
        ("handle_out", -(2**53)),
    ],
)
def test_refused_values_reset_the_field_to_its_default(field: str, value: object) -> None:
    assert rules.status_update({field: value}, A)[field] == ALWAYS_RESET[field]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("local_id", "x" * 128),
        ("local_id", ""),
        ("is_playing", True),
        ("is_playing", None),
        ("is_repeating", False),
        ("is_laser_mode", True),
        ("current_entity_index", 0),
        ("current_preview_file_index", 3),
        ("handle_in", 0),
        ("handle_out", 2**53 - 1),
        ("handle_out", 12.04),
    ],
)
def test_accepted_values_are_stored_verbatim(field: str, value: object) -> None:
    assert rules.status_update({field: value}, A)[field] == value


# Room ids


@pytest.mark.parametrize("room", [P, "0", "temp", "x" * 64, "a b", "ünïcode"])
def test_room_id_accepts_short_printable_strings(room: str) -> None:
    assert rules.room_id({"playlist_id": room}) == room


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"playlist_id": ""},
        {"playlist_id": None},
        {"playlist_id": 12},
        {"playlist_id": [P]},
        {"playlist_id": "x" * 65},
        {"playlist_id": "x" * 1_000_000},
        {"playlist_id": "a\nb"},
        {"playlist_id": "\x00"},
        {"data": {"playlist_id": P}},
        [P],
        P,
        None,
        7,
    ],
)
def test_room_id_refuses_everything_else(payload: object) -> None:
    assert rules.room_id(payload) is None


# Presence


def test_people_are_ordered_by_arrival_and_listed_once() -> None:
    people = rules.people_after_join([], A)
    people = rules.people_after_join(people, B)
    assert rules.people_after_join(people, A) == [A, B]


def test_a_person_stays_in_place_while_another_of_their_sockets_is_present() -> None:
    assert rules.people_after_leave([A, B], A, still_present=[B, A]) == [A, B]
    assert rules.people_after_leave([A, B], A, still_present=[B]) == [B]
    assert rules.people_after_leave([B], A, still_present=[B]) == [B]


# room_state


def test_room_state_derives_room_and_people_and_ignores_unknown_stored_keys() -> None:
    state = rules.room_state(P, [B], {"playlist_id": "other", "people": ["x"], "junk": 1})
    assert list(state) == TEMPLATE_KEYS
    assert state["playlist_id"] == P
    assert state["people"] == [B]
    assert state == {**rules.empty_room(), "playlist_id": P, "people": [B]}


# Hostile input never raises and never stores junk

HUGE = "x" * 1_000_000


@pytest.mark.parametrize(
    "payload",
    [None, 7, "text", HUGE, [KITSU_JOIN], True, {"playlist_id": P, "comparing": [1] * 1000}],
)
def test_non_dict_or_junk_payloads_give_the_defaults(payload: object) -> None:
    update = rules.status_update(payload, A)
    assert update == {"user_id": A, **ALWAYS_RESET}


def test_huge_and_nested_values_in_every_field_are_refused() -> None:
    nested: Any = {"a": [1, {"b": HUGE}]}
    for _ in range(50):
        nested = {"n": nested}
    payload = {name: nested for name in TEMPLATE_KEYS} | {"local_id": HUGE, "mode": HUGE}
    payload["comparing"] = {key: HUGE for key in ("enable", "task_type", "revision", "mode")}
    update = rules.status_update(payload, A)
    assert update == {"user_id": A, **ALWAYS_RESET, "comparing": {}}
    assert len(wire(update)) < 1000


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=200)
    | st.sampled_from(["", "sidebyside", P, "x" * 129]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=12,
)
FIELD_NAMES = st.sampled_from(
    [*TEMPLATE_KEYS, "room_seq", "previous_preview_file_id", "only_newcomer", "foo"]
)
COMPARING_PAYLOADS = st.dictionaries(
    st.sampled_from(["enable", "task_type", "revision", "mode", "comparison_preview_index", "x"]),
    JSON_VALUES,
)
PAYLOADS = JSON_VALUES | st.dictionaries(
    FIELD_NAMES, JSON_VALUES | COMPARING_PAYLOADS | st.just(P), max_size=25
)


FLAG_FIELDS = (
    "is_playing",
    "is_repeating",
    "is_annotations_displayed",
    "is_zoom_enabled",
    "is_waveform_displayed",
    "is_laser_mode",
)
TEXT_FIELDS = ("local_id", "current_entity_id", "current_preview_file_id")
NUMBER_FIELDS = (
    "current_entity_index",
    "current_preview_file_index",
    "current_frame",
    "handle_in",
    "handle_out",
    "speed",
)


def _is_short_text(value: object) -> bool:
    return isinstance(value, str) and len(value) <= rules.MAX_TEXT_LENGTH


def _is_safe_number(value: object) -> bool:
    """What JavaScript reads back exactly: any finite double, integers up to 2**53 - 1."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= 2**53 - 1


@pytest.mark.slow  # 500 examples: not in `make unit`
@settings(max_examples=500, deadline=None)
@given(payload=PAYLOADS, previous=PAYLOADS, only_newcomer=JSON_VALUES)
def test_fuzz_rules_never_raise_and_keep_the_shape(
    payload: object, previous: object, only_newcomer: object
) -> None:
    room = rules.room_id(payload)
    assert room is None or (isinstance(room, str) and 0 < len(room) <= 64)

    stored = {**rules.status_update(previous, B), **rules.status_update(payload, A)}
    state = rules.room_state(P, [A], stored)
    reply = rules.room_updated(state, only_newcomer)
    assert list(reply) == ["only_newcomer", *TEMPLATE_KEYS]
    assert isinstance(reply["only_newcomer"], bool)
    wire(reply)  # always valid JSON for a browser: no NaN, no Infinity

    for name in FLAG_FIELDS:
        assert state[name] is None or isinstance(state[name], bool)
    for name in TEXT_FIELDS:
        assert state[name] is None or _is_short_text(state[name])
    for name in NUMBER_FIELDS:
        assert state[name] is None or _is_safe_number(state[name])
    assert set(state["comparing"]) <= {
        "enable",
        "task_type",
        "revision",
        "mode",
        "comparison_preview_index",
    }
    assert all(not isinstance(v, dict | list) for v in state["comparing"].values())
    assert state["user_id"] == A
    assert state["people"] == [A]
