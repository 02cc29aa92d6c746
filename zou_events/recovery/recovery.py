"""Socket.IO's connection state recovery on /events, as socket.io-client 4.6+ speaks it.

The server's CONNECT answer carries a private session id (``pid``); each broadcast carries
its offset as a last argument; a client coming back sends ``pid`` and its last offset in
its CONNECT auth payload, and gets the same ``pid`` back (``socket.recovered``) followed by
the events it missed. Only cookie-authenticated sockets take part: that is how Kitsu
connects, while gazu and other python-socketio clients (header or auth-payload tokens)
would pass the extra argument to their handlers.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis
import structlog

from zou_events import metrics
from zou_events.auth import Identity
from zou_events.log_limit import log_misbehaviour
from zou_events.messages import Emit
from zou_events.recovery.sessions import Suspended, SuspendedSessions
from zou_events.recovery.window import Entry, ReplayWindow

log = structlog.get_logger("zou_events.recovery")

EVENTS = "/events"
# Disconnections after which the client comes back by itself (ConnectionHandlers' labels):
# not a client's own disconnect, nor a kick that is final (revoked, flood...).
SUSPENDING_REASONS = frozenset(
    {"transport", "ping_timeout", "server_shutdown", "token_expired", "slow_consumer"}
)
_CLIENT_VALUE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # pids and offsets are base64url
# How far apart two instances may read the channel, in seconds: see Recovery._missed.
READING_MARGIN = 5.0


@dataclass(frozen=True, slots=True)
class _Claim:
    pid: str
    person_id: str
    offset: str | None  # set when the client's suspended session was found and is its own
    session: Suspended | None = None  # that session


@dataclass(frozen=True, slots=True)
class _Live:
    eio_sid: str
    pid: str
    person_id: str


def _client_value(auth: Any, key: str) -> str | None:
    value = auth.get(key) if isinstance(auth, dict) else None
    return value if isinstance(value, str) and _CLIENT_VALUE.fullmatch(value) else None


class Recovery:
    """Offsets for /events broadcasts, suspended sessions, and their restoration."""

    def __init__(self, window: ReplayWindow, suspended: SuspendedSessions) -> None:
        self.window = window
        self.suspended = suspended
        self.offset_sockets: set[str] = set()  # eio_sids whose events carry offsets
        self._claims: dict[str, _Claim] = {}  # sid -> claim, from connect to its answer
        self._live: dict[str, _Live] = {}  # sid -> its recovery state
        metrics.recovery_buffer_messages.set_function(lambda: len(self.window))
        metrics.recovery_buffer_bytes.set_function(lambda: self.window.bytes)
        metrics.recovery_buffer_age.set_function(self.window.age)

    def record(self, raw: bytes, emit: Emit) -> str | None:
        """The offset of a message read from Redis, kept for replay; None for what is not
        replayed (room emits, other namespaces)."""
        if emit.namespace != EVENTS or emit.room is not None or emit.skip_sids:
            return None
        return self.window.record(raw, emit)

    def subscribed(self) -> None:
        """A new Redis subscription: what was published before it may be missing here."""
        self.window.reset()

    def claim(self, sid: str, identity: Identity, auth: Any) -> None:
        """An accepted /events connection (its token checked): give it a pid, and take the
        suspended session its auth payload names if it is this person's."""
        if identity.source != "cookie":
            return
        pid = _client_value(auth, "pid")
        offset = _client_value(auth, "offset")
        session = self._take(sid, pid, identity) if pid is not None and offset else None
        if pid is not None and session is not None:
            self._claims[sid] = _Claim(pid, identity.person_id, offset, session)
        else:
            self._claims[sid] = _Claim(secrets.token_urlsafe(16), identity.person_id, None)

    def refused(self, auth: Any) -> None:
        """A connection refused by authentication: its pid, if any, is left untouched."""
        if _client_value(auth, "pid") is not None:
            metrics.recoveries.labels("refused").inc()

    def connect_answer(self, eio_sid: str, answer: dict[str, Any]) -> list[list[Any]]:
        """Complete the CONNECT answer of an /events socket about to be connected; returns
        the events it missed, to send right after it. Nothing may yield from here until
        the socket receives live events, or one would fall between replay and live."""
        claim = self._claims.pop(answer.get("sid"), None)  # type: ignore[arg-type]
        if claim is None:
            return []
        missed = self._missed(claim.offset, claim.session) if claim.offset is not None else None
        pid = claim.pid
        if claim.offset is not None and missed is None:
            metrics.recoveries.labels("expired").inc()  # beyond the window or the buffer
            pid = secrets.token_urlsafe(16)
        answer["pid"] = pid
        self.offset_sockets.add(eio_sid)
        self._live[answer["sid"]] = _Live(eio_sid, pid, claim.person_id)
        if missed is None:
            return []
        metrics.recoveries.labels("recovered").inc()
        metrics.recovery_replayed.inc(len(missed))
        return [[entry.emit.event, *entry.emit.args, entry.offset] for entry in missed]

    def _missed(self, offset: str, session: Suspended | None) -> list[Entry] | None:
        """What was published after ``offset``, or None if that cannot be told for sure.

        Usually the offset is in the window. When it is not, the client may still have
        missed nothing this window lacks, if it had the last broadcast its instance had
        read when it left (``session.newest``): nothing came after that one there, so what
        came after it here is what the client missed. Here, that broadcast is
        - found by its bytes, read within the margin of the time it was read there: an
          instance that just started gives its first messages offsets of its own (their
          predecessors were not read here), or
        - older than this window's complete part by more than the margin, which itself
          began more than the margin before the disconnection: whatever was published
          between that broadcast and the disconnection would have been read by the
          client's instance, so nothing was, and everything here is newer (an instance
          started after the client's last event, in a quiet hour).
        The margin bounds how far apart two instances read the channel.
        """
        missed = self.window.after(offset)
        if missed is not None or session is None or session.newest is None:
            return missed
        newest = session.newest
        if newest.offset != offset:
            return None
        missed = self.window.after_landmark(newest, READING_MARGIN)
        if missed is not None:
            return missed
        complete_since = self.window.complete_since
        if (
            newest.at + READING_MARGIN < complete_since
            and complete_since + READING_MARGIN < session.disconnected_at
        ):
            return self.window.entries()
        return None

    def disconnected(self, sid: str, reason: str) -> None:
        """An /events socket left: suspend its session if its client will come back."""
        self._claims.pop(sid, None)
        live = self._live.pop(sid, None)
        if live is None:
            return
        self.offset_sockets.discard(live.eio_sid)
        if reason not in SUSPENDING_REASONS:
            return
        try:
            session = Suspended(live.person_id, time.time(), self.window.newest)
            self.suspended.put(live.pid, session, self.window.seconds)
        except (redis.RedisError, OSError) as error:
            log.warning("cannot suspend session", sid=sid, error=str(error))

    def _take(self, sid: str, pid: str, identity: Identity) -> Suspended | None:
        """The session under ``pid`` if it is this person's and recent; taken either way."""
        try:
            session = self.suspended.take(pid)
        except (redis.RedisError, OSError) as error:
            log.warning("cannot restore session", sid=sid, error=str(error))
            return None
        if session is None:
            outcome = "unknown_pid"
        elif session.person_id != identity.person_id:
            outcome = "refused"
        elif time.time() - session.disconnected_at > self.window.seconds:
            outcome = "expired"
        else:
            return session
        metrics.recoveries.labels(outcome).inc()
        if outcome == "refused":
            log_misbehaviour(
                log, "warning", "session recovery refused", reason="another_person", sid=sid
            )
        return None


class NoRecovery:
    """Recovery switched off, or standalone mode (no Redis channel to replay): every
    connection is fresh and no event carries an offset."""

    offset_sockets: frozenset[str] = frozenset()

    def record(self, raw: bytes, emit: Emit) -> None:
        return None

    def subscribed(self) -> None:
        pass

    def claim(self, sid: str, identity: Identity, auth: Any) -> None:
        pass

    def refused(self, auth: Any) -> None:
        pass

    def connect_answer(self, eio_sid: str, answer: dict[str, Any]) -> list[list[Any]]:
        return []

    def disconnected(self, sid: str, reason: str) -> None:
        pass


NO_RECOVERY = NoRecovery()
