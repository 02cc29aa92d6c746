"""A fast path for the common HTTP/1 request head, with gunicorn's outcomes.

In a reconnect storm (10,000 tabs, a few short requests each) gunicorn's Python parser is
8-10 % of the worker's CPU: it copies the head at every step, splits and decodes it line by
line and runs several regular expressions on every line. A browser's or socket.io-client's
head has one shape; when the whole head, read at once, matches one strict regular expression
for that shape, the request is filled here from that single match.

Safe because the outcome is gunicorn's own, byte for byte (checked against gunicorn's parser
by ``tests/unit/test_request_head_fast.py``, with randomized heads):

- the shape is a subset of what gunicorn accepts: a method among GET, POST, HEAD, OPTIONS,
  PUT, DELETE and PATCH (upper case: ``casefold_http_method`` changes nothing; within
  ``permit_unconventional_http_method``'s bounds), an origin-form target of printable ASCII
  not starting with "//", HTTP/1.0 or 1.1, fields ``token ":" OWS value OWS`` whose value is
  printable ASCII or tabs, CRLF only. No field is folded, no name has a space before its
  colon: ``permit_obsolete_folding`` and ``strip_header_spaces`` change nothing;
- the path, query and fragment are split as gunicorn's ``split_request_uri`` splits such a
  target (no scheme, no authority: the test compares the two), every field goes
  through gunicorn's ``_apply_header_policy`` in order (singletons, Expect, secure scheme
  headers, ``header_map``), its refusals raised as they are by gunicorn;
- anything else steps aside before the request is touched, and gunicorn's parser reads the
  same bytes: another byte or shape, a head not whole in the first read, a PROXY protocol
  preface, a head over any limit (gunicorn's parser then decides, and refuses it or not),
  gunicorn's optional C parser in use.
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.http.message import RFC9110_5_6_2_TOKEN_SPECIALS  # type: ignore[import-untyped]

_TOKEN = b"[" + re.escape(RFC9110_5_6_2_TOKEN_SPECIALS).encode() + b"0-9A-Za-z]"
# 1: method, 2: target, 3: minor version, 4: the field lines with their CRLFs.
_COMMON_HEAD = re.compile(
    rb"(GET|POST|HEAD|OPTIONS|PUT|DELETE|PATCH) (/(?!/)[\x21-\x7e]*) HTTP/1\.([01])\r\n"
    rb"((?:" + _TOKEN + rb"+:[\t\x20-\x7e]*\r\n)*)\r\n"
)


def split_origin_form(target: str) -> tuple[str, str, str]:
    """Path, query and fragment of a target of the common shape, as gunicorn's
    ``split_request_uri`` (``urlsplit``) splits it, at a tenth of its cost: such a target has
    no scheme, no authority and nothing ``urlsplit`` strips, so the fragment is what follows
    the first "#", then the query what follows the first "?" (``urlsplit``'s order)."""
    before_fragment, _, fragment = target.partition("#")
    path, _, query = before_fragment.partition("?")
    return path, query, fragment


def parse_common_head(req: Any, data: bytes) -> bytes | None:
    """Fill gunicorn's request ``req`` from ``data``, the first read of a request, and
    return the bytes after the head; None, ``req`` untouched, when the head is not the
    common shape whole within gunicorn's limits."""
    match = _COMMON_HEAD.match(data)
    if match is None:
        return None
    fields_start, fields_end = match.span(4)
    line_limit = req.limit_request_line  # 0: unlimited
    if (0 < line_limit < fields_start - 2) or fields_end - fields_start > req.max_buffer_headers:
        return None
    lines = data[fields_start:fields_end].decode("ascii").split("\r\n")
    del lines[-1]  # after the last CRLF
    if len(lines) > req.limit_request_fields:
        return None
    field_limit = req.limit_request_field_size  # a field line with its CRLF
    if fields_end - fields_start > field_limit and any(
        len(line) + 2 > field_limit for line in lines
    ):
        return None

    uri = match[2].decode("ascii")
    # In gunicorn's order: the request line, then each field through its policy.
    req.method = match[1].decode("ascii")
    req.uri = uri
    req.path, req.query, req.fragment = split_origin_form(uri)
    req.version = (1, int(match[3]))
    secure_scheme_headers, forwarder_headers = req._peer_trusted_for_forwarded()
    scheme_state = [False]
    seen: set[str] = set()
    fields = []
    for line in lines:
        name, _, value = line.partition(":")
        kept = req._apply_header_policy(
            name.upper(),
            value.strip(" \t"),
            scheme_state,
            seen,
            secure_scheme_headers,
            forwarder_headers,
        )
        if kept is not None:
            fields.append(kept)
    req.headers = fields
    return data[match.end() :]
