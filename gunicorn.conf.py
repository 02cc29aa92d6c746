"""gunicorn configuration for `gunicorn -c gunicorn.conf.py` from a checkout.

`zou-events serve` uses the same settings from the installed package.
"""

from zou_events.gunicorn_config import *  # noqa: F403
