"""gunicorn's gevent worker with less of gunicorn's own work per request.

A Kitsu tab's connect is 4-5 short requests (polling handshake, CONNECT, polls, WebSocket
upgrade), and gunicorn's work around them, outside the application, was 38 % of the
worker's CPU in a reconnect storm (docs/benchmarks.md). Three parts of it are cut here,
and nothing gunicorn checks or answers changes (the same bytes on the wire, the same limits
on what a client sends, the same errors):

- **One send per answer.** gunicorn writes a response's head, each piece of its body and,
  for a chunked body, its end with a ``sendall`` each: three system calls for every
  polling answer (engineio gives no ``Content-Length``, so HTTP/1.1 answers are chunked).
  A body the application returns as a list (every answer of this application) is whole
  when it is returned: head, body and end go out in one send. Any other iterable is still
  written piece by piece as it comes (streaming), each piece in one send with the head
  before it if that is not sent yet. A large body is sent on its own, not copied into
  the head's buffer.
- **The constant environ once.** gunicorn builds the constant part of each request's WSGI
  environ from scratch, with a new ``wsgi.errors`` stream object each time; here it is
  built once per worker (and again when the logs are reopened on SIGUSR1, since the
  stream holds the log files' streams).
- **Settings read once** (``SettledConfig``): the request parser alone reads some twenty.
- **What does not change, not asked again**: a listening socket's address (a system call
  per connection in gunicorn) and the ``Date`` header, formatted once a second.

It also bounds every request head in bytes and in reads (``request_head.py``), and gives a
new connection longer than gunicorn's keep-alive timeout to start its first request
(``first_request.py``).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from typing import Any

import gevent
from gunicorn import http as gunicorn_http  # type: ignore[import-untyped]
from gunicorn import util as gunicorn_util
from gunicorn.http import wsgi  # type: ignore[import-untyped]
from gunicorn.workers.ggevent import GeventWorker  # type: ignore[import-untyped]

from zou_events.config import load_settings
from zou_events.first_request import FirstRequestWait, report_closed
from zou_events.request_head import BoundedHeadParser, refusal_reason

# Above this, a write goes out on its own rather than copied into one buffer with what
# precedes it: a copy of a large body costs more than the system call it saves.
JOIN_MAX = 64 * 1024

# gunicorn's own, before this worker puts its copy in its place.
_gunicorn_base_environ = wsgi.base_environ


class _Coalescing:
    """What a Response writing to it takes for its socket: small writes are kept and sent
    together by ``flush``; a large one is sent on its own, after what was kept."""

    __slots__ = ("parts", "size", "sock")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.parts: list[bytes] = []
        self.size = 0

    def sendall(self, data: bytes) -> None:
        if len(data) > JOIN_MAX:
            self.flush()
            self.sock.sendall(data)
            return
        self.parts.append(data)
        self.size += len(data)
        if self.size > JOIN_MAX:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            data = b"".join(self.parts)  # a single part is not copied
            self.parts = []
            self.size = 0
            # One send takes a small answer whole: gevent's sendall would first ask the
            # kernel for the buffer's size (a system call) to cut the data in chunks.
            sent = self.sock.send(data)
            if sent < len(data):
                self.sock.sendall(memoryview(data)[sent:])


class OneSendResponse(wsgi.Response):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn's HTTP/1 response, whose head reaches the socket in one send with what
    follows it: gunicorn's own code writes to a stand-in for the socket, which then sends
    what it was given at once."""

    sock: Any  # gunicorn's socket, or the stand-in while a write runs

    def _coalesced(self, write: Callable[[], None]) -> None:
        sock = self.sock
        coalescing = self.sock = _Coalescing(sock)
        try:
            write()
        finally:
            # Also when gunicorn raised midway (a body item that is not bytes): what it had
            # written by then reaches the socket, as it would have without this.
            self.sock = sock
            coalescing.flush()

    def write(self, arg: bytes) -> None:
        if self.headers_sent:  # a piece of a streamed body: one send already
            super().write(arg)
        else:  # the head and the first piece
            self._coalesced(partial(super().write, arg))

    def close(self) -> None:
        if self.headers_sent:  # the end of a chunked body: one send already
            super().close()
        else:  # no body (HEAD, an empty iterable): the head, and a chunked body's end
            self._coalesced(super().close)

    def write_whole(self, body: list[bytes]) -> None:
        """The whole body, then the response's end, in one send (or a few, for a large
        body): gunicorn's ``write`` of each item, then its ``close``."""
        write, close = super().write, super().close

        def write_all() -> None:
            for item in body:
                write(item)
            close()

        self._coalesced(write_all)


class ListenerName:
    """A listening socket as gunicorn's connection handler uses it: only its address, which
    never changes (gunicorn asks the kernel for it at every connection)."""

    __slots__ = ("name",)

    def __init__(self, listener: Any) -> None:
        self.name = listener.getsockname()

    def getsockname(self) -> Any:
        return self.name


class DateOfTheSecond:
    """gunicorn's ``http_date``, formatted once per second for the current time (gunicorn
    formats it for every answer): the same text, as the header has whole seconds."""

    def __init__(self, http_date: Callable[..., str], clock: Callable[[], float] = time.time):
        self._http_date = http_date
        self._clock = clock
        self._second = -1
        self._text = ""

    def __call__(self, timestamp: float | None = None) -> str:
        if timestamp is not None:
            return self._http_date(timestamp)
        now = self._clock()
        if int(now) != self._second:
            self._second, self._text = int(now), self._http_date(now)
        return self._text


class SettledConfig:
    """gunicorn's settings as a worker reads them: each read from gunicorn's ``Config``
    once, then kept. ``Config`` looks a setting up by name at every read (about 25 per
    request, 2 % of a reconnect storm's CPU); a worker's settings never change (a reload
    starts new workers)."""

    def __init__(self, cfg: Any) -> None:
        self._cfg = cfg

    def __getattr__(self, name: str) -> Any:  # only for what is not kept yet
        value = getattr(self._cfg, name)
        setattr(self, name, value)
        return value


class LeanGeventWorker(GeventWorker):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn's ``gevent`` worker, answering with ``OneSendResponse`` and copying the
    constant part of the environ."""

    alive: bool
    cfg: Any
    _base_environ: dict[str, Any]

    def init_process(self) -> None:
        self.cfg = SettledConfig(self.cfg)  # in this worker process only
        self._build_base_environ()
        # gunicorn's wsgi.create copies it through this module-level function, in this
        # worker process only (the master serves no request).
        wsgi.base_environ = self._copy_base_environ
        # Every HTTP/1 request head bounded in bytes and reads (request_head.py); gunicorn
        # builds its parser from this module-level name, in this worker process only.
        gunicorn_http.RequestParser = BoundedHeadParser
        # gunicorn's responses call it through this module-level name.
        gunicorn_util.http_date = DateOfTheSecond(gunicorn_util.http_date)
        self._listener_names: dict[Any, ListenerName] = {}
        settings = load_settings()
        self.first_requests = FirstRequestWait(
            settings.first_request_timeout,
            self.cfg.keepalive,
            # half the connections: a storm's one load client held 9,877 silent (benchmarks.md)
            crowd=max(1, settings.worker_connections // 2),
            closed=report_closed,
        )
        super().init_process()

    def run(self) -> None:
        from zou_events import metrics  # the worker has patched the standard library by now

        metrics.connections_awaiting_first_request.set_function(self.first_requests.__len__)
        super().run()

    def _build_base_environ(self) -> None:
        self._base_environ = _gunicorn_base_environ(self.cfg)

    def _copy_base_environ(self, _cfg: Any) -> dict[str, Any]:
        return self._base_environ.copy()

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        client.setblocking(True)  # as gunicorn's handle does: the wait is under a Timeout
        if not self.first_requests.arrives(client):
            gunicorn_util.close(client)
            return
        named = self._listener_names.get(listener)
        if named is None:
            named = self._listener_names[listener] = ListenerName(listener)
        super().handle(named, client, addr)

    def handle_usr1(self, sig: int, frame: Any) -> None:
        """gunicorn reopens the log files (a greenlet, as GeventWorker does it); the
        environ's error stream then takes the new files."""

        def reopen() -> None:
            self.log.reopen_files()
            self._build_base_environ()

        gevent.spawn(reopen)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Every request gunicorn answers itself (a refused head, an application error) is
        counted: gunicorn logs client errors only at debug level."""
        # Imported here: gunicorn's master imports this module before the worker patches the
        # standard library, and metrics' imports (engineio's client: urllib3, ssl) must
        # come after the patching.
        from zou_events import metrics

        metrics.http_requests_refused.labels(refusal_reason(exc)).inc()
        super().handle_error(req, client, addr, exc)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> bool:
        """gunicorn 27's ``AsyncWorker.handle_request`` (with ``GeventWorker``'s exits),
        but for the response class and a list body written whole."""
        try:
            return self._handle_request(listener_name, req, sock, addr)
        except (gevent.GreenletExit, SystemExit):
            return False

    def _handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> bool:
        request_start = datetime.now()
        environ: dict[str, Any] = {}
        resp: OneSendResponse | None = None
        try:
            self.cfg.pre_request(self, req)
            resp, environ = wsgi.create(
                req, sock, addr, listener_name, self.cfg, response_class=OneSendResponse
            )
            environ["wsgi.multithread"] = True
            self.nr += 1
            if self.nr >= self.max_requests and self.alive:
                self.log.info("Autorestarting worker after current request.")
                self.alive = False
            if not self.alive or not self.cfg.keepalive:
                resp.force_close()
            respiter = self.wsgi(environ, resp.start_response)
            if self.is_already_handled(respiter):
                return False
            try:
                _write(resp, respiter, environ["wsgi.file_wrapper"])
            finally:
                self.log.access(resp, req, environ, datetime.now() - request_start)
                if hasattr(respiter, "close"):
                    respiter.close()
            if resp.should_close():
                raise StopIteration()
        except (StopIteration, OSError):
            raise  # gunicorn's handle() closes the connection, or ignores the socket error
        except (Exception, SystemExit):
            if resp is not None and resp.headers_sent:
                # Timeout abort is SystemExit. If the response has started, a 500 on the
                # same socket would corrupt it.
                self.log.exception("Error handling request")
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
                except OSError:
                    pass
                raise StopIteration() from None
            raise
        finally:
            try:
                self.cfg.post_request(self, req, environ, resp)
            except Exception:
                self.log.exception("Exception in post_request hook")
        return True


def _write(resp: OneSendResponse, body: Iterable[bytes], file_wrapper: type) -> None:
    if type(body) is list:
        resp.write_whole(body)
        return
    if isinstance(body, file_wrapper):
        resp.write_file(body)
    else:
        for item in body:
            resp.write(item)
    resp.close()
