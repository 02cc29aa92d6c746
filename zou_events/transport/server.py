"""The Socket.IO server: python-socketio's, with our transport, limits and session table."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable
from typing import Any

import engineio
import gevent
import socketio
import structlog
from gevent.lock import BoundedSemaphore

from zou_events import metrics, session_ids
from zou_events.admission import ENGINEIO_PATH, StartResponse, WsgiApp
from zou_events.config import Settings
from zou_events.log_limit import log_misbehaviour
from zou_events.origin import OriginPolicy
from zou_events.pending_sessions import PendingSessions
from zou_events.strict_json import ClientPacket, read_engineio_packets_strictly
from zou_events.transport import backlog, delivery, inbound
from zou_events.transport.manager import IndexedManager
from zou_events.transport.pings import Pinger
from zou_events.transport.polling_guard import EngineIOServer, PollingGuard
from zou_events.transport.websocket import WebSocket
from zou_events.transport.websocket_session import WebSocketSession

log = structlog.get_logger("zou_events.transport.server")

EVENTS = "/events"
# engineio's reasons for a transport closed on the server's side, as abort() takes them
SERVER_DISCONNECT = engineio.Server.reason.SERVER_DISCONNECT
TRANSPORT_ERROR = engineio.Server.reason.TRANSPORT_ERROR
ACCEPTED_NAMESPACES = ("/", EVENTS)

# Checks an event as its socket's reader reads it, before it waits for a handler slot:
# gate(sid, event arguments) is False for an event refused (the gate counts and logs why).
Gate = Callable[[str, list[Any]], bool]
# Completes the CONNECT answer of an /events socket (its Engine.IO session, the answer's
# data) and returns the events to send right after it: connection state recovery's pid
# and missed events (recovery/).
ConnectAnswer = Callable[[str, dict[str, Any]], list[list[Any]]]


def _plain_answer(eio_sid: str, answer: dict[str, Any]) -> list[list[Any]]:
    return []


def _nobody_vouches(environ: dict[str, Any]) -> bool:
    return False


def handshake_environ(environ: dict[str, Any]) -> dict[str, Any]:
    """What python-socketio keeps of a session's handshake request for its namespaces'
    connect handlers: its text (headers, address, query), not the server's objects (the
    request's parser, body reader, response, socket), which would outlive the request for
    as long as the session lives (about 6 KiB a socket, measured with tracemalloc)."""
    return {key: value for key, value in environ.items() if isinstance(value, str)}


class EventServer(socketio.Server):
    """python-socketio's server with our WebSocket driver and a count of unknown namespaces."""

    def __init__(
        self,
        settings: Settings,
        connect_answer: ConnectAnswer = _plain_answer,
        vouches: Callable[[dict[str, Any]], bool] = _nobody_vouches,
    ) -> None:
        super().__init__(
            client_manager=IndexedManager(),
            # bounded JSON as browsers read it (no NaN/Infinity), for Socket.IO packets
            serializer=ClientPacket,
            async_mode="gevent",
            async_handlers=False,  # handlers are started by _handle_event_internal, bounded
            cors_allowed_origins=OriginPolicy(settings.cors_allowed_origins),
            cors_credentials=bool(settings.cors_allowed_origins),
            ping_interval=settings.ping_interval,
            ping_timeout=settings.ping_timeout,
            max_http_buffer_size=settings.max_payload_bytes,
            namespaces=list(ACCEPTED_NAMESPACES),
            http_compression=True,
            cookie=None,
            logger=False,
            engineio_logger=False,
        )
        read_engineio_packets_strictly()
        self.queue_limits = (settings.send_queue_max_messages, settings.send_queue_max_bytes)
        self.inbound_limits = inbound.InboundLimits(
            settings.inbound_packets_per_second,
            settings.inbound_packets_burst,
            settings.inbound_bytes_per_second,
            settings.inbound_bytes_burst,
        )
        websocket = functools.partial(
            WebSocket,
            send_limits=self.queue_limits,
            cut=self.cut,
            accept=inbound.is_engineio_packet,
            receiver=WebSocketSession,
        )
        # Each session's send queue is metered from the start (backlog.py): engineio's own
        # would only be replaced at the session's connect.
        queue = functools.partial(backlog.MeteredQueue, *self.queue_limits)
        self.eio._async = {**self.eio._async, "websocket": websocket, "queue": queue}
        # Session ids name this instance, so nginx routes each session's requests to it.
        instance = session_ids.instance_name(settings.instance_tag, settings.port)
        self.eio.generate_id = session_ids.tagged(instance, self.eio.generate_id)
        self.pinger = Pinger(settings.ping_interval)
        # Open Engine.IO sessions: engineio keeps closed ones in its table until its service
        # task sweeps them (every ping timeout), so its size is no measure for admission.
        self.open_sessions: set[str] = set()
        self.pending = PendingSessions(settings.connect_timeout, self.end_transport)
        # whether a handshake carries a valid token (Authenticator.vouches)
        self._vouches = vouches
        self._gates: dict[tuple[str, str], Gate] = {}  # (namespace, event) -> its gate
        self.connect_answer = connect_answer

    def gate(self, event: str, check: Gate, namespace: str) -> None:
        """Run ``check`` on every ``event`` of ``namespace`` as it is read, before it waits
        for a handler slot: a rate limit then meters events as they are read, not as they
        get a turn after the socket's earlier ones, and a refused event takes no slot. It
        gets what a handler returning nothing gets: an empty ACK, if one was asked for."""
        self._gates[(namespace, event)] = check

    def _engineio_server_class(self) -> type[EngineIOServer]:
        return EngineIOServer

    def placed_sessions(self) -> int:
        """What ZOU_EVENTS_MAX_SOCKETS caps: the open sessions that joined a namespace, and
        those about to join whose handshake carried a valid token."""
        return len(self.open_sessions) - len(self.pending) + self.pending.vouched

    # --- what the rest of the package uses instead of the libraries' internals ----------

    def recipients(
        self, namespace: str, rooms: Iterable[str | None], excluded: Collection[str]
    ) -> list[str]:
        """The Engine.IO sessions of the sockets of ``namespace`` in any of ``rooms`` (None:
        the whole namespace), but those whose sid is in ``excluded`` and those still being
        authenticated: python-socketio counts them as members already, and they would get
        events before (or without) being accepted."""
        namespace_rooms = self.manager.rooms.get(namespace)
        if not namespace_rooms:
            return []
        pending = self.manager.pending_connect.get(namespace, ())
        skipped = set(excluded).union(pending) if pending or excluded else None
        found: dict[str, str] = {}
        for room in rooms:
            members = namespace_rooms.get(room)
            if members is not None:
                found.update(members._fwdm)  # python-socketio's bidict: sid -> eio_sid
        if skipped:
            return [eio_sid for sid, eio_sid in found.items() if sid not in skipped]
        return list(found.values())

    def broadcast(
        self, eio_sids: Iterable[str], namespace: str, data: list[Any], arrived: float
    ) -> int:
        """Emit the event ``data`` (name, then arguments) to the sockets of ``namespace`` in
        the sessions ``eio_sids``, encoded once (delivery.py); a socket over its send-queue
        limits is cut instead (slow_consumer), the others never wait for it. Returns how
        many sockets got it."""
        packet = self.packet_class(socketio.packet.EVENT, namespace=namespace, data=data)
        delivered, slow = delivery.deliver(self.eio.sockets, eio_sids, packet.encode(), arrived)
        for socket in slow:
            self.cut(socket, inbound.SLOW_CONSUMER, True)
        return delivered

    def abort(self, eio_sid: str, reason: str) -> None:
        """Close a session's transport at once, without Engine.IO's CLOSE packet, ``reason``
        being its namespaces' disconnect reason (e.g. TRANSPORT_ERROR). engineio's own
        disconnect() would wait for a polling client to come and collect the CLOSE; closed
        sockets are reaped by engineio's service task."""
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None:
            socket.close(wait=False, abort=True, reason=reason)

    def end_transport(self, eio_sid: str) -> None:
        """Close a session's transport on the server's initiative (SERVER_DISCONNECT): Kitsu's
        client reconnects either way, but python-socketio's (gazu) takes CLOSE as final."""
        self.abort(eio_sid, SERVER_DISCONNECT)

    def is_open_session(self, eio_sid: str) -> bool:
        return eio_sid in self.open_sessions

    def wsgi_app(self, other: WsgiApp, max_body_bytes: int, body_timeout: float) -> WsgiApp:
        """The WSGI application of Engine.IO's path, ``other`` serving every other path;
        polling bodies bounded (polling_guard.py)."""
        handle = self.eio.handle_request

        # engineio's own WSGIApp does the same, and defines a class in every request to
        # hand the socket on to eventlet's WebSocket (3 % of a reconnect storm's CPU); our
        # driver takes gunicorn's socket itself.
        def route(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            if environ["PATH_INFO"].startswith(ENGINEIO_PATH):
                return handle(environ, start_response)  # type: ignore[no-any-return]
            return other(environ, start_response)

        return PollingGuard(route, max_body_bytes, body_timeout)

    def open_session_ids(self) -> list[str]:
        """The Engine.IO sessions open now."""
        return list(self.open_sessions)

    def refresh_gauges(self) -> None:
        """Sockets per namespace and transport, computed when scraped rather than on every
        upgrade."""
        for namespace in metrics.NAMESPACES:
            websocket, polling = self.transport_counts(namespace)
            metrics.connected_sockets.labels(namespace, "websocket").set(websocket)
            metrics.connected_sockets.labels(namespace, "polling").set(polling)

    def transport_counts(self, namespace: str) -> tuple[int, int]:
        """(WebSocket, long-polling) sockets of ``namespace``, those still being
        authenticated included."""
        members = self.manager.rooms.get(namespace, {}).get(None)
        eio_sids = list(members._fwdm.values()) if members is not None else []
        sockets = self.eio.sockets
        upgraded = sum(1 for e in eio_sids if getattr(sockets.get(e), "upgraded", False))
        return upgraded, len(eio_sids) - upgraded

    def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        socket = self.eio.sockets[eio_sid]
        self.pinger.install(socket)
        inbound.install(socket, self.inbound_limits, self.cut)
        self.open_sessions.add(eio_sid)
        self.pending.opened(eio_sid, vouched=self._vouches(environ))
        return super()._handle_eio_connect(eio_sid, handshake_environ(environ))

    def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        self.open_sessions.discard(eio_sid)
        self.pending.settled(eio_sid)
        super()._handle_eio_disconnect(eio_sid, reason)
        # engineio keeps a closed session until its service task sweeps the table (every
        # ping timeout): back-to-back reconnect storms would pile them up in memory. A
        # client coming back with that sid gets "Invalid session" either way.
        self.eio.sockets.pop(eio_sid, None)

    def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        """A packet a client sent that cannot be decoded (not Socket.IO, JSON nested beyond
        the interpreter's recursion limit...) is dropped with a log line and a counter."""
        try:
            super()._handle_eio_message(eio_sid, data)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as error:
            metrics.client_packets_dropped.inc()
            log_misbehaviour(
                log,
                "warning",
                "dropped client packet",
                reason="undecodable",
                eio_sid=eio_sid,
                error=type(error).__name__,
                size=len(data),
            )
        binary = self._binary_packet.get(eio_sid)
        limit = self.eio.max_http_buffer_size
        if binary is not None and not inbound.attachments_within(binary, limit):
            # Attachments that never end would hold memory without a bound.
            del self._binary_packet[eio_sid]
            socket = self.eio.sockets.get(eio_sid)
            if socket is not None:
                self.cut(socket, inbound.TOO_BIG, True)

    def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        """An event for a namespace its socket has not joined is dropped and counted here:
        python-socketio would write a warning line for each, as fast as a client sends."""
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not self.manager.is_connected(sid, namespace):
            metrics.client_packets_dropped.inc()
            log_misbehaviour(
                log, "info", "dropped client packet", reason="not_connected", eio_sid=eio_sid
            )
            return
        super()._handle_event(eio_sid, namespace, id, data)

    def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: Any, namespace: str, id: Any
    ) -> None:
        """Called by the socket's reader (async_handlers is off): pass the event's gate, if
        it has one, then start the handler in its own greenlet, as python-socketio would,
        once this socket has fewer than HANDLERS_PER_SOCKET running; until then its reader,
        and so its client, waits."""
        meter = getattr(self.eio.sockets.get(eio_sid), "inbound", None)
        if meter is None:  # its session is gone
            return
        check = self._gates.get((namespace, data[0])) if isinstance(data[0], str) else None
        if check is not None and not check(sid, data[1:]):
            if id is not None:
                ack = self.packet_class(socketio.packet.ACK, namespace=namespace, id=id, data=[])
                self._send_packet(eio_sid, ack)
            return
        slots = meter.handlers
        slots.acquire()
        gevent.spawn(self._run_handler, slots, server, sid, eio_sid, data, namespace, id)

    def _run_handler(self, slots: BoundedSemaphore, *args: Any) -> None:
        try:
            super()._handle_event_internal(*args)
        finally:
            slots.release()

    def cut(self, socket: Any, reason: str, session: bool) -> None:
        """Cut a client for what it sent or does not read (``reason``: inbound.py): counted,
        logged, and with ``session`` its Engine.IO session closed, ``reason`` being the
        disconnect reason of its namespaces; without it only a WebSocket still probing an
        upgrade is closed (by its driver), and polling goes on."""
        metrics.sockets_cut.labels(reason).inc()
        log_misbehaviour(
            log, "warning", "client cut", reason=reason, eio_sid=socket.sid, session=session
        )
        if session:
            socket.close(wait=False, abort=True, reason=reason)

    def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        """The CONNECT answer of /events goes through ``connect_answer``, and the events it
        returns follow it at once: python-socketio makes the socket a recipient of live
        events right after, with no switch to another greenlet in between."""
        if pkt.packet_type != socketio.packet.CONNECT or pkt.namespace != EVENTS:
            super()._send_packet(eio_sid, pkt)
            return
        replay = self.connect_answer(eio_sid, pkt.data)
        super()._send_packet(eio_sid, pkt)
        for data in replay:
            event = self.packet_class(socketio.packet.EVENT, namespace=EVENTS, data=data)
            super()._send_packet(eio_sid, event)

    def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        if (namespace or "/") not in ACCEPTED_NAMESPACES:
            metrics.connections_refused.labels("unknown_namespace").inc()
        with self.pending.connecting(eio_sid):
            super()._handle_connect(eio_sid, namespace, data)
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace or "/")
        if sid is not None and self.manager.is_connected(sid, namespace or "/"):
            self.pending.settled(eio_sid)
