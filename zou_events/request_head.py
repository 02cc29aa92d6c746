"""A request head (request line and headers) bounded in bytes and in the reads it takes.

gunicorn's Python parser copies and searches the whole head received so far at every read,
so a head arriving in small pieces costs the worker the square of its size: one connection
trickling an endless header in 100-byte pieces, up to gunicorn's own bound (100 fields of
8 KiB, 800 KiB), took 2.2 s of the worker's CPU in 2.4 s, nearly a core, without a token.
Bounded here to 32 KiB (nginx's default for a whole head: four buffers of 8 KiB) in at most
64 reads, such a head costs a few milliseconds before it is refused (HTTP 431); a browser's
or nginx's head comes in one or two reads.

A head of the common shape, whole in its first read, is parsed by a fast path with
gunicorn's outcomes (``request_head_fast.py``); any other goes to gunicorn's parser.
"""

from __future__ import annotations

from typing import Any

import gevent
from gunicorn.http.errors import (  # type: ignore[import-untyped]
    InvalidResponseHeader,
    InvalidResponseHeaderName,
    LimitRequestHeaders,
    LimitRequestLine,
    ParseException,
)
from gunicorn.http.message import Request  # type: ignore[import-untyped]
from gunicorn.http.parser import RequestParser  # type: ignore[import-untyped]

from zou_events.first_request import report_closed
from zou_events.request_head_fast import parse_common_head

MAX_HEAD_BYTES = 32 * 1024
MAX_HEAD_READS = 64
# Peers whose trust (forwarded_allow_ips) is remembered; beyond, the memo starts over.
TRUSTED_PEERS_KEPT = 4096
# (peer address, forwarded_allow_ips) -> whether the peer may send forwarded headers
_trusted_peers: dict[tuple[str, tuple[str, ...]], bool] = {}


def refusal_reason(exc: BaseException) -> str:
    """The label of ``zou_events_http_requests_refused_total`` (one of ``metrics``'
    ``HTTP_REFUSALS``: no client can grow its label sets) for an error gunicorn answers."""
    if isinstance(exc, InvalidResponseHeader | InvalidResponseHeaderName):
        return "server_error"  # a header the application tried to send
    if isinstance(exc, LimitRequestLine):
        return "request_line_too_long"
    if isinstance(exc, LimitRequestHeaders):
        return "head_too_large"
    if isinstance(exc, ParseException):
        return "malformed"
    return "server_error"


class BoundedHeadRequest(Request):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn's HTTP/1 request, its head refused past ``MAX_HEAD_BYTES`` of headers or
    ``MAX_HEAD_READS`` reads (the request line keeps gunicorn's own limit)."""

    max_buffer_headers: int

    def parse(self, unreader: Any) -> bytes:
        # gunicorn's bound (fields x field size) is set by now; only the total is lowered,
        # each field keeps gunicorn's limits.
        self.max_buffer_headers = min(self.max_buffer_headers, MAX_HEAD_BYTES)
        self._head_reads = 0
        self._head_started = False
        try:
            return self._parse_head(unreader)
        except gevent.Timeout:
            # The keep-alive timeout of gunicorn's handler: a head begun and not finished in
            # time is counted (an idle kept-alive connection that sent nothing is not).
            if self._head_started:
                report_closed("head_timeout")
            raise

    def _parse_head(self, unreader: Any) -> bytes:
        # The fast path (request_head_fast.py) is for gunicorn's Python parser without a
        # PROXY protocol preface, whose first read it takes as gunicorn's parse would.
        if self.cfg.proxy_protocol == "off" and not self._use_fast:
            first = bytearray()
            self.read_into(unreader, first, stop=True)
            rest = parse_common_head(self, bytes(first))
            if rest is not None:
                return rest
            # gunicorn's parser reads the same bytes again, as its own first read.
            unreader.unread(bytes(first))
            self._head_reads = 0
        return super().parse(unreader)  # type: ignore[no-any-return]

    def _peer_is_trusted_proxy(self) -> bool:
        """gunicorn's answer, remembered per peer address: gunicorn parses the address and
        matches it against ``forwarded_allow_ips`` at every request (1.3 % of a reconnect
        storm), where nginx is the one peer of every request."""
        peer = self.peer_addr
        if not isinstance(peer, tuple):  # a UNIX socket: gunicorn trusts it at once
            return super()._peer_is_trusted_proxy()  # type: ignore[no-any-return]
        key = (peer[0], tuple(self.cfg.forwarded_allow_ips))
        trusted = _trusted_peers.get(key)
        if trusted is None:
            trusted = bool(super()._peer_is_trusted_proxy())
            if len(_trusted_peers) >= TRUSTED_PEERS_KEPT:  # many peers: bounded all the same
                _trusted_peers.clear()
            _trusted_peers[key] = trusted
        return trusted

    def read_into(self, unreader: Any, buf: bytearray, stop: bool = False) -> None:
        """Only the head is read through here (the body has its own readers)."""
        self._head_reads += 1
        if self._head_reads > MAX_HEAD_READS:
            raise LimitRequestHeaders("request head in too many pieces")
        super().read_into(unreader, buf, stop)
        self._head_started = True  # a read that got nothing raised NoMoreData


class BoundedHeadParser(RequestParser):  # type: ignore[misc]
    mesg_class = BoundedHeadRequest
