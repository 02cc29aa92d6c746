"""gunicorn settings for one zou-events instance (module-level names are gunicorn settings).

Exactly one gevent worker: Kitsu starts with long-polling and upgrades to WebSocket, so every
request of an Engine.IO session must reach the same process. Scale with more instances (one
port each) behind nginx's consistent hash instead.
"""

import os
import signal
from typing import Any

import gevent

from zou_events.config import load_settings
from zou_events.gunicorn_worker import LeanGeventWorker
from zou_events.logs import logging_config
from zou_events.metrics_listener import bind_address
from zou_events.sd_notify import take_notify_socket

_settings = load_settings()
# READY=1 comes from the worker once subscribed to Redis, not from gunicorn when it listens.
take_notify_socket()

wsgi_app = "zou_events.app:create_app()"
bind = [f"{_settings.host}:{_settings.port}"]
if _settings.metrics_listener is not None:  # /metrics apart from Socket.IO (metrics_listener.py)
    bind.append(bind_address(*_settings.metrics_listener))
workers = 1
# gunicorn's gevent worker, with less of its own work per request (gunicorn_worker.py)
worker_class = "zou_events.gunicorn_worker.LeanGeventWorker"
# gunicorn would switch to its C parser (gunicorn_h1c) whenever something installed it: it
# accepts request lines the Python parser refuses; the refusals tested are the Python one's.
http_parser = "python"
worker_connections = _settings.worker_connections
timeout = 30  # gevent worker heartbeat, not a request timeout
graceful_timeout = _settings.graceful_timeout
keepalive = 2  # idle keep-alive connections would otherwise hold a shutdown back
max_requests = 0  # recycling the worker would drop every socket
preload_app = False  # the gevent worker must patch the stdlib before the app is imported
proc_name = f"zou-events:{_settings.port}"
errorlog = "-"
logger_class = "zou_events.gunicorn_logger.AccessLogWhenEnabled"
logconfig_dict = logging_config(_settings.log_level, _settings.log_format, _settings.access_log)
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# gunicorn >= 25.1 opens a control socket by default in $XDG_RUNTIME_DIR or $HOME: keep it in
# systemd's RuntimeDirectory when there is one, otherwise do without it.
_runtime_dir = os.environ.get("RUNTIME_DIRECTORY")
if _runtime_dir:
    control_socket = os.path.join(_runtime_dir.split(":")[0], f"gunicorn-{_settings.port}.ctl")
else:
    control_socket_disable = True


def post_worker_init(worker: Any) -> None:
    """SIGTERM drains the sockets first, then lets gunicorn finish the worker."""
    drain = worker.wsgi.drain  # app.Instance's
    # gunicorn's own worker (a test's reference) has no silent connections of its own
    lean = isinstance(worker, LeanGeventWorker)

    def drain_then_exit() -> None:
        try:
            if lean:
                worker.first_requests.stop_waiting()
            drain()
        finally:
            worker.alive = False

    started: list[bool] = []  # systemd or a shell may deliver SIGTERM twice: drain once

    def on_term(_signum: int, _frame: Any) -> None:
        if not started:
            started.append(True)
            gevent.spawn(drain_then_exit)

    signal.signal(signal.SIGTERM, on_term)
