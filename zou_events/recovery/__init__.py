"""Connection state recovery on /events (socket.io-client's ``recovered``): see recovery.py."""

from zou_events.recovery.recovery import NO_RECOVERY, NoRecovery, Recovery
from zou_events.recovery.sessions import RedisSuspendedSessions, Suspended
from zou_events.recovery.window import ReplayWindow

__all__ = [
    "NO_RECOVERY",
    "NoRecovery",
    "Recovery",
    "RedisSuspendedSessions",
    "ReplayWindow",
    "Suspended",
]
