"""Zou's preview-room rules as pure functions over plain dicts (no I/O, no shared state).

The behaviour is that of ``zou/event_stream.py`` (Zou 1.0.97): the room template and its key
order, the whitelist *replace* of ``_update_room_playing_status``, the first joiner seeding
the state, and the two payloads sent to rooms. On top of it, every client value is checked
so a hostile payload cannot store junk; what Kitsu sends passes unchanged. The decision for
each field is in ``docs/rooms.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from typing import Any, NamedTuple

MAX_ROOM_ID_LENGTH = 64
MAX_TEXT_LENGTH = 128  # ids are UUIDs (36); Kitsu's local_id is "<uuid>#<seq>"
MAX_SAFE_INTEGER = 2**53 - 1  # beyond it JavaScript cannot read an integer exactly

_INVALID = object()  # what a cleaner returns for a value it refuses

Cleaner = Callable[[Any], Any]  # a value -> the value to store, or _INVALID


def _is_number(value: object) -> bool:
    """A number JavaScript reads back exactly: no bool, no NaN/Infinity, no huge int."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    return isinstance(value, float) and math.isfinite(value)


def _is_text(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_TEXT_LENGTH


def _is_flag(value: object) -> bool:
    return isinstance(value, bool)


def _accepting(*checks: Callable[[object], bool], nullable: bool = True) -> Cleaner:
    def clean(value: Any) -> Any:
        if (value is None and nullable) or any(check(value) for check in checks):
            return value
        return _INVALID

    return clean


_text = _accepting(_is_text)
_number = _accepting(_is_number)
_flag = _accepting(_is_flag)

_COMPARING_FIELDS: dict[str, Cleaner] = {
    "enable": _flag,
    "task_type": _text,
    "revision": _accepting(_is_text, _is_number),  # Kitsu sends "3" (older clients: 3)
    "mode": _text,
    "comparison_preview_index": _number,
}


def _clean_comparing(value: Any) -> Any:
    """Known keys with acceptable values, in the client's order; not re-defaulted (Zou)."""
    if not isinstance(value, dict):
        return _INVALID
    cleaned: dict[str, Any] = {}
    for key, item in value.items():
        clean = _COMPARING_FIELDS.get(key)
        if clean is not None and (item := clean(item)) is not _INVALID:
            cleaned[key] = item
    return cleaned


class _Field(NamedTuple):
    default: Any
    clean: Cleaner
    kept_when_absent: bool = False  # Zou keeps these when absent; refused values count as absent


# The fields a client may set, in the template's order.
_FIELDS: dict[str, _Field] = {
    "local_id": _Field(None, _text),
    "is_playing": _Field(False, _flag),
    "current_entity_id": _Field(None, _text),
    "current_entity_index": _Field(None, _number),
    "current_preview_file_id": _Field(None, _text),
    "current_preview_file_index": _Field(None, _number),
    "current_frame": _Field(0, _number, kept_when_absent=True),
    "is_repeating": _Field(None, _flag),
    "is_annotations_displayed": _Field(False, _flag),
    "is_zoom_enabled": _Field(False, _flag),
    "is_waveform_displayed": _Field(False, _flag),
    "is_laser_mode": _Field(None, _flag),
    "handle_in": _Field(None, _number),
    "handle_out": _Field(None, _number),
    "speed": _Field(None, _accepting(_is_number, nullable=False), kept_when_absent=True),
    "comparing": _Field(
        {
            "enable": False,
            "task_type": None,
            "revision": None,
            "mode": "sidebyside",
            "comparison_preview_index": 0,
        },
        _clean_comparing,
        kept_when_absent=True,
    ),
}


def empty_room() -> dict[str, Any]:
    """Zou's ``_get_empty_room()``: every key, in the order sent on the wire."""
    room: dict[str, Any] = {"playlist_id": None, "user_id": None, "local_id": None, "people": []}
    for name, field in _FIELDS.items():
        if name not in room:
            room[name] = dict(field.default) if isinstance(field.default, dict) else field.default
    return room


def room_id(payload: object) -> str | None:
    """The room of a client event, or None to drop it.

    Zou defaults a missing ``playlist_id`` to "0" or "" (and "" broadcasts to every socket);
    here it must be a printable, non-empty string of at most MAX_ROOM_ID_LENGTH characters.
    """
    if not isinstance(payload, dict):
        return None
    value = payload.get("playlist_id")
    if isinstance(value, str) and 0 < len(value) <= MAX_ROOM_ID_LENGTH and value.isprintable():
        return value
    return None


# How a socket enters a room: Zou's access check decides (``open-playlist``, ``join``).
ENTRY_EVENTS = frozenset({"open-playlist", "join"})
# Events about the socket's own place in the room: they need it in the room.
PLACE_EVENTS = frozenset({"leave", "close-playlist"})


def membership_refusal(event: str, opened: bool, joined: bool) -> str | None:
    """Why a socket may not send ``event`` to a room it has ``opened`` and/or ``joined``,
    or None.

    A socket that is not in a room (neither opened nor joined) changes nothing there and
    makes it broadcast nothing: Zou would answer a stranger's ``leave`` with a
    ``room-people-updated`` to every member. Driving the room (``room-updated``, relays)
    needs it opened: Zou lets any socket push state into any room.
    """
    if event in ENTRY_EVENTS:
        return None
    if event in PLACE_EVENTS:
        return None if opened or joined else "not_in_room"
    return None if opened else "not_opened"


def status_update(payload: object, user_id: str | None) -> dict[str, Any]:
    """The fields ``_update_room_playing_status`` writes for this payload, cleaned.

    A whitelist replace: absent or refused fields go back to their default, except
    ``current_frame``, ``speed`` and ``comparing`` which are then left out (kept as stored).
    ``user_id`` is the authenticated identity given by the caller, never the client's.
    ``playlist_id`` and ``people`` are not stored: ``room_state`` derives them.
    """
    data = payload if isinstance(payload, dict) else {}
    update: dict[str, Any] = {"user_id": user_id}
    for name, field in _FIELDS.items():
        value = field.clean(data[name]) if name in data else _INVALID
        if value is not _INVALID:
            update[name] = value
        elif not field.kept_when_absent:
            update[name] = field.default
    return update


def room_state(room: str, people: list[str], stored: Mapping[str, Any]) -> dict[str, Any]:
    """The full room dict sent to clients, in Zou's key order, from the stored fields."""
    state = empty_room()
    for name in state.keys() & stored.keys():
        state[name] = stored[name]
    state["playlist_id"] = room
    state["people"] = list(people)
    return state


def people_after_join(people: list[str], person_id: str) -> list[str]:
    """People are ordered by arrival and listed once, however many sockets they have."""
    return people if person_id in people else [*people, person_id]


def people_after_leave(
    people: list[str], person_id: str, still_present: Collection[str]
) -> list[str]:
    """A person stays (in place) while another of their sockets is still in the room."""
    if person_id in still_present:
        return people
    return [person for person in people if person != person_id]


def people_updated(room: str, people: list[str]) -> dict[str, Any]:
    """Payload of ``preview-room:room-people-updated``."""
    return {"people": list(people), "playlist_id": room, "id": room}


def room_updated(state: Mapping[str, Any], only_newcomer: object = False) -> dict[str, Any]:
    """Payload of ``preview-room:room-updated`` answering a ``room-updated``.

    ``only_newcomer`` (the client's second argument in Zou) comes first; anything but a
    bool counts as False. The answer to a ``join`` is the state itself, without this key.
    """
    return {"only_newcomer": only_newcomer if isinstance(only_newcomer, bool) else False, **state}
