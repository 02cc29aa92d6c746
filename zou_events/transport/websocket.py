"""WebSocket transport for python-engineio under gunicorn's gevent worker (RFC 6455).

Why our own driver: gevent-websocket forces its own gunicorn worker class and is
unmaintained; simple-websocket under gevent costs a selector (a second file descriptor)
and a reader greenlet per socket, and re-encodes every frame for every recipient. Here a
server frame is built once per message and the same bytes go to every WebSocket recipient
(frames.py), and every write goes through the connection's Outbox (outbox.py), which
coalesces them per turn of the event loop.

No greenlet waits on an idle socket: once the handshake is answered, the connection leaves
gunicorn's request greenlet (which returns) and an I/O watcher of the event loop waits for
its next bytes. Only when they come does a greenlet read them, parse frames and hand each
complete message to the connection's ``Receiver``; it ends once the bytes read are used up,
and the watcher waits again. A greenlet parked on a socket keeps its saved stack (several
KiB) for as long as the socket lives: with thousands of idle sockets, that was most of
their memory. A frame that arrives in pieces keeps its greenlet until the rest comes (or
the read timeout passes).

Reading is fair: the reader gives the event loop a turn after a bounded amount of work
(``_TURN_FRAMES`` frames or ``_TURN_BYTES`` bytes), since a socket whose client writes
faster than it is read never finds its kernel buffer empty; every frame is charged to the
session's inbound budget (inbound.py) before its payload is read.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import hashlib
import socket
import struct
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import gevent
from gevent import socket as gevent_socket

from zou_events.transport.frames import (
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
from zou_events.transport.inbound import (
    BAD_PACKET,
    INBOUND_FLOOD,
    PROTOCOL_ERROR,
    SLOW_CONSUMER,
    TOO_BIG,
    Cut,
    InboundMeter,
)
from zou_events.transport.outbox import Outbox

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLOSE_NORMAL, CLOSE_PROTOCOL_ERROR, CLOSE_UNSUPPORTED_DATA = 1000, 1002, 1003
CLOSE_INVALID_DATA, CLOSE_POLICY, CLOSE_TOO_BIG = 1007, 1008, 1009
_RECV_SIZE = 65536
_TURN_FRAMES = 32  # frames read in a row before the reader yields to the event loop
_TURN_BYTES = 256 * 1024  # payload bytes read in a row before it yields
_KNOWN_OPCODES = frozenset((OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG))
_utf8_decoder = codecs.getincrementaldecoder("utf-8")


class ProtocolError(Exception):
    """Fail the connection: ``code`` goes in the close frame, ``reason`` (inbound.py) is
    what the cut is counted as."""

    def __init__(self, code: int, detail: str, reason: str = PROTOCOL_ERROR) -> None:
        super().__init__(detail)
        self.code = code
        self.reason = reason


def valid_close_code(code: int) -> bool:
    """RFC 6455 §7.4: the codes an endpoint may send (1004-1006 and 1015 are reserved,
    1012-1014 registered since), or an application's (3000-4999)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def close_reply(payload: bytes) -> bytes:
    """The payload answering a client's close frame: its status code echoed, or nothing
    when it gave none (1005, "no status", is never sent)."""
    if not payload:
        return b""
    if len(payload) == 1:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "close frame with a one-byte payload")
    (code,) = struct.unpack("!H", payload[:2])
    if not valid_close_code(code):
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "invalid close code")
    try:
        payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(CLOSE_INVALID_DATA, "close reason is not UTF-8") from None
    return payload[:2]


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


class Receiver(Protocol):
    """What a connection's messages go to (websocket_session.py for Engine.IO)."""

    def received(self, message: str | bytes) -> bool:
        """Take one complete message; False to end the connection."""
        ...

    def ended(self) -> None:
        """The connection is over (whoever ended it); called once."""
        ...


# receiver(the handler's owner, e.g. engineio's socket, the connection): its Receiver
OpenReceiver = Callable[[Any, "WebSocket"], Receiver]


class WebSocket:
    """The engineio ``websocket`` driver for one connection.

    engineio calls ``WebSocket(handler, server)(environ, start_response)``; server.py binds
    the rest beforehand: ``receiver`` builds what the messages go to from the handler's
    owner (engineio's socket, whose own blocking handler is not used), ``cut`` is told
    when the connection is failed for what its client sent or does not read, ``accept``
    says whether a message is one the application can take (an Engine.IO packet), others
    fail the connection with 1003. The outbox is also set on engineio's socket as
    ``outbox``, for the fan-out to write to it directly.
    """

    __slots__ = (
        "_accept",
        "_buffer",
        "_close_sent",
        "_cut",
        "_ended",
        "_failed",
        "_meter",
        "_open_receiver",
        "_outbox",
        "_receiver",
        "_send_limits",
        "_session",
        "_sock",
        "_turn_bytes",
        "_turn_frames",
        "_watcher",
        "max_message_size",
    )

    def __init__(
        self,
        handler: Callable[..., Any] | None,
        server: Any,
        send_limits: tuple[int, int],
        cut: Cut | None = None,
        accept: Callable[[str | bytes], bool] | None = None,
        *,
        receiver: OpenReceiver,
    ) -> None:
        self.max_message_size: int = server.max_http_buffer_size
        self._send_limits = send_limits  # (messages, bytes) of the outbox
        self._cut = cut
        self._accept = accept
        self._open_receiver = receiver
        self._session: Any = getattr(handler, "__self__", None)  # engineio's socket
        self._meter: InboundMeter | None = getattr(self._session, "inbound", None)
        self._sock: socket.socket | None = None
        self._outbox: Outbox | None = None
        self._receiver: Receiver | None = None
        self._watcher: Any = None  # the event loop's read watcher, while idle
        self._buffer = bytearray()
        self._close_sent = False
        self._failed = False
        self._ended = False
        self._turn_frames = 0
        self._turn_bytes = 0

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
        # The connection outlives this request: gunicorn closes its (detached) socket
        # object when the request ends, not the connection.
        self._sock = sock = gevent_socket.socket(fileno=sock.detach())
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + accept_key(key).encode("ascii")
            + b"\r\n\r\n"
        )
        self._outbox = Outbox(sock, *self._send_limits)
        if self._session is not None:
            self._session.outbox = self._outbox
        try:
            self._receiver = self._open_receiver(self._session, self)
            self._watcher = gevent.get_hub().loop.io(sock.fileno(), 1)
            self._watcher.start(self._readable)
        except BaseException:
            self._end()
            raise
        # gunicorn treats StopIteration as "connection handled, close it".
        raise StopIteration

    # --- what the receiver and engineio use ---------------------------------------------

    def set_read_timeout(self, seconds: float | None) -> None:
        """How long the rest of a frame that came in part may take."""
        if self._sock is not None:
            self._sock.settimeout(seconds)

    def send(self, message: str | bytes) -> None:
        shared = shared_frame_of(message)
        if shared is not None:
            self._write(shared.frame, shared)
        else:
            self._write(message_frame(message))
        if self._over_send_limits():
            error = ProtocolError(CLOSE_POLICY, "send queue full", SLOW_CONSUMER)
            self._send_close(error.code, str(error))
            self._shutdown()  # the reader sees the end
            # The cut closes the session, whose handlers may wait: not in the sender's
            # greenlet (the fan-out, the pinger, another session's handler).
            gevent.spawn(self._fail, error)

    def close(self) -> None:
        self._send_close(CLOSE_NORMAL, "")
        self._shutdown()

    # --- reading ------------------------------------------------------------------------

    def _readable(self) -> None:
        """In the event loop: bytes (or the end) came, a greenlet reads them."""
        self._watcher.stop()
        gevent.spawn(self._read_turn)

    def _read_turn(self) -> None:
        """Read until the bytes that came are used up; end the connection otherwise (its
        end read, a protocol error, the receiver's refusal, or anything unexpected)."""
        idle = False
        try:
            idle = self._read_messages()
        except ProtocolError as error:
            self._fail(error)
        except OSError:
            pass
        finally:
            if not idle:
                self._end()

    def _read_messages(self) -> bool:
        """Hand on complete messages: True once none is left to read (the socket is idle),
        False when the connection is to end."""
        while True:
            message = self._read_message()
            if message is None:
                return False
            if self._accept is not None and not self._accept(message):
                raise ProtocolError(CLOSE_UNSUPPORTED_DATA, "not an Engine.IO packet", BAD_PACKET)
            assert self._receiver is not None
            if not self._receiver.received(message):
                return False
            if not self._buffer:
                self._idle()
                return True

    def _idle(self) -> None:
        """Nothing left to read: wait in the event loop, not in a greenlet."""
        if self._buffer.__sizeof__() > 4096:  # a big message's room is not kept
            self._buffer = bytearray()
        self._watcher.start(self._readable)

    # --- internals ----------------------------------------------------------------------

    def _write(self, frame: bytes, shared: SharedFrame | None = None) -> None:
        assert self._outbox is not None
        self._outbox.put(frame, shared)

    def _over_send_limits(self) -> bool:
        return self._outbox is not None and not self._outbox.closed and self._outbox.over_limit()

    def _fail(self, error: ProtocolError) -> None:
        """Close with ``error``'s code and report the cut, once."""
        self._send_close(error.code, str(error))
        if self._failed:
            return
        self._failed = True
        if self._cut is not None and self._session is not None:
            # Until the upgrade completes, polling is still the session's transport.
            self._cut(self._session, error.reason, bool(self._session.upgraded))

    def _send_close(self, code: int | None, reason: str) -> None:
        """``code`` None: a close frame without a status code."""
        if self._close_sent or self._sock is None:
            return
        self._close_sent = True
        payload = b"" if code is None else struct.pack("!H", code) + reason.encode()[:123]
        self._write(encode_frame(payload, OP_CLOSE))

    def _shutdown(self) -> None:
        if self._outbox is not None:
            self._outbox.close()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def _end(self) -> None:
        """The connection is over: tell the receiver, release the socket, once."""
        if self._ended:
            return
        self._ended = True
        self._shutdown()
        self._buffer = bytearray()  # up to a read's 64 KiB, for whatever still holds this
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher.close()
            self._watcher = None
        try:
            if self._receiver is not None:
                self._receiver.ended()
        finally:
            if self._sock is not None:
                self._sock.close()

    def _fill(self) -> None:
        """One read of what the kernel has (waiting for something if it has nothing)."""
        assert self._sock is not None
        chunk = self._sock.recv(_RECV_SIZE)
        if not chunk:
            raise ConnectionResetError("peer closed the connection")
        self._buffer += chunk

    def _take(self, count: int) -> bytes:
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def _read_exact(self, count: int) -> bytes:
        while len(self._buffer) < count:
            self._fill()
        return self._take(count)

    def _read_text(self, length: int, mask: bytes, decoder: Any, final: bool) -> str:
        """A text frame's payload, checked as its bytes arrive: invalid UTF-8 fails the
        connection before the rest of the frame comes (RFC 6455 §8.1, "fail fast")."""
        text: list[str] = []
        offset = 0
        while offset < length:
            if not self._buffer:
                self._fill()
            chunk = self._take(min(len(self._buffer), length - offset))
            key = mask[offset % 4 :] + mask[: offset % 4]
            text.append(decoder.decode(_unmask(chunk, key), False))
            offset += len(chunk)
        if final:
            text.append(decoder.decode(b"", True))
        return "".join(text)

    def _take_turn(self, length: int) -> None:
        """Account for one frame; past the turn's share, let the other greenlets run."""
        self._turn_frames += 1
        self._turn_bytes += length
        if self._turn_frames >= _TURN_FRAMES or self._turn_bytes >= _TURN_BYTES:
            self._turn_frames = self._turn_bytes = 0
            gevent.sleep(0)

    def _read_header(self, pending: int) -> tuple[bool, int, int, bytes]:
        """(fin, opcode, payload length, mask) of the next frame, with ``pending`` bytes of a
        fragmented message read before it; charged to the budget before its payload is read."""
        first, second = self._read_exact(2)
        fin, opcode = bool(first & 0x80), first & 0x0F
        if first & 0x70:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "no extension was negotiated")
        if opcode not in _KNOWN_OPCODES:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "reserved opcode")
        if not second & 0x80:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exact(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exact(8))
        if opcode >= OP_CLOSE:
            if not fin or length > 125:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "invalid control frame")
        elif pending + length > self.max_message_size:  # fragments count in total
            raise ProtocolError(CLOSE_TOO_BIG, "message too big", TOO_BIG)
        if self._meter is not None and not self._meter.charge(length):
            raise ProtocolError(CLOSE_POLICY, "inbound budget exceeded", INBOUND_FLOOD)
        self._take_turn(length)
        return fin, opcode, length, self._read_exact(4)

    def _control(self, opcode: int, payload: bytes) -> bool:
        """Answer a control frame; True when it closes the connection."""
        if opcode == OP_CLOSE:
            reply = close_reply(payload)
            self._send_close(struct.unpack("!H", reply)[0] if reply else None, "")
            return True
        if opcode == OP_PING:
            self._write(encode_frame(payload, OP_PONG))
            if self._over_send_limits():
                raise ProtocolError(CLOSE_POLICY, "pongs not read", SLOW_CONSUMER)
        return False

    def _read_message(self) -> str | bytes | None:
        parts: list[Any] = []
        size = 0
        message_opcode: int | None = None
        decoder: Any = None  # a text message is checked as its bytes arrive
        while True:
            fin, opcode, length, mask = self._read_header(size)
            if opcode >= OP_CLOSE:
                if self._control(opcode, _unmask(self._read_exact(length), mask)):
                    return None
                continue
            if opcode == OP_CONTINUATION:
                if message_opcode is None:
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, "unexpected continuation frame")
            elif message_opcode is not None:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "expected a continuation frame")
            else:
                message_opcode = opcode
                if opcode == OP_TEXT:
                    decoder = _utf8_decoder()
            size += length
            if decoder is not None:
                try:
                    parts.append(self._read_text(length, mask, decoder, fin))
                except UnicodeDecodeError:
                    raise ProtocolError(CLOSE_INVALID_DATA, "invalid UTF-8") from None
            else:
                parts.append(_unmask(self._read_exact(length), mask))
            if fin:
                break
        if decoder is not None:
            return parts[0] if len(parts) == 1 else "".join(parts)
        return parts[0] if len(parts) == 1 else b"".join(parts)
