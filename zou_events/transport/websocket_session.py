"""An Engine.IO session over the WebSocket driver (websocket.py), without a greenlet.

python-engineio's own WebSocket handler parks two greenlets per socket for its whole life:
one blocked reading, one blocked on the session's queue to write what it holds. Here the
driver hands each message it reads to ``received`` (the upgrade probe first, when the
session started with long-polling), and once the WebSocket is the session's transport this
object replaces the session's queue: ``put`` writes a packet to the connection's outbox at
once, in the caller's greenlet, so nothing waits while nothing is sent.
"""

from __future__ import annotations

from typing import Any

import structlog
from engineio import exceptions
from engineio import packet as eio_packet

from zou_events.transport.websocket import WebSocket

log = structlog.get_logger("zou_events.transport.websocket_session")

_PROBE, _UPGRADE, _OPEN = range(3)  # waiting for: the probe PING, UPGRADE, any packet


class WebSocketSession:
    """The ``Receiver`` of one engineio socket's WebSocket, then that socket's queue."""

    __slots__ = ("_session", "_state", "_ws")

    def __init__(self, session: Any, ws: WebSocket) -> None:
        self._session = session
        self._ws = ws
        server = session.server
        # A dead client is found by its missing PONGs (engineio's service task); this bounds
        # a frame that came in part.
        ws.set_read_timeout(server.ping_interval + server.ping_timeout)
        if session.connected:  # an upgrade from long-polling: the probe first
            session.upgrading = True  # engineio holds packets on the polling queue meanwhile
            self._state = _PROBE
        else:
            session.connected = session.upgraded = True
            self._take_queue()
            self._state = _OPEN

    # --- Receiver -----------------------------------------------------------------------

    def received(self, message: str | bytes) -> bool:
        if self._state == _OPEN:
            return self._receive(message)
        session = self._session
        try:
            pkt = eio_packet.Packet(encoded_packet=message)
        except ValueError:
            pkt = None
        if self._state == _PROBE:
            if pkt is None or pkt.packet_type != eio_packet.PING or pkt.data != "probe":
                session.upgrading = False  # polling goes on
                return False
            self._ws.send(eio_packet.Packet(eio_packet.PONG, data="probe").encode())
            session.queue.put(eio_packet.Packet(eio_packet.NOOP))  # ends the pending poll
            self._state = _UPGRADE
            return True
        if pkt is None or pkt.packet_type != eio_packet.UPGRADE:
            session.upgraded = session.upgrading = False
            return False
        session.upgraded, session.upgrading = True, False
        self._take_queue()
        self._state = _OPEN
        return True

    def ended(self) -> None:
        session = self._session
        if self._state == _OPEN:
            session.close(wait=False, abort=True, reason=session.server.reason.TRANSPORT_CLOSE)
        else:
            session.upgrading = False

    def _receive(self, message: str | bytes) -> bool:
        """As engineio's handler: one packet to the session; False ends the connection."""
        try:
            self._session.receive(eio_packet.Packet(encoded_packet=message))
        except exceptions.UnknownPacketError:
            pass
        except exceptions.SocketIsClosedError:
            return False
        except Exception:
            log.exception("packet handling failed", eio_sid=self._session.sid)
            return False
        return True

    # --- the session's queue, once the WebSocket is its transport -----------------------

    def _take_queue(self) -> None:
        """Become the session's queue; what waited on the old one is written first."""
        old, self._session.queue = self._session.queue, self
        while not old.empty():
            self.put(old.get_nowait())
            old.task_done()

    def put(self, pkt: Any, block: bool = True, timeout: float | None = None) -> None:
        if pkt is None:  # engineio's "the session is closed"
            self._ws.close()
        else:
            self._ws.send(pkt.encode())

    def qsize(self) -> int:
        return 0  # nothing ever waits here

    def empty(self) -> bool:
        return True

    def over_limit(self) -> bool:
        return False  # the outbox's limits apply (delivery.py checks them)

    def join(self, timeout: float | None = None) -> None:
        """engineio's close(wait=True): everything was handed to the outbox already."""
