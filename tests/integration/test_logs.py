"""Structured logs: one JSON object per line, bound fields, never a token (issue 5)."""

from __future__ import annotations

import json

from tests.conftest import ZouPublisher
from tests.support.js_client import JsClient
from tests.support.server import start_server
from tests.support.tokens import make_token

REQUIRED = ("event", "level", "timestamp", "logger")


def test_every_line_is_json_with_bound_fields_and_no_secret(zou_publisher: ZouPublisher) -> None:
    with start_server({"ZOU_EVENTS_ACCESS_LOG": "true"}) as server:
        person = "0d5f4c1e-1111-4222-8333-444455556666"
        token = make_token(server.secret_key, sub=person)
        expired = make_token(server.secret_key, sub=person, lifetime=-10)
        with JsClient(server.url, cookie=f"access_token_cookie={token}") as kitsu:
            kitsu.wait_type("connect")
            kitsu.emit("preview-room:open-playlist", {"playlist_id": "playlist-1"})
            kitsu.wait_event("preview-room:room-people-updated")
            seen = len(kitsu.seen)
            kitsu.emit("preview-room:room-updated", {"no": "playlist id"})
            # A socket's room events are handled in order: the answer to this one proves the
            # refused one was handled before the socket closes.
            kitsu.emit("preview-room:open-playlist", {"playlist_id": "playlist-1"})
            people = "preview-room:room-people-updated"
            kitsu.wait_for(lambda message: message.get("event") == people, since=seen)
            zou_publisher.emit("main:test", {})
            kitsu.wait_event("main:test")
        with JsClient(server.url, auth={"token": expired}) as refused:
            refused.wait_type("connect_error")
        with JsClient(server.url, cookie=f"access_token_cookie={expired}") as refused:
            refused.wait_type("connect_error")
        output = server.logs()
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines, "the server logged nothing"
    records = [json.loads(line) for line in lines]  # every line parses
    for record in records:
        assert all(field in record for field in REQUIRED), record
    by_event = {record["event"]: record for record in records}
    accepted = by_event["connection accepted"]
    assert accepted["person_id"] == person and accepted["namespace"] == "/events"
    assert accepted["sid"]
    refused_room = by_event["room event refused"]
    assert refused_room["person_id"] == person and refused_room["sid"] == accepted["sid"]
    assert refused_room["reason"] == "invalid_payload"
    assert any(r["logger"] == "gunicorn.access" and r.get("path") for r in records)
    assert any(r["logger"] == "gunicorn.error" for r in records)
    for secret in (token, expired, token.split(".")[2], "access_token_cookie="):
        assert secret not in output
