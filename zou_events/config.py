"""Configuration from the environment: Zou's variable names where Zou has one.

``Settings`` is the one table of settings, in gunicorn's style: each field names its
environment variable, default, parser, description and whether it is exported as a limit
metric. ``load_settings``, ``exported_limits``, the check for unknown variables and the table
in docs/configuration.md (``python -m zou_events.config_doc``) are all read from it.

Every value is validated once at start; a bad one raises ConfigError naming the variable,
which the command line prints as a single line before exiting.
"""

from __future__ import annotations

import difflib
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, TypeVar, cast

from zou_events import session_ids

INSECURE_SECRET_KEY = "mysecretkey"  # Zou's default, refused by Zou itself
KV_EVENTS_DB_INDEX = 2  # hard-coded in Zou: the pub/sub URL points at DB 2
AUTH_TOKEN_BLACKLIST_DB_INDEX = 0  # Zou's revoked-token store
DEFAULT_CHANNEL = "flask-socketio"
PREFIX = "ZOU_EVENTS_"
# Set by zou-events itself for its gunicorn worker, never by an operator.
RESOLVED_MODE_ENV = "ZOU_EVENTS_RESOLVED_MODE"  # the mode `serve` resolved before gunicorn
NOTIFY_SOCKET_ENV = "ZOU_EVENTS_NOTIFY_SOCKET"  # systemd's socket, hidden from gunicorn

T = TypeVar("T")
N = TypeVar("N", int, float)  # a bounded number setting


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    env: str  # environment variable
    default: Any  # used when the variable is unset or blank
    parse: Callable[[str], Any]  # raises ValueError (or a ConfigError with its own message)
    what: str  # what a valid value is, for the refusal
    doc: str  # description in docs/configuration.md (Markdown)
    shown_default: str  # the default as docs/configuration.md shows it
    limit: str  # label of zou_events_limit{limit=…}; empty: not exported
    strip: bool  # secrets are taken as they are, like Zou does
    required: str  # when set, the variable must be: this says what to put in it
    if_blank: Any  # value when set but blank (the default unless said otherwise)


_UNSET: Any = object()


def setting(
    env: str,
    default: T | Callable[[Mapping[str, Any]], T],  # a callable gets the values read before it
    parse: Callable[[str], T],
    what: str,
    doc: str,
    *,
    shown_default: str = "",
    limit: str = "",
    secret: bool = False,
    required: str = "",
    if_blank: T = _UNSET,
) -> T:
    """A field of Settings that is read from ``env`` (typed as the value it holds)."""
    row = Setting(
        env=env,
        default=default,
        parse=parse,
        what=what,
        doc=doc,
        shown_default=shown_default or _shown(default),
        limit=limit,
        strip=not secret,
        required=required,
        if_blank=default if if_blank is _UNSET else if_blank,
    )
    return cast(T, field(metadata={"setting": row}, repr=not secret))


def _shown(default: object) -> str:
    if callable(default):
        raise TypeError("a computed default needs shown_default")
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, float) and default.is_integer():
        return f"`{int(default)}`"
    return f"`{default}`"


def _text(raw: str) -> str:
    return raw


def _secret_key(raw: str) -> str:
    if raw == INSECURE_SECRET_KEY:
        raise ConfigError("SECRET_KEY is set to Zou's insecure default 'mysecretkey'")
    return raw


def _number_in(kind: Callable[[str], N], low: N, high: N) -> Callable[[str], N]:
    def parse(raw: str) -> N:
        value = kind(raw)
        if not low <= value <= high:  # NaN fails both
            raise ValueError(raw)
        return value

    return parse


def _int_in(low: int, high: int) -> Callable[[str], int]:
    return _number_in(int, low, high)


def _float_in(low: float, high: float) -> Callable[[str], float]:
    return _number_in(float, low, high)


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError(raw)
    return value


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(raw)


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.lower() not in choices:
            raise ValueError(raw)
        return raw.lower()

    return parse


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(origin)
    return origins


def _url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError(raw)
    return raw.rstrip("/")


_PORT = _int_in(1, 65535)


def _port_or_offset(raw: str) -> str:
    """A port, or ``+N``: the instance's port plus N (one env file for numbered instances)."""
    _PORT(raw.removeprefix("+"))
    return raw


@dataclass(frozen=True)
class RedisSettings:
    host: str
    port: int
    explicit: bool  # KV_HOST was set: never fall back to standalone silently
    password: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """Where Redis is, without the password (safe for logs)."""
        return f"redis://{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    """The settings table: one field per environment variable, in the order of the docs."""

    secret_key: str = setting(
        "SECRET_KEY",
        "",
        _secret_key,
        "Zou's secret key",
        "Zou's secret key: access tokens are HS256-signed with it. Zou's insecure default "
        "`mysecretkey` is refused, as Zou refuses it.",
        shown_default="— (required)",
        secret=True,
        required="use the same value as Zou's API",
    )
    kv_host: str = setting(  # empty when unset: see ``redis``
        "KV_HOST",
        "",
        _text,
        "a host",
        'Redis host (Zou\'s). Setting it means "Redis is required": the server never falls back '
        "to standalone mode, it reports not ready and retries.",
        shown_default="`localhost`",
    )
    kv_port: int = setting("KV_PORT", 6379, _PORT, "a TCP port", "Redis port.")
    kv_password: str = setting(
        "KV_PASSWORD",
        "",
        _text,
        "a password",
        "Redis password (never logged, never in reprs).",
        shown_default="none",
        secret=True,
    )
    host: str = setting("EVENT_STREAM_HOST", "127.0.0.1", _text, "an address", "Address to bind.")
    port: int = setting(
        "EVENT_STREAM_PORT",
        5001,
        _PORT,
        "a TCP port",
        "Port to bind; the systemd template's instance name.",
    )
    zou_api_url: str = setting(  # empty: the Zou API check is disabled (development and tests)
        "ZOU_EVENTS_ZOU_API_URL",
        "http://127.0.0.1:5000",
        _url,
        "an http(s) URL",
        "Zou's REST API, without the `/api` prefix nginx adds. Empty disables the API check "
        "(persons' existence, active state, bot tokens): for development and tests only.",
        if_blank="",
    )
    zou_api_timeout: float = setting(
        "ZOU_EVENTS_ZOU_API_TIMEOUT",
        3.0,
        _positive_float,
        "a positive number of seconds",
        "Seconds before a Zou API request is abandoned.",
    )
    zou_api_cache_seconds: float = setting(
        "ZOU_EVENTS_ZOU_API_CACHE_SECONDS",
        30.0,
        _positive_float,
        "a positive number",
        "How long an answer of Zou's API is reused (for bot and person_api tokens, at most "
        "`ZOU_EVENTS_REVOCATION_CHECK_SECONDS`).",
    )
    mode: str = setting(
        "ZOU_EVENTS_MODE",
        "auto",
        _choice("auto", "redis", "standalone"),
        "auto/redis/standalone",
        "`auto`: Redis when `KV_HOST` is set or Redis answers on localhost, else standalone; "
        "`redis`; `standalone` (in-memory, one instance).",
    )
    cors_allowed_origins: tuple[str, ...] = setting(
        "ZOU_EVENTS_CORS_ALLOWED_ORIGINS",
        (),
        _origins,
        "a comma-separated list of origins",
        "Comma-separated origins allowed besides the same site (`https://kitsu.example.com`); "
        "`*` allows all. Without it a browser is accepted when the host of its `Origin` is the "
        "host the request was addressed to (`Host`, or any `X-Forwarded-Host` value), the port "
        "and scheme ignored: Zou's nginx block (`proxy_set_header Host $host`) drops the port, "
        "and cookies are not isolated by port anyway. Refusals are counted "
        '(`zou_events_connections_refused_total{reason="origin"}`) and logged once per origin '
        "with the value to add here.",
        shown_default="empty",
    )
    channel: str = setting(
        "ZOU_EVENTS_CHANNEL",
        DEFAULT_CHANNEL,
        _text,
        "a channel name",
        "Redis pub/sub channel (Flask-SocketIO's default, what Zou publishes on).",
    )
    key_prefix: str = setting(
        "ZOU_EVENTS_KEY_PREFIX",
        "zou-events:",
        _text,
        "a key prefix",
        "Prefix of the Redis keys zou-events owns.",
    )
    instance_id: str = setting(
        "ZOU_EVENTS_INSTANCE_ID",
        lambda values: f"{socket.gethostname()}:{values['port']}",
        _text,
        "a name",
        "Name of this instance in `/stats` and logs.",
        shown_default="`<hostname>:<port>`",
    )
    instance_tag: str = setting(  # names the instance in its session ids, with the port
        "ZOU_EVENTS_INSTANCE_TAG",
        lambda values: session_ids.default_tag(values["instance_id"]),
        session_ids.parse_tag,
        session_ids.TAG_HELP,
        "Names this instance in its Engine.IO session ids, with its port: "
        "`<tag>-<port>.<engineio's random id>`. nginx sends every request of a session to the "
        "instance its id names ([deployment](deployment.md#nginx)). 1 to 16 lowercase letters "
        "and digits, distinct per host (the port tells a host's instances apart, so one env "
        "file serves them all); the Ansible role sets it per host.",
        shown_default="derived from `ZOU_EVENTS_INSTANCE_ID` (6 characters of a hash)",
    )
    log_level: str = setting(
        "ZOU_EVENTS_LOG_LEVEL",
        "info",
        _choice("debug", "info", "warning", "error"),
        "debug/info/warning/error",
        "`debug`, `info`, `warning`, `error`. The Socket.IO libraries log at `warning` unless "
        "`debug`.",
    )
    log_format: str = setting(
        "ZOU_EVENTS_LOG_FORMAT",
        "json",
        _choice("json", "console"),
        "json/console",
        "`json` (one object per line) or `console` (readable, `make serve` uses it).",
    )
    access_log: bool = setting(
        "ZOU_EVENTS_ACCESS_LOG",
        False,
        _bool,
        "a boolean",
        "Log every HTTP request (Socket.IO polling makes many).",
    )
    metrics_port: str = setting(  # see metrics_listener
        "ZOU_EVENTS_METRICS_PORT",
        "",
        _port_or_offset,
        "a TCP port or +N",
        "A port of its own for `/metrics`, `/health` and `/ready` (Prometheus on another host "
        "then needs no access to the Socket.IO port); `/metrics` is then served there only. "
        "`+N`: the instance's port plus N (`+1000`: 5001 → 6001), for instances sharing one "
        "environment file. Empty: `/metrics` on the Socket.IO port. "
        "[observability](observability.md#a-separate-metrics-listener).",
        shown_default="empty",
    )
    metrics_address: str = setting(
        "ZOU_EVENTS_METRICS_ADDRESS",
        "127.0.0.1",
        _text,
        "an address",
        "Address of the metrics listener (`ZOU_EVENTS_METRICS_PORT`): the host's address on "
        "the network Prometheus scrapes from, or `0.0.0.0`.",
    )
    metrics_rooms_max: int = setting(
        "ZOU_EVENTS_METRICS_ROOMS_MAX",
        50,
        _int_in(0, 1000),
        "an integer from 0 to 1000",
        "Open review rooms exported one by one (`zou_events_review_room_*`: production and "
        "playlist names, people, sockets, opening time), the most attended first; `0`: none. "
        "[observability](observability.md#live-reviews).",
        limit="review_rooms_listed_max",
    )
    worker_connections: int = setting(
        "ZOU_EVENTS_WORKER_CONNECTIONS",
        20000,
        _int_in(100, 1_000_000),
        "an integer ≥ 100",
        "gunicorn's `worker_connections`: HTTP requests one instance serves at once (a "
        "long-polling session holds one while its GET waits; a WebSocket only during its "
        "handshake). Pair with systemd's `LimitNOFILE`, which bounds the sockets.",
        limit="worker_connections",
    )
    graceful_timeout: int = setting(
        "ZOU_EVENTS_GRACEFUL_TIMEOUT",
        30,
        _int_in(1, 3600),
        "a number of seconds",
        "Seconds a stopping instance has to drain its sockets.",
    )
    revocation_check_interval: float = setting(
        "ZOU_EVENTS_REVOCATION_CHECK_SECONDS",
        10.0,
        _positive_float,
        "a positive number",
        "How often connected tokens are checked for revocation: person tokens against Zou's "
        "revocation store (Redis), bot and person_api tokens against Zou's API (one request per "
        "distinct token, 4 at a time). A revoked token's sockets are cut within this interval, "
        "and Zou's cached answer for a bot token is never older than it.",
    )
    max_payload_bytes: int = setting(
        "ZOU_EVENTS_MAX_PAYLOAD_BYTES",
        1_000_000,
        _int_in(1024, 100_000_000),
        "a size in bytes",
        "Largest message a client may send (Engine.IO `maxPayload`): a WebSocket message in all "
        "its fragments, and a binary Socket.IO packet in all its attachments (at most 64); over "
        'it the session is cut (`reason="too_big"`, close code 1009).',
        limit="max_payload_bytes",
    )
    ping_interval: int = setting(
        "ZOU_EVENTS_PING_INTERVAL",
        25,
        _int_in(1, 3600),
        "seconds",
        "Seconds between Engine.IO pings (`pingInterval`), as Kitsu expects.",
    )
    ping_timeout: int = setting(
        "ZOU_EVENTS_PING_TIMEOUT",
        20,
        _int_in(1, 3600),
        "seconds",
        "Seconds a client has to answer a ping before its session is closed (`pingTimeout`), "
        "as Kitsu expects.",
    )
    max_sockets: int = setting(
        "ZOU_EVENTS_MAX_SOCKETS",
        18_000,
        _int_in(1, 1_000_000),
        "an integer ≥ 1",
        "Engine.IO sessions that joined a namespace (`/` or `/events`) one instance accepts; "
        "beyond, a new handshake gets HTTP 503 (`Retry-After: 1`) and "
        '`zou_events_connections_refused_total{reason="over_capacity"}` moves. Sessions that '
        "have not joined one yet count only when their handshake carried a valid token "
        "(Kitsu's cookie: a person's slow client); the others are bounded by the new-session "
        "rate and `ZOU_EVENTS_CONNECT_TIMEOUT`. Keep it below "
        "`ZOU_EVENTS_WORKER_CONNECTIONS` so that `/metrics` and `/ready` still answer.",
        limit="max_sockets",
    )
    connect_timeout: float = setting(
        "ZOU_EVENTS_CONNECT_TIMEOUT",
        20.0,
        _positive_float,
        "a number of seconds > 0",
        "Seconds an Engine.IO session has, from its handshake, to have a Socket.IO CONNECT to "
        "`/` or `/events` accepted; a session still without a namespace then is closed and "
        "counted "
        '(`zou_events_connections_refused_total{reason="connect_timeout"}`). A CONNECT being '
        "authenticated (Zou's API may be asked) is waited for, and so is the whole sweep while "
        "the event loop runs over `ZOU_EVENTS_ADMISSION_MAX_LAG` behind (the delay is then the "
        "server's; new sessions are refused meanwhile). Kitsu's client sends its CONNECT "
        "right after the handshake, but a busy browser (or load client) can take seconds: "
        "20 s is Kitsu's client's own connect timeout (socket.io on Node.js waits 45 s). "
        "At 5,000 sessions without a namespace whose handshake carried no valid token, new "
        'handshakes wait their turn (`reason="unjoined"` if they wait too long) and those of '
        "them past half the timeout are closed sooner, counted the same way: a flood of "
        "handshakes with no token cannot keep real users out. A session whose handshake "
        "carried a valid token is never closed early (one load client driving a 10,000-tab "
        "storm sent CONNECTs over 10 s behind) and holds a place under "
        "`ZOU_EVENTS_MAX_SOCKETS` meanwhile.",
        limit="connect_timeout_seconds",
    )
    request_body_timeout: float = setting(
        "ZOU_EVENTS_REQUEST_BODY_TIMEOUT",
        10.0,
        _positive_float,
        "a number of seconds > 0",
        "Seconds a long-polling POST has to send its whole body; a body that stops coming gets "
        "HTTP 408 and its connection is closed "
        '(`zou_events_polling_requests_refused_total{reason="body_timeout"}`). For request '
        "heads see `ZOU_EVENTS_FIRST_REQUEST_TIMEOUT`.",
        limit="request_body_timeout_seconds",
    )
    first_request_timeout: float = setting(
        "ZOU_EVENTS_FIRST_REQUEST_TIMEOUT",
        20.0,
        _positive_float,
        "a number of seconds > 0",
        "Seconds a new connection may stay silent before the first byte of its first "
        "request: a busy browser can write it seconds after connecting (20 s is Kitsu's "
        "client's connect timeout; nginx and Node.js wait 60 s). From its first byte a "
        "request head has gunicorn's keep-alive timeout (2 s), as has a kept-alive "
        "connection's next request, so a head trickled in pieces gets no more time. While "
        "more than half of `ZOU_EVENTS_WORKER_CONNECTIONS` wait in silence, those silent "
        "for over 2 s are closed, oldest first "
        '(`zou_events_connections_closed_before_request_total{reason="crowded"}`; a '
        "10,000-tab storm driven by one load client held up to 9,877 silent, "
        'benchmarks.md); the others are counted as `reason="silent"` when their time '
        "is up. A silent connection holds about 10 KiB and a file descriptor.",
        limit="first_request_timeout_seconds",
    )
    new_sessions_per_second: float = setting(
        "ZOU_EVENTS_NEW_SESSIONS_PER_SECOND",
        1000.0,
        _positive_float,
        "a number > 0",
        "Token bucket for new sessions; beyond, a handshake waits its turn "
        '(`ZOU_EVENTS_ADMISSION_MAX_WAIT`), then gets HTTP 503 (`reason="too_fast"`). A '
        "ceiling, not the storm's pace: a Kitsu connect (polling handshake, authentication, "
        "upgrade) costs a worker about 2 ms of CPU, so one takes 500 a second at most, and "
        "within a storm `ZOU_EVENTS_ADMISSION_MAX_LAG` admits as fast as the worker finishes "
        "them (benchmarks.md). What it bounds is how fast sessions without a namespace "
        "come (see `ZOU_EVENTS_CONNECT_TIMEOUT` for how many are kept).",
        limit="new_sessions_per_second",
    )
    new_sessions_burst: int = setting(
        "ZOU_EVENTS_NEW_SESSIONS_BURST",
        1000,
        _int_in(1, 1_000_000),
        "an integer ≥ 1",
        "The burst of that bucket: new sessions accepted at once (one second of the rate).",
        limit="new_sessions_burst",
    )
    admission_max_lag: float = setting(
        "ZOU_EVENTS_ADMISSION_MAX_LAG",
        1.0,
        _positive_float,
        "a number of seconds > 0",
        "Seconds the event loop may run behind (`zou_events_event_loop_lag_seconds`) before new "
        'sessions wait their turn, then get HTTP 503 (`reason="overloaded"`). The rate limit '
        "above is fixed; this one follows the machine: on a slower or busier host a storm is "
        "admitted only as fast as the worker finishes connects, so that none waits long enough "
        "for its client to give up and retry (which would only add work).",
    )
    admission_max_wait: float = setting(
        "ZOU_EVENTS_ADMISSION_MAX_WAIT",
        15.0,
        _float_in(0.0, 600.0),
        "a number of seconds, 0 to 600",
        "Seconds a new session held back by the rate or the lag bound waits for its turn, "
        "first come first served, before HTTP 503; 0 answers 503 at once. A refusal costs the "
        "worker about 0.5 ms and socket.io-client retries 1-5 s later: in a 10,000-tab storm "
        "refusals were a third of the worker's CPU, a wait costs nothing. Keep it under the "
        "client's connect timeout (20 s for Kitsu) by what a session needs once let in (a few "
        "round trips, each up to `ZOU_EVENTS_ADMISSION_MAX_LAG` late); a client that gives up "
        'sooner is dropped at its turn (`reason="abandoned"`). Draining and '
        "`ZOU_EVENTS_MAX_SOCKETS` are answered at once.",
        limit="admission_max_wait_seconds",
    )
    admission_queue: int = setting(
        "ZOU_EVENTS_ADMISSION_QUEUE",
        10000,
        _int_in(0, 1_000_000),
        "an integer ≥ 0",
        "New sessions that may wait at once (`zou_events_admission_waiting`); beyond, HTTP 503 "
        "at once. Each waiting handshake holds its connection and its parsed request (a few "
        "KiB) and counts against `ZOU_EVENTS_WORKER_CONNECTIONS`: the default holds a whole "
        "10,000-tab storm.",
        limit="admission_queue",
    )
    send_queue_max_messages: int = setting(
        "ZOU_EVENTS_SEND_QUEUE_MAX_MESSAGES",
        5000,
        _int_in(10, 10**7),
        "an integer ≥ 10",
        "A socket whose unsent backlog exceeds this many messages is disconnected "
        '(`reason="slow_consumer"`) instead of growing the server\'s memory and slowing the '
        "others. Replies to the client's WebSocket pings count too.",
        limit="send_queue_max_messages",
    )
    send_queue_max_bytes: int = setting(
        "ZOU_EVENTS_SEND_QUEUE_MAX_BYTES",
        16 * 2**20,
        _int_in(2**16, 2**34),
        "a size",
        "The same in bytes of unsent backlog.",
        limit="send_queue_max_bytes",
    )
    inbound_packets_per_second: float = setting(
        "ZOU_EVENTS_INBOUND_PACKETS_PER_SECOND",
        100.0,
        _positive_float,
        "a number > 0",
        "Per-session token bucket of everything a client sends: each WebSocket frame (control "
        "frames and fragments included) or each Engine.IO packet of a polling POST counts one. "
        'A session over it is cut (`zou_events_sockets_cut_total{reason="inbound_flood"}`, '
        "close code 1008). Kitsu sends a few packets a second, a drawing reviewer some tens, and "
        "the review-room limit (below) already drops room events past 50/s: only a flood "
        "reaches it.",
        limit="inbound_packets_per_second",
    )
    inbound_packets_burst: int = setting(
        "ZOU_EVENTS_INBOUND_PACKETS_BURST",
        500,
        _int_in(10, 10**7),
        "an integer ≥ 10",
        "The burst of that bucket: what one connection costs the worker before it is cut "
        "(about 50 µs a packet), so keep it modest.",
        limit="inbound_packets_burst",
    )
    inbound_bytes_per_second: float = setting(
        "ZOU_EVENTS_INBOUND_BYTES_PER_SECOND",
        1.0 * 2**20,
        _positive_float,
        "a size > 0",
        "The same in bytes of payload.",
        limit="inbound_bytes_per_second",
    )
    inbound_bytes_burst: int = setting(
        "ZOU_EVENTS_INBOUND_BYTES_BURST",
        4 * 2**20,
        _int_in(1024, 2**34),
        "a size",
        "The burst in bytes. It must be at least `ZOU_EVENTS_MAX_PAYLOAD_BYTES` (refused at "
        "start otherwise).",
        limit="inbound_bytes_burst",
    )
    recovery: bool = setting(
        "ZOU_EVENTS_RECOVERY",
        True,
        _bool,
        "true/false",
        "Socket.IO connection state recovery on `/events`: a browser (cookie-authenticated "
        "socket) that reconnects within the window, to any instance, gets the broadcasts it "
        "missed and `socket.recovered === true` ([architecture](architecture.md#connection-"
        "state-recovery)). Sockets authenticated by a header or the auth payload (gazu) are "
        "never concerned. Needs Redis; off in standalone mode.",
    )
    recovery_window: float = setting(
        "ZOU_EVENTS_RECOVERY_WINDOW",
        120.0,
        _positive_float,
        "a positive number of seconds",
        "How long a disconnected browser may come back and recover what it missed; also the "
        "age bound of the replay buffer.",
        limit="recovery_window_seconds",
    )
    recovery_max_messages: int = setting(
        "ZOU_EVENTS_RECOVERY_MAX_MESSAGES",
        10000,
        _int_in(1, 10**6),
        "a count",
        "Broadcasts kept for replay on each instance, at most (2 minutes of a busy studio at "
        "50 events/s are 6,000). A client whose last event left the buffer gets a fresh "
        "connection.",
        limit="recovery_max_messages",
    )
    recovery_max_bytes: int = setting(
        "ZOU_EVENTS_RECOVERY_MAX_BYTES",
        16 * 2**20,
        _int_in(2**16, 2**32),
        "a size",
        "The same in bytes of the messages as read from Redis; the process holds about 3.5 times "
        "as much (decoded messages, see [architecture](architecture.md#sizing)).",
        limit="recovery_max_bytes",
    )
    room_events_per_second: float = setting(
        "ZOU_EVENTS_ROOM_EVENTS_PER_SECOND",
        50.0,
        _positive_float,
        "a positive number",
        "Per-socket token bucket for `preview-room:*` events (Kitsu sends at most 5 room "
        "updates/s plus annotation strokes). Charged as each event is read, before it waits for "
        "a handler: excess events are dropped (an empty ACK if one was asked for) and counted "
        "without taking a handler; a socket that keeps flooding is disconnected "
        '(`reason="rate_limited"`).',
        limit="room_events_per_second",
    )
    room_events_burst: int = setting(
        "ZOU_EVENTS_ROOM_EVENTS_BURST",
        200,
        _int_in(1, 100_000),
        "an integer ≥ 1",
        "The burst of that bucket.",
        limit="room_events_burst",
    )
    room_payload_max_bytes: int = setting(
        "ZOU_EVENTS_ROOM_PAYLOAD_MAX_BYTES",
        262_144,
        _int_in(1024, 10**8),
        "a size",
        "Largest `preview-room:*` payload accepted.",
        limit="room_payload_max_bytes",
    )
    heartbeat_seconds: float = setting(
        "ZOU_EVENTS_HEARTBEAT_SECONDS",
        5.0,
        _positive_float,
        "a positive number",
        "How often an instance renews its liveness key in Redis; an instance silent for three "
        "periods is considered dead and its room presence is reaped.",
    )

    def __post_init__(self) -> None:
        if self.metrics_listener is not None and not (
            0 < self.metrics_listener[1] <= 65535 and self.metrics_listener[1] != self.port
        ):
            raise ConfigError(
                f"ZOU_EVENTS_METRICS_PORT={self.metrics_port} gives port "
                f"{self.metrics_listener[1]}: not a TCP port other than EVENT_STREAM_PORT"
            )
        if self.inbound_bytes_burst < self.max_payload_bytes:
            raise ConfigError(
                f"ZOU_EVENTS_INBOUND_BYTES_BURST={self.inbound_bytes_burst} is below "
                f"ZOU_EVENTS_MAX_PAYLOAD_BYTES={self.max_payload_bytes}: a message of the "
                "largest allowed size would cut its sender"
            )

    @cached_property
    def metrics_listener(self) -> tuple[str, int] | None:
        """(address, port) of the separate metrics listener; None: /metrics on ``port``."""
        if not self.metrics_port:
            return None
        number = int(self.metrics_port.removeprefix("+"))
        return self.metrics_address, self.port + number if self.metrics_port[0] == "+" else number

    @cached_property
    def redis(self) -> RedisSettings:
        return RedisSettings(
            host=self.kv_host or "localhost",
            port=self.kv_port,
            explicit=bool(self.kv_host),
            password=self.kv_password or None,
        )


def table() -> Iterator[tuple[str, Setting]]:
    """(Settings field, its row), in the table's order."""
    for item in fields(Settings):
        yield item.name, item.metadata["setting"]


def _read(env: Mapping[str, str], row: Setting, values: Mapping[str, Any]) -> Any:
    raw = env.get(row.env)
    value = raw.strip() if raw is not None and row.strip else raw
    if not value:  # unset or blank
        if row.required:
            raise ConfigError(f"{row.env} is not set: {row.required}")
        fallback = row.default if raw is None else row.if_blank
        return fallback(values) if callable(fallback) else fallback
    try:
        return row.parse(value)
    except ConfigError:
        raise
    except ValueError:
        raise ConfigError(f"{row.env}={raw!r} is not {row.what}") from None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the whole configuration."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for name, row in table():
        values[name] = _read(env, row, values)
    return Settings(**values)


def exported_limits(settings: Settings) -> dict[str, float]:
    """The settings exported as ``zou_events_limit{limit=…}``, by label."""
    return {row.limit: getattr(settings, name) for name, row in table() if row.limit}


def unknown_variables(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``ZOU_EVENTS_*`` variables that are no setting, each with the closest known name."""
    env = os.environ if env is None else env
    known = [row.env for _, row in table()]
    internal = {RESOLVED_MODE_ENV, NOTIFY_SOCKET_ENV}
    return {
        name: difflib.get_close_matches(name, known, n=1, cutoff=0.0)[0]
        for name in sorted(env)
        if name.startswith(PREFIX) and name not in known and name not in internal
    }
