"""A socket that is not in a room changes nothing there and makes it broadcast nothing
(issue 10): real instances sharing one Redis, Kitsu's real socket.io-client."""

from __future__ import annotations

from tests.integration.rooms_support import (
    PEOPLE_UPDATED,
    RELAYS,
    ROOM_UPDATED,
    Browsers,
    Cluster,
    kitsu_update,
    new_id,
    open_in_turn,
    people_updated,
    refused,
    relay_payload,
)


def test_a_strangers_room_events_change_nothing_and_broadcast_nothing(
    pair: Cluster, browsers: Browsers
) -> None:
    room = new_id()
    member = browsers.tab(pair.servers[0])
    stranger = browsers.tab(pair.servers[1])
    M = member.person_id
    open_in_turn(room, [member], [])
    member.wait_ack(member.join(room, ack=True))
    member.wait_event(ROOM_UPDATED, lambda state: state["people"] == [M])
    server = pair.servers[1]
    stranger_events = [
        ("preview-room:leave", {"playlist_id": room}, "not_in_room"),
        ("preview-room:close-playlist", {"playlist_id": room}, "not_in_room"),
        (ROOM_UPDATED, kitsu_update(room, stranger.person_id, "x", 1), "not_opened"),
        *(
            (relay, relay_payload(room, stranger.person_id, relay), "not_opened")
            for relay in RELAYS
        ),
    ]
    before = {
        (event, reason): refused(server, event, reason) for event, _, reason in stranger_events
    }
    member.skip_all()
    for event, payload, _ in stranger_events:
        # Zou's empty ACK: the stranger learns nothing either
        assert stranger.wait_ack(stranger.emit(event, payload, ack=True)) == []
    for event, _, reason in stranger_events:
        assert refused(server, event, reason) == before[(event, reason)] + 1, event

    # the next thing the member hears is its own leave: nothing came from the stranger's
    member.leave(room)
    member.expect_next(people_updated(room, []))
    assert stranger.room_events() == []

    # a member's leave still works the same, and a joined-only socket is in the room too
    joiner = browsers.tab(pair.servers[1])
    joiner.wait_ack(joiner.join(room, ack=True))
    member.wait_event(PEOPLE_UPDATED, lambda reply: reply["people"] == [joiner.person_id])
    joiner.leave(room)
    member.wait_event(PEOPLE_UPDATED, lambda reply: reply["people"] == [])
