"""The real Zou API (1.0.97, from .venv-zou) on loopback, for the tests and the benchmarks.

A ``ZouStack`` owns a fresh PostgreSQL database, a temporary directory, Zou's API under
gunicorn (one gevent worker) and, on request, Zou's own event stream. It shares the suite's
Redis (suite_redis.py) with everything else, as a real deployment does: revoked tokens in
DB 0, events on channel ``flask-socketio``. Only Zou's memoize cache (DB 1) gets a per-stack
key prefix.

Facts observed on Zou 1.0.97 (pinned by tests/compat/test_zou_stack.py):

``GET /auth/authenticated`` (no ``/api`` prefix when reached directly) answers 200 with
``{"authenticated": true, "user": {...}, "organisation": {...}}``. ``user`` is the person
serialised with its relations; among its keys ``id``, ``email``, ``role``, ``active``
(bool), ``is_bot`` (bool), ``preview_project_id`` (null, or the project of a preview
account), ``departments`` and ``fido_devices`` are always present. It answers 401 when the
token is missing, expired, revoked, has no ``identity_type``, or names an unknown or
inactive person, and 422 when the token does not decode, has a bad signature or is a
refresh token. The bearer header and the ``access_token_cookie`` cookie both work.

``GET /data/playlists/<id>`` answers 200 to an admin (in the team or not) and to every
member of the production team whatever their role (user, supervisor, bot); 403 to a person
outside the team and to a vendor in the team; to a client in the team (the preview account
included) 200 on a playlist shared with clients (``for_client``) and 403 on the others;
404 for an unknown id. Zou's review room check (``check_playlist_room_access``) is the same
rule. A preview account may only read: Zou answers 403 to its other methods.

Tokens from ``/auth/login`` carry ``fresh, iat, jti, type, sub, nbf, exp, identity_type,
refresh_jti``; logout writes ``<jti>`` and ``<refresh_jti>`` = ``"true"`` in Redis DB 0,
with a TTL. Bot tokens (``identity_type`` "bot") carry no ``exp`` and no ``refresh_jti``;
they are valid while the bot's ``jti`` column matches. ``GET /status/test-event`` (no token
needed) publishes on ``flask-socketio``:
``{"method": "emit", "event": "main:test", "data": [{}], "binary": false,
"namespace": "/events", "room": null, "skip_sid": null, "callback": null, "host_id": "..."}``.
Zou's event stream subscribes to Redis only at its first Engine.IO connection.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import socketio
import urllib3

from tests.support import suite_redis
from tests.support.server import free_port, http_get, wait_until
from tests.support.tokens import make_token

ROOT = Path(__file__).resolve().parents[2]
ZOU_VENV = ROOT / ".venv-zou"
SEED_SCRIPT = Path(__file__).with_name("zou_seed.py")
PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres"}
MEMOIZE_DB = 1
ZOU_CHANNEL = "flask-socketio"  # fixed in Zou: where its API publishes events
# Zou sets the access cookie only for a browser User-Agent, as Kitsu's.
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
EVENT_STREAM_WORKER = "geventwebsocket.gunicorn.workers.GeventWebSocketWorker"

# name -> (role, in the production team, active)
CAST: dict[str, tuple[str, bool, bool]] = {
    "admin": ("admin", False, True),
    "member": ("user", True, True),
    "outsider": ("user", False, True),
    "vendor": ("vendor", True, True),
    "client": ("client", True, True),
    "supervisor": ("supervisor", True, True),
    "inactive": ("user", True, False),
}


@dataclass(frozen=True)
class Person:
    name: str
    id: str
    email: str
    role: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Seed:
    """What the stack's database holds besides Zou's init-data."""

    project_id: str
    playlist_id: str  # not shared with clients
    client_playlist_id: str  # for_client=True
    # The names of CAST plus "preview", Zou's preview account of the project
    # (role client, in the team, preview_project_id set, access window open for an hour).
    persons: dict[str, Person]
    bot_id: str  # role user, in the team
    bot_token: str = field(repr=False)


class ZouStack:
    """Zou's API on a free loopback port, over its own database; ``with`` starts and stops it."""

    def __init__(self, venv: Path = ZOU_VENV, timeout: float = 60.0) -> None:
        self.venv = venv
        self.timeout = timeout
        self.secret_key = secrets.token_hex(32)
        self.database = f"zou_events_test_{secrets.token_hex(6)}"
        self.port = free_port()
        # Known before the API starts: Zou's /status probes the event stream there.
        self.event_stream_port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="zou-stack-"))
        self.cache_prefix = f"zou-test-{secrets.token_hex(6)}:"
        self.env = self._zou_env()
        self.http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5.0, read=30.0), retries=False
        )
        self._seed: Seed | None = None
        # Running gunicorn masters by name ("api", "event-stream"), each leading its group.
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._database_created = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def seed(self) -> Seed:
        assert self._seed is not None, "the stack is not started"
        return self._seed

    def __enter__(self) -> ZouStack:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> ZouStack:
        try:
            self._create_database()
            self._run("zou", "init-db")
            self._run("zou", "init-data")
            self._seed = self._seed_database()
            self._serve("api", "zou.app:app", ["--worker-class", "gevent", "-w", "1"], self.port)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def event_stream_url(self) -> str:
        return f"http://127.0.0.1:{self.event_stream_port}"

    def start_event_stream(self) -> str:
        """Zou's own event stream, started as Zou documents it (once); returns its URL.

        Zou's stream subscribes to Redis only at its first Engine.IO connection, so this
        connects a client and publishes ``main:test`` until it arrives: events published
        after the return are delivered.
        """
        if "event-stream" not in self.processes:
            self._serve(
                "event-stream",
                "zou.event_stream:app",
                ["--worker-class", EVENT_STREAM_WORKER, "-w", "1"],
                self.event_stream_port,
            )
            try:
                self._wait_event_stream_subscribed()
            except BaseException:
                self.stop_event_stream()
                raise
        return self.event_stream_url

    def stop_event_stream(self) -> None:
        if "event-stream" in self.processes:
            _kill_group(self.processes.pop("event-stream"))

    def stop(self) -> None:
        """Stops every process, drops the database and the cache keys; safe to call twice."""
        try:
            while self.processes:
                _kill_group(self.processes.popitem()[1])
            if self._database_created:
                self._pg("dropdb", "--force", "--if-exists", self.database)
                self._database_created = False
            self._drop_cache_keys()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- HTTP helpers ------------------------------------------------------------------

    def person(self, name: str) -> Person:
        return self.seed.persons[name]

    def api(
        self,
        method: str,
        path: str,
        token: str | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """One request to Zou's API (paths without ``/api``), as ``Bearer token`` if given."""
        all_headers = {"Authorization": f"Bearer {token}"} if token else {}
        all_headers.update(headers or {})
        return self.http.request(method, self.url + path, json=json, headers=all_headers)

    def login(self, person: Person | str) -> tuple[str, str]:
        """Logs in like Kitsu; returns the access token and the ``Cookie`` header value."""
        if isinstance(person, str):
            person = self.person(person)
        response = self.api(
            "POST",
            "/auth/login",
            json={"email": person.email, "password": person.password},
            headers={"User-Agent": BROWSER_USER_AGENT},
        )
        if response.status != 200:
            raise RuntimeError(f"login of {person.name} failed: HTTP {response.status}")
        cookies: SimpleCookie = SimpleCookie()
        for header in response.headers.getlist("Set-Cookie"):
            cookies.load(header)
        cookie = cookies["access_token_cookie"].value
        return response.json()["access_token"], f"access_token_cookie={cookie}"

    def logout(self, token: str) -> None:
        response = self.api("GET", "/auth/logout", token)
        if response.status != 200:
            raise RuntimeError(f"logout failed: HTTP {response.status}")

    # -- steps -------------------------------------------------------------------------

    def _zou_env(self) -> dict[str, str]:
        # Nothing inherited beyond the basics, so a developer's Zou settings cannot leak in.
        env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TZ") if key in os.environ}
        env.update(
            {
                "DB_HOST": PG["host"],
                "DB_PORT": PG["port"],
                "DB_USERNAME": PG["user"],
                "DB_PASSWORD": "",
                "DB_DATABASE": self.database,
                "DB_POOL_SIZE": "5",
                "DB_MAX_OVERFLOW": "10",
                "SECRET_KEY": self.secret_key,
                **suite_redis.server_env(),
                "PREVIEW_FOLDER": str(self.workdir / "previews"),
                "TMP_DIR": str(self.workdir / "tmp"),
                "EVENT_STREAM_HOST": "127.0.0.1",
                "EVENT_STREAM_PORT": str(self.event_stream_port),
                # Cheap password hashes: seeding and logins stay fast.
                "BCRYPT_LOG_ROUNDS": "4",
                "CACHE_TYPE": "zou_seed.isolated_redis_cache",
                "ZOU_TEST_CACHE_PREFIX": self.cache_prefix,
                "PYTHONPATH": str(SEED_SCRIPT.parent),
            }
        )
        return env

    def _pg(self, *command: str) -> None:
        args = ["-h", PG["host"], "-p", PG["port"], "-U", PG["user"]]
        subprocess.run(
            [command[0], *args, *command[1:]],
            check=True,
            capture_output=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    def _create_database(self) -> None:
        self._pg("createdb", self.database)
        self._database_created = True

    def _run(self, program: str, *args: str, stdin: str | None = None) -> None:
        result = subprocess.run(
            [str(self.venv / "bin" / program), *args],
            cwd=self.workdir,
            env=self.env,
            input=stdin.encode() if stdin is not None else None,
            stdin=subprocess.DEVNULL if stdin is None else None,
            capture_output=True,
            timeout=self.timeout * 2,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise RuntimeError(f"{program} {' '.join(args)} failed:\n{output[-3000:]}")

    def _seed_database(self) -> Seed:
        out = self.workdir / "seed.json"
        cast = self._cast()
        self._run("python", str(SEED_SCRIPT), str(out), stdin=json.dumps(cast))
        created = json.loads(out.read_text())
        persons = {
            name: Person(
                name, created["persons"][name]["id"], spec["email"], spec["role"], spec["password"]
            )
            for name, spec in cast["persons"].items()
            if name != "bot"
        }
        preview = created["preview"]
        persons["preview"] = Person(
            "preview", preview["id"], preview["email"], "client", preview["password"]
        )
        return Seed(
            project_id=created["project_id"],
            playlist_id=created["playlist_id"],
            client_playlist_id=created["client_playlist_id"],
            persons=persons,
            bot_id=created["persons"]["bot"]["id"],
            bot_token=created["persons"]["bot"]["access_token"],
        )

    @staticmethod
    def _cast() -> dict[str, Any]:
        persons: dict[str, dict[str, Any]] = {
            name: {
                "email": f"{name}@zou-events.test",
                "password": secrets.token_urlsafe(12),
                "first_name": name.capitalize(),
                "role": role,
                "in_team": in_team,
                "active": active,
            }
            for name, (role, in_team, active) in CAST.items()
        }
        persons["bot"] = {
            "email": "bot@zou-events.test",
            "first_name": "Bot",
            "role": "user",
            "in_team": True,
            "is_bot": True,
        }
        return {"project_name": "zou-events test production", "persons": persons}

    def _serve(self, name: str, app: str, options: list[str], port: int) -> None:
        log_path = self.workdir / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(self.venv / "bin" / "gunicorn"), *options, "-b", f"127.0.0.1:{port}", app],
                cwd=self.workdir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        url = f"http://127.0.0.1:{port}/"
        try:
            wait_until(
                lambda: process.poll() is not None or http_get(url) is not None,
                self.timeout,
                f"Zou's {name} on port {port}",
                step=0.2,
            )
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"Zou's {name} exited with {process.returncode}:\n{tail}")
        except BaseException:
            _kill_group(self.processes.pop(name))
            raise

    def _wait_event_stream_subscribed(self) -> None:
        delivered = threading.Event()
        client = socketio.Client(reconnection=False)
        client.on("main:test", lambda _data: delivered.set(), namespace="/events")
        token = make_token(self.secret_key, self.person("admin").id)
        client.connect(
            self.event_stream_url, namespaces=["/events"], auth={"token": token}, wait_timeout=10
        )
        try:
            deadline = time.monotonic() + self.timeout
            while not delivered.is_set():
                if time.monotonic() > deadline:
                    raise RuntimeError("Zou's event stream does not deliver main:test")
                self.api("GET", "/status/test-event")
                delivered.wait(0.5)
        finally:
            client.disconnect()

    def _drop_cache_keys(self) -> None:
        client = suite_redis.client(MEMOIZE_DB)
        with client:
            keys = list(client.scan_iter(match=f"{self.cache_prefix}*", count=500))
            if keys:
                client.delete(*keys)


def _kill_group(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Quick shutdown (SIGINT) of gunicorn's process group; SIGKILL for whatever lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(5)
