"""Zou 1.0.97 in the deployment tests' container, set up the way Zou's setup guide does it.

The root filesystem of build-studio-rootfs.sh already holds what the guide installs (PostgreSQL,
Redis, nginx, Zou in /opt/zou/zouenv); ``install`` runs the guide's remaining steps in the
booted container: the zou user and folders, the database and its password, /etc/zou/zou.env
(comments and an ``export`` line included), the gunicorn files, Zou's two units (the API,
``zou.service``, and its event stream, ``zou-events.service``, gevent-websocket worker on
127.0.0.1:5001) and Zou's nginx server block, verbatim but for the port it listens on. The
container is private (its own network namespace, PostgreSQL and Redis), so the guide's names
(``zoudb``, Redis DB 0-4) collide with nothing.

``http`` talks HTTP from inside the container; ``login`` is Kitsu's login through nginx.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

from tests.deploy.container import Container
from tests.support.server import wait_until
from tests.support.zou_stack import BROWSER_USER_AGENT

ZOU_VERSION = "1.0.97"
NGINX_PORT = 8080  # Kitsu behind a port mapping, or any non-default listen port
ZOU_ENV_FILE = "/etc/zou/zou.env"
ZOU_STREAM_UNIT = "zou-events.service"
ADMIN_EMAIL = "admin@example.com"

# Path: /etc/zou/zou.env, as the guide writes it (SECRET_KEY twice, the comment, the export).
ZOU_ENV = """\
DB_PASSWORD={db_password}
SECRET_KEY={secret_key}
PREVIEW_FOLDER=/opt/zou/previews
TMP_DIR=/opt/zou/tmp
SECRET_KEY={secret_key}

# If you add variables above, add the exports below
export DB_PASSWORD SECRET_KEY PREVIEW_FOLDER TMP_DIR SECRET_KEY
"""

FILES = {
    # The guide's "workers = 3": one is enough here, and spares the test machine's cores.
    "/etc/zou/gunicorn.py": """\
accesslog = "/opt/zou/logs/gunicorn_access.log"
errorlog = "/opt/zou/logs/gunicorn_error.log"
workers = 1
worker_class = "gevent"
""",
    "/etc/zou/gunicorn-events.py": """\
accesslog = "/opt/zou/logs/gunicorn_events_access.log"
errorlog = "/opt/zou/logs/gunicorn_events_error.log"
workers = 1
worker_class = "geventwebsocket.gunicorn.workers.GeventWebSocketWorker"
""",
    "/etc/systemd/system/zou.service": """\
[Unit]
Description=Gunicorn instance to serve the Zou API
After=network.target

[Service]
User=zou
Group=www-data
WorkingDirectory=/opt/zou
# ffmpeg must be in PATH
Environment="PATH=/opt/zou/zouenv/bin:/usr/bin"
EnvironmentFile=/etc/zou/zou.env
ExecStart=/opt/zou/zouenv/bin/gunicorn  -c /etc/zou/gunicorn.py -b 127.0.0.1:5000 zou.app:app

[Install]
WantedBy=multi-user.target
""",
    "/etc/systemd/system/zou-events.service": """\
[Unit]
Description=Gunicorn instance to serve the Zou Events API
After=network.target

[Service]
User=zou
Group=www-data
WorkingDirectory=/opt/zou
Environment="PATH=/opt/zou/zouenv/bin"
EnvironmentFile=/etc/zou/zou.env
ExecStart=/opt/zou/zouenv/bin/gunicorn -c /etc/zou/gunicorn-events.py -b 127.0.0.1:5001 \
zou.event_stream:app

[Install]
WantedBy=multi-user.target
""",
    # The guide's server block; only the port differs (listen 80).
    "/etc/nginx/sites-available/zou": f"""\
server {{
    listen {NGINX_PORT};
    server_name server_domain_or_IP;

    location /api {{
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_pass http://localhost:5000/;
        client_max_body_size 500M;
        proxy_connect_timeout 600s;
        proxy_send_timeout 600s;
        proxy_read_timeout 600s;
        send_timeout 600s;
    }}

    location /socket.io {{
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "Upgrade";
        proxy_pass http://localhost:5001;
    }}
}}
""",
}

# The guide's commands, in its order, once its files are written.
SETUP = """\
useradd --home /opt/zou zou
mkdir -p /opt/zou/backups /opt/zou/previews /opt/zou/tmp /opt/zou/logs
chown zou: /opt/zou/backups /opt/zou/logs
chown -R zou:www-data /opt/zou/previews /opt/zou/tmp
sudo -u postgres psql -c 'create database zoudb;' -U postgres
sudo -u postgres psql -U postgres -d postgres -c "alter user postgres with password '$DB_PASSWORD';"
. /etc/zou/zou.env
/opt/zou/zouenv/bin/zou init-db
/opt/zou/zouenv/bin/zou init-data
/opt/zou/zouenv/bin/zou create-admin --password "$ADMIN_PASSWORD" "$ADMIN_EMAIL"
rm /etc/nginx/sites-enabled/default
ln -s /etc/nginx/sites-available/zou /etc/nginx/sites-enabled/zou
systemctl daemon-reload
systemctl enable zou zou-events
systemctl start zou zou-events
systemctl restart nginx
"""

ZOU_API_URL = "http://127.0.0.1:5000/"  # the unit's bind, behind nginx's /api

# Runs in the container: one HTTP request described as JSON on stdin, the answer as JSON.
HTTP_SCRIPT = """\
import json, sys, urllib.error, urllib.request
spec = json.load(sys.stdin)
data = json.dumps(spec["json"]).encode() if spec.get("json") is not None else None
headers = dict(spec.get("headers") or {})
if data is not None:
    headers["Content-Type"] = "application/json"
request = urllib.request.Request(spec["url"], data, headers, method=spec["method"])
try:
    response = urllib.request.urlopen(request, timeout=30)
except urllib.error.HTTPError as error:
    response = error
except OSError as error:
    print(json.dumps({"status": 0, "headers": [], "body": str(error)}))
    sys.exit()
body = response.read().decode(errors="replace")
print(json.dumps({"status": response.status, "headers": response.headers.items(), "body": body}))
"""


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Studio:
    """Zou as a studio runs it, in ``box``."""

    box: Container
    secret_key: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    db_password: str = field(default_factory=lambda: secrets.token_hex(12), repr=False)
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(12), repr=False)

    @property
    def kitsu_url(self) -> str:
        return f"http://127.0.0.1:{NGINX_PORT}"

    def install(self) -> None:
        self.box.write(
            ZOU_ENV_FILE,
            ZOU_ENV.format(db_password=self.db_password, secret_key=self.secret_key),
        )
        for path, content in FILES.items():
            self.box.write(path, content)
        self.box.run(
            "env",
            f"DB_PASSWORD={self.db_password}",
            f"ADMIN_PASSWORD={self.admin_password}",
            f"ADMIN_EMAIL={ADMIN_EMAIL}",
            *("bash", "-euc", SETUP),
            timeout=300,
        )
        self.wait_for_api()

    def wait_for_api(self) -> None:
        """Until Zou's API answers through nginx. The API itself first: nginx's
        `localhost:5000` upstream is marked failed for 10 s (per nginx worker) by a request
        refused while the API starts, and a later request on that worker gets 502 "no live
        upstreams" although the API is up."""
        for url, what in ((ZOU_API_URL, "Zou's API"), (f"{self.kitsu_url}/api/", "nginx")):
            wait_until(lambda url=url: self.http("GET", url).status == 200, 60, what, 0.5)

    def http(
        self,
        method: str,
        url: str,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        spec = {"method": method, "url": url, "json": json_body, "headers": headers}
        out = self.box.run("python3", "-c", HTTP_SCRIPT, input=json.dumps(spec)).stdout
        answer = json.loads(out)
        return Response(answer["status"], [tuple(h) for h in answer["headers"]], answer["body"])

    def logs_tail(self) -> str:
        """The end of Zou's API and nginx error logs: why a request through nginx failed (a
        502 at the first login was seen once and could not be explained without them)."""
        tails = []
        for path in ("/opt/zou/logs/gunicorn_error.log", "/var/log/nginx/error.log"):
            tail = self.box.run("tail", "-n", "30", path, check=False)
            tails.append(f"--- {path}\n{tail.stdout}{tail.stderr}")
        return "\n".join(tails)

    def login(self) -> tuple[str, str]:
        """Kitsu's login through nginx: the access token and the browser's ``Cookie`` value."""
        response = self.http(
            "POST",
            f"{self.kitsu_url}/api/auth/login",
            {"email": ADMIN_EMAIL, "password": self.admin_password},
            {"User-Agent": BROWSER_USER_AGENT},
        )
        assert response.status == 200, f"{response.body}\n{self.logs_tail()}"
        cookies: SimpleCookie = SimpleCookie()
        for name, value in response.headers:
            if name.lower() == "set-cookie":
                cookies.load(value)
        token = response.json()["access_token"]
        return token, f"access_token_cookie={cookies['access_token_cookie'].value}"

    def api(self, method: str, path: str, token: str, json_body: Any = None) -> Any:
        """Zou's REST API through nginx, as Kitsu calls it; the decoded answer."""
        response = self.http(
            method,
            f"{self.kitsu_url}/api{path}",
            json_body,
            {"Authorization": f"Bearer {token}"},
        )
        assert response.status in (200, 201), f"{method} {path}: {response.status} {response.body}"
        return response.json()
