"""Which room events a socket may send given its place in the room (rules.membership_refusal)."""

from __future__ import annotations

import itertools

import pytest

from zou_events import metrics
from zou_events.rooms import MemoryRoomStore, rules

PLACES = list(itertools.product([False, True], repeat=2))  # (opened, joined)


@pytest.mark.parametrize("event", metrics.ROOM_EVENTS)
def test_a_socket_outside_the_room_may_only_enter_it(event: str) -> None:
    refusal = rules.membership_refusal(event, opened=False, joined=False)
    if event in ("open-playlist", "join"):
        assert refusal is None
    else:
        assert refusal in ("not_in_room", "not_opened")


@pytest.mark.parametrize(("opened", "joined"), PLACES)
def test_entering_is_never_refused_for_its_place(opened: bool, joined: bool) -> None:
    for event in ("open-playlist", "join"):
        assert rules.membership_refusal(event, opened, joined) is None


@pytest.mark.parametrize(("opened", "joined"), PLACES)
def test_leave_and_close_need_the_socket_in_the_room(opened: bool, joined: bool) -> None:
    expected = None if opened or joined else "not_in_room"
    for event in ("leave", "close-playlist"):
        assert rules.membership_refusal(event, opened, joined) == expected


@pytest.mark.parametrize(("opened", "joined"), PLACES)
def test_driving_needs_the_room_opened(opened: bool, joined: bool) -> None:
    for event in ("room-updated", *metrics.ROOM_RELAYS):
        assert rules.membership_refusal(event, opened, joined) == (None if opened else "not_opened")


def test_every_refusal_is_a_counted_reason() -> None:
    reasons = {
        rules.membership_refusal(event, *place) for event in metrics.ROOM_EVENTS for place in PLACES
    }
    assert reasons - {None} <= set(metrics.ROOM_REFUSALS)


def test_the_memory_store_tells_the_place() -> None:
    store = MemoryRoomStore()
    assert store.membership("P", "s1") == (False, False)
    store.open("P", "s1", "i")
    assert store.membership("P", "s1") == (True, False)
    store.join("P", "s2", "i", "person", {})
    assert store.membership("P", "s2") == (False, True)
    store.join("P", "s1", "i", "person", {})
    assert store.membership("P", "s1") == (True, True)
    assert store.membership("Q", "s1") == (False, False)
