"""The `zou-events` command: serve, check, publish, stats."""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Callable, Sequence

import redis
import structlog
import urllib3

from zou_events import __version__, checks, logs, redis_link
from zou_events.config import (
    KV_EVENTS_DB_INDEX,
    RESOLVED_MODE_ENV,
    ConfigError,
    Settings,
    load_settings,
    unknown_variables,
)
from zou_events.messages import zou_emit

EXIT_CONFIG, EXIT_CHECK_FAILED = 2, 1


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    logs.configure(settings.log_level, settings.log_format, settings.access_log)
    log = structlog.get_logger("zou_events.cli")
    for name, closest in unknown_variables().items():  # the name only: a value may be a secret
        log.warning("unknown variable ignored", variable=name, did_you_mean=closest)
    mode = redis_link.resolve_mode(settings)
    if mode == "standalone":
        log.warning(
            "starting in standalone mode: no Redis configured or reachable; state is in memory "
            "and this instance cannot share rooms with others",
            mode=mode,
        )
    else:
        log.info("starting in redis mode", mode=mode, redis=settings.redis.describe())
    os.environ[RESOLVED_MODE_ENV] = mode
    argv = [sys.executable, "-m", "gunicorn", "--config", "python:zou_events.gunicorn_config"]
    os.execv(sys.executable, argv)  # same PID: systemd's notify socket and signals reach gunicorn
    return 0  # not reached


def _report(name: str, check: Callable[[], str]) -> bool:
    """One line per check; a failure names its exact error type."""
    try:
        detail = check()
    except (checks.CheckFailed, redis.RedisError, OSError, urllib3.exceptions.HTTPError) as error:
        print(f"{name}: FAILED ({type(error).__name__}: {error})")
        return False
    print(f"{name}: ok ({detail})")
    return True


def _check(settings: Settings, _args: argparse.Namespace) -> int:
    print(f"configuration: ok (instance {settings.instance_id}, port {settings.port})")
    for name, closest in unknown_variables().items():
        print(f"configuration: {name} is no setting, ignored (did you mean {closest}?)")
    results = []
    if settings.mode == "standalone":
        print("redis: not used (ZOU_EVENTS_MODE=standalone)")
    elif _report("redis", lambda: checks.redis_ping(settings)):
        results.append(_report("redis pub/sub", lambda: checks.redis_round_trip(settings)))
    else:
        results.append(False)
        print("redis pub/sub: not checked (Redis does not answer)")
    if not settings.zou_api_url:
        print("zou api: check disabled (ZOU_EVENTS_ZOU_API_URL is empty)")
    elif _report("zou api", lambda: checks.zou_version(settings)):
        results.append(_report("secret key", lambda: checks.secret_key(settings)))
    else:
        results.append(False)
        print("secret key: not checked (the Zou API check failed)")
    return 0 if all(results) else EXIT_CHECK_FAILED


def _publish(settings: Settings, args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.json)
    except ValueError as error:
        print(f"publish: JSON is invalid: {error}", file=sys.stderr)
        return EXIT_CONFIG
    message = zou_emit(args.event, payload, uuid.uuid4().hex)
    client = redis_link.connect(settings, KV_EVENTS_DB_INDEX, decode=True)
    receivers = client.publish(settings.channel, json.dumps(message))
    print(f"published {args.event} to {receivers} subscriber(s)")
    return 0


def _stats(settings: Settings, args: argparse.Namespace) -> int:
    url = args.url or f"http://{settings.host}:{settings.port}/stats"
    try:
        response = urllib3.request("GET", url, timeout=5.0, retries=False)
    except urllib3.exceptions.HTTPError as error:
        print(f"stats: {url} unreachable ({type(error).__name__})", file=sys.stderr)
        return EXIT_CHECK_FAILED
    print(json.dumps(json.loads(response.data), indent=2, sort_keys=True))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zou-events", description=__doc__)
    parser.add_argument("--version", action="version", version=f"zou-events {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the server (gunicorn, one gevent worker)")
    commands.add_parser(
        "check", help="check the configuration, Redis (pub/sub included), Zou's API and key"
    )
    publish = commands.add_parser("publish", help="publish an event exactly as Zou's API does")
    publish.add_argument("event", help='event name, e.g. "main:test"')
    publish.add_argument("json", nargs="?", default="{}", help="payload as JSON (default {})")
    stats = commands.add_parser("stats", help="print the running server's /stats")
    stats.add_argument("--url", help="stats URL (default: this configuration's host and port)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as error:
        if args.command == "serve":  # the service's log: a JSON line like all the others
            logs.report_configuration_error(error)
        else:
            print(f"zou-events: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    handlers = {"serve": _serve, "check": _check, "publish": _publish, "stats": _stats}
    return handlers[args.command](settings, args)


if __name__ == "__main__":
    sys.exit(main())
