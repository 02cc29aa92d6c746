"""Questions that need Zou's database, asked of Zou's REST API with the user's own token.

Short timeouts, a bounded cache and a circuit breaker keep a slow or dead API from piling up
greenlets. Room access fails closed: when Zou cannot answer, the answer is no.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import structlog
import urllib3

from zou_events import __version__, metrics

log = structlog.get_logger("zou_events.zou_api")

V = TypeVar("V")

STALE_ACCOUNT_SECONDS = 600.0  # how long a known-good account may be trusted while Zou is down
_BREAKER_THRESHOLD = 5
_BREAKER_COOLDOWN = 10.0


class ZouUnavailable(Exception):
    """Zou's API could not answer (down, slow, or the circuit breaker is open)."""


class ZouRejectedToken(Exception):
    """Zou's API cannot decode a token we accepted (HTTP 422): SECRET_KEY differs from Zou's."""


@dataclass(frozen=True)
class Account:
    active: bool
    role: str | None
    preview_project_id: str | None
    is_bot: bool


@dataclass(frozen=True)
class RoomNames:
    """What a supervisor calls a review room: its playlist and its production."""

    playlist: str
    project: str


MAX_NAME_CHARS = 100  # names become metric labels: bounded


def clean_name(value: object) -> str | None:
    """A name from Zou's JSON, printable and at most MAX_NAME_CHARS long; None otherwise."""
    if not isinstance(value, str):
        return None
    printable = "".join(char for char in value if char.isprintable()).strip()
    return printable[:MAX_NAME_CHARS] or None


class TtlCache(Generic[V]):
    """A bounded cache whose entries expire; the oldest entries go first when full."""

    def __init__(self, ttl: float, max_entries: int = 50_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[Any, tuple[float, V]] = OrderedDict()

    def get(self, key: Any, max_age: float | None = None) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_at, value = entry
        if time.monotonic() - stored_at > (self.ttl if max_age is None else max_age):
            return None
        return value

    def forget(self, key: Any) -> None:
        self._entries.pop(key, None)

    def put(self, key: Any, value: V) -> None:
        self._entries[key] = (time.monotonic(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class CircuitBreaker:
    """Opens after consecutive failures; lets one trial call through after a cool-down."""

    def __init__(self, threshold: int = _BREAKER_THRESHOLD, cooldown: float = _BREAKER_COOLDOWN):
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures = 0
        self.opened_at: float | None = None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        if time.monotonic() - self.opened_at >= self.cooldown:
            self.opened_at = time.monotonic()  # half-open: one trial per cool-down
            return True
        return False

    def record(self, success: bool) -> None:
        if success:
            if self.opened_at is not None:
                log.info("zou api reachable again, circuit closed")
            self.failures, self.opened_at = 0, None
            return
        self.failures += 1
        if self.failures >= self.threshold and self.opened_at is None:
            self.opened_at = time.monotonic()
            log.warning("zou api failing, circuit opened", failures=self.failures)


class ZouApi:
    def __init__(self, base_url: str, timeout: float, cache_seconds: float) -> None:
        self.base_url = base_url
        self._http = urllib3.PoolManager(
            maxsize=20,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=False,
        )
        self._breaker = CircuitBreaker()
        self._accounts: TtlCache[Account | None] = TtlCache(cache_seconds)
        self._playlists: TtlCache[bool] = TtlCache(cache_seconds)
        self._project_names: TtlCache[str] = TtlCache(cache_seconds, max_entries=1000)

    def account(
        self,
        token: str,
        jti: str,
        fallback_to_stale: bool = True,
        max_age: float | None = None,
    ) -> Account | None:
        """The token's account, or None when Zou refuses the token (unknown or inactive
        person, revoked bot token: Zou's API answers 401 to all, as its own event stream
        says "Unknown account." to all). A cached answer is used up to ``max_age`` seconds
        (default: the cache's lifetime)."""
        cached = self._accounts.get(jti, max_age=max_age)
        if cached is not None:
            metrics.zou_api_requests.labels("authenticated", "cache").inc()
            return cached
        try:
            return self._ask_account("authenticated", token, jti)
        except ZouUnavailable:
            stale = self._accounts.get(jti, max_age=STALE_ACCOUNT_SECONDS)
            if fallback_to_stale and stale is not None:
                log.info("zou api unavailable, account accepted from cache")
                return stale
            raise

    def recheck(self, token: str, jti: str) -> Account | None:
        """Zou's answer now, never the cache's (the revocation sweep of tokens that only
        Zou can revoke); it refreshes the cache. ZouUnavailable when Zou cannot answer."""
        return self._ask_account("recheck", token, jti)

    def _ask_account(self, endpoint: str, token: str, jti: str) -> Account | None:
        status, body = self._get(endpoint, "/auth/authenticated", token)
        if status == 422:
            log.error("zou api rejects a token zou-events accepts: is SECRET_KEY zou's?")
            raise ZouRejectedToken()
        # Zou answers 401 alike for unknown and inactive persons.
        account = _parse_account(body) if status == 200 else None
        self._accounts.put(jti, account)
        return account

    def can_read_playlist(self, token: str, jti: str, playlist_id: str) -> bool:
        cached = self._playlists.get((jti, playlist_id))
        if cached is not None:
            metrics.zou_api_requests.labels("playlist", "cache").inc()
            return cached
        status, _ = self._get("playlist", f"/data/playlists/{quote(playlist_id, safe='')}", token)
        allowed = status == 200
        self._playlists.put((jti, playlist_id), allowed)
        return allowed

    def room_names(self, token: str, playlist_id: str) -> RoomNames | None:
        """The names of a review room, asked with the token of someone Zou let in (the
        production's name is cached: many playlists share it). None when Zou will not say."""
        path = f"/data/playlists/{quote(playlist_id, safe='')}"
        status, playlist = self._get("names", path, token)
        if status != 200 or not isinstance(playlist, dict):
            return None
        name, project_id = clean_name(playlist.get("name")), playlist.get("project_id")
        if name is None or not isinstance(project_id, str):
            return None
        project = self._project_names.get(project_id)
        if project is None:
            path = f"/data/projects/{quote(project_id, safe='')}"
            status, body = self._get("names", path, token)
            project = clean_name(body.get("name")) if isinstance(body, dict) else None
            if status != 200 or project is None:
                return None
            self._project_names.put(project_id, project)
        return RoomNames(playlist=name, project=project)

    def _get(self, endpoint: str, path: str, token: str) -> tuple[int, Any]:
        """(status, JSON body) for 2xx/4xx answers; ZouUnavailable for anything else."""
        if not self._breaker.allow():
            metrics.zou_api_requests.labels(endpoint, "circuit_open").inc()
            raise ZouUnavailable("circuit open")
        started = time.monotonic()
        try:
            response = self._http.request(
                "GET",
                self.base_url + path,
                headers={
                    "Authorization": f"Bearer {token}",
                    "User-Agent": f"zou-events/{__version__}",
                },
            )
        except urllib3.exceptions.NewConnectionError as error:  # a subclass of the timeout
            self._failed(endpoint, "error", error)
        except urllib3.exceptions.TimeoutError as error:
            self._failed(endpoint, "timeout", error)
        except urllib3.exceptions.HTTPError as error:
            self._failed(endpoint, "error", error)
        finally:
            metrics.zou_api_seconds.labels(endpoint).observe(time.monotonic() - started)
        if response.status >= 500:
            self._failed(endpoint, "error", f"HTTP {response.status}")
        self._breaker.record(True)
        metrics.zou_api_requests.labels(endpoint, "ok" if response.status < 300 else "denied").inc()
        try:
            body = json.loads(response.data or b"null")
        except ValueError:
            body = None
        return response.status, body

    def _failed(self, endpoint: str, outcome: str, error: object) -> None:
        self._breaker.record(False)
        metrics.zou_api_requests.labels(endpoint, outcome).inc()
        log.warning("zou api unreachable", endpoint=endpoint, outcome=outcome, error=str(error))
        raise ZouUnavailable(outcome)


def _parse_account(body: Any) -> Account | None:
    user = body.get("user") if isinstance(body, dict) else None
    if not isinstance(user, dict):
        return None
    preview = user.get("preview_project_id")
    role = user.get("role")
    return Account(
        active=user.get("active") is True,
        role=role if isinstance(role, str) else None,
        preview_project_id=preview if isinstance(preview, str) and preview else None,
        is_bot=user.get("is_bot") is True,
    )
