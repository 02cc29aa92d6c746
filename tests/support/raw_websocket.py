"""A WebSocket client that sends exactly the frames it is told (RFC 6455 by hand), malformed
ones included, to see how the server answers them."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from typing import Any

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(
    payload: bytes,
    opcode: int = OP_TEXT,
    *,
    fin: bool = True,
    masked: bool = True,
    rsv: int = 0,
    length: int | None = None,
) -> bytes:
    """One client frame; ``length`` overrides the announced payload length."""
    announced = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if masked else 0
    if announced < 126:
        header = struct.pack("!BB", first, mask_bit | announced)
    elif announced < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, announced)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, announced)
    if not masked:
        return header + payload
    key = os.urandom(4)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class FrameReader:
    """Reads server frames from ``sock``; what arrives beyond a frame waits in ``_buffer``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    def _read_exact(self, count: int) -> bytes:
        while len(self._buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("closed by the server")
            self._buffer += chunk
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def read_frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next server frame (server frames are not masked)."""
        first, second = self._read_exact(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exact(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exact(8))
        return first & 0x0F, self._read_exact(length)


class RawWebSocket(FrameReader):
    def __init__(self, port: int, query: str, cookie: str | None = None, timeout: float = 5):
        super().__init__(socket.create_connection(("127.0.0.1", port), timeout=timeout))
        key = base64.b64encode(os.urandom(16)).decode()
        headers = [
            f"GET /socket.io/?{query} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if cookie:
            headers.append(f"Cookie: {cookie}")
        self.sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed during the handshake: {self._buffer!r}")
            self._buffer += chunk
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ", 2)[1])

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_text(self, text: str) -> None:
        self.send(frame(text.encode()))

    def read_text(self) -> str:
        opcode, payload = self.read_frame()
        assert opcode == OP_TEXT, (opcode, payload)
        return payload.decode()

    def close_code(self) -> int | None:
        """Read until the server's close frame: its status code (None: closed without one)."""
        try:
            while True:
                opcode, payload = self.read_frame()
                if opcode == OP_CLOSE:
                    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        except (ConnectionError, TimeoutError):
            return None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class EventsSocket:
    """A raw /events socket whose Socket.IO sid is known (to aim room changes at it), read
    only when asked: every packet is kept in its socket buffer until then."""

    def __init__(self, port: int, cookie: str) -> None:
        self.ws = RawWebSocket(port, "EIO=4&transport=websocket", cookie)
        assert self.ws.status == 101, self.ws.status
        assert self.ws.read_text().startswith("0{")
        self.ws.send_text("40/events,")
        connected = self.ws.read_text()
        assert connected.startswith("40/events,"), connected
        answer = json.loads(connected.removeprefix("40/events,"))
        self.sid: str = answer["sid"]
        # A cookie socket may get connection state recovery's pid: its events then end with
        # their offset, which socket.io-client takes off (next_event does the same).
        self.offsets = "pid" in answer

    def send_event(self, event: str, payload: str) -> None:
        """``event`` with one argument, ``payload``, as raw JSON text."""
        self.ws.send_text(f'42/events,["{event}",{payload}]')

    def next_event(self, event: str, timeout: float = 5.0) -> list[Any]:
        """The arguments of the next ``event`` (pings answered, other packets skipped)."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            self.ws.sock.settimeout(remaining)
            try:
                packet = self.ws.read_text()
            except TimeoutError:
                break
            if packet == "2":
                self.ws.send_text("3")
            elif packet.startswith("42/events,"):
                name, *args = json.loads(packet.removeprefix("42/events,"))
                if self.offsets and args and isinstance(args[-1], str):
                    args.pop()
                if name == event:
                    return args
        raise AssertionError(f"no {event} within {timeout}s")

    def close(self) -> None:
        self.ws.close()
