"""Values that reach other clients (issue 10, items 4 and 5): bad messages on Zou's Redis
channel and review-room relays carrying NaN or Infinity. Each is sent for 10 s while the
canary and two raw sockets keep receiving: the next ordinary event reaches every client,
the bad input is dropped and counted."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import pytest

from tests.hostile.support import Counted, Instance, Receiver, attack_window
from tests.support.js_client import JsClient
from tests.support.redis_messages import emit, nested, room_change

DROPPED = "zou_events_redis_messages_dropped_total"


# (message built from two sockets' sids, the drop reason): each stopped delivery before.
BAD_MESSAGES: dict[str, tuple[Callable[[str, str], str], str]] = {
    "json nested 100,000 levels": (lambda a, b: emit("main:bad", nested(100_000)), "too_deep"),
    "emit data nested 600 levels": (lambda a, b: emit("main:bad", f"[{nested(600)}]"), "too_deep"),
    "emit data with NaN": (
        lambda a, b: emit("main:bad", '[{"fps": NaN, "x": -Infinity}]'),
        "bad_number",
    ),
    "enter_room of a sid room": (lambda a, b: room_change("enter_room", a, b), "sid_room"),
    "close_room of a sid room": (lambda a, b: room_change("close_room", None, a), "sid_room"),
    "close_room with a null room": (lambda a, b: room_change("close_room", None, None), "no_room"),
}


@pytest.mark.parametrize("case", BAD_MESSAGES)
def test_bad_redis_message_is_dropped_and_delivery_goes_on(instance: Instance, case: str) -> None:
    build, reason = BAD_MESSAGES[case]
    alice, bob = Receiver(instance), Receiver(instance)
    message = build(alice.sid, bob.sid)
    expect = [Counted(DROPPED, {"reason": reason}, at_least=50)]
    try:
        with attack_window(instance, f"redis: {case}", expect) as window:
            for _ in window.running(limit=200):
                instance.publish(message)
                time.sleep(min(0.1, window.remaining()))  # the attack's pace
            instance.publish(emit("hostile:after", '[{"ok": true}]'))
            for receiver in (alice, bob):
                try:
                    got = receiver.next_event("hostile:after")
                except (AssertionError, OSError) as error:
                    got = [repr(error)]
                window.check(got == [{"ok": True}], f"the next event on a raw socket: {got}")
            window.check(instance.server.is_ready(), "/ready is not 200")
    finally:
        alice.close()
        bob.close()


POISONS = ("NaN", "Infinity", "-Infinity", "1e999")


def test_relay_with_nan_never_reaches_the_other_reviewers(instance: Instance) -> None:
    """A reviewer (Kitsu's client, which cannot parse NaN and would disconnect) and a sender
    relaying annotations with NaN/Infinity at 20/s, a valid one every second."""
    room = str(uuid.uuid4())
    reviewer = JsClient(instance.url, auth={"token": instance.token()})
    sender = Receiver(instance)
    valid = 0
    expect = [Counted("zou_events_client_packets_dropped_total", at_least=150)]
    try:
        reviewer.wait_type("connect")
        reviewer.emit("preview-room:open-playlist", {"playlist_id": room})
        reviewer.wait_event("preview-room:room-people-updated")
        sender.ws.send_text(f'42/events,["preview-room:open-playlist",{{"playlist_id":"{room}"}}]')
        sender.next_event("preview-room:room-people-updated")
        with attack_window(instance, "NaN relay", expect) as window:
            for count in window.running(limit=400):
                poison = POISONS[count % len(POISONS)]
                x = poison if count % 20 else str(count)
                valid += count % 20 == 0
                sender.ws.send_text(
                    f'42/events,["preview-room:panzoom-changed",{{"playlist_id":"{room}",'
                    f'"data":{{"x":{x},"y":0,"zoom":1}}}}]'
                )
                time.sleep(min(0.05, window.remaining()))  # the attack's pace
            sender.ws.send_text(
                f'42/events,["preview-room:panzoom-changed",{{"playlist_id":"{room}",'
                '"data":{"x":-1,"y":0,"zoom":1}}]'
            )
            reviewer.wait_for(
                lambda m: (
                    m.get("event") == "preview-room:panzoom-changed"
                    and m["args"][0]["data"]["x"] == -1
                )
            )
            relayed = [
                m["args"][0]["data"]["x"] for m in reviewer.events("preview-room:panzoom-changed")
            ]
            window.notes["attacker"] = {
                "poisoned": count + 1 - valid,
                "valid": valid,
                "relayed": len(relayed),
            }
            window.check(relayed == [*range(0, count + 1, 20), -1], f"relayed: {relayed}")
            disconnects = [m for m in reviewer.seen if m["type"] == "disconnect"]
            window.check(not disconnects, f"the reviewer was disconnected: {disconnects}")
    finally:
        reviewer.close()
        sender.close()


def test_room_events_of_a_non_member_change_and_broadcast_nothing(instance: Instance) -> None:
    """A socket that neither opened nor joined a review room sends its leave, close,
    room-updated and relays at 20/s: the member in the room receives none of it."""
    room = str(uuid.uuid4())
    member = JsClient(instance.url, auth={"token": instance.token()})
    outsider = Receiver(instance)
    events = [
        ("preview-room:leave", {"playlist_id": room, "user_id": str(uuid.uuid4())}),
        ("preview-room:close-playlist", {"playlist_id": room}),
        (
            "preview-room:room-updated",
            {"playlist_id": room, "is_playing": True, "current_frame": 9},
        ),
        (
            "preview-room:panzoom-changed",
            {"playlist_id": room, "data": {"x": 1, "y": 0, "zoom": 1}},
        ),
    ]
    refused = ("not_in_room", "not_opened")
    expect = [Counted("zou_events_room_events_refused_total", {"reason": refused}, at_least=100)]
    try:
        member.wait_type("connect")
        member.emit("preview-room:open-playlist", {"playlist_id": room})
        member.wait_event("preview-room:room-people-updated")
        member.emit("preview-room:join", {"playlist_id": room, "current_frame": 0})
        member.wait_event("preview-room:room-updated")
        seen = len(member.events())
        with attack_window(instance, "room events of a non-member", expect) as window:
            for count in window.running(limit=400):
                event, payload = events[count % len(events)]
                outsider.ws.send_text("42/events," + json.dumps([event, payload]))
                time.sleep(min(0.05, window.remaining()))  # the attack's pace
            window.notes["attacker"] = {"sent": count + 1}
            received = [m for m in member.events()[seen:] if m["event"].startswith("preview-room:")]
            window.check(not received, f"the member received: {received[:5]}")
            disconnects = [m for m in member.seen if m["type"] == "disconnect"]
            window.check(not disconnects, f"the member was disconnected: {disconnects}")
    finally:
        member.close()
        outsider.close()
