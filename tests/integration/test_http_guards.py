"""HTTP guards (issue 10), against a real server with raw sockets: every polling request is
answered within a bounded time, a new connection has ZOU_EVENTS_FIRST_REQUEST_TIMEOUT to
start its first request and the keep-alive timeout to finish its head, admission is decided
on the session table and not on the query string's shape, and Engine.IO sessions that join
no namespace are closed in time and hold no place under the socket cap meanwhile."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import urllib3

from tests.resilience.support import metric
from tests.support.js_client import JsClient
from tests.support.raw_eio import POLLING, Polling, raw_post, status_within
from tests.support.server import ServerHandle, start_server, wait_until
from tests.support.tokens import make_token

MAX_PAYLOAD = 65536
BODY_TIMEOUT = 1.0
KEEPALIVE = 2.0  # gunicorn_config.keepalive: how long a connection may idle between requests
FIRST_REQUEST_TIMEOUT = 4.0
CLOSED = "zou_events_connections_closed_before_request_total"


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    env = {
        "ZOU_EVENTS_MAX_PAYLOAD_BYTES": str(MAX_PAYLOAD),
        "ZOU_EVENTS_REQUEST_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "ZOU_EVENTS_FIRST_REQUEST_TIMEOUT": str(FIRST_REQUEST_TIMEOUT),
    }
    with start_server(env) as handle:
        yield handle


def closed_within(conn: socket.socket, timeout: float) -> bool:
    """Whether the server closes ``conn`` within ``timeout`` (whatever it still sends)."""
    deadline = time.monotonic() + timeout
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            conn.settimeout(remaining)
            if conn.recv(4096) == b"":
                return True
    except TimeoutError:
        return False
    except OSError:
        return True
    return False


def joined(server: ServerHandle) -> Polling:
    """An Engine.IO session that joined "/" (which needs no token)."""
    polling = Polling(server.url)
    assert polling.post("40") == 200
    assert any(packet.startswith("40{") for packet in polling.get(timeout=5))
    return polling


def refused(server: ServerHandle, reason: str) -> float:
    return metric(server, f'zou_events_polling_requests_refused_total{{reason="{reason}"}}')


@pytest.mark.parametrize(
    "body",
    [b"6", b"2", b"7", b"0", b"9"],
    ids=["noop", "ping_from_client", "type_7", "open", "unknown_type"],
)
def test_a_packet_a_client_may_not_send_is_answered_400_at_once(
    server: ServerHandle, body: bytes
) -> None:
    session = Polling(server.url)
    with raw_post(server.port, session.sid, body) as conn:
        assert status_within(conn, 1.0) == 400
    assert refused(server, "bad_request") >= 1
    # engineio closed the session: it is gone, not stuck half-closed
    later = urllib3.request("GET", f"{server.url}{POLLING}&sid={session.sid}", timeout=5)
    assert later.status == 400


@pytest.mark.parametrize(
    "body",
    [b"4\xff\xfe", b"x", b"4\x1e", "\x1e".join(["42/events,[]"] * 17).encode()],
    ids=["not_utf8", "not_a_packet", "empty_packet", "more_than_16_packets"],
)
def test_an_undecodable_body_is_answered_400(server: ServerHandle, body: bytes) -> None:
    session = Polling(server.url)
    with raw_post(server.port, session.sid, body) as conn:
        assert status_within(conn, 1.0) == 400
    assert refused(server, "invalid_body") >= 1
    assert "post request handler error" not in server.logs()


def test_an_oversized_body_is_refused_before_it_is_sent(server: ServerHandle) -> None:
    session = Polling(server.url)
    with raw_post(server.port, session.sid, b"", length=MAX_PAYLOAD + 1) as conn:
        assert status_within(conn, 1.0) == 400
    assert refused(server, "too_large") >= 1
    assert session.post("3") == 200  # the session itself goes on


def test_a_stalled_body_gets_408_and_its_connection_is_closed(server: ServerHandle) -> None:
    session = Polling(server.url)
    started = time.monotonic()
    with raw_post(server.port, session.sid, b"42/events,", length=100) as conn:
        assert status_within(conn, BODY_TIMEOUT + 1.0) == 408
        assert time.monotonic() - started >= BODY_TIMEOUT
        assert closed_within(conn, KEEPALIVE + 1.0)
    assert refused(server, "body_timeout") >= 1


def test_refused_posts_leave_no_connection_held() -> None:
    """The issue's attack: a hundred refused POSTs, no token, against a pool of 100."""
    with start_server({"ZOU_EVENTS_WORKER_CONNECTIONS": "100"}) as server:
        sids = [Polling(server.url).sid for _ in range(100)]
        conns = [raw_post(server.port, sid, b"6") for sid in sids]
        try:
            assert [status_within(conn, 2.0) for conn in conns] == [400] * 100
            # the connections are the server's to close, after its keep-alive wait
            assert all(closed_within(conn, KEEPALIVE + 2.0) for conn in conns)
        finally:
            for conn in conns:
                conn.close()
        health = urllib3.request("GET", server.url + "/health", timeout=1.0, retries=False)
        assert health.status == 200


def test_a_first_request_written_after_the_keep_alive_timeout_is_answered(
    server: ServerHandle,
) -> None:
    """A busy client (a loaded browser, a storm's load client) writes its first request
    seconds after connecting: gunicorn alone closed it unanswered after 2 s."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        time.sleep(KEEPALIVE + 1.0)  # the client's delay is what is under test
        conn.sendall(f"GET {POLLING} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert status_within(conn, 2.0) == 200


def test_a_silent_connection_is_closed_after_the_first_request_timeout(
    server: ServerHandle,
) -> None:
    silent_before = metric(server, f'{CLOSED}{{reason="silent"}}')
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        assert closed_within(conn, FIRST_REQUEST_TIMEOUT + 2.0)
    assert time.monotonic() - started >= FIRST_REQUEST_TIMEOUT - 0.1
    assert metric(server, f'{CLOSED}{{reason="silent"}}') == silent_before + 1


def test_a_head_begun_has_the_keep_alive_timeout_to_finish(server: ServerHandle) -> None:
    """From its first byte a head has 2 s, however long the silence before it was: a head
    trickled in pieces gets no more time than gunicorn gave it."""
    before = metric(server, f'{CLOSED}{{reason="head_timeout"}}')
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\n")
        started = time.monotonic()
        assert closed_within(conn, KEEPALIVE + 2.0)
        assert time.monotonic() - started < FIRST_REQUEST_TIMEOUT
    assert metric(server, f'{CLOSED}{{reason="head_timeout"}}') == before + 1


def test_a_sid_in_the_query_string_is_no_way_past_the_socket_cap() -> None:
    with start_server({"ZOU_EVENTS_MAX_SOCKETS": "2"}) as server:
        sessions = [joined(server), joined(server)]
        for query in ("&sid=", "&xsid=1", "&sid=not-a-session", "&sid=&sid=x"):
            response = urllib3.request("GET", server.url + POLLING + query, retries=False)
            assert (response.status, response.data) == (503, b"over_capacity"), query
        # the sessions that are open are served as before
        assert [s.post('42["still-here"]') for s in sessions] == [200, 200]


def test_a_sid_in_the_query_string_is_no_way_past_the_rate_limit() -> None:
    env = {
        "ZOU_EVENTS_NEW_SESSIONS_PER_SECOND": "0.1",
        "ZOU_EVENTS_NEW_SESSIONS_BURST": "3",
        "ZOU_EVENTS_ADMISSION_MAX_WAIT": "0",  # refused at once rather than after a wait
    }
    with start_server(env) as server:
        queries = ("&sid=", "&xsid=1", "&sid=not-a-session", "&sid=", "&xsid=1")
        statuses = [
            urllib3.request("GET", server.url + POLLING + q, retries=False).status for q in queries
        ]
        # admitted: two handshakes, and one request engineio refuses as an unknown session
        assert statuses == [200, 200, 400, 503, 503]


def test_sessions_that_join_no_namespace_in_time_are_closed_and_hold_no_place() -> None:
    env = {"ZOU_EVENTS_MAX_SOCKETS": "3", "ZOU_EVENTS_CONNECT_TIMEOUT": "1"}
    with start_server(env) as server:
        silent = [Polling(server.url) for _ in range(3)]
        refused_connect = Polling(server.url)
        assert refused_connect.post('40/events,{"token":"not-a-token"}') == 200
        opened = time.monotonic()
        # they do not count against the cap: a reviewer still gets in
        token = make_token(server.secret_key)
        with JsClient(server.url, auth={"token": token}) as client:
            client.wait_type("connect")
            wait_until(
                lambda: (
                    metric(server, 'zou_events_connections_refused_total{reason="connect_timeout"}')
                    == 4
                ),
                5,
                "the four sessions without a namespace to be closed",
            )
            assert time.monotonic() - opened >= 1.0
            for session in [*silent, refused_connect]:
                assert session.post("3") == 400  # gone
            # the joined sockets do count: two more fill the cap of 3
            others = [joined(server), joined(server)]
            full = urllib3.request("GET", server.url + POLLING, retries=False)
            assert (full.status, full.data) == (503, b"over_capacity")
            assert [s.post("3") for s in others] == [200, 200]
            assert server.get_json("/stats")[1]["nb_connections"] == 1
            assert not [m for m in client.seen if m.get("type") == "disconnect"]


def test_a_handshake_with_a_valid_token_holds_a_place_until_it_joins_or_times_out() -> None:
    """A session whose handshake carried Kitsu's cookie is a person's, whose client may be
    slow to send its CONNECT: never closed early, it holds the place of the socket it is
    about to be; one that never joins is closed at ZOU_EVENTS_CONNECT_TIMEOUT all the same."""
    env = {"ZOU_EVENTS_MAX_SOCKETS": "2", "ZOU_EVENTS_CONNECT_TIMEOUT": "2"}
    with start_server(env) as server:
        cookie = {"Cookie": f"access_token_cookie={make_token(server.secret_key)}"}
        slow = [Polling(server.url, cookie), Polling(server.url, cookie)]
        full = urllib3.request("GET", server.url + POLLING, retries=False)
        assert (full.status, full.data) == (503, b"over_capacity")
        # one joins: it keeps its place; the other never does and is closed in time
        assert slow[0].post("40/events,") == 200  # authenticated by its handshake's cookie
        wait_until(
            lambda: (
                metric(server, 'zou_events_connections_refused_total{reason="connect_timeout"}')
                == 1
            ),
            6,
            "the session that never joined to be closed",
        )
        assert slow[1].post("3") == 400  # gone
        assert slow[0].post("3") == 200
        assert Polling(server.url).sid  # its place is free again
