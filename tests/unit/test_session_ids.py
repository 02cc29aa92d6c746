"""Session ids name their instance (``<tag>-<port>.<engineio's id>``) for nginx's routing, stay
unguessable, and are opaque to Kitsu's socket.io-client and to python-socketio's client."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import pytest
import socketio
import urllib3

from tests.support.js_client import JsClient
from tests.support.raw_eio import Polling
from tests.support.server import ServerHandle, start_server
from tests.support.tokens import make_token
from zou_events import session_ids
from zou_events.config import ConfigError, load_settings

KEY = "k" * 64
TAG = "studio7"
# engineio's own part: 12 random bytes and a 3-byte counter, base64url (no "." in it).
ENGINEIO_ID = re.compile(r"[A-Za-z0-9_-]{20}")


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    with start_server({"ZOU_EVENTS_INSTANCE_TAG": TAG}) as handle:
        yield handle


def split(sid: str) -> tuple[str, str]:
    instance, dot, rest = sid.partition(".")
    assert dot, sid
    return instance, rest


@pytest.mark.slow  # starts a server: not in `make unit`
def test_handshakes_name_the_instance_and_keep_engineios_random_part(
    server: ServerHandle,
) -> None:
    sids = [Polling(server.url).sid for _ in range(20)]
    assert len(set(sids)) == len(sids)
    for sid in sids:
        instance, rest = split(sid)
        assert instance == f"{TAG}-{server.port}"
        assert ENGINEIO_ID.fullmatch(rest), sid
    # The random bytes differ between sessions, not only engineio's counter.
    randoms = {base64.urlsafe_b64decode(split(sid)[1])[:12] for sid in sids}
    assert len(randoms) == len(sids)


@pytest.mark.slow  # starts a server: not in `make unit`
def test_a_session_id_of_another_instance_gets_invalid_session(server: ServerHandle) -> None:
    """What a request that nginx sent to the wrong instance (or a forged tag) meets."""
    _, rest = split(Polling(server.url).sid)
    for sid in (f"other-{server.port}.{rest}", rest, f"{TAG}-{server.port}.", "...."):
        response = urllib3.request(
            "GET", f"{server.url}/socket.io/?EIO=4&transport=polling&sid={sid}", timeout=5
        )
        assert response.status == 400, sid
        assert response.data.startswith(b'"Invalid session'), response.data
    assert server.process.poll() is None


@pytest.mark.slow  # starts a server: not in `make unit`
def test_kitsus_client_polls_then_upgrades_with_a_tagged_id(server: ServerHandle) -> None:
    token = make_token(server.secret_key)
    with JsClient(server.url, cookie=f"access_token_cookie={token}") as client:
        assert client.wait_type("open")["transport"] == "polling"
        client.wait_type("connect")
        assert client.wait_type("upgrade")["transport"] == "websocket"
    assert re.search(rf'"sid": "{TAG}-{server.port}\.', server.logs())


@pytest.mark.slow  # starts a server: not in `make unit`
def test_python_socketio_client_polls_then_upgrades_with_a_tagged_id(
    server: ServerHandle,
) -> None:
    client = socketio.Client(reconnection=False)
    try:
        token = make_token(server.secret_key)
        client.connect(
            server.url, headers={"Authorization": f"Bearer {token}"}, namespaces=["/events"]
        )
        assert split(client.eio.sid)[0] == f"{TAG}-{server.port}"
        assert client.transport() == "websocket"
    finally:
        client.disconnect()


def test_the_default_tag_derives_from_the_instance_id() -> None:
    settings = load_settings({"SECRET_KEY": KEY, "EVENT_STREAM_PORT": "5002"})
    assert settings.instance_tag == session_ids.default_tag(settings.instance_id)
    tags = {session_ids.default_tag(f"host{n}:{port}") for n in range(200) for port in (1, 2)}
    assert len(tags) == 400
    assert all(session_ids.TAG.fullmatch(tag) for tag in tags)
    explicit = load_settings({"SECRET_KEY": KEY, "ZOU_EVENTS_INSTANCE_ID": "render-3"})
    assert explicit.instance_tag == session_ids.default_tag("render-3")


@pytest.mark.parametrize("tag", ["Studio", "a.b", "a-b", "a" * 17, "tag with space"])
def test_a_bad_tag_is_refused_naming_the_variable(tag: str) -> None:
    with pytest.raises(ConfigError, match="ZOU_EVENTS_INSTANCE_TAG"):
        load_settings({"SECRET_KEY": KEY, "ZOU_EVENTS_INSTANCE_TAG": tag})
