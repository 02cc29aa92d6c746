"""The preview-room events of /events (thin: rules in rooms/rules.py, state in the store).

Fixes over Zou 1.0.97 (docs/compatibility.md): events without a valid ``playlist_id`` are
dropped instead of broadcast to everyone; ``room-updated`` and the relays are accepted only
from sockets that opened the room, ``leave`` and ``close-playlist`` only from sockets in it
(a stranger's event changes nothing and broadcasts nothing); the stored ``user_id`` is the
authenticated identity.
As in Zou 1.0.97, preview accounts may watch but not drive. A refused event gets the same
answer as in Zou (nothing, or an empty ACK) plus a log line and a counter.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import gevent
import redis
import structlog
from gevent.lock import Semaphore

from zou_events import metrics
from zou_events.auth import Identity
from zou_events.connections import SERVER_SHUTDOWN
from zou_events.fanout import Fanout
from zou_events.log_limit import log_misbehaviour
from zou_events.rooms import PeopleChange, RoomStore, rules
from zou_events.rooms.limits import RateLimiter
from zou_events.rooms.names import RoomNamer
from zou_events.sessions import Sessions
from zou_events.transport.server import EVENTS, TRANSPORT_ERROR, EventServer, Gate
from zou_events.zou_api import ZouApi, ZouUnavailable

log = structlog.get_logger("zou_events.rooms")
_T = TypeVar("_T")

PREFIX = "preview-room:"
CLEANUP_RETRY_FIRST, CLEANUP_RETRY_MAX = 0.5, 30.0
PEOPLE_UPDATED = PREFIX + "room-people-updated"
ROOM_UPDATED = PREFIX + "room-updated"
# Relays are re-encoded by python-socketio, whose binary check recurses (two frames a level):
# near 450 levels it raises RecursionError. Kitsu's annotations nest a few levels.
MAX_PAYLOAD_DEPTH = 100


class Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RoomHandlers:
    def __init__(
        self,
        sio: EventServer,
        sessions: Sessions,
        fanout: Fanout,
        store: RoomStore,
        zou: ZouApi | None,
        limiter: RateLimiter,
        max_payload_bytes: int,
        instance_id: str,
        namer: RoomNamer | None = None,
    ) -> None:
        self.sio = sio
        self.sessions = sessions
        self.fanout = fanout
        self.store = store
        self.zou = zou
        self.limiter = limiter
        self.max_payload_bytes = max_payload_bytes
        self.instance_id = instance_id
        self.namer = namer  # learns the names of the rooms Zou let someone into
        self.opened: dict[str, set[str]] = {}  # local sid -> rooms it opened
        self.stored: set[str] = set()  # local sids the store may hold (they opened or joined)
        self._order: dict[str, Semaphore] = {}  # local sid -> its room events, one at a time
        handlers: dict[str, Callable[..., None]] = {
            "open-playlist": self.open_playlist,
            "close-playlist": self.close_playlist,
            "join": self.join,
            "leave": self.leave,
            "room-updated": self.room_updated,
        }
        handlers.update({name: self._relay(name) for name in metrics.ROOM_RELAYS})
        for name, handler in handlers.items():
            self.sio.on(PREFIX + name, self._guarded(name, handler), namespace=EVENTS)
            self.sio.gate(PREFIX + name, self._rate_gate(name), namespace=EVENTS)

    # --- gate: rate, as events are read; guard: identity, shape, size, store -------------

    def _rate_gate(self, name: str) -> Gate:
        def admit(sid: str, args: list[Any]) -> bool:
            # Metered as the socket's reader reads the event (EventServer.gate): the excess of
            # a flood is refused at once, without a handler slot or a turn in _order.
            if self.limiter.allow(sid):
                return True
            metrics.room_events.labels(name).inc()
            metrics.rate_limit_hits.inc()
            identity = self.sessions.get(sid)
            with structlog.contextvars.bound_contextvars(
                sid=sid,
                namespace=EVENTS,
                event=PREFIX + name,
                person_id=identity.person_id if identity is not None else None,
                playlist_id=rules.room_id(args[0] if args else None),
            ):
                self._refused(sid, name, "rate_limited")
            return False

        return admit

    def _guarded(self, name: str, handler: Callable[..., None]) -> Callable[..., None]:
        def run(sid: str, *args: Any) -> None:
            # python-socketio runs each event in its own greenlet: without this, a join sent
            # right after open-playlist could be handled first (both ask Zou's API).
            with self._order.setdefault(sid, Semaphore()):
                guarded(sid, *args)
            if self._gone(sid) and self._forget_locally(sid):
                # Disconnected before or while this event was handled (e.g. a join waiting for
                # Zou's API): what the event stored for the socket after its disconnect goes.
                self._clean_up(sid)

        def guarded(sid: str, *args: Any) -> None:
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(sid=sid, namespace=EVENTS, event=PREFIX + name)
            metrics.room_events.labels(name).inc()
            identity = self.sessions.get(sid)
            if identity is None:  # its disconnect was handled before this event's greenlet ran
                self._refused(sid, name, "not_connected")
                return
            data = args[0] if args else None
            room = rules.room_id(data)
            structlog.contextvars.bind_contextvars(person_id=identity.person_id, playlist_id=room)
            try:
                if room is None:  # Zou would broadcast to every socket of /events
                    raise Refused("invalid_payload")
                self._check(data, room)
                self._must_be_in(sid, name, room)
                handler(sid, identity, room, data, *args[1:])
            except Refused as refused:
                self._refused(sid, name, refused.reason)
            except (redis.RedisError, OSError) as error:
                # every room event of every socket while Redis is down: rate-limited too
                log_misbehaviour(
                    log, "warning", "room store unavailable", reason="redis", error=str(error)
                )
                self._refused(sid, name, "store_unavailable")

        run.__name__ = f"on_{name.replace('-', '_')}"
        return run

    def _check(self, data: Any, room: str) -> None:
        try:
            size = len(json.dumps(data, separators=(",", ":")))
        except (TypeError, ValueError):
            raise Refused("invalid_payload") from None
        if size > self.max_payload_bytes:
            raise Refused("too_large")
        if _nested_deeper(data, MAX_PAYLOAD_DEPTH):
            raise Refused("invalid_payload")

    def _must_be_in(self, sid: str, name: str, room: str) -> None:
        """Only entering (open, join) is open to a socket outside the room (rules.py)."""
        if name in rules.ENTRY_EVENTS:
            return
        refusal = rules.membership_refusal(name, *self.store.membership(room, sid))
        if refusal is not None:
            raise Refused(refusal)

    def _refused(self, sid: str, name: str, reason: str) -> None:
        metrics.room_events_refused.labels(name, reason).inc()
        if reason != "rate_limited" or self.limiter.refusals(sid) == 1:
            # a socket's flood logs once per window; many sockets' floods, a few lines
            log_misbehaviour(log, "info", "room event refused", reason=reason)
        if reason == "rate_limited" and self.limiter.should_kick(sid):
            self.sessions.kick(sid, "rate_limited")

    def _may_read(self, identity: Identity, room: str) -> None:
        """Zou decides (team member, admin; not vendors; clients on shared playlists)."""
        if self.zou is None:
            return
        try:
            allowed = self.zou.can_read_playlist(identity.token, identity.jti, room)
        except ZouUnavailable:
            raise Refused("no_access") from None  # fail closed
        if not allowed:
            raise Refused("no_access")
        if self.namer is not None:
            self.namer.entered(room, identity.token)

    @staticmethod
    def _may_drive(identity: Identity) -> None:
        """Opening the room is checked by the guard (rules.membership_refusal)."""
        if identity.is_preview_account:
            raise Refused("preview_account")

    # --- the events -----------------------------------------------------------------------

    def _people_updated(self, room: str, people: list[str]) -> None:
        self.fanout.emit(PEOPLE_UPDATED, rules.people_updated(room, people), EVENTS, room)

    def open_playlist(self, sid: str, identity: Identity, room: str, _data: Any) -> None:
        self._may_read(identity, room)
        people = self._storing(sid, self.store.open, room, sid, self.instance_id)
        if self._gone(sid):
            return  # python-socketio has forgotten it; the guard forgets it in the store
        self.sio.enter_room(sid, room, namespace=EVENTS)
        self.opened.setdefault(sid, set()).add(room)
        self._people_updated(room, people)

    def close_playlist(self, sid: str, _identity: Identity, room: str, _data: Any) -> None:
        self.store.close(room, sid)
        self.sio.leave_room(sid, room, namespace=EVENTS)
        rooms = self.opened.get(sid)
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self.opened[sid]

    def join(self, sid: str, identity: Identity, room: str, data: Any) -> None:
        self._may_read(identity, room)
        people, state = self._storing(
            sid, self.store.join, room, sid, self.instance_id, identity.person_id, data
        )
        self._people_updated(room, people)
        self.fanout.emit(ROOM_UPDATED, state, EVENTS, room)

    def leave(self, sid: str, _identity: Identity, room: str, _data: Any) -> None:
        self._people_updated(room, self.store.leave(room, sid))

    def room_updated(
        self,
        sid: str,
        identity: Identity,
        room: str,
        data: Any,
        only_newcomer: Any = False,
        *_: Any,
    ) -> None:
        self._may_drive(identity)
        state = self.store.update(room, data, identity.person_id)
        if state is not None:
            self.fanout.emit(ROOM_UPDATED, rules.room_updated(state, only_newcomer), EVENTS, room)

    def _relay(self, name: str) -> Callable[..., None]:
        def relay(sid: str, identity: Identity, room: str, data: Any, *_: Any) -> None:
            self._may_drive(identity)
            self.fanout.emit(PREFIX + name, data, EVENTS, room)  # verbatim, sender included

        return relay

    def _gone(self, sid: str) -> bool:
        return self.sessions.get(sid) is None

    def _forget_locally(self, sid: str) -> bool:
        """Forget a gone socket here; True if the store may still hold it."""
        self.limiter.forget(sid)
        self.opened.pop(sid, None)
        self._order.pop(sid, None)
        stored = sid in self.stored
        self.stored.discard(sid)
        return stored

    def _storing(self, sid: str, write: Callable[..., _T], *args: Any) -> _T:
        """A store write that records ``sid``: marked once the write is over, so that a
        disconnect handled during the write is followed by a clean-up (the guard's)."""
        try:
            return write(*args)
        finally:
            self.stored.add(sid)

    def socket_gone(self, sid: str, _identity: Identity, reason: str) -> None:
        # Most sockets never open a review room: their disconnect costs no Redis round trip
        # (in a reconnect storm, thousands of them).
        if self._forget_locally(sid) and reason != SERVER_SHUTDOWN:
            # On shutdown or reload the presence stays until this instance's heartbeat
            # expires, so clients reconnecting elsewhere find their room as it was.
            self._clean_up(sid)

    def _clean_up(self, sid: str, attempt: int = 0) -> None:
        """Remove a gone socket from the store; retried with backoff while Redis fails, or
        the person would stay in ``people`` for as long as this instance lives."""
        try:
            self.announce(self.store.disconnect(sid))
        except (redis.RedisError, OSError) as error:
            delay = min(CLEANUP_RETRY_MAX, CLEANUP_RETRY_FIRST * 2**attempt)
            log.warning("room cleanup failed, retrying", sid=sid, retry_in=delay, error=str(error))
            gevent.spawn_later(delay, self._clean_up, sid, attempt + 1)

    def refresh_gauges(self) -> None:
        metrics.room_sockets.set(len(self.opened))  # sockets of this instance that opened one

    def cut_room_sockets(self) -> None:
        """The cluster presumed this instance dead and may have reaped its presence: make its
        room sockets reconnect (transport close) so that they open and join again."""
        for sid in list(self.opened):
            eio_sid = self.sio.manager.eio_sid_from_sid(sid, EVENTS)
            if eio_sid is not None:
                self.sio.abort(eio_sid, TRANSPORT_ERROR)

    def announce(self, changes: list[PeopleChange]) -> None:
        for change in changes:
            self._people_updated(change.room_id, change.people)


def _nested_deeper(value: Any, limit: int) -> bool:
    """Whether lists and objects nest deeper than ``limit`` in ``value`` (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in item)
    return False
