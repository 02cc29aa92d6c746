"""What a cut WebSocket leaves behind: nothing. The real EventServer, its WebSocket driver
over a real socket pair, clients flooding past their inbound budget until they are cut; once
cut, no Engine.IO socket, driver or session of theirs may stay alive (the pinger's queue held
every one for a ping interval, with its 64 KiB read buffer: 71 MB of worker RSS in a
10-second flood)."""

from __future__ import annotations

import contextlib
import gc
import socket as std_socket
import weakref

import gevent
from engineio.socket import Socket as EngineIOSocket
from gevent import socket

from tests.support.raw_websocket import OP_CLOSE, FrameReader, frame
from zou_events.config import load_settings
from zou_events.transport.server import EventServer
from zou_events.transport.websocket import WebSocket
from zou_events.transport.websocket_session import WebSocketSession

FLOOD = b"".join(frame(b"2") for _ in range(2000))
CONNECTIONS = 20


def _live(kind: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, kind))


def _cut_connection(sio: EventServer) -> weakref.ref[EngineIOSocket]:
    """One WebSocket session flooded until the server closes it; a weak reference to its
    Engine.IO socket."""
    server_end, client_end = std_socket.socketpair()
    client = socket.socket(fileno=client_end.detach())
    client.settimeout(5)
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/socket.io/",
        "QUERY_STRING": "EIO=4&transport=websocket",
        "HTTP_UPGRADE": "websocket",
        "HTTP_CONNECTION": "Upgrade",
        "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==",
        "HTTP_SEC_WEBSOCKET_VERSION": "13",
        "gunicorn.socket": socket.socket(fileno=server_end.detach()),
    }

    def serve() -> None:
        with contextlib.suppress(StopIteration):  # gunicorn's "connection handled"
            sio.handle_request(environ, lambda *_: None)

    gevent.spawn(serve).join(5)
    head = b""
    while b"\r\n\r\n" not in head:
        head += client.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    (sid,) = sio.eio.sockets  # the cut ones were closed, and engineio forgot them
    eio_socket = weakref.ref(sio.eio.sockets[sid])
    reader = FrameReader(client)
    with contextlib.suppress(OSError):
        while True:
            client.sendall(FLOOD)
    with contextlib.suppress(OSError):
        while reader.read_frame()[0] != OP_CLOSE:
            pass
    client.close()
    return eio_socket


def test_cut_websockets_leave_nothing_alive() -> None:
    sio = EventServer(load_settings({"SECRET_KEY": "k" * 32, "ZOU_EVENTS_ZOU_API_URL": ""}))
    # engineio's sweep holds a copy of its socket table for a ping timeout as it walks it
    # (bounded: the sockets open when it started), not started here
    sio.eio.start_service_task = False
    baseline = {kind: _live(kind) for kind in (WebSocket, WebSocketSession, EngineIOSocket)}
    cut = [_cut_connection(sio) for _ in range(CONNECTIONS)]
    gevent.sleep(0.1)  # the drivers' reader greenlets end
    assert {kind: _live(kind) for kind in baseline} == baseline
    assert [ref for ref in cut if ref() is not None] == []
