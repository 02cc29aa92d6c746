"""Configuration is validated at start, with one line naming the variable."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from zou_events import config_doc
from zou_events.config import ConfigError, load_settings, table, unknown_variables

KEY = "k" * 64
EXAMPLE = Path(__file__).resolve().parents[2] / "systemd" / "zou-events.env.example"


def test_defaults_match_zou() -> None:
    settings = load_settings({"SECRET_KEY": KEY})
    assert (settings.host, settings.port) == ("127.0.0.1", 5001)
    assert (settings.redis.host, settings.redis.port, settings.redis.password) == (
        "localhost",
        6379,
        None,
    )
    assert settings.channel == "flask-socketio"
    assert settings.zou_api_url == "http://127.0.0.1:5000"
    assert (settings.ping_interval, settings.ping_timeout) == (25, 20)
    assert settings.max_payload_bytes == 1_000_000
    assert not settings.redis.explicit


def test_redis_password_is_kept_but_never_described() -> None:
    settings = load_settings({"SECRET_KEY": KEY, "KV_HOST": "kv", "KV_PASSWORD": "s3cret"})
    assert (settings.redis.host, settings.redis.password) == ("kv", "s3cret")
    assert "s3cret" not in settings.redis.describe()
    assert "s3cret" not in repr(settings) and KEY not in repr(settings)
    assert settings.redis.explicit


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "SECRET_KEY"),
        ({"SECRET_KEY": "mysecretkey"}, "SECRET_KEY"),
        ({"EVENT_STREAM_PORT": "http"}, "EVENT_STREAM_PORT"),
        ({"EVENT_STREAM_PORT": "70000"}, "EVENT_STREAM_PORT"),
        ({"KV_PORT": "-1"}, "KV_PORT"),
        ({"ZOU_EVENTS_ZOU_API_URL": "zou:5000"}, "ZOU_EVENTS_ZOU_API_URL"),
        ({"ZOU_EVENTS_MODE": "cluster"}, "ZOU_EVENTS_MODE"),
        ({"ZOU_EVENTS_CORS_ALLOWED_ORIGINS": "kitsu.example"}, "ZOU_EVENTS_CORS_ALLOWED_ORIGINS"),
        ({"ZOU_EVENTS_ZOU_API_TIMEOUT": "0"}, "ZOU_EVENTS_ZOU_API_TIMEOUT"),
        ({"ZOU_EVENTS_ACCESS_LOG": "maybe"}, "ZOU_EVENTS_ACCESS_LOG"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings({"SECRET_KEY": KEY, **env} if "SECRET_KEY" not in env and env else env)


def test_command_line_prints_one_line_and_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "zou_events.cli", "check"],
        env={"SECRET_KEY": KEY, "EVENT_STREAM_PORT": "nope", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "EVENT_STREAM_PORT" in result.stderr


def test_configuration_doc_is_written_from_the_settings_table() -> None:
    committed = config_doc.DEFAULT_PATH.read_text()
    assert committed == config_doc.with_table(committed), (
        "docs/configuration.md is stale: run `python -m zou_events.config_doc`"
    )


def test_unknown_variables_are_named_with_the_closest_setting() -> None:
    env = {
        "ZOU_EVENTS_MAX_SOCKET": "5",  # a typo
        "ZOU_EVENTS_LOGLEVEL": "debug",
        "ZOU_EVENTS_MAX_SOCKETS": "5",  # a setting
        "ZOU_EVENTS_RESOLVED_MODE": "redis",  # set by `serve` for its worker
        "KV_HOST": "kv",  # not ours to judge: Zou's env file has many others
        "DB_HOST": "db",
    }
    assert unknown_variables(env) == {
        "ZOU_EVENTS_LOGLEVEL": "ZOU_EVENTS_LOG_LEVEL",
        "ZOU_EVENTS_MAX_SOCKET": "ZOU_EVENTS_MAX_SOCKETS",
    }


def example_file() -> tuple[dict[str, str], dict[str, str]]:
    """The example env file's assignments and its commented-out ones (systemd's syntax: a line
    starting with # or ; is a comment)."""
    active: dict[str, str] = {}
    commented: dict[str, str] = {}
    for line in EXAMPLE.read_text().splitlines():
        commented_out = line.startswith(("#", ";"))
        name, equals, value = line.lstrip("#;").partition("=")
        if equals and re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            (commented if commented_out else active)[name] = value
    return active, commented


def test_the_unedited_example_env_file_changes_nothing() -> None:
    active, _ = example_file()
    base = {"SECRET_KEY": KEY}  # Zou's zou.env, read before it
    assert load_settings({**base, **active}) == load_settings(base)


def test_the_example_env_file_shows_valid_settings_only() -> None:
    _, commented = example_file()
    assert commented
    known = {row.env for _, row in table()}
    assert set(commented) <= known
    load_settings({**{n: v for n, v in commented.items() if v}, "SECRET_KEY": KEY})  # valid
