"""gunicorn's logger, without the access-log work when nobody reads the access log."""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger  # type: ignore[import-untyped]


class AccessLogWhenEnabled(Logger):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn formats every request's access-log fields before its logger can drop them:
    7 % of a worker's CPU in a Kitsu reconnect storm (a session is 3-5 requests) with
    ``ZOU_EVENTS_ACCESS_LOG`` off, the default. Asked first, the level check skips it."""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if self.access_log.isEnabledFor(logging.INFO):
            super().access(resp, req, environ, request_time)
