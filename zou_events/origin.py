"""Which browser origins may open a socket: the site's own host, plus an explicit allow-list.

A browser always sends ``Origin``; a foreign page must not open a socket that carries the
user's Kitsu cookie. The origin's host is compared with the host the request was addressed
to (``Host``, or any ``X-Forwarded-Host`` a proxy set), the port ignored on both sides:
Zou's documented nginx block sends ``Host $host``, which drops the port, while a Kitsu served
on ``:8080`` sends ``Origin: http://host:8080``. Cookies are not isolated by port, so
ignoring it gives nothing away. The scheme is ignored too: nginx may terminate TLS. A
browser cannot set ``Host`` nor, without a CORS preflight that this check refuses,
``X-Forwarded-Host``. Clients that send no Origin (gazu, desktop apps) are not browsers and
are not checked (engineio does not call the policy for them).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

import structlog

from zou_events import metrics
from zou_events.log_limit import log_misbehaviour

log = structlog.get_logger("zou_events.origin")

SETTING = "ZOU_EVENTS_CORS_ALLOWED_ORIGINS"
_LOGGED_ORIGINS = 256  # refused origins remembered so that each is logged once
_MAX_LOGGED_LENGTH = 200  # an Origin header is client input: keep log lines and memory small


def host_of(authority_or_origin: str) -> str | None:
    """The host of ``host[:port]`` or ``scheme://host[:port]``, lower-case, without the port,
    the brackets of an IPv6 literal or a trailing dot; None when there is none."""
    value = authority_or_origin.strip()
    if "://" not in value:
        value = "//" + value
    try:
        host = urlsplit(value).hostname
    except ValueError:  # an unclosed IPv6 bracket, a bad port...
        return None
    host = (host or "").rstrip(".")
    return host or None


def _origin_host(origin: str) -> str | None:
    """An origin is ``scheme://host[:port]``; anything else ("null" from a sandboxed page or a
    file) has no host to compare."""
    return host_of(origin) if "://" in origin else None


def request_hosts(environ: dict[str, Any]) -> set[str]:
    """Every host the request was addressed to: ``Host`` and each ``X-Forwarded-Host`` value
    (proxies in a chain append theirs; several headers arrive joined by commas)."""
    values = [environ.get("HTTP_HOST", ""), *environ.get("HTTP_X_FORWARDED_HOST", "").split(",")]
    return {host for host in map(host_of, values) if host}


class OriginPolicy:
    """engineio's ``cors_allowed_origins`` callable: counts and explains what it refuses."""

    def __init__(self, allowed: tuple[str, ...], remember: int = _LOGGED_ORIGINS) -> None:
        self.allow_all = "*" in allowed
        self.allowed = frozenset(origin.rstrip("/").lower() for origin in allowed)
        self._logged: OrderedDict[str, None] = OrderedDict()
        self._remember = remember

    def accepts(self, origin: str, environ: dict[str, Any]) -> bool:
        if self.allow_all or origin.rstrip("/").lower() in self.allowed:
            return True
        host = _origin_host(origin)
        return host is not None and host in request_hosts(environ)

    def __call__(self, origin: str | None, environ: dict[str, Any]) -> bool:
        if not origin:  # engineio asks again for its CORS headers, Origin or not: no browser
            return False
        if self.accepts(origin, environ):
            return True
        metrics.connections_refused.labels("origin").inc()
        self._log_once(origin[:_MAX_LOGGED_LENGTH], environ)
        return False

    def _log_once(self, origin: str, environ: dict[str, Any]) -> None:
        if origin in self._logged:
            self._logged.move_to_end(origin)
            return
        self._logged[origin] = None
        if len(self._logged) > self._remember:
            self._logged.popitem(last=False)
        admit = f"{SETTING}={origin}" if _origin_host(origin) else None
        # Once per origin, and within the misbehaviour budget: a client may vary its Origin.
        log_misbehaviour(
            log,
            "warning",
            "origin refused: neither the host the request was addressed to (port ignored) "
            "nor an allowed origin; logged once per origin",
            reason="origin",
            origin=origin,
            host=environ.get("HTTP_HOST", "")[:_MAX_LOGGED_LENGTH],
            x_forwarded_host=environ.get("HTTP_X_FORWARDED_HOST", "")[:_MAX_LOGGED_LENGTH] or None,
            admit_with=admit,
        )
