"""The connect and disconnect handlers of / and /events: authentication, the session
table, and the reason each socket left (thin: the work lives elsewhere)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import socketio
import structlog

from zou_events import metrics
from zou_events.auth import AuthRefused, Identity
from zou_events.authenticator import Authenticator
from zou_events.log_limit import log_misbehaviour
from zou_events.recovery import NO_RECOVERY, NoRecovery, Recovery
from zou_events.sessions import Sessions
from zou_events.transport.inbound import CUT_REASONS
from zou_events.transport.server import EVENTS, EventServer

log = structlog.get_logger("zou_events.connections")

# Kicks after which a browser should come back by itself (see Kicks.kick).
RECONNECT_REASONS = frozenset({"token_expired"})
SERVER_SHUTDOWN = "server_shutdown"  # the reason of the sockets a drain closes

# Run when an /events socket is gone, with its sid, identity and disconnect reason: rooms.
GoneCallback = Callable[[str, Identity, str], None]

_DISCONNECT_REASONS = {
    "client disconnect": "client",
    "ping timeout": "ping_timeout",
    "transport close": "transport",
    "transport error": "transport",
    **{reason: reason for reason in CUT_REASONS},  # EventServer.cut
}


class Kicks:
    """/events sockets disconnected on the server's initiative, and why: the reason their
    disconnect is counted and logged under."""

    def __init__(self, sio: EventServer) -> None:
        self.sio = sio
        self._reasons: dict[str, str] = {}

    def kick(self, sid: str, identity: Identity, reason: str) -> None:
        """Disconnect an /events socket, with a metrics reason.

        A Socket.IO DISCONNECT is final for socket.io-client (no reconnection): right for a
        revoked token or an abusive client. At the expiry of a cookie's token the transport
        is ended instead, as the drain does: the browser reconnects by itself with its
        current cookie (Kitsu renews it), accepted if renewed, refused with Zou's message if
        not. A token from a header or the auth payload is the client's own setting: it would
        come back with the same expired token (python-socketio, gazu's client, retries a
        refused connection forever), so it gets the final DISCONNECT.
        """
        self._reasons[sid] = reason
        log.info("disconnecting socket", sid=sid, reason=reason)
        if reason not in RECONNECT_REASONS or identity.source != "cookie":
            self.sio.disconnect(sid, namespace=EVENTS)
            return
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, EVENTS)
        if eio_sid is not None:
            self.sio.end_transport(eio_sid)

    def shutting_down(self, sids: Iterable[str]) -> None:
        """These sockets are about to be drained: their disconnects are the server's."""
        for sid in sids:
            self._reasons[sid] = SERVER_SHUTDOWN

    def reason(self, sid: str) -> str | None:
        """Why ``sid`` was disconnected, if the server did it (asked once, at its disconnect)."""
        return self._reasons.pop(sid, None)


class ConnectionHandlers:
    """connect/disconnect on / and /events; keeps Sessions exact whatever a handler does."""

    def __init__(
        self,
        sio: EventServer,
        authenticator: Authenticator,
        sessions: Sessions,
        kicks: Kicks,
        on_events_disconnect: Sequence[GoneCallback] = (),
        recovery: Recovery | NoRecovery = NO_RECOVERY,
    ):
        self.sio = sio
        self.authenticator = authenticator
        self.sessions = sessions
        self.kicks = kicks
        self.recovery = recovery
        self.default_namespace_sids: set[str] = set()
        self.on_events_disconnect = on_events_disconnect
        sio.on("connect", self.connect_events, namespace=EVENTS)
        sio.on("disconnect", self.disconnect_events, namespace=EVENTS)
        sio.on("connect", self.connect_default, namespace="/")
        sio.on("disconnect", self.disconnect_default, namespace="/")

    def connect_events(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            identity = self.authenticator.authenticate(environ, auth)
        except AuthRefused as refused:
            metrics.connections_refused.labels(refused.reason).inc()
            self.recovery.refused(auth)
            log_misbehaviour(
                log, "info", "connection refused", reason=refused.reason, sid=sid, namespace=EVENTS
            )
            raise socketio.exceptions.ConnectionRefusedError(refused.message) from None
        self.sessions.add(sid, identity)
        self.recovery.claim(sid, identity, auth)
        metrics.connections_accepted.labels(EVENTS).inc()
        log.info(
            "connection accepted",
            sid=sid,
            namespace=EVENTS,
            person_id=identity.person_id,
            identity_type=identity.identity_type,
            auth_source=identity.source,
        )

    def disconnect_events(self, sid: str, reason: str = "") -> None:
        identity = self.sessions.remove(sid)
        if identity is None:
            return
        label = self.kicks.reason(sid) or _DISCONNECT_REASONS.get(reason, "server")
        self.recovery.disconnected(sid, label)
        metrics.disconnects.labels(EVENTS, label).inc()
        log.info(
            "socket disconnected",
            sid=sid,
            namespace=EVENTS,
            person_id=identity.person_id,
            reason=label,
        )
        for callback in self.on_events_disconnect:
            try:
                callback(sid, identity, label)
            except Exception:
                log.exception("disconnect cleanup failed", sid=sid, person_id=identity.person_id)

    def connect_default(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        # Zou accepts "/" without authentication; nothing is ever emitted there.
        self.default_namespace_sids.add(sid)
        metrics.connections_accepted.labels("/").inc()

    def disconnect_default(self, sid: str, reason: str = "") -> None:
        if sid in self.default_namespace_sids:
            self.default_namespace_sids.discard(sid)
            metrics.disconnects.labels("/", _DISCONNECT_REASONS.get(reason, "server")).inc()

    def counters(self) -> dict[str, Any]:
        """This instance's own counters, as /stats sums them over the cluster."""
        counts = {"/": len(self.default_namespace_sids), EVENTS: len(self.sessions)}
        return {"nb_connections": counts[EVENTS], "namespaces": counts}
