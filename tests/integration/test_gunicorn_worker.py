"""Our gunicorn worker (gunicorn_worker.py) answers byte for byte as gunicorn's own gevent
worker does, in fewer sends."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator

import pytest
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.parser import RequestParser

from tests.support.server import ServerHandle, start_server
from zou_events.gunicorn_worker import JOIN_MAX, OneSendResponse

ADDR = ("127.0.0.1", 40000)


@pytest.fixture(scope="module")
def stock() -> Iterator[ServerHandle]:
    """The same server on gunicorn's own gevent worker: the reference."""
    with start_server({"GUNICORN_CMD_ARGS": "--worker-class gevent"}) as handle:
        yield handle


def exchange(port: int, raw: bytes) -> bytes:
    """Everything the server writes back to ``raw`` until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(raw)
        received = bytearray()
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except ConnectionResetError:  # after a refusal (gunicorn's worker too): the end
            pass
    return bytes(received)


def normalised(answer: bytes) -> bytes:
    """Without what differs between two servers or two seconds: the date, session ids (of
    one length: both servers' ports have five digits)."""
    answer = re.sub(rb"\r\nDate: [^\r]*", b"\r\nDate: -", answer)
    return re.sub(rb'"sid":"[^"]*"', lambda m: b'"sid":"' + b"x" * (len(m[0]) - 8) + b'"', answer)


def request(
    method: str, path: str, *headers: str, body: bytes = b"", version: str = "1.1"
) -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


HANDSHAKE = "/socket.io/?EIO=4&transport=polling"
KEEP_ALIVE_SEQUENCE = b"".join(
    [
        request("GET", HANDSHAKE),  # a polling handshake: chunked (engineio gives no length)
        request("GET", "/"),  # Content-Length
        request("HEAD", "/"),
        request("HEAD", HANDSHAKE),
        request("GET", "/health"),
        request("GET", "/no/such/page"),  # the application's 404
        request("GET", "/socket.io/?EIO=3&transport=polling"),  # engineio's 400
        request("POST", "/socket.io/?EIO=4&transport=polling&sid=nope", body=b"4hello"),
        request("GET", "/", "Connection: close"),
    ]
)


@pytest.mark.parametrize(
    ("raw", "statuses"),
    [
        pytest.param(
            KEEP_ALIVE_SEQUENCE,
            [200, 200, 200, 405, 200, 404, 400, 400, 200],
            id="keep-alive-sequence",
        ),
        pytest.param(request("GET", HANDSHAKE, version="1.0"), [200], id="http-1.0-handshake"),
        pytest.param(
            request("GET", "/") + b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            [200, 400],
            id="bad-request",
        ),
        pytest.param(
            request("GET", "/") + b"GET /" + b"x" * 8188,  # one byte over the limit
            [200, 414],
            id="request-line-too-long",
        ),
        pytest.param(request("DELETE", "/health", "Connection: close"), [405], id="not-allowed"),
    ],
)
def test_answers_are_gunicorns_byte_for_byte(
    server: ServerHandle, stock: ServerHandle, raw: bytes, statuses: list[int]
) -> None:
    ours = normalised(exchange(server.port, raw))
    assert ours == normalised(exchange(stock.port, raw))
    assert [int(code) for code in re.findall(rb"HTTP/1\.[01] (\d{3}) ", ours)] == statuses


def test_the_handshake_answer_is_whole_and_chunked(server: ServerHandle) -> None:
    answer = exchange(server.port, request("GET", HANDSHAKE, "Connection: close"))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nTransfer-Encoding: chunked" in head
    assert b"\r\nConnection: close" in head
    size, _, rest = body.partition(b"\r\n")
    payload = rest[: int(size, 16)]
    assert payload.startswith(b'0{"sid":"')
    assert rest[int(size, 16) :] == b"\r\n0\r\n\r\n"


class CountingSocket(socket.socket):
    """One end of a real socket pair, counting the system calls that send on it."""

    sends = 0

    def send(self, data: object, flags: int = 0) -> int:
        self.sends += 1
        return super().send(data, flags)  # type: ignore[arg-type]

    def sendall(self, data: object, flags: int = 0) -> None:
        self.sends += 1
        super().sendall(data, flags)  # type: ignore[arg-type]


def respond(
    response_class: type[wsgi.Response],
    raw: bytes,
    headers: list[tuple[str, str]],
    body: list[bytes],
    whole: bool = True,
) -> tuple[bytes, int]:
    """What a response of ``response_class`` to ``raw`` puts on the wire, and in how many
    sends: gunicorn's request parser and WSGI environ, a real socket pair. ``body`` is
    written as the worker writes a list (``whole``) or any other iterable."""
    left, right = socket.socketpair()
    server_end = CountingSocket(fileno=left.detach())
    received = bytearray()

    def read_all() -> None:  # as the client does, while the server writes
        while chunk := right.recv(1 << 20):
            received.extend(chunk)

    reader = threading.Thread(target=read_all)
    with server_end, right:
        right.sendall(raw)
        reader.start()
        cfg = Config()
        req = next(RequestParser(cfg, server_end, ADDR))
        resp, _environ = wsgi.create(
            req, server_end, ADDR, ("127.0.0.1", 5001), cfg, response_class=response_class
        )
        resp.start_response("200 OK", headers)
        if isinstance(resp, OneSendResponse) and whole:
            resp.write_whole(body)
        else:  # gunicorn's worker, and ours streaming
            for item in body:
                resp.write(item)
            resp.close()
        server_end.shutdown(socket.SHUT_WR)
        reader.join(10)
        assert not reader.is_alive()
    return bytes(received), server_end.sends


@pytest.mark.parametrize(
    ("raw", "headers", "body", "sends"),
    [
        pytest.param(request("GET", "/"), [], [b"4", b"2"], 1, id="chunked"),
        pytest.param(
            request("GET", "/"), [("Content-Length", "3")], [b"40", b"xy"], 1, id="length"
        ),
        pytest.param(request("HEAD", "/"), [], [b"dropped"], 1, id="head"),
        pytest.param(request("GET", "/"), [], [], 1, id="empty"),
        # as many as gunicorn's: the head, the large chunk (not copied), the end
        pytest.param(request("GET", "/"), [], [b"x" * (JOIN_MAX * 4)], 3, id="large-chunked"),
        pytest.param(
            request("GET", "/", version="1.0"), [], [b"a", b"x" * JOIN_MAX * 2], 2, id="large-1.0"
        ),
    ],
)
def test_a_whole_body_goes_in_one_send_unless_large(
    raw: bytes, headers: list[tuple[str, str]], body: list[bytes], sends: int
) -> None:
    ours, our_sends = respond(OneSendResponse, raw, headers, body)
    gunicorns, _ = respond(wsgi.Response, raw, headers, body)
    assert normalised(ours) == normalised(gunicorns)
    assert our_sends == sends


def test_a_streamed_body_sends_each_piece_as_it_comes() -> None:
    """An iterable that is not a list may wait between its pieces: each goes out at once,
    the head with the first (gunicorn: a send for the head, each piece, the end)."""
    pieces = [b"first", b"second"]
    ours, our_sends = respond(OneSendResponse, request("GET", "/"), [], pieces, whole=False)
    gunicorns, their_sends = respond(wsgi.Response, request("GET", "/"), [], pieces)
    assert normalised(ours) == normalised(gunicorns)
    assert (our_sends, their_sends) == (3, 4)
