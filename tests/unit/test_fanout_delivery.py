"""The fan-out: an emit reaches exactly the sockets of its rooms, once each, room changes
from other instances apply to this one's sockets (or are refused), and a local emit is
published for the other instances in the message format they decode.

A real EventServer (python-socketio and python-engineio) driven in-process through its WSGI
entry point by long-polling clients: the packets a socket gets are read from its session.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

import pytest

from zou_events.config import load_settings
from zou_events.fanout import Fanout
from zou_events.messages import DroppedMessage, Emit, RoomChange, decode
from zou_events.transport.server import EventServer

EVENTS = "/events"
RECORD_SEPARATOR = "\x1e"


class Client:
    """A long-polling session of /events: requests are WSGI calls, in this process."""

    def __init__(self, server: EventServer) -> None:
        self.server = server
        handshake = self._request("GET", "")
        self.eio_sid = json.loads(handshake[1:])["sid"]
        assert self._request("POST", f"&sid={self.eio_sid}", b"40/events,") == "OK"
        [connected] = self.packets()
        self.sid: str = json.loads(connected.removeprefix("40/events,"))["sid"]

    def _request(self, method: str, query: str, body: bytes = b"") -> str:
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": "/socket.io/",
            "QUERY_STRING": f"EIO=4&transport=polling{query}",
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "text/plain;charset=UTF-8",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "5001",
            "HTTP_HOST": "127.0.0.1:5001",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "http",
        }
        statuses: list[str] = []
        body_out = b"".join(
            self.server.handle_request(environ, lambda status, *_: statuses.append(status))
        )
        assert statuses == ["200 OK"], (statuses, body_out)
        return body_out.decode()

    def packets(self) -> list[str]:
        """What the session holds now (a poll waits for at least one packet)."""
        return self._request("GET", f"&sid={self.eio_sid}").split(RECORD_SEPARATOR)

    def events(self) -> list[list[object]]:
        """The events the session holds now, [name, *args] each: read after a marker event
        sent to everyone, so that what did not come is known without waiting."""
        events = [json.loads(p.removeprefix("42/events,")) for p in self.packets()]
        assert events[-1][0] == "marker", events
        return events[:-1]


@pytest.fixture
def server() -> Iterator[EventServer]:
    server = EventServer(load_settings({"SECRET_KEY": "k" * 64}))
    yield server
    server.eio.shutdown()


@pytest.fixture
def published() -> list[bytes]:
    return []


@pytest.fixture
def fanout(server: EventServer, published: list[bytes]) -> Fanout:
    return Fanout(server, "here", published.append)


def emit(
    event: str,
    room: str | list[str] | None = None,
    skip: tuple[str, ...] = (),
    namespace: str = EVENTS,
) -> Emit:
    return Emit(event, [{"n": 1}], namespace, room, skip, "zou", None)


def change(method: str, sid: str | None, room: str | None) -> RoomChange:
    return RoomChange(method, sid, EVENTS, room, "other-instance")


def read(fanout: Fanout, *clients: Client) -> list[list[list[object]]]:
    fanout.deliver(emit("marker"), time.monotonic())
    return [client.events() for client in clients]


def test_an_emit_reaches_each_socket_of_its_rooms_once(fanout: Fanout, server: EventServer) -> None:
    a, b, c = Client(server), Client(server), Client(server)
    fanout.apply_room_change(change("enter_room", a.sid, "r1"))
    fanout.apply_room_change(change("enter_room", a.sid, "r2"))
    fanout.apply_room_change(change("enter_room", b.sid, "r2"))
    assert fanout.deliver(emit("both", ["r1", "r2"]), time.monotonic()) == 2
    assert fanout.deliver(emit("one", "r1"), time.monotonic()) == 1
    assert fanout.deliver(emit("nobody", "r3"), time.monotonic()) == 0
    assert fanout.deliver(emit("elsewhere", namespace="/"), time.monotonic()) == 0
    assert read(fanout, a, b, c) == [
        [["both", {"n": 1}], ["one", {"n": 1}]],
        [["both", {"n": 1}]],
        [],
    ]


def test_skipped_sockets_get_nothing(fanout: Fanout, server: EventServer) -> None:
    a, b = Client(server), Client(server)
    assert fanout.deliver(emit("all but a", skip=(a.sid,)), time.monotonic()) == 1
    assert read(fanout, a, b) == [[], [["all but a", {"n": 1}]]]


def test_room_changes_of_other_instances_apply_here(fanout: Fanout, server: EventServer) -> None:
    a, b = Client(server), Client(server)
    fanout.apply_room_change(change("enter_room", a.sid, "r"))
    fanout.apply_room_change(change("enter_room", b.sid, "r"))
    fanout.apply_room_change(change("leave_room", b.sid, "r"))
    fanout.deliver(emit("after leave", "r"), time.monotonic())
    fanout.apply_room_change(change("close_room", None, "r"))
    fanout.deliver(emit("after close", "r"), time.monotonic())
    assert read(fanout, a, b) == [[["after leave", {"n": 1}]], []]


@pytest.mark.parametrize("method", ["enter_room", "leave_room", "close_room"])
def test_changes_that_would_silence_sockets_are_refused(
    fanout: Fanout, server: EventServer, method: str
) -> None:
    """A socket's own room, or the room of every socket (None), is not another
    instance's to change."""
    a = Client(server)
    with pytest.raises(DroppedMessage) as sid_room:
        fanout.apply_room_change(change(method, a.sid, a.sid))
    with pytest.raises(DroppedMessage) as no_room:
        fanout.apply_room_change(change(method, a.sid, None))
    assert (sid_room.value.reason, no_room.value.reason) == ("sid_room", "no_room")
    assert read(fanout, a) == [[]]  # still served


def test_changes_about_sockets_of_other_instances_change_nothing(
    fanout: Fanout, server: EventServer
) -> None:
    """Zou publishes leave_room with a person id as sid."""
    a = Client(server)
    fanout.apply_room_change(change("enter_room", "not-a-socket-here", "r"))
    fanout.apply_room_change(change("leave_room", "person-id", "r"))
    fanout.apply_room_change(change("disconnect", "not-a-socket-here", None))
    assert fanout.deliver(emit("r only", "r"), time.monotonic()) == 0
    assert read(fanout, a) == [[]]


def test_a_disconnect_from_another_instance_disconnects_the_socket(
    fanout: Fanout, server: EventServer
) -> None:
    a, b = Client(server), Client(server)
    fanout.apply_room_change(change("disconnect", a.sid, None))
    assert a.packets() == ["41/events,"]
    assert fanout.deliver(emit("after"), time.monotonic()) == 1
    assert read(fanout, b) == [[["after", {"n": 1}]]]


def test_a_local_emit_is_delivered_here_and_published_for_the_others(
    fanout: Fanout, server: EventServer, published: list[bytes]
) -> None:
    a, b = Client(server), Client(server)
    fanout.apply_room_change(change("enter_room", a.sid, "playlist"))
    before = time.time()
    fanout.emit("preview-room:room-updated", {"frame": 3}, EVENTS, "playlist")
    assert read(fanout, a, b) == [[["preview-room:room-updated", {"frame": 3}]], []]
    [raw] = published
    message = decode(raw)
    assert isinstance(message, Emit)
    assert (message.event, message.args, message.namespace, message.room, message.host_id) == (
        "preview-room:room-updated",
        [{"frame": 3}],
        EVENTS,
        "playlist",
        "here",  # the subscriber of this instance skips its own messages by it
    )
    assert message.published_at is not None and before <= message.published_at <= time.time()
