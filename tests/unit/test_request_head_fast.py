"""The fast path for common request heads (request_head_fast.py) against gunicorn's parser:
for typical, unusual, invalid and randomly mutated heads, under several gunicorn settings and
peers, both give the same request (or the same refusal), consume the same bytes and leave the
same bytes unread; and typical heads do take the fast path."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.http.errors import LimitRequestHeaders
from gunicorn.http.message import Request
from gunicorn.http.unreader import IterUnreader
from gunicorn.util import split_request_uri

from zou_events import request_head
from zou_events.request_head import MAX_HEAD_BYTES, MAX_HEAD_READS, BoundedHeadRequest
from zou_events.request_head_fast import split_origin_form


class GunicornParser(BoundedHeadRequest):
    """gunicorn's own parse, with zou-events' bounds on the head (request_head.py's parse
    without its fast path)."""

    _peer_is_trusted_proxy = Request._peer_is_trusted_proxy  # not remembered per peer

    def parse(self, unreader: Any) -> Any:
        self.max_buffer_headers = min(self.max_buffer_headers, MAX_HEAD_BYTES)
        self._head_reads = 0
        return Request.parse(self, unreader)


class FastPathCount:
    """How many heads the fast path filled, and how many it left to gunicorn's parser."""

    def __init__(self) -> None:
        self.taken = 0
        self.stepped_aside = 0

    def wrap(self, parse: Any) -> Any:
        def counted(req: Any, data: bytes) -> bytes | None:
            rest = parse(req, data)
            if rest is None:
                self.stepped_aside += 1
            else:
                self.taken += 1
            return rest

        return counted


@pytest.fixture
def fast_path(monkeypatch: pytest.MonkeyPatch) -> FastPathCount:
    count = FastPathCount()
    monkeypatch.setattr(
        request_head, "parse_common_head", count.wrap(request_head.parse_common_head)
    )
    return count


def config(**settings: Any) -> Config:
    cfg = Config()
    for name, value in settings.items():
        cfg.set(name, value)
    return cfg


CONFIGS = {
    "default": config(),
    "header_map dangerous": config(header_map="dangerous"),
    "header_map refuse": config(header_map="refuse"),
    "casefold": config(casefold_http_method=True),
    "obsolete folding": config(permit_obsolete_folding=True),
    "strip header spaces": config(strip_header_spaces=True),
    "unconventional": config(
        permit_unconventional_http_method=True, permit_unconventional_http_version=True
    ),
    "small limits": config(
        limit_request_line=60, limit_request_fields=4, limit_request_field_size=60
    ),
    "no limits": config(limit_request_line=0, limit_request_fields=0, limit_request_field_size=0),
    "any forwarder": config(forwarded_allow_ips="*", forwarder_headers="*"),
    "forwarders by network": config(forwarded_allow_ips="203.0.113.0/24,::1"),
    "proxy protocol": config(proxy_protocol="v1", proxy_allow_ips="*"),
}
TRUSTED, UNTRUSTED, UNIX = ("127.0.0.1", 50000), ("203.0.113.9", 50000), ""
PEERS = (TRUSTED, UNTRUSTED, UNIX)


def head(line: bytes, *fields: bytes, body: bytes = b"") -> bytes:
    return b"".join(part + b"\r\n" for part in (line, *fields)) + b"\r\n" + body


HOST = b"Host: kitsu.example.com"
COOKIE = (
    b"Cookie: access_token_cookie=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJmcmVzaCI6ZmFsc2Us"
    b"ImlhdCI6MTcwMDAwMDAwMCwianRpIjoiMTIzNCJ9.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU; "
    b"refresh_token_cookie=eyJhbGciOiJIUzI1NiJ9.e30.abc"
)
BROWSER = (
    HOST,
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    b"Accept: */*",
    b"Accept-Language: en-US,en;q=0.5",
    b"Accept-Encoding: gzip, deflate, br",
    b"Referer: https://kitsu.example.com/productions",
    b"Connection: keep-alive",
    COOKIE,
    b"Sec-Fetch-Dest: empty",
    b"Sec-Fetch-Mode: cors",
    b"Sec-Fetch-Site: same-origin",
)
POLL = b"/socket.io/?EIO=4&transport=polling&t=OqZ3xYk"
SID = b"&sid=AAAAAAAAAAAAAAAAAAAA"

TYPICAL = {
    "polling handshake": head(b"GET " + POLL + b" HTTP/1.1", *BROWSER),
    "polling GET": head(b"GET " + POLL + SID + b" HTTP/1.1", *BROWSER),
    "polling POST": head(
        b"POST " + POLL + SID + b" HTTP/1.1",
        *BROWSER,
        b"Content-Type: text/plain;charset=UTF-8",
        b"Content-Length: 28",
        b"Origin: https://kitsu.example.com",
        body=b'40{"token":"abc.def.ghi-jk"}',
    ),
    "polling POST, next request behind": head(
        b"POST " + POLL + SID + b" HTTP/1.1",
        HOST,
        b"Content-Length: 2",
        body=b"40" + head(b"GET /health HTTP/1.1", HOST),
    ),
    "WebSocket upgrade": head(
        b"GET /socket.io/?EIO=4&transport=websocket" + SID + b" HTTP/1.1",
        HOST,
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        b"Accept: */*",
        b"Sec-WebSocket-Version: 13",
        b"Origin: https://kitsu.example.com",
        b"Sec-WebSocket-Extensions: permessage-deflate",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        b"Connection: keep-alive, Upgrade",
        COOKIE,
        b"Pragma: no-cache",
        b"Cache-Control: no-cache",
        b"Upgrade: websocket",
    ),
    "socket.io-client on Node.js": head(
        b"GET " + POLL + b" HTTP/1.1", b"Accept: */*", b"Host: 127.0.0.1:5001", b"Connection: close"
    ),
    "through nginx": head(
        b"GET " + POLL + SID + b" HTTP/1.0",
        b"Host: kitsu.example.com",
        b"X-Real-IP: 198.51.100.7",
        b"X-Forwarded-For: 198.51.100.7",
        b"X-Forwarded-Proto: https",
        b"Connection: close",
        COOKIE,
    ),
    "CORS preflight": head(
        b"OPTIONS " + POLL + b" HTTP/1.1",
        HOST,
        b"Access-Control-Request-Method: POST",
        b"Access-Control-Request-Headers: content-type",
        b"Origin: https://other.example.com",
    ),
    "HEAD": head(b"HEAD /health HTTP/1.1", HOST),
    "PUT with body": head(b"PUT /x HTTP/1.1", HOST, b"Content-Length: 3", body=b"abc"),
    "DELETE": head(b"DELETE /x HTTP/1.1", HOST),
    "PATCH": head(b"PATCH /x HTTP/1.1", HOST, b"Content-Length: 0"),
    "HTTP/1.0 without fields": head(b"GET /health HTTP/1.0"),
    "HTTP/1.1 without fields": head(b"GET / HTTP/1.1"),
    "query and fragment": head(b"GET /a/b?c=d&e=%20f#g?h HTTP/1.1", HOST),
    "empty query and fragment": head(b"GET /?# HTTP/1.1", HOST),
    "100-continue": head(
        b"POST /x HTTP/1.1", HOST, b"Expect: 100-continue", b"Content-Length: 2", body=b"ok"
    ),
    "empty value": head(b"GET / HTTP/1.1", HOST, b"X-Empty:", b"X-Blank:   "),
    "spaces and tabs around values": head(
        b"GET / HTTP/1.1", HOST, b"X-A:\t a b \t", b"X-B:v\t", b"X-C: \tv"
    ),
    "token specials in a name": head(b"GET / HTTP/1.1", HOST, b"X-!#$%&'*+.^`|~: v"),
    "lower-case names": head(b"GET / HTTP/1.1", b"host: x", b"content-length: 0"),
}

UNUSUAL = {
    "nothing": b"",
    "incomplete head": b"GET / HTTP/1.1\r\nHost: x\r\n",
    "bare LF": b"GET / HTTP/1.1\nHost: x\n\n",
    "bare LF in the fields": b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
    "bare CR in a value": b"GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n",
    "obs-fold": head(b"GET / HTTP/1.1", HOST, b"X-Long: a", b" b", b"\tc"),
    "leading empty line": b"\r\n" + head(b"GET / HTTP/1.1", HOST),
    "two leading empty lines": b"\r\n\r\n" + head(b"GET / HTTP/1.1", HOST),
    "repeated Host": head(b"GET / HTTP/1.1", HOST, HOST),
    "repeated Content-Type": head(b"GET / HTTP/1.1", b"Content-Type: a", b"Content-Type: a"),
    "repeated Content-Length": head(
        b"POST / HTTP/1.1", b"Content-Length: 1", b"Content-Length: 1", body=b"x"
    ),
    "different Content-Lengths": head(
        b"POST / HTTP/1.1", b"Content-Length: 1", b"Content-Length: 2", body=b"xy"
    ),
    "Content-Length not a number": head(b"POST / HTTP/1.1", b"Content-Length: abc"),
    "Content-Length negative": head(b"POST / HTTP/1.1", b"Content-Length: -1"),
    "Content-Length with sign": head(b"POST / HTTP/1.1", b"Content-Length: +1", body=b"x"),
    "body shorter than Content-Length": head(b"POST / HTTP/1.1", b"Content-Length: 9", body=b"x"),
    "chunked": head(
        b"POST / HTTP/1.1", b"Transfer-Encoding: chunked", body=b"3\r\nabc\r\n0\r\n\r\n"
    ),
    "chunked with a trailer": head(
        b"POST / HTTP/1.1", b"Transfer-Encoding: chunked", body=b"1\r\na\r\n0\r\nX-T: v\r\n\r\n"
    ),
    "chunked and Content-Length": head(
        b"POST / HTTP/1.1", b"Transfer-Encoding: chunked", b"Content-Length: 3", body=b"abc"
    ),
    "chunked in HTTP/1.0": head(b"POST / HTTP/1.0", b"Transfer-Encoding: chunked"),
    "gzip transfer coding": head(b"POST / HTTP/1.1", b"Transfer-Encoding: gzip"),
    "unknown transfer coding": head(b"POST / HTTP/1.1", b"Transfer-Encoding: foo, chunked"),
    "Expect in HTTP/1.0": head(b"POST / HTTP/1.0", b"Expect: 100-continue"),
    "Expect in another case": head(b"POST / HTTP/1.1", b"Expect: 100-Continue"),
    "bad Expect": head(b"POST / HTTP/1.1", b"Expect: 200-ok"),
    "underscore in a name": head(b"GET / HTTP/1.1", HOST, b"X_Forwarded_For: 10.0.0.1"),
    "forwarder header with underscore": head(b"GET / HTTP/1.1", HOST, b"SCRIPT_NAME: /x"),
    "X-Forwarded-Proto https": head(b"GET / HTTP/1.1", HOST, b"X-Forwarded-Proto: https"),
    "X-Forwarded-Proto http": head(b"GET / HTTP/1.1", HOST, b"X-Forwarded-Proto: http"),
    "X-Forwarded-Ssl on": head(b"GET / HTTP/1.1", HOST, b"X-Forwarded-Ssl: on"),
    "conflicting scheme headers": head(
        b"GET / HTTP/1.1", HOST, b"X-Forwarded-Proto: https", b"X-Forwarded-Ssl: off"
    ),
    "agreeing scheme headers": head(
        b"GET / HTTP/1.1", HOST, b"X-Forwarded-Proto: https", b"X-Forwarded-Ssl: on"
    ),
    "NUL in a value": head(b"GET / HTTP/1.1", HOST, b"X: a\x00b"),
    "control char in a value": head(b"GET / HTTP/1.1", HOST, b"X: a\x01b"),
    "DEL in a value": head(b"GET / HTTP/1.1", HOST, b"X: a\x7fb"),
    "non-ASCII in a value": head(b"GET / HTTP/1.1", HOST, b"X: caf\xc3\xa9"),
    "latin-1 in a value": head(b"GET / HTTP/1.1", HOST, b"X: caf\xe9"),
    "non-ASCII in a name": head(b"GET / HTTP/1.1", HOST, b"X-\xdf: v"),
    "control char in a name": head(b"GET / HTTP/1.1", HOST, b"X\x01: v"),
    "space before the colon": head(b"GET / HTTP/1.1", b"Host : x"),
    "tab before the colon": head(b"GET / HTTP/1.1", b"Host\t: x"),
    "empty name": head(b"GET / HTTP/1.1", b": x"),
    "no colon": head(b"GET / HTTP/1.1", b"Hostx"),
    "non-ASCII in the target": head(b"GET /caf\xc3\xa9 HTTP/1.1", HOST),
    "control char in the target": head(b"GET /a\x01 HTTP/1.1", HOST),
    "tab in the target": head(b"GET /a\tb HTTP/1.1", HOST),
    "double slash": head(b"GET //evil.example.com/x?y HTTP/1.1", HOST),
    "asterisk with OPTIONS": head(b"OPTIONS * HTTP/1.1", HOST),
    "asterisk with GET": head(b"GET * HTTP/1.1", HOST),
    "absolute-form": head(b"GET http://kitsu.example.com/x?y#z HTTP/1.1", HOST),
    "authority-form with CONNECT": head(b"CONNECT kitsu.example.com:443 HTTP/1.1", HOST),
    "authority-form with GET": head(b"GET kitsu.example.com:443 HTTP/1.1", HOST),
    "relative target": head(b"GET socket.io/ HTTP/1.1", HOST),
    "HTTP/1.2": head(b"GET / HTTP/1.2", HOST),
    "HTTP/2.0": head(b"GET / HTTP/2.0", HOST),
    "HTTP/0.9": head(b"GET / HTTP/0.9", HOST),
    "lower-case version": head(b"GET / http/1.1", HOST),
    "space after the version": head(b"GET / HTTP/1.1 ", HOST),
    "two spaces": head(b"GET  / HTTP/1.1", HOST),
    "no version": head(b"GET /", HOST),
    "lower-case method": head(b"get / HTTP/1.1", HOST),
    "mixed-case method": head(b"Get / HTTP/1.1", HOST),
    "other method": head(b"PROPFIND / HTTP/1.1", HOST),
    "long method": head(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1", HOST),
    "method with #": head(b"GE#T / HTTP/1.1", HOST),
    "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "PROXY v1 preface": b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 443\r\n"
    + head(b"GET / HTTP/1.1", HOST),
    "too many fields": head(b"GET / HTTP/1.1", *(b"X-%d: v" % n for n in range(101))),
    "as many fields as allowed": head(b"GET / HTTP/1.1", *(b"X-%d: v" % n for n in range(100))),
    "too many dropped fields": head(b"GET / HTTP/1.1", *(b"X_%d: v" % n for n in range(101))),
    "request line too long": head(b"GET /" + b"a" * 5000 + b" HTTP/1.1", HOST),
    "request line at the limit": head(b"GET /" + b"a" * (4094 - 14) + b" HTTP/1.1", HOST),
    "field too long": head(b"GET / HTTP/1.1", b"X: " + b"v" * 8200),
    "field at the limit": head(b"GET / HTTP/1.1", b"X: " + b"v" * (8190 - 5)),
    "field over the limit": head(b"GET / HTTP/1.1", b"X: " + b"v" * (8190 - 4)),
    "head over 32 KiB": head(b"GET / HTTP/1.1", *(b"X-%d: " % n + b"v" * 1200 for n in range(30))),
    "no fields, next request behind": head(b"GET /health HTTP/1.1") + head(b"GET / HTTP/1.1", HOST),
    "Connection: close": head(b"GET / HTTP/1.1", HOST, b"Connection: close"),
    "Connection: keep-alive in HTTP/1.0": head(b"GET / HTTP/1.0", HOST, b"Connection: keep-alive"),
}
CORPUS = {**TYPICAL, **UNUSUAL}


def outcome(parser: type[BoundedHeadRequest], chunks: list[bytes], cfg: Config, peer: Any) -> Any:
    """The request a parser made of ``chunks`` and what it left unread, or its refusal."""
    unreader = IterUnreader(chunks)
    try:
        req = parser(cfg, unreader, peer)
        body = req.body.read()
    except Exception as exc:  # gunicorn's refusals; StopIteration for no request at all
        return type(exc), str(exc)
    return {
        "method": req.method,
        "uri": req.uri,
        "path": req.path,
        "query": req.query,
        "fragment": req.fragment,
        "version": req.version,
        "headers": req.headers,
        "trailers": req.trailers,
        "scheme": req.scheme,
        "100-continue": req._expected_100_continue,
        "should close": req.should_close(),
        "proxy protocol": req.proxy_protocol_info,
        "body": body,
        "unread": b"".join(iter(unreader.read, b"")),
    }


def assert_same(chunks: list[bytes], cfg: Config, peer: Any) -> None:
    fast = outcome(BoundedHeadRequest, chunks, cfg, peer)
    assert fast == outcome(GunicornParser, chunks, cfg, peer), chunks


@pytest.mark.parametrize("name", CONFIGS)
def test_the_corpus_parses_as_with_gunicorns_parser(name: str, fast_path: FastPathCount) -> None:
    for raw in CORPUS.values():
        for peer in PEERS:
            assert_same([raw], CONFIGS[name], peer)
    if name == "proxy protocol":  # gunicorn reads the preface first
        assert fast_path.taken == 0
    else:
        assert fast_path.taken > 0


def test_typical_heads_take_the_fast_path(fast_path: FastPathCount) -> None:
    for name, raw in TYPICAL.items():
        taken = fast_path.taken
        outcome(BoundedHeadRequest, [raw], CONFIGS["default"], TRUSTED)
        assert fast_path.taken == taken + 1, name


def test_a_head_in_pieces_parses_as_with_gunicorns_parser(fast_path: FastPathCount) -> None:
    for raw in CORPUS.values():
        for size in (1, 7, 64, 512):
            pieces = [raw[i : i + size] for i in range(0, len(raw), size)]
            assert_same(pieces, CONFIGS["default"], TRUSTED)
    assert fast_path.taken > 0  # the pieces of 512 bytes holding a whole short head


def in_pieces(raw: bytes, count: int) -> list[bytes]:
    size, longer = divmod(len(raw), count)
    ends = [(n + 1) * size + min(n + 1, longer) for n in range(count)]
    return [raw[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]


def test_the_read_bound_still_holds_without_the_fast_path(fast_path: FastPathCount) -> None:
    raw = TYPICAL["polling handshake"]
    pieces = in_pieces(raw, MAX_HEAD_READS)
    assert b"".join(pieces) == raw and all(pieces)
    assert BoundedHeadRequest(CONFIGS["default"], IterUnreader(pieces), TRUSTED).method == "GET"
    with pytest.raises(LimitRequestHeaders, match="too many pieces"):
        BoundedHeadRequest(
            CONFIGS["default"], IterUnreader(in_pieces(raw, MAX_HEAD_READS + 1)), TRUSTED
        )
    assert fast_path.taken == 0


INTERESTING = (
    b"\r\n",
    b"\r",
    b"\n",
    b" ",
    b"\t",
    b":",
    b"_",
    b"/",
    b"//",
    b"#",
    b"?",
    b"*",
    b"\x00",
    b"\x7f",
    b"\x80",
    b"\xff",
    b"HTTP/1.0",
    b"\r\n ",
    b"\r\n\r\n",
    b"Host: y\r\n",
    b"Expect: 100-continue\r\n",
    b"Expect: nope\r\n",
    b"Content-Length: 3\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"X-Forwarded-Proto: https\r\n",
    b"X-Forwarded-Ssl: off\r\n",
    b"X_Y: z\r\n",
)


def mutate(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(data) + 1)
        kind = rng.randrange(6)
        if kind == 0 and at < len(data):  # another byte
            data[at] = rng.randrange(256) if rng.random() < 0.5 else rng.choice(b"\r\n\t :_/#")
        elif kind == 1:
            data[at:at] = rng.choice(INTERESTING)
        elif kind == 2:
            del data[at : at + rng.randint(1, 4)]
        elif kind == 3 and at < len(data) and chr(data[at]).isalpha():
            data[at] ^= 0x20  # the other case
        else:  # a line repeated, or removed
            lines = bytes(data).split(b"\r\n")
            index = rng.randrange(len(lines))
            if kind == 4:
                lines.insert(index, lines[index])
            else:
                del lines[index]
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


def mutants(count: int) -> Iterator[tuple[list[bytes], Config, Any]]:
    rng = random.Random(20261201)
    heads, configs = list(TYPICAL.values()), list(CONFIGS.values())
    for _ in range(count):
        raw = mutate(rng.choice(heads), rng)
        cuts = sorted(rng.randrange(len(raw) + 1) for _ in range(rng.randint(1, 3)))
        if rng.random() < 0.8:
            cuts = []
        pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
        yield [piece for piece in pieces if piece], rng.choice(configs), rng.choice(PEERS)


def test_mutated_heads_parse_as_with_gunicorns_parser(fast_path: FastPathCount) -> None:
    for pieces, cfg, peer in mutants(4000):
        assert_same(pieces, cfg, peer)
    # Both paths were compared, often.
    assert fast_path.taken > 500
    assert fast_path.stepped_aside > 500


def test_targets_split_as_gunicorn_splits_them() -> None:
    """Every target of the fast path's shape (origin-form, printable ASCII, not "//"):
    the same path, query and fragment as gunicorn's ``split_request_uri``."""
    rng = random.Random(1201)
    alphabet = "/?#:@[]%;=&+.-_~!$'()*,aZ09"
    targets = ["/", "/?", "/#", "/?#", "/#?", "/a:b", "/a?b:c#d?e#f", "/@x", "/[::1]/p"]
    targets += ["/" + "".join(rng.choices(alphabet, k=rng.randint(0, 12))) for _ in range(5000)]
    for target in (t for t in targets if not t.startswith("//")):
        parts = split_request_uri(target)
        expected = (parts.path or "", parts.query or "", parts.fragment or "")
        assert split_origin_form(target) == expected, target


def test_a_peers_trust_is_remembered_as_gunicorn_decides_it() -> None:
    """The memo of forwarded_allow_ips' answer per peer: the same answer as gunicorn's, asked
    twice, in any order, under settings that trust different peers, and past its bound."""
    peers = [TRUSTED, UNTRUSTED, ("203.0.113.200", 1), ("::1", 2, 0, 0), ("10.0.0.1", 3), UNIX]
    peers += [(f"198.51.100.{i % 256}", i) for i in range(request_head.TRUSTED_PEERS_KEPT + 10)]
    for _ in range(2):
        for cfg in CONFIGS.values():
            for peer in peers:
                req = object.__new__(BoundedHeadRequest)
                req.cfg, req.peer_addr = cfg, peer
                assert req._peer_is_trusted_proxy() == Request._peer_is_trusted_proxy(req), peer
    assert len(request_head._trusted_peers) <= request_head.TRUSTED_PEERS_KEPT
