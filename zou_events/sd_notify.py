"""systemd's readiness protocol (Type=notify), told by the worker once it can deliver.

gunicorn's master says READY=1 as soon as it listens, before its worker has even booted, let
alone subscribed to Redis: ``systemctl start`` would return while the instance still delivers
nothing. So the master's configuration moves ``NOTIFY_SOCKET`` out of gunicorn's sight
(``take_notify_socket``), and the worker, a child of the master (the unit says
``NotifyAccess=all``), says READY=1 once ``Readiness.is_ready()`` (drain.py) holds:
subscribed to Redis, or at once in standalone mode. Until then, and afterwards whenever
readiness changes, ``STATUS=`` tells ``systemctl status`` why the instance is not ready.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import gevent
import structlog

from zou_events.config import NOTIFY_SOCKET_ENV

log = structlog.get_logger("zou_events.sd_notify")

_POLL_STARTING, _POLL_RUNNING = 0.1, 1.0  # seconds between readiness checks


def take_notify_socket() -> None:
    """In gunicorn's master, before it starts: hide systemd's socket from gunicorn, keep it
    for the worker. Idempotent (gunicorn re-reads its configuration on reload)."""
    address = os.environ.pop("NOTIFY_SOCKET", None)
    if address:
        os.environ[NOTIFY_SOCKET_ENV] = address


def notify(state: str) -> bool:
    """Send ``state`` (``KEY=value`` lines) to systemd; False when not run by systemd."""
    address = os.environ.get(NOTIFY_SOCKET_ENV)
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as error:
        log.warning("cannot notify systemd", error=str(error))
        return False
    return True


class ReadyNotifier:
    """Watches ``is_ready`` in a greenlet: READY=1 the first time it holds, STATUS= on change."""

    def __init__(self, is_ready: Callable[[], tuple[bool, str]]) -> None:
        self._is_ready = is_ready
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        if os.environ.get(NOTIFY_SOCKET_ENV):
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        """On drain: the instance is going away, and a new worker (reload) reports for itself."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def _run(self) -> None:
        announced = False
        status = ""
        while True:
            ready, why = self._is_ready()
            current = "ready" if ready else f"not ready: {why}"
            if ready and not announced:
                announced = notify(f"READY=1\nSTATUS={current}")
                status = current
                log.info("told systemd the instance is ready")
            elif current != status:
                status = current
                notify(f"STATUS={current}")
            gevent.sleep(_POLL_RUNNING if announced else _POLL_STARTING)
