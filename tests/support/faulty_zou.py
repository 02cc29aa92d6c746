"""A stand-in for a faulty Zou API: it accepts TCP connections and never answers.

This is not a fake of Zou's behaviour (the Zou compatibility tier tests against Zou itself):
it simulates a fault, a Zou whose gunicorn accepts connections but is hung. Optionally, some
paths get a canned answer, to simulate a partial outage (``/auth/authenticated`` answers,
``/data/playlists/…`` hangs); the canned body only has the fields zou-events reads
(``zou_events/zou_api.py``), in the shape of Zou 1.0.97's answer.
"""

from __future__ import annotations

import json
import selectors
import socket
import threading
from collections import Counter

ACTIVE_USER = {
    "authenticated": True,
    "user": {"active": True, "role": "user", "preview_project_id": None, "is_bot": False},
}


class HungZou:
    """Listens on a free loopback port; ``answers`` maps a path prefix to a JSON body (200)."""

    def __init__(self, answers: dict[str, object] | None = None) -> None:
        self.answers = answers or {}
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.connections = 0  # TCP connections accepted
        self.requests: Counter[str] = Counter()  # request paths seen (up to the query string)
        self._held: list[socket.socket] = []
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.listener, selectors.EVENT_READ)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def counts(self) -> tuple[int, int]:
        """(connections accepted, requests read) so far."""
        with self._lock:
            return self.connections, sum(self.requests.values())

    def open_connections(self) -> int:
        """Connections the clients have not closed yet."""
        with self._lock:
            return len(self._held)

    def _serve(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.1):
                if key.fileobj is self.listener:
                    self._accept()
                else:
                    self._read(key.fileobj)  # type: ignore[arg-type]

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        with self._lock:
            self.connections += 1
            self._held.append(conn)
        self._selector.register(conn, selectors.EVENT_READ, data=bytearray())

    def _read(self, conn: socket.socket) -> None:
        buffer: bytearray = self._selector.get_key(conn).data
        try:
            chunk = conn.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:  # the client gave up: forget the connection
            self._selector.unregister(conn)
            conn.close()
            with self._lock:
                self._held.remove(conn)
            return
        buffer += chunk
        if b"\r\n\r\n" not in buffer:
            return
        path = buffer.split(b" ", 2)[1].decode("latin-1").split("?")[0]
        del buffer[:]
        with self._lock:
            self.requests[path] += 1
        for prefix, body in self.answers.items():
            if path.startswith(prefix):
                payload = json.dumps(body).encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
                )
                return
        # anything else: silence, the connection stays open

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
        self.listener.close()
        self._selector.close()

    def __enter__(self) -> HungZou:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
