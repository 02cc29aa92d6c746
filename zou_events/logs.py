"""Structured logs: one JSON object per line on stdout, for ours and the libraries' loggers.

gunicorn, engineio and socketio log through stdlib logging; the same structlog formatter
renders them, so a sysadmin parses one format. Token-like strings are scrubbed from every
line whatever logger produced it.

When stdout is the systemd journal, each line starts with its syslog priority (``<3>`` for an
error): journald reads that prefix (``SyslogLevelPrefix=yes``, its default), files it as the
entry's priority and strips it, so ``journalctl -p warning`` works and ``-o cat`` still gives
plain JSON. Files and terminals get the JSON alone.
"""

from __future__ import annotations

import logging
import logging.config
import os
import re
from collections.abc import MutableMapping
from typing import Any

import structlog

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_SECRET_KEYS = frozenset({"token", "cookie", "authorization", "auth", "password", "secret_key"})
REDACTED = "[redacted]"


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _JWT.sub(REDACTED, value)
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Never let a token, cookie or password reach a log line."""
    for key in list(event_dict):
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def _gunicorn_access_fields(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """gunicorn's access records carry their atoms as args: keep the useful ones as fields."""
    record = event_dict.get("_record")
    atoms = event_dict.pop("positional_args", None)  # see pass_foreign_args below
    if record is not None and record.name == "gunicorn.access" and isinstance(atoms, dict):
        event_dict.update(
            event="http request",
            remote=atoms.get("h"),
            method=atoms.get("m"),
            path=atoms.get("U"),
            status=atoms.get("s"),
            bytes=atoms.get("B"),
            duration_seconds=atoms.get("L"),
        )
    return event_dict


# (lowest stdlib level, syslog priority of sd-daemon(3)), highest level first
_PRIORITIES = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
)
_DEBUG_PRIORITY = 7


def syslog_priority(levelno: int) -> int:
    return next((priority for level, priority in _PRIORITIES if levelno >= level), _DEBUG_PRIORITY)


def stdout_is_journal(fd: int = 1) -> bool:
    """systemd sets JOURNAL_STREAM to the device and inode of the journal's stream; compared
    with our stdout's, as systemd.exec(5) advises: a shell started from the unit inherits the
    variable but may have redirected stdout to a file."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(part) for part in expected.split(":"))
        stat = os.fstat(fd)
    except (ValueError, OSError):
        return False
    return (stat.st_dev, stat.st_ino) == (device, inode)


class SyslogPrefixFormatter(structlog.stdlib.ProcessorFormatter):
    """Starts every line (a console traceback has several) with ``<priority>``."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def structured_formatter(syslog_prefix: bool, **options: Any) -> logging.Formatter:
    """The formatter factory named in the logging config (a dictConfig ``()``)."""
    formatter = SyslogPrefixFormatter if syslog_prefix else structlog.stdlib.ProcessorFormatter
    return formatter(**options)


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def logging_config(level: str, fmt: str, access_log: bool = False) -> dict[str, Any]:
    """A logging.config dict (also given to gunicorn as ``logconfig_dict``)."""
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    upper = level.upper()
    library_level = "DEBUG" if upper == "DEBUG" else "WARNING"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structured_formatter,
                "syslog_prefix": stdout_is_journal(),
                "foreign_pre_chain": [*_shared_processors(), _gunicorn_access_fields],
                "pass_foreign_args": True,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    redact_secrets,
                    renderer,
                ],
            }
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "structured",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["stdout"], "level": upper},
        "loggers": {
            "gunicorn.error": {"handlers": ["stdout"], "level": upper, "propagate": False},
            "gunicorn.access": {
                "handlers": ["stdout"],
                "level": "INFO" if access_log else "WARNING",
                "propagate": False,
            },
            "engineio.server": {"level": library_level},
            "socketio.server": {"level": library_level},
            "urllib3": {"level": "WARNING"},
        },
    }


def configure(level: str = "info", fmt: str = "json", access_log: bool = False) -> None:
    """Configure stdlib logging and structlog for this process."""
    logging.config.dictConfig(logging_config(level, fmt, access_log))
    structlog.configure(
        processors=[
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def report_configuration_error(error: Exception) -> None:
    """The service's last line when its configuration is unusable: in the default format,
    since the settings that choose the format are among those that failed."""
    configure()
    structlog.get_logger("zou_events.config").error("configuration error", error=str(error))
