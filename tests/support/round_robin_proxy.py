"""A TCP load balancer over several real servers, each new connection to the next one, as
HAProxy or a cloud load balancer in round-robin mode does. In front of independent Redis
servers it reproduces a real mistake: a subscription on one server, publications on another.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
from collections.abc import Callable


class RoundRobinProxy:
    def __init__(self, backends: list[int]) -> None:
        self._backends = itertools.cycle(backends)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        accepting(self._listener, self._connect)

    def _connect(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", next(self._backends)), timeout=5)
        upstream.settimeout(None)
        self._sockets += [client, upstream]
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=pipe, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> RoundRobinProxy:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def accepting(listener: socket.socket, handle: Callable[[socket.socket], None]) -> None:
    """A thread that hands each connection ``listener`` accepts to ``handle``, until the
    listener is shut down."""

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed
                return
            handle(client)

    threading.Thread(target=accept, daemon=True).start()


def pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy ``source`` to ``sink`` until it ends, then end ``sink``'s sending side."""
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
