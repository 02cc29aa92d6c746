"""Configuration from the environment: Zou's variable names where Zou has one.

Every value is validated once at start; a bad one raises ConfigError naming the variable,
which the command line prints as a single line before exiting.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from zou_events import session_ids

INSECURE_SECRET_KEY = "mysecretkey"  # Zou's default, refused by Zou itself
KV_EVENTS_DB_INDEX = 2  # hard-coded in Zou: the pub/sub URL points at DB 2
AUTH_TOKEN_BLACKLIST_DB_INDEX = 0  # Zou's revoked-token store
DEFAULT_CHANNEL = "flask-socketio"

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class RedisSettings:
    host: str
    port: int
    explicit: bool  # KV_HOST was set: never fall back to standalone silently
    password: str | None = field(default=None, repr=False)

    def url(self, db: int) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/{db}"

    def describe(self) -> str:
        """Where Redis is, without the password (safe for logs)."""
        return f"redis://{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    secret_key: str = field(repr=False)
    redis: RedisSettings
    mode: str  # "auto", "redis" or "standalone"
    host: str
    port: int
    zou_api_url: str  # empty: the Zou API check is disabled (development and tests only)
    zou_api_timeout: float
    zou_api_cache_seconds: float
    cors_allowed_origins: tuple[str, ...]
    channel: str
    key_prefix: str
    instance_id: str
    instance_tag: str  # names the instance in its session ids, with the port
    log_level: str
    log_format: str
    access_log: bool
    worker_connections: int
    graceful_timeout: int
    revocation_check_interval: float
    max_payload_bytes: int
    ping_interval: int
    ping_timeout: int
    room_events_per_second: float
    room_events_burst: int
    room_payload_max_bytes: int
    heartbeat_seconds: float
    max_sockets: int
    new_sessions_per_second: float
    new_sessions_burst: int
    admission_max_lag: float
    connect_timeout: float
    request_body_timeout: float
    send_queue_max_messages: int
    send_queue_max_bytes: int
    inbound_packets_per_second: float
    inbound_packets_burst: int
    inbound_bytes_per_second: float
    inbound_bytes_burst: int

    def __post_init__(self) -> None:
        if self.inbound_bytes_burst < self.max_payload_bytes:
            raise ConfigError(
                f"ZOU_EVENTS_INBOUND_BYTES_BURST={self.inbound_bytes_burst} is below "
                f"ZOU_EVENTS_MAX_PAYLOAD_BYTES={self.max_payload_bytes}: a message of the "
                "largest allowed size would cut its sender"
            )

    @property
    def standalone_forced(self) -> bool:
        return self.mode == "standalone"


def _text(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name)
    return default if value is None else value.strip()


def _parsed(
    env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T], what: str
) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not {what}") from None


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(raw)
        return value

    return parse


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


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the whole configuration."""
    env = os.environ if env is None else env
    secret_key = env.get("SECRET_KEY", "")
    if not secret_key:
        raise ConfigError("SECRET_KEY is not set: use the same value as Zou's API")
    if secret_key == INSECURE_SECRET_KEY:
        raise ConfigError("SECRET_KEY is set to Zou's insecure default 'mysecretkey'")
    port = _parsed(env, "EVENT_STREAM_PORT", 5001, _int_in(1, 65535), "a TCP port")
    redis = RedisSettings(
        host=_text(env, "KV_HOST", "localhost") or "localhost",
        port=_parsed(env, "KV_PORT", 6379, _int_in(1, 65535), "a TCP port"),
        password=env.get("KV_PASSWORD") or None,
        explicit=bool(env.get("KV_HOST")),
    )
    instance_id = _text(env, "ZOU_EVENTS_INSTANCE_ID", "") or f"{socket.gethostname()}:{port}"
    zou_api_raw = env.get("ZOU_EVENTS_ZOU_API_URL")
    zou_api_url = (
        "http://127.0.0.1:5000"
        if zou_api_raw is None
        else _parsed(env, "ZOU_EVENTS_ZOU_API_URL", "", _url, "an http(s) URL")
    )
    return Settings(
        secret_key=secret_key,
        redis=redis,
        mode=_parsed(
            env,
            "ZOU_EVENTS_MODE",
            "auto",
            _choice("auto", "redis", "standalone"),
            "auto/redis/standalone",
        ),
        host=_text(env, "EVENT_STREAM_HOST", "127.0.0.1") or "127.0.0.1",
        port=port,
        zou_api_url=zou_api_url,
        zou_api_timeout=_parsed(
            env, "ZOU_EVENTS_ZOU_API_TIMEOUT", 3.0, _positive_float, "a positive number of seconds"
        ),
        zou_api_cache_seconds=_parsed(
            env, "ZOU_EVENTS_ZOU_API_CACHE_SECONDS", 30.0, _positive_float, "a positive number"
        ),
        cors_allowed_origins=_parsed(
            env,
            "ZOU_EVENTS_CORS_ALLOWED_ORIGINS",
            (),
            _origins,
            "a comma-separated list of origins",
        ),
        channel=_text(env, "ZOU_EVENTS_CHANNEL", DEFAULT_CHANNEL) or DEFAULT_CHANNEL,
        key_prefix=_text(env, "ZOU_EVENTS_KEY_PREFIX", "zou-events:") or "zou-events:",
        instance_id=instance_id,
        instance_tag=_parsed(
            env,
            "ZOU_EVENTS_INSTANCE_TAG",
            session_ids.default_tag(instance_id),
            session_ids.parse_tag,
            session_ids.TAG_HELP,
        ),
        log_level=_parsed(
            env,
            "ZOU_EVENTS_LOG_LEVEL",
            "info",
            _choice("debug", "info", "warning", "error"),
            "debug/info/warning/error",
        ),
        log_format=_parsed(
            env, "ZOU_EVENTS_LOG_FORMAT", "json", _choice("json", "console"), "json/console"
        ),
        access_log=_parsed(env, "ZOU_EVENTS_ACCESS_LOG", False, _bool, "a boolean"),
        worker_connections=_parsed(
            env, "ZOU_EVENTS_WORKER_CONNECTIONS", 20000, _int_in(100, 1_000_000), "an integer ≥ 100"
        ),
        graceful_timeout=_parsed(
            env, "ZOU_EVENTS_GRACEFUL_TIMEOUT", 30, _int_in(1, 3600), "a number of seconds"
        ),
        revocation_check_interval=_parsed(
            env, "ZOU_EVENTS_REVOCATION_CHECK_SECONDS", 10.0, _positive_float, "a positive number"
        ),
        max_payload_bytes=_parsed(
            env,
            "ZOU_EVENTS_MAX_PAYLOAD_BYTES",
            1_000_000,
            _int_in(1024, 100_000_000),
            "a size in bytes",
        ),
        ping_interval=_parsed(env, "ZOU_EVENTS_PING_INTERVAL", 25, _int_in(1, 3600), "seconds"),
        ping_timeout=_parsed(env, "ZOU_EVENTS_PING_TIMEOUT", 20, _int_in(1, 3600), "seconds"),
        room_events_per_second=_parsed(
            env, "ZOU_EVENTS_ROOM_EVENTS_PER_SECOND", 50.0, _positive_float, "a positive number"
        ),
        room_events_burst=_parsed(
            env, "ZOU_EVENTS_ROOM_EVENTS_BURST", 200, _int_in(1, 100_000), "an integer ≥ 1"
        ),
        room_payload_max_bytes=_parsed(
            env, "ZOU_EVENTS_ROOM_PAYLOAD_MAX_BYTES", 262_144, _int_in(1024, 10**8), "a size"
        ),
        max_sockets=_parsed(
            env, "ZOU_EVENTS_MAX_SOCKETS", 18_000, _int_in(1, 1_000_000), "an integer ≥ 1"
        ),
        new_sessions_per_second=_parsed(
            env, "ZOU_EVENTS_NEW_SESSIONS_PER_SECOND", 300.0, _positive_float, "a number > 0"
        ),
        new_sessions_burst=_parsed(
            env, "ZOU_EVENTS_NEW_SESSIONS_BURST", 400, _int_in(1, 1_000_000), "an integer ≥ 1"
        ),
        admission_max_lag=_parsed(
            env, "ZOU_EVENTS_ADMISSION_MAX_LAG", 1.0, _positive_float, "a number of seconds > 0"
        ),
        connect_timeout=_parsed(
            env, "ZOU_EVENTS_CONNECT_TIMEOUT", 5.0, _positive_float, "a number of seconds > 0"
        ),
        request_body_timeout=_parsed(
            env, "ZOU_EVENTS_REQUEST_BODY_TIMEOUT", 10.0, _positive_float, "a number of seconds > 0"
        ),
        send_queue_max_messages=_parsed(
            env, "ZOU_EVENTS_SEND_QUEUE_MAX_MESSAGES", 5000, _int_in(10, 10**7), "an integer ≥ 10"
        ),
        send_queue_max_bytes=_parsed(
            env, "ZOU_EVENTS_SEND_QUEUE_MAX_BYTES", 16 * 2**20, _int_in(2**16, 2**34), "a size"
        ),
        inbound_packets_per_second=_parsed(
            env, "ZOU_EVENTS_INBOUND_PACKETS_PER_SECOND", 100.0, _positive_float, "a number > 0"
        ),
        inbound_packets_burst=_parsed(
            env, "ZOU_EVENTS_INBOUND_PACKETS_BURST", 500, _int_in(10, 10**7), "an integer ≥ 10"
        ),
        inbound_bytes_per_second=_parsed(
            env, "ZOU_EVENTS_INBOUND_BYTES_PER_SECOND", 1.0 * 2**20, _positive_float, "a size > 0"
        ),
        inbound_bytes_burst=_parsed(
            env, "ZOU_EVENTS_INBOUND_BYTES_BURST", 4 * 2**20, _int_in(1024, 2**34), "a size"
        ),
        heartbeat_seconds=_parsed(
            env, "ZOU_EVENTS_HEARTBEAT_SECONDS", 5.0, _positive_float, "a positive number"
        ),
    )
