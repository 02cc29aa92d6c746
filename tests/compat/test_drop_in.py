"""Kitsu's client and Zou's API against zou-events, end to end (issue 4)."""

from __future__ import annotations

import uuid

import pytest

from tests.support.js_client import JsClient
from tests.support.server import ServerHandle
from tests.support.tokens import make_token
from tests.support.zou_stack import ZouStack


def kitsu(events: ServerHandle, zou_stack: ZouStack, person: str) -> JsClient:
    """A browser session: log in through Zou's API, open /events with the cookie it set."""
    _token, cookie = zou_stack.login(person)
    return JsClient(events.url, cookie=cookie)


def test_browser_login_cookie_opens_events_with_polling_then_websocket(
    events: ServerHandle, zou_stack: ZouStack
) -> None:
    with kitsu(events, zou_stack, "member") as client:
        assert client.wait_type("open")["transport"] == "polling"
        client.wait_type("connect")
        assert client.wait_type("upgrade")["transport"] == "websocket"


def test_api_mutations_reach_every_client_unchanged(
    events: ServerHandle, zou_stack: ZouStack
) -> None:
    admin_token, _ = zou_stack.login("admin")
    with kitsu(events, zou_stack, "member") as member, kitsu(events, zou_stack, "outsider") as out:
        member.wait_type("connect")
        out.wait_type("connect")
        assert zou_stack.api("GET", "/status/test-event").status == 200
        for client in (member, out):
            assert client.wait_event("main:test")["raw"] == "[{}]"
        project_id = zou_stack.seed.project_id
        response = zou_stack.api(
            "PUT", f"/data/projects/{project_id}", admin_token, json={"description": "v2"}
        )
        assert response.status == 200
        for client in (member, out):  # users outside the team receive it too, as from Zou
            assert client.wait_event("project:update")["args"] == [{"project_id": project_id}]
        created = zou_stack.api(
            "POST",
            "/data/playlists",
            admin_token,
            json={"name": f"dailies {uuid.uuid4().hex[:6]}", "project_id": project_id},
        )
        assert created.status == 201
        playlist_id = created.json()["id"]
        new = member.wait_event("playlist:new")
        assert new["args"] == [{"playlist_id": playlist_id, "project_id": project_id}]


def test_logout_through_the_api_cuts_the_socket(events: ServerHandle, zou_stack: ZouStack) -> None:
    token, cookie = zou_stack.login("supervisor")
    with JsClient(events.url, cookie=cookie) as client:
        client.wait_type("connect")
        zou_stack.logout(token)
        assert client.wait_type("disconnect", timeout=35)["reason"] == "io server disconnect"
    with JsClient(events.url, cookie=cookie) as again:
        assert again.wait_type("connect_error")["message"] == "Access token revoked."


@pytest.mark.parametrize("person", ["inactive", None])
def test_inactive_or_unknown_person_refused(
    events: ServerHandle, zou_stack: ZouStack, person: str | None
) -> None:
    sub = zou_stack.person(person).id if person else str(uuid.uuid4())
    token = make_token(zou_stack.secret_key, sub=sub)
    with JsClient(events.url, cookie=f"access_token_cookie={token}") as client:
        assert client.wait_type("connect_error")["message"] == "Unknown account."


def test_bot_token_connects_with_the_header_like_gazu(
    events: ServerHandle, zou_stack: ZouStack
) -> None:
    bot_token = zou_stack.seed.bot_token
    with JsClient(events.url, authorization=f"Bearer {bot_token}") as client:
        client.wait_type("connect")


def room_session(client: JsClient, playlist_id: str, **state: object) -> None:
    client.emit("preview-room:open-playlist", {"playlist_id": playlist_id})
    client.emit("preview-room:join", {"playlist_id": playlist_id, **state})


def test_review_room_between_team_member_and_admin(
    events: ServerHandle, zou_stack: ZouStack
) -> None:
    playlist = zou_stack.seed.playlist_id
    member_id, admin_id = zou_stack.person("member").id, zou_stack.person("admin").id
    with kitsu(events, zou_stack, "member") as member, kitsu(events, zou_stack, "admin") as admin:
        member.wait_type("connect")
        admin.wait_type("connect")
        room_session(member, playlist, current_frame=12, is_playing=True)
        member.wait_for(lambda m: m.get("event") == "preview-room:room-updated")
        room_session(admin, playlist)
        updated = admin.wait_for(
            lambda m: (
                m.get("event") == "preview-room:room-updated"
                and m["args"][0]["people"] == [member_id, admin_id]
            )
        )
        assert updated["args"][0]["current_frame"] == 12  # the first joiner's state
        member.emit("preview-room:room-updated", {"playlist_id": playlist, "current_frame": 40})
        seen = admin.wait_for(
            lambda m: (
                m.get("event") == "preview-room:room-updated"
                and m["args"][0].get("current_frame") == 40
            )
        )
        assert seen["args"][0]["only_newcomer"] is False


@pytest.mark.parametrize("person", ["outsider", "vendor"])
def test_people_without_playlist_access_are_kept_out(
    events: ServerHandle, zou_stack: ZouStack, person: str
) -> None:
    playlist = zou_stack.seed.playlist_id
    with kitsu(events, zou_stack, "member") as member, kitsu(events, zou_stack, person) as other:
        member.wait_type("connect")
        other.wait_type("connect")
        room_session(other, playlist)
        room_session(member, playlist)
        member.wait_for(lambda m: m.get("event") == "preview-room:room-updated")
        member.emit(
            "preview-room:add-annotation",
            {"playlist_id": playlist, "data": {"time": 1, "obj": {"id": "a"}}},
        )
        member.wait_event("preview-room:add-annotation")
        # nothing from open-playlist, join or the room
        assert [m for m in other.events() if m["event"].startswith("preview-room:")] == []
        people = member.events("preview-room:room-people-updated")[-1]["args"][0]["people"]
        assert zou_stack.person(person).id not in people
