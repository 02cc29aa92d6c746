"""The HTTP/1.1 refusals zou-events relies on from gunicorn's request parser, against a real
server with raw sockets: limits on the request line and the headers, malformed heads, and the
framing shapes of request smuggling. Each is refused, and the connection closed before the
request pipelined behind it is read.

gunicorn parses with its Python parser, or with its optional C parser (gunicorn_h1c) whenever
that package is installed, without being asked: these assertions hold for both, so installing
it, or a gunicorn upgrade changing either, cannot quietly loosen what reaches the application.
"""

from __future__ import annotations

import re
import select
import socket

import pytest

from tests.support.server import ServerHandle

# gunicorn's defaults, which zou-events keeps: limit_request_line, limit_request_fields and
# limit_request_field_size (a field line with its CRLF, as gunicorn counts it).
LINE_LIMIT = 4094
FIELDS_LIMIT = 100
FIELD_LIMIT = 8190
# zou-events' own bound on a whole head's headers, and on the reads it may take
# (zou_events/request_head.py).
HEAD_LIMIT = 32 * 1024
HEAD_READS_LIMIT = 64

HOST = b"Host: 127.0.0.1"
CLOSE = b"Connection: close"
# Pipelined behind every refused request: answered only if the server read on.
SMUGGLED = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
CHUNKED = b"Transfer-Encoding: chunked"
CHUNKS = b"3\r\nabc\r\n0\r\n\r\n"
STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


def exchange(server: ServerHandle, raw: bytes) -> list[int]:
    """The status of every response to ``raw``, read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall(raw)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    # A status line follows the body before it directly: found anywhere, not at a line's start.
    return [int(status) for status in STATUS_LINE.findall(received)]


def refused_heads(server: ServerHandle) -> float:
    """``zou_events_http_requests_refused_total{reason="head_too_large"}``."""
    prefix = 'zou_events_http_requests_refused_total{reason="head_too_large"} '
    lines = server.get_text("/metrics").splitlines()
    return next(float(line.split()[-1]) for line in lines if line.startswith(prefix))


def request(line: bytes, *fields: bytes, body: bytes = b"") -> bytes:
    return b"".join(part + b"\r\n" for part in (line, *fields)) + b"\r\n" + body


def request_line(length: int) -> bytes:
    """A GET /health request line of ``length`` bytes, without its CRLF."""
    start, end = b"GET /health?", b" HTTP/1.1"
    return start + b"a" * (length - len(start) - len(end)) + end


def field(length: int) -> bytes:
    """A field line of ``length`` bytes with its CRLF."""
    return b"X: " + b"v" * (length - len(b"X: \r\n"))


def post(*fields: bytes, body: bytes) -> bytes:
    return request(b"POST /health HTTP/1.1", HOST, *fields, body=body)


GET = b"GET /health HTTP/1.1"
# The polling endpoint reads the body itself (polling_guard), so a bad chunk is met there.
POLL = b"POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1"

AT_THE_LIMITS = {
    "request line": request(request_line(LINE_LIMIT), HOST, CLOSE),
    "field count": request(GET, HOST, CLOSE, *[b"X-%d: v" % i for i in range(FIELDS_LIMIT - 2)]),
    "field size": request(GET, HOST, CLOSE, field(FIELD_LIMIT)),
    "headers of a whole head": request(
        GET, HOST, CLOSE, *[field(FIELD_LIMIT)] * 3, field(HEAD_LIMIT - 3 * FIELD_LIMIT - 100)
    ),
}

REFUSED = {
    # Limits: 414 and 431, not a generic 400, so an operator can tell them apart.
    "request line over the limit": (request(request_line(LINE_LIMIT + 1), HOST), 414),
    "one field too many": (
        request(GET, HOST, *[b"X-%d: v" % i for i in range(FIELDS_LIMIT)]),
        431,
    ),
    "field over the limit": (request(GET, HOST, field(FIELD_LIMIT + 1)), 431),
    "head over the limit": (request(GET, HOST, *[field(FIELD_LIMIT)] * 4, field(100)), 431),
    # Malformed heads.
    "lowercase method": (request(b"get /health HTTP/1.1", HOST), 400),
    "HTTP/2.0 request line": (request(b"GET /health HTTP/2.0", HOST), 400),
    "control byte in the target": (request(b"GET /he\x01alth HTTP/1.1", HOST), 400),
    "bare LF line ends": (b"GET /health HTTP/1.1\nHost: 127.0.0.1\n\n", 400),
    "bare CR in a value": (request(GET, HOST, b"X: a\rb"), 400),
    "NUL in a value": (request(GET, HOST, b"X: a\x00b"), 400),
    "obsolete line folding": (request(GET, HOST, b"X: a", b" b"), 400),
    "space before the colon": (request(GET, b"Host : 127.0.0.1"), 400),
    "separator in a name": (request(GET, HOST, b"X@Y: v"), 400),
    "line without a colon": (request(GET, HOST, b"X"), 400),
    "two Hosts": (request(GET, HOST, b"Host: elsewhere"), 400),
    "unknown expectation": (request(GET, HOST, b"Expect: bogus"), 417),
    # Framing: where one request ends must be the same for us and for any proxy in front.
    "Content-Length and chunked": (post(b"Content-Length: 3", CHUNKED, body=CHUNKS), 400),
    "chunked and Content-Length": (post(CHUNKED, b"Content-Length: 3", body=CHUNKS), 400),
    "two equal Content-Lengths": (
        post(b"Content-Length: 3", b"Content-Length: 3", body=b"abc"),
        400,
    ),
    "Content-Length list": (post(b"Content-Length: 3, 3", body=b"abc"), 400),
    "signed Content-Length": (post(b"Content-Length: +3", body=b"abc"), 400),
    "hexadecimal Content-Length": (post(b"Content-Length: 0x3", body=b"abc"), 400),
    "negative Content-Length": (post(b"Content-Length: -3", body=b"abc"), 400),
    "chunked in HTTP/1.0": (request(b"POST /health HTTP/1.0", HOST, CHUNKED, body=CHUNKS), 400),
    "chunked twice": (post(b"Transfer-Encoding: chunked, chunked", body=CHUNKS), 400),
    "coding after chunked": (post(b"Transfer-Encoding: chunked, gzip", body=CHUNKS), 400),
    "no chunked at the end": (post(b"Transfer-Encoding: gzip", body=b"abc"), 400),
    "folded Transfer-Encoding": (post(b"Transfer-Encoding:", b" chunked", body=CHUNKS), 400),
    "space before the colon of Transfer-Encoding": (
        post(b"Transfer-Encoding : chunked", body=CHUNKS),
        400,
    ),
    "invalid chunk size": (request(POLL, HOST, CHUNKED, body=b"zz\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk without its CRLF": (request(POLL, HOST, CHUNKED, body=b"3\r\nabcX\r\n0\r\n\r\n"), 400),
}


def test_keep_alive_answers_a_pipelined_request(server: ServerHandle) -> None:
    """The control of the refusals' single answer: without a refusal, both are answered."""
    assert exchange(server, request(GET, HOST) + request(GET, HOST, CLOSE)) == [200, 200]


@pytest.mark.parametrize("raw", AT_THE_LIMITS.values(), ids=AT_THE_LIMITS.keys())
def test_a_request_at_the_limits_is_served(server: ServerHandle, raw: bytes) -> None:
    assert exchange(server, raw) == [200]


@pytest.mark.parametrize(("raw", "status"), REFUSED.values(), ids=REFUSED.keys())
def test_a_refused_request_closes_its_connection(
    server: ServerHandle, raw: bytes, status: int
) -> None:
    assert exchange(server, raw + SMUGGLED) == [status]


def test_an_unknown_transfer_coding_is_refused(server: ServerHandle) -> None:
    """501 from the Python parser (RFC 9112 6.1); 400 from gunicorn_h1c releases that do not
    tell it apart from other bad headers. Either way, refused and closed."""
    raw = post(b"Transfer-Encoding: xchunked", body=CHUNKS)
    assert exchange(server, raw + SMUGGLED) in ([400], [501])


def test_a_head_in_too_many_pieces_is_refused(server: ServerHandle) -> None:
    """gunicorn's parser searches the whole head again at every read: a head trickled in
    small pieces is refused after HEAD_READS_LIMIT reads, before its cost (quadratic in its
    size) adds up. Here a 2 KB head in 400 pieces, 5 ms apart, so that an idle server reads
    each on its own."""
    refused_before = refused_heads(server)
    raw = request(GET, HOST, CLOSE, field(2000))
    pieces = [raw[i : i + 5] for i in range(0, len(raw), 5)]
    assert len(pieces) >= 6 * HEAD_READS_LIMIT  # still over the limit if reads merge a few
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in pieces:
            # 5 ms between pieces, the attacker's pace; stop sending once answered.
            if select.select([conn], [], [], 0.005)[0]:
                break
            conn.sendall(piece)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert [int(status) for status in STATUS_LINE.findall(answer)] == [431]
    assert refused_heads(server) == refused_before + 1


def test_the_same_head_in_a_few_pieces_is_served(server: ServerHandle) -> None:
    """The control: a head that comes in a few reads, as through nginx or a browser."""
    raw = request(GET, HOST, CLOSE, field(2000))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        for piece in (raw[:1000], raw[1000:]):
            conn.sendall(piece)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert [int(status) for status in STATUS_LINE.findall(answer)] == [200]
