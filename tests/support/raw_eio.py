"""Engine.IO v4 long-polling by hand, to see the exact packets the server writes."""

from __future__ import annotations

import json
import socket

import urllib3

RECORD_SEPARATOR = "\x1e"
POLLING = "/socket.io/?EIO=4&transport=polling"


def raw_post(port: int, sid: str, body: bytes, length: int | None = None) -> socket.socket:
    """A polling POST on a fresh connection; ``length`` may announce more than is sent."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = (
        f"POST {POLLING}&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: text/plain;charset=UTF-8\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
    )
    conn.sendall(head.encode() + body)
    return conn


def status_within(conn: socket.socket, timeout: float) -> int | None:
    """The status of the response on ``conn``, None when none came within ``timeout`` (or the
    connection failed first)."""
    conn.settimeout(timeout)
    received = b""
    try:
        while b"\r\n" not in received:
            chunk = conn.recv(4096)
            if not chunk:
                return None
            received += chunk
    except OSError:
        return None
    return int(received.split(b" ", 2)[1])


class Polling:
    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        self.base = base_url + POLLING
        self.headers = headers or {}
        response = urllib3.request("GET", self.base, headers=self.headers, timeout=5)
        assert response.status == 200, response.data
        body = response.data.decode()
        assert body[0] == "0", body
        self.handshake = json.loads(body[1:])
        self.sid = self.handshake["sid"]

    def post(self, *packets: str) -> int:
        response = urllib3.request(
            "POST",
            f"{self.base}&sid={self.sid}",
            body=RECORD_SEPARATOR.join(packets).encode(),
            headers={**self.headers, "Content-Type": "text/plain;charset=UTF-8"},
            timeout=5,
        )
        return response.status

    def get(self, timeout: float = 30) -> list[str]:
        response = urllib3.request(
            "GET", f"{self.base}&sid={self.sid}", headers=self.headers, timeout=timeout
        )
        assert response.status == 200, response.data
        return response.data.decode().split(RECORD_SEPARATOR)
