"""The WebSocket driver's reader over a real socket pair: RFC 6455 §5 framing and §7.4 close
handling, incremental UTF-8 checks, limits on fragmented messages, fair reading (the reader
yields to the event loop), the inbound budget and the send limits on control replies."""

from __future__ import annotations

import contextlib
import gc
import socket as std_socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import gevent
import pytest
from gevent import socket
from gevent.event import Event

from tests.support.raw_websocket import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameReader,
    frame,
)
from zou_events.transport import inbound
from zou_events.transport.inbound import InboundLimits, InboundMeter
from zou_events.transport.websocket import WebSocket

MAX_PAYLOAD = 65536
LIMITS = (100_000, 1 << 30)
WIDE_BUDGET = InboundLimits(1e9, 10**9, 1e12, 10**12)


@dataclass
class Server:
    """What the driver reads of engineio's server."""

    max_http_buffer_size: int = MAX_PAYLOAD


@dataclass
class Session:
    """What the driver reads of engineio's socket, and the connection's receiver: it
    echoes every message."""

    limits: InboundLimits = WIDE_BUDGET
    upgraded: bool = True
    sid: str = "session"
    messages: list[str | bytes] = field(default_factory=list)
    over: Event = field(default_factory=Event)  # the driver said the connection ended
    inbound: InboundMeter = field(init=False)
    ws: WebSocket | None = None

    def __post_init__(self) -> None:
        self.inbound = InboundMeter(self.limits)

    def open(self, ws: WebSocket) -> Session:
        self.ws = ws
        return self

    def received(self, message: str | bytes) -> bool:
        assert self.ws is not None
        self.messages.append(message)
        self.ws.send(message)
        return True

    def ended(self) -> None:
        assert not self.over.is_set(), "ended() twice"
        self.over.set()


class Client(FrameReader):
    """The client end of the pair: frames by hand (tests/support/raw_websocket.py)."""

    def send(self, *frames: bytes) -> None:
        self.sock.sendall(b"".join(frames))

    def send_in_background(self, *frames: bytes) -> gevent.Greenlet:
        """For more than the kernel buffers take; the server may close meanwhile."""

        def send() -> None:
            with contextlib.suppress(OSError):
                self.send(*frames)

        return gevent.spawn(send)

    def close_payload(self) -> bytes:
        """Frames until the server's close frame: its payload."""
        while True:
            opcode, payload = self.read_frame()
            if opcode == OP_CLOSE:
                return payload

    def close_code(self) -> int | None:
        payload = self.close_payload()
        return struct.unpack("!H", payload[:2])[0] if payload else None


@dataclass
class Connection:
    client: Client
    session: Session
    cuts: list[tuple[str, bool]]
    greenlet: gevent.Greenlet


@contextlib.contextmanager
def connect(
    session: Session | None = None,
    send_limits: tuple[int, int] = LIMITS,
    accept: Any = None,
    client_buffer: int | None = None,
) -> Iterator[Connection]:
    session = session or Session()
    server_end, client_end = std_socket.socketpair()
    if client_buffer is not None:
        client_end.setsockopt(std_socket.SOL_SOCKET, std_socket.SO_RCVBUF, client_buffer)
        server_end.setsockopt(std_socket.SOL_SOCKET, std_socket.SO_SNDBUF, client_buffer)
    sock = socket.socket(fileno=server_end.detach())
    client_sock = socket.socket(fileno=client_end.detach())
    client_sock.settimeout(5)
    cuts: list[tuple[str, bool]] = []
    ws = WebSocket(
        session.open,
        Server(),
        send_limits,
        cut=lambda _s, reason, whole: cuts.append((reason, whole)),
        accept=accept,
        receiver=Session.open,
    )
    environ = {
        "gunicorn.socket": sock,
        "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ==",
        "HTTP_SEC_WEBSOCKET_VERSION": "13",
    }

    def serve() -> None:
        with contextlib.suppress(StopIteration):  # gunicorn's "connection handled"
            ws(environ, lambda *_: None)

    greenlet = gevent.spawn(serve)
    client = Client(client_sock)
    head = b""
    while b"\r\n\r\n" not in head:
        head += client_sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101")
    try:
        yield Connection(client, session, cuts, greenlet)
    finally:
        client_sock.close()
        greenlet.join(5)
        sock.close()


@pytest.fixture
def conn() -> Iterator[Connection]:
    with connect() as connection:
        yield connection


def test_text_and_binary_are_echoed(conn: Connection) -> None:
    conn.client.send(frame(b"hello"), frame(b"\x00\xff", OP_BINARY))
    assert conn.client.read_frame() == (OP_TEXT, b"hello")
    assert conn.client.read_frame() == (OP_BINARY, b"\x00\xff")
    assert conn.session.messages == ["hello", b"\x00\xff"]


def _readers(ws: WebSocket) -> list[gevent.Greenlet]:
    """The live greenlets reading ``ws``."""
    return [
        g
        for g in gc.get_objects()
        if isinstance(g, gevent.Greenlet)
        and not g.dead
        and getattr(g, "_run", None) == ws._read_turn
    ]


def test_an_idle_connection_has_no_greenlet(conn: Connection) -> None:
    """Between messages the event loop waits for the socket's bytes: the greenlet that read a
    message ends once it has used up what came, and the next message gets a new one."""
    ws = conn.session.ws
    assert ws is not None
    for message in (b"first", b"second"):
        conn.client.send(frame(message))
        assert conn.client.read_frame() == (OP_TEXT, message)
        deadline = time.monotonic() + 5
        while _readers(ws) and time.monotonic() < deadline:
            gevent.sleep(0.001)
        assert _readers(ws) == []


def test_fragments_with_a_ping_between_them(conn: Connection) -> None:
    conn.client.send(
        frame("ké".encode()[:2], fin=False),
        frame(b"payload", OP_PING),
        frame("ké".encode()[2:] + b"!", OP_CONTINUATION),
    )
    assert conn.client.read_frame() == (OP_PONG, b"payload")
    assert conn.client.read_frame() == (OP_TEXT, "ké!".encode())


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1010, 1011, 1014, 3000, 4999])
def test_valid_close_codes_are_echoed(conn: Connection, code: int) -> None:
    conn.client.send(frame(struct.pack("!H", code) + "fin ✓".encode(), OP_CLOSE))
    assert conn.client.close_payload() == struct.pack("!H", code)
    assert conn.cuts == []


@pytest.mark.parametrize(
    "code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
)
def test_invalid_close_codes_get_a_protocol_error(conn: Connection, code: int) -> None:
    conn.client.send(frame(struct.pack("!H", code), OP_CLOSE))
    assert conn.client.close_code() == 1002
    assert conn.cuts == [(inbound.PROTOCOL_ERROR, True)]


def test_close_without_a_code_is_answered_without_one(conn: Connection) -> None:
    conn.client.send(frame(b"", OP_CLOSE))
    assert conn.client.close_payload() == b""  # 1005 is never sent


def test_close_with_a_one_byte_payload_is_a_protocol_error(conn: Connection) -> None:
    conn.client.send(frame(b"\x03", OP_CLOSE))
    assert conn.client.close_code() == 1002


def test_close_reason_must_be_utf8(conn: Connection) -> None:
    conn.client.send(frame(struct.pack("!H", 1000) + b"\xce\xba\xed\xa0\x80", OP_CLOSE))
    assert conn.client.close_code() == 1007


def test_invalid_utf8_fails_at_the_fragment_that_has_it(conn: Connection) -> None:
    """Fail fast: the close comes before the message's last fragment is sent."""
    conn.client.send(frame(b"valid ", fin=False), frame(b"\xff", OP_CONTINUATION, fin=False))
    assert conn.client.close_code() == 1007
    assert conn.cuts == [(inbound.PROTOCOL_ERROR, True)]


def test_invalid_utf8_fails_before_the_rest_of_its_frame_arrives(conn: Connection) -> None:
    """The same within one frame whose payload comes in pieces."""
    whole = frame(b"valid \xff and the rest of a long frame" * 100)
    conn.client.send(whole[:20])  # header, mask and the first bytes, the invalid one among them
    assert conn.client.close_code() == 1007


def test_a_fragmented_message_is_bounded_in_total(conn: Connection) -> None:
    half = b"x" * (MAX_PAYLOAD // 2 + 1)
    conn.client.send(frame(half, fin=False), frame(half, OP_CONTINUATION, fin=False))
    assert conn.client.close_code() == 1009
    assert conn.cuts == [(inbound.TOO_BIG, True)]


def test_the_reader_yields_while_frames_keep_coming() -> None:
    """10,000 frames already in the kernel buffer: other greenlets run while they are read,
    not only when the reader has emptied the buffer."""
    count = 10_000
    with connect() as conn:
        seen_progress: set[int] = set()  # how many messages were read, at each other turn

        def watcher() -> None:
            while True:
                seen_progress.add(len(conn.session.messages))
                gevent.sleep(0)

        watching = gevent.spawn(watcher)
        conn.client.send(*(frame(b"6") for _ in range(count)))  # the kernel takes it at once
        while len(conn.session.messages) < count:
            gevent.sleep(0.001)
        watching.kill()
        # a turn every 32 frames; a reader that yields only when the kernel buffer is empty
        # would let the watcher in a handful of times
        assert len(seen_progress) >= count // 32 // 2


def test_a_flood_past_the_budget_is_cut() -> None:
    session = Session(limits=InboundLimits(10.0, 100, 1e9, 10**9))
    with connect(session) as conn:
        conn.client.send(*(frame(b"", OP_PING) for _ in range(1000)))
        pongs = 0
        while True:
            opcode, payload = conn.client.read_frame()
            if opcode == OP_CLOSE:
                break
            pongs += 1
        assert struct.unpack("!H", payload[:2])[0] == 1008
        assert pongs <= 100
        assert conn.cuts == [(inbound.INBOUND_FLOOD, True)]


def test_pongs_count_against_the_send_limits() -> None:
    """A client that pings without reading is cut like any slow consumer."""
    with connect(send_limits=(50, 1 << 30), client_buffer=8192) as conn:
        ping = frame(b"p" * 125, OP_PING)
        writer = conn.client.send_in_background(*(ping for _ in range(5000)))
        assert conn.session.over.wait(10)
        writer.kill()
        assert conn.cuts == [(inbound.SLOW_CONSUMER, True)]


@pytest.mark.parametrize("message", [b"", b"garbage", "é".encode(), b"bnot base64!"])
def test_a_message_that_is_no_engineio_packet_closes_only_the_probe(message: bytes) -> None:
    session = Session(upgraded=False)  # the WebSocket of an upgrade that is not done yet
    with connect(session, accept=inbound.is_engineio_packet) as conn:
        conn.client.send(frame(message))
        assert conn.client.close_code() == 1003
        assert conn.cuts == [(inbound.BAD_PACKET, False)]
