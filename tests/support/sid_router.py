"""nginx's routing of Engine.IO sessions, as a TCP proxy for tests: a request naming a
session (``sid=<tag>-<port>.<id>``, session_ids.py) goes to the instance of that port, a
handshake to the next instance that accepts a connection (round robin). It reads the
request line only, then pipes both ways: socket.io-client in Node makes one connection per
polling request and one per WebSocket, so the first request decides the whole connection.

``cut()`` closes every connection and refuses new ones until ``restore()``: a client's
network gone, its server still up (the server sees its transport close).
"""

from __future__ import annotations

import contextlib
import itertools
import re
import socket
import threading

from tests.support.round_robin_proxy import accepting, pipe

_SID_PORT = re.compile(rb"[?&]sid=[a-z0-9]+-(\d+)\.")


class SidRouter:
    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self._next = itertools.cycle(ports)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        accepting(self._listener, self._in_thread)

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            sockets, self._open = self._open, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def _in_thread(self, client: socket.socket) -> None:
        threading.Thread(target=self._route, args=(client,), daemon=True).start()

    def _route(self, client: socket.socket) -> None:
        head = b""
        with contextlib.suppress(OSError):
            while b"\r\n" not in head and len(head) < 65536:
                chunk = client.recv(65536)
                if not chunk:
                    break
                head += chunk
        upstream = self._connect(head.partition(b"\r\n")[0])
        with self._lock:
            if upstream is None or self._cut:
                client.close()
                if upstream is not None:
                    upstream.close()
                return
            self._open |= {client, upstream}
        with contextlib.suppress(OSError):
            upstream.settimeout(None)
            upstream.sendall(head)
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    def _connect(self, request_line: bytes) -> socket.socket | None:
        named = _SID_PORT.search(request_line)
        candidates = [int(named.group(1))] if named else [next(self._next) for _ in self.ports]
        for port in candidates:
            with contextlib.suppress(OSError):
                return socket.create_connection(("127.0.0.1", port), timeout=5)
        return None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        self.cut()

    def __enter__(self) -> SidRouter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
