"""zou-events: the real-time event stream of Kitsu/Zou as a standalone service."""

__version__ = "0.1.0"
