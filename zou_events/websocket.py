"""WebSocket transport for python-engineio under gunicorn's gevent worker (RFC 6455).

Why our own driver: gevent-websocket forces its own gunicorn worker class and is
unmaintained; simple-websocket under gevent costs a selector (a second file descriptor)
and a reader greenlet per socket, and re-encodes every frame for every recipient. Here a
server frame is built once per message and the same bytes go to every WebSocket recipient
(frames.py), and every write goes through the connection's Outbox (outbox.py), which
coalesces them per turn of the event loop.

engineio calls ``WebSocket(handler, server)(environ, start_response)`` (the send limits are
bound beforehand by server.py), then the handler
uses ``wait()``, ``send()`` and ``close()``; this module keeps that interface. The outbox is
also set on engineio's socket as ``outbox``, for the fan-out to write to it directly.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import struct
from collections.abc import Callable, Iterable
from typing import Any

from zou_events.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    SharedFrame,
    encode_frame,
    message_frame,
    shared_frame_of,
)
from zou_events.outbox import Outbox

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, CLOSE_INVALID_DATA, CLOSE_TOO_BIG = 1000, 1002, 1007, 1009
_RECV_SIZE = 65536


class ProtocolError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def _unmask(data: bytes, mask: bytes) -> bytes:
    length = len(data)
    if length == 0:
        return b""
    key = (mask * (length // 4 + 1))[:length]
    value = int.from_bytes(data, "little") ^ int.from_bytes(key, "little")
    return value.to_bytes(length, "little")


def accept_key(client_key: str) -> str:
    digest = hashlib.sha1(client_key.encode("ascii") + _GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def _valid_client_key(key: str) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        return False


class WebSocket:
    """The engineio ``websocket`` driver for one connection."""

    def __init__(
        self, handler: Callable[[WebSocket], Any], server: Any, send_limits: tuple[int, int]
    ) -> None:
        self.app = handler
        self.max_message_size: int = server.max_http_buffer_size
        self._send_limits = send_limits  # (messages, bytes) of the outbox
        self._sock: socket.socket | None = None
        self._outbox: Outbox | None = None
        self._buffer = bytearray()
        self._close_sent = False
        self.environ: dict[str, Any] = {}

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "")
        if (
            sock is None
            or environ.get("HTTP_SEC_WEBSOCKET_VERSION") != "13"
            or not (_valid_client_key(key))
        ):
            start_response("400 BAD REQUEST", [("Content-Type", "text/plain")])
            return [b"Invalid WebSocket handshake"]
        self.environ = environ
        self._sock = sock
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + accept_key(key).encode("ascii")
            + b"\r\n\r\n"
        )
        self._outbox = Outbox(sock, *self._send_limits)
        owner = getattr(self.app, "__self__", None)  # engineio's socket
        if owner is not None:
            owner.outbox = self._outbox
        try:
            self.app(self)
        finally:
            self._shutdown()
        # gunicorn treats StopIteration as "connection handled, close it".
        raise StopIteration

    # --- engineio interface -------------------------------------------------------------

    def send(self, message: str | bytes) -> None:
        shared = shared_frame_of(message)
        if shared is not None:
            self._write(shared.frame, shared)
        else:
            self._write(message_frame(message))

    def wait(self) -> str | bytes | None:
        """The next complete message, or None once the connection is closed."""
        try:
            return self._read_message()
        except ProtocolError as error:
            self._send_close(error.code, str(error))
            return None
        except OSError:
            return None

    def close(self) -> None:
        self._send_close(CLOSE_NORMAL, "")
        self._shutdown()

    # --- internals ----------------------------------------------------------------------

    def _write(self, frame: bytes, shared: SharedFrame | None = None) -> None:
        assert self._outbox is not None
        self._outbox.put(frame, shared)

    def _send_close(self, code: int, reason: str) -> None:
        if self._close_sent or self._sock is None:
            return
        self._close_sent = True
        self._write(encode_frame(struct.pack("!H", code) + reason.encode()[:120], OP_CLOSE))

    def _shutdown(self) -> None:
        if self._outbox is not None:
            self._outbox.close()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def _read_exact(self, count: int) -> bytes:
        assert self._sock is not None
        while len(self._buffer) < count:
            chunk = self._sock.recv(_RECV_SIZE)
            if not chunk:
                raise ConnectionResetError("peer closed the connection")
            self._buffer += chunk
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def _read_frame(self) -> tuple[bool, int, bytes]:
        first, second = self._read_exact(2)
        fin, opcode = bool(first & 0x80), first & 0x0F
        if first & 0x70:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "no extension was negotiated")
        if not second & 0x80:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exact(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exact(8))
        if opcode >= OP_CLOSE and (not fin or length > 125):
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "invalid control frame")
        if length > self.max_message_size:
            raise ProtocolError(CLOSE_TOO_BIG, "message too big")
        mask = self._read_exact(4)
        return fin, opcode, _unmask(self._read_exact(length), mask)

    def _read_message(self) -> str | bytes | None:
        parts: list[bytes] = []
        size = 0
        message_opcode: int | None = None
        while True:
            fin, opcode, payload = self._read_frame()
            if opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else CLOSE_NORMAL
                self._send_close(code if 1000 <= code < 5000 else CLOSE_PROTOCOL_ERROR, "")
                return None
            if opcode == OP_PING:
                self._write(encode_frame(payload, OP_PONG))
                continue
            if opcode == OP_PONG:
                continue
            if opcode in (OP_TEXT, OP_BINARY):
                if message_opcode is not None:
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, "expected a continuation frame")
                message_opcode = opcode
            elif opcode != OP_CONTINUATION or message_opcode is None:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "unexpected frame")
            size += len(payload)
            if size > self.max_message_size:
                raise ProtocolError(CLOSE_TOO_BIG, "message too big")
            parts.append(payload)
            if fin:
                break
        data = b"".join(parts)
        if message_opcode == OP_BINARY:
            return data
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(CLOSE_INVALID_DATA, "invalid UTF-8") from None
