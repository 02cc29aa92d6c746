"""python-socketio's in-memory client manager, with an index of each socket's rooms.

Its ``basic_disconnect`` copies and scans every room of the namespace to find a socket's
rooms, and every socket has a room of its own: n sockets dropping together (a deploy, a
network blip) would cost O(n²). The index makes a disconnect cost the socket's own rooms.
"""

from __future__ import annotations

from typing import Any

import socketio


class IndexedManager(socketio.Manager):
    def __init__(self) -> None:
        super().__init__()
        self._memberships: dict[tuple[str, str], set[Any]] = {}

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
                sids.remove(sid)
                if not sids:
                    del pending[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        return [r for r in self._memberships.get((namespace, sid), ()) if r is not None]
