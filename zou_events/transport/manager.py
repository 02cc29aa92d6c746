"""python-socketio's in-memory client manager, with an index of each socket's rooms.

Its ``basic_disconnect`` copies and scans every room of the namespace to find a socket's
rooms, and every socket has a room of its own: n sockets dropping together (a deploy, a
network blip) would cost O(n²). The index makes a disconnect cost the socket's own rooms.

Its sockets being connected or disconnected are kept in lists, and every ``is_connected``
scans them: in a reconnect storm thousands are being authenticated at once. Here they are
sets.
"""

from __future__ import annotations

from typing import Any

import socketio
from socketio.base_manager import ValueDuplicationError  # bidict's, as python-socketio raises it


class IndexedManager(socketio.Manager):
    def __init__(self) -> None:
        super().__init__()
        self._memberships: dict[tuple[str, str], set[Any]] = {}

    def pre_connect(self, eio_sid: str, namespace: str) -> str | None:
        """python-socketio's, with the pending sockets in a set."""
        sid: str = self.server.eio.generate_id()
        try:
            self.basic_enter_room(sid, namespace, None, eio_sid=eio_sid)
        except ValueDuplicationError:  # already connected
            return None
        self.basic_enter_room(sid, namespace, sid, eio_sid=eio_sid)
        self.pending_connect.setdefault(namespace, set()).add(sid)
        return sid

    def pre_disconnect(self, sid: str, namespace: str) -> str | None:
        """python-socketio's, with the pending sockets in a set."""
        self.pending_disconnect.setdefault(namespace, set()).add(sid)
        eio_sid: str | None = self.rooms[namespace][None].get(sid)
        return eio_sid

    def basic_enter_room(
        self, sid: str, namespace: str, room: Any, eio_sid: str | None = None
    ) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self._memberships.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        rooms = self._memberships.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._memberships[(namespace, sid)]

    def basic_disconnect(self, sid: str, namespace: str, **_kwargs: Any) -> None:
        for room in list(self._memberships.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids and sid in sids:
                sids.discard(sid)
                if not sids:
                    del pending[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        return [r for r in self._memberships.get((namespace, sid), ()) if r is not None]
