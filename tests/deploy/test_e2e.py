"""The collection's playbook against a real systemd: Debian 12 and Debian 13 containers booted
with systemd-nspawn, one after the other.

The container is what the role meets on a studio's server: Debian with systemd as PID 1, Redis
and nginx running, Zou's /etc/zou/zou.env present. Ansible drives it from the host through
community.docker.nsenter, like any remote host, with the collection built and installed by
ansible-galaxy (harness.installed_collection) and the release wheel built by `python -m build`.
For each distribution the tests run in file order and share the deployment: check mode on the
new host, converge, the running service, idempotence, reload, upgrade and rollback, stopping one
of the two instances, then one socket-activated instance.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.version import Version

from tests.deploy.container import Container
from tests.deploy.harness import (
    HERE,
    JS_DIR,
    PlaybookRun,
    Probe,
    build_release,
    deploy_tool,
    installed_collection,
    run_playbook,
    wheelhouse,
)
from tests.support.server import wait_until
from tests.support.tokens import make_token

# Debian's suites, by the inventory host name that stands for each.
DISTRIBUTIONS = {"deb12": "bookworm", "deb13": "trixie"}
PORTS = (5001, 5002)
NGINX_PORT = 8080
PROMETHEUS_PORT = 9090  # Debian's prometheus package, running in the container
# nginx's log of every /socket.io request: the session id, the instance that served it, status.
ROUTING_LOG = "/var/log/nginx/zou-events-routing.log"
GRACEFUL_TIMEOUT = 6  # drains fast; TimeoutStopSec follows (21 s)
# Every character systemd's environment files treat specially, to prove the quoting.
SECRET_KEY = secrets.token_hex(24) + ' "$`\\#x'
NEEDS = ("systemd-nspawn", "nsenter", "mmdebstrap", "node")

missing = [tool for tool in NEEDS if shutil.which(tool) is None]
pytestmark = [
    pytest.mark.slow,
    # The converge, in the first test's setup, is a whole playbook run over nsenter: minutes on
    # a busy machine.
    pytest.mark.timeout(600),
    pytest.mark.skipif(os.geteuid() != 0, reason="systemd-nspawn needs root"),
    pytest.mark.skipif(bool(missing), reason=f"not installed: {missing}; run 60-deploy.sh"),
    pytest.mark.skipif(
        not (JS_DIR / "node_modules" / "socket.io-client").is_dir(),
        reason="Kitsu's socket.io-client is not installed: run scripts/setup.d/30-node.sh",
    ),
]


@dataclass
class Deployment:
    host: str  # in the inventory
    container: Container
    inventory: Path
    wheel: Path
    work: Path

    def playbook(self, *args: str) -> PlaybookRun:
        run = run_playbook(self.inventory, *args)
        assert run.returncode == 0, run.failures()
        return run

    def publish(self, event: str, data: Any) -> None:
        """Zou's way of publishing, through the installed command and its configuration."""
        self.container.run(
            *("systemd-run", "--quiet", "--wait", "--pipe"),
            "--property=EnvironmentFile=-/etc/zou/zou.env",
            "--property=EnvironmentFile=/etc/zou-events/zou-events.env",
            *("/opt/zou-events/venv/bin/zou-events", "publish", event, json.dumps(data)),
        )

    def http(self, port: int, path: str) -> tuple[int, str]:
        script = (
            "import sys, urllib.request, urllib.error\n"
            "try:\n"
            "    r = urllib.request.urlopen(sys.argv[1], timeout=5)\n"
            "    print(r.status, r.read().decode())\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code, e.read().decode())\n"
        )
        result = self.container.run("python3", "-c", script, f"http://127.0.0.1:{port}{path}")
        status, _, body = result.stdout.partition(" ")
        return int(status), body.strip()

    def probe(self, port: int, person: str | None = None) -> Probe:
        token = make_token(SECRET_KEY, sub=person)
        return Probe(self.container, f"http://127.0.0.1:{port}", token, self.work)

    def connections(self, clients: int) -> dict[int, int]:
        """WebSockets per instance, once the ``clients`` have settled (polling requests come
        and go)."""
        counts: dict[int, int] = {}

        def settled() -> bool:
            counts.update({port: self.established(port) for port in PORTS})
            return sum(counts.values()) == clients

        wait_until(settled, 15, f"{clients} connection(s) to the instances", 0.2)
        return counts

    def established(self, port: int) -> int:
        out = self.container.run("ss", "-Htn", "state", "established", f"( sport = :{port} )")
        return len(out.stdout.splitlines())

    def unit(self, port: int) -> str:
        return f"zou-events@{port}.service"


@pytest.fixture(scope="module", params=list(DISTRIBUTIONS))
def host(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def container(host: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    build = subprocess.run(
        ["bash", str(HERE / "build-rootfs.sh"), DISTRIBUTIONS[host]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    work = tmp_path_factory.mktemp(f"nspawn-{host}")
    box = Container(Path(build.stdout.strip()), f"zou-events-{host}-{os.getpid()}", work / "log")
    try:
        box.boot()
        # What Zou's host already has: Zou's environment file (an old SECRET_KEY that ours must
        # override; Redis), and Zou's nginx server block including the role's snippet.
        box.write(
            "/etc/zou/zou.env",
            "SECRET_KEY=not-the-current-key\nKV_HOST=127.0.0.1\nKV_PORT=6379\n",
            mode="0600",
        )
        # Grafana's provisioning directory, as its package makes it (Debian has no Grafana).
        box.run("mkdir", "-p", "/etc/grafana/provisioning/dashboards")
        box.write(
            "/etc/nginx/conf.d/routing-log.conf",
            "log_format zou_events_routing '$arg_sid $upstream_addr $status';\n",
        )
        box.write(
            "/etc/nginx/sites-enabled/kitsu",
            f"server {{\n    listen {NGINX_PORT};\n"
            f"    access_log {ROUTING_LOG} zou_events_routing;\n"
            "    include /etc/nginx/snippets/zou-events.conf;\n}\n",
        )
        yield box
    finally:
        box.stop()


@pytest.fixture(scope="module")
def deployment(
    host: str, container: Container, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    deploy_tool("ansible-playbook")
    work = tmp_path_factory.mktemp(f"deploy-{host}")
    wheel = build_release(work).wheel
    inventory = work / "inventory.yml"
    host_vars = {
        "ansible_connection": "community.docker.nsenter",
        "ansible_nsenter_pid": container.leader,
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    group_vars = {
        "zou_events_wheel": str(wheel),
        # The container has no network.
        "zou_events_wheelhouse": str(wheelhouse(wheel, container.python_version())),
        "zou_events_secret_key": SECRET_KEY,
        "zou_events_zou_api_url": "",  # no Zou here: local token checks only
        "zou_events_instances": len(PORTS),
        "zou_events_base_port": PORTS[0],
        "zou_events_graceful_timeout": GRACEFUL_TIMEOUT,
        "zou_events_nginx": True,
        "zou_events_prometheus": True,
        "zou_events_grafana": True,
        "zou_events_grafana_service": "",
    }
    inventory.write_text(
        yaml.safe_dump(
            {"all": {"children": {"zou_events": {"hosts": {host: host_vars}, "vars": group_vars}}}}
        )
    )
    yield Deployment(host, container, inventory, wheel, work)


@pytest.fixture(scope="module")
def converged(deployment: Deployment) -> PlaybookRun:
    return deployment.playbook()


def test_check_mode_on_a_new_host_changes_nothing(deployment: Deployment) -> None:
    run = deployment.playbook("--check", "--diff")
    assert run.recap(deployment.host)["failed"] == 0
    assert "+++ after" in run.output  # the diff of the files it would write
    assert SECRET_KEY[:48] not in run.output  # the env file's diff is never shown
    absent = deployment.container.run("test", "-e", "/opt/zou-events", check=False)
    assert absent.returncode == 1


def test_converge_starts_hardened_instances(deployment: Deployment, converged: PlaybookRun) -> None:
    box = deployment.container
    assert converged.recap(deployment.host)["changed"] > 0
    for port in PORTS:
        unit = deployment.unit(port)
        assert box.unit_property(unit, "ActiveState") == "active"
        assert box.unit_property(unit, "UnitFileState") == "enabled"
        assert box.unit_property(unit, "User") == "zou-events"
        assert box.unit_property(unit, "LimitNOFILE") == "21024"
        assert deployment.http(port, "/ready")[0] == 200
        assert json.loads(deployment.http(port, "/")[1])["name"] == "Zou Event stream"
        box.run("test", "-S", f"/run/zou-events/{port}/gunicorn-{port}.ctl")
        security = box.run("systemd-analyze", "security", unit).stdout
        exposure = float(security.rsplit("Overall exposure level", 1)[1].split(":")[1].split()[0])
        assert exposure <= 1.5
    assert box.unit_property("zou-events.target", "ActiveState") == "active"
    stat = box.run("stat", "-c", "%a %U", "/etc/zou-events/zou-events.env").stdout.split()
    assert stat == ["600", "root"]
    worker = box.run("pgrep", "-u", "zou-events", "-f", "gunicorn").stdout.split()
    assert len(worker) == 2 * len(PORTS)  # a master and its one worker per instance
    # The dashboard and the rules came from the installed collection.
    role = installed_collection().root / "roles/zou_events"
    rule_files = yaml.safe_load((role / "vars/main.yml").read_text())[
        "_zou_events_prometheus_rule_files"
    ]
    box.run(
        "ls",
        "/etc/grafana/provisioning/dashboards/zou-events.yml",
        *(
            f"/var/lib/grafana/dashboards/zou-events/{p.name}"
            for p in role.glob("files/dashboards/*")
        ),
        *(f"/etc/prometheus/rules/zou-events-{name}.rules" for name in rule_files),
    )
    # Debian's Prometheus, reloaded by the role, scrapes each instance as <host>:<port>. The
    # reload is a SIGHUP and discovery hands new targets over every 5 s: both are
    # asynchronous, so the targets are awaited, not read once.
    expected = {f"{deployment.host}:{port}" for port in PORTS}

    def scraped_instances() -> set[str]:
        targets = json.loads(deployment.http(PROMETHEUS_PORT, "/api/v1/targets")[1])["data"]
        return {
            t["labels"]["instance"]
            for t in targets["activeTargets"]
            if t["labels"]["job"] == "zou-events"
        }

    wait_until(lambda: scraped_instances() == expected, 60, "Prometheus's zou-events targets", 1)


def test_clients_receive_events_directly_and_through_nginx(
    deployment: Deployment, converged: PlaybookRun
) -> None:
    probes = [deployment.probe(port) for port in (*PORTS, NGINX_PORT)]
    try:
        for probe in probes:
            probe.expect("connect")  # authenticated with the SECRET_KEY of our env file
        deployment.publish("main:test", {"deployed": True})
        for probe in probes:
            assert probe.expect_event("main:test") == [{"deployed": True}]
    finally:
        for probe in probes:
            probe.close()


def local_sockets(deployment: Deployment, port: int) -> tuple[int, int]:
    """An instance's own /events sockets: all of them, and those upgraded to WebSocket."""
    stats = json.loads(deployment.http(port, "/stats")[1])
    sockets = stats["instances"][stats["instance"]["id"]]["nb_connections"]
    metrics = deployment.http(port, "/metrics")[1]
    [upgraded] = re.findall(
        r'^zou_events_connected_sockets\{namespace="/events",transport="websocket"\} (\S+)$',
        metrics,
        re.MULTILINE,
    )
    return sockets, int(float(upgraded))


def test_clients_behind_one_address_spread_and_each_session_keeps_its_instance(
    deployment: Deployment, converged: PlaybookRun
) -> None:
    """200 of Kitsu's clients from one source address (an office NAT) through nginx, each
    polling then upgrading: both instances get a fair share, and every request of a session
    (handshake, polls, the WebSocket upgrade) reaches the instance that opened it."""
    box = deployment.container
    clients = 200
    box.run("truncate", "-s", "0", ROUTING_LOG)
    # Reconnecting as Kitsu does: a handshake refused while an instance is overloaded is retried.
    node = Probe(
        box,
        f"http://127.0.0.1:{NGINX_PORT}",
        make_token(SECRET_KEY),
        deployment.work,
        extra={"count": clients, "summary": True},
    )
    try:
        upgraded: set[int] = set()
        while len(upgraded) < clients:
            upgraded.add(node.expect("upgrade", timeout=60)["i"])
        shares = {port: local_sockets(deployment, port) for port in PORTS}
        for port, (sockets, websockets) in shares.items():
            assert websockets == sockets, f"{port}: every session upgraded where it was opened"
            assert 0.3 * clients <= sockets <= 0.7 * clients, shares
        assert sum(sockets for sockets, _ in shares.values()) == clients, shares
    finally:
        node.close()
    deployment.connections(0)  # WebSocket requests are logged when they end
    requests: dict[str, set[str]] = {}
    statuses: dict[str, list[str]] = {}
    for line in box.run("cat", ROUTING_LOG).stdout.splitlines():
        sid, upstream, status = line.split(" ")
        statuses.setdefault(sid, []).append(status)
        if sid != "-":
            requests.setdefault(sid, set()).add(upstream)
    assert len(requests) >= clients
    for sid, upstreams in requests.items():
        instance = sid.partition(".")[0]
        assert upstreams == {f"127.0.0.1:{instance.rpartition('-')[2]}"}, (sid, upstreams)
        assert "101" in statuses[sid], sid  # the WebSocket upgrade went there too
    # No "Invalid session" (nor any other refusal than a handshake's 503 while overloaded), and
    # no session that lost its transport.
    refused = {sid: s for sid, s in statuses.items() if {"400", "502"} & set(s)}
    lost = [
        m
        for m in node.history
        if m["type"] == "disconnect" and m["reason"] != "io client disconnect"  # the close
    ]
    if refused or lost:
        journal = box.run(*("journalctl", "--no-pager", "-o", "cat", "-u", "zou-events@*")).stdout
        reasons = Counter(re.findall(r'"reason": "(\w+)"', journal))
        nginx = box.run("tail", "-n", "5", "/var/log/nginx/error.log").stdout
        raise AssertionError(f"{list(refused.items())[:5]} {lost[:5]} {reasons} {nginx}")


def test_a_second_run_changes_nothing(deployment: Deployment, converged: PlaybookRun) -> None:
    run = deployment.playbook()
    assert run.recap(deployment.host)["changed"] == 0, run.changed_tasks()
    check = deployment.playbook("--check", "--diff")
    assert check.recap(deployment.host)["changed"] == 0, check.changed_tasks()
    assert SECRET_KEY[:48] not in run.output + check.output


def join_data(person: str, playlist: str, frame: int) -> dict[str, Any]:
    """What Kitsu sends with preview-room:join."""
    return {
        "user_id": person,
        "playlist_id": playlist,
        "is_playing": False,
        "current_entity_id": None,
        "current_entity_index": None,
        "current_preview_file_id": None,
        "current_preview_file_index": None,
        "current_frame": frame,
        "is_repeating": False,
        "is_laser_mode": False,
        "is_annotations_displayed": False,
        "is_waveform_displayed": False,
        "is_zoom_enabled": False,
        "handle_in": None,
        "handle_out": None,
        "speed": 1,
        "comparing": {"enable": False, "mode": "sidebyside"},
    }


def test_reload_replaces_the_worker_and_keeps_room_state(
    deployment: Deployment, converged: PlaybookRun
) -> None:
    box = deployment.container
    playlist, alice, bob = (str(uuid.uuid4()) for _ in range(3))
    driver = deployment.probe(NGINX_PORT, alice)
    driver.expect("connect")
    [reloaded] = [port for port, n in deployment.connections(1).items() if n]
    [other] = [port for port in PORTS if port != reloaded]
    viewer = deployment.probe(other, bob)  # on the instance that is not reloaded
    try:
        viewer.expect("connect")
        for probe, person in ((driver, alice), (viewer, bob)):
            probe.emit("preview-room:open-playlist", {"playlist_id": playlist, "user_id": person})
            probe.emit("preview-room:join", join_data(person, playlist, frame=12))
            probe.expect_event("preview-room:room-updated")
        unit = deployment.unit(reloaded)
        master = box.unit_property(unit, "MainPID")
        [old_worker] = box.run("pgrep", "-P", master).stdout.split()

        box.run("systemctl", "reload", unit)
        driver.expect("disconnect")
        driver.expect("connect")
        assert box.unit_property(unit, "MainPID") == master  # gunicorn's master stays
        assert box.run("pgrep", "-P", master).stdout.split() != [old_worker]

        driver.emit("preview-room:open-playlist", {"playlist_id": playlist, "user_id": alice})
        driver.emit("preview-room:join", join_data(alice, playlist, frame=0))
        [state] = driver.expect_event("preview-room:room-updated")
        assert state["current_frame"] == 12  # the state of before the reload, not the rejoin's
        assert bob in state["people"] and alice in state["people"]
        deployment.publish("main:after-reload", {})
        driver.expect_event("main:after-reload")
    finally:
        driver.close()
        viewer.close()


def test_an_upgrade_restarts_one_instance_at_a_time_and_rolls_back(
    deployment: Deployment, converged: PlaybookRun
) -> None:
    box = deployment.container
    current = Version(deployment.wheel.name.split("-")[1])
    newer = f"{current.major}.{current.minor}.{current.micro + 1}"
    upgrade = build_release(deployment.work / "upgrade", version=newer).wheel
    client = deployment.probe(NGINX_PORT)
    try:
        client.expect("connect")
        run = deployment.playbook("-e", f"zou_events_wheel={upgrade}")
        assert run.recap(deployment.host)["failed"] == 0
        for port in PORTS:
            assert json.loads(deployment.http(port, "/")[1])["version"] == newer

        # Instance 2 went down only after instance 1 was active (and ready) again.
        def monotonic(port: int, name: str) -> int:
            return int(box.unit_property(deployment.unit(port), name))

        first_up = monotonic(PORTS[0], "ActiveEnterTimestampMonotonic")
        assert monotonic(PORTS[1], "InactiveEnterTimestampMonotonic") > first_up
        # The client was moved, not lost.
        client.expect("connect")
        wait_until(client.connected, 20, "the client to reconnect")
        deployment.publish("main:after-upgrade", {})
        client.expect_event("main:after-upgrade")

        deployment.playbook()  # back to the release of the inventory
        for port in PORTS:
            assert json.loads(deployment.http(port, "/")[1])["version"] == str(current)
    finally:
        client.close()


def test_stopping_an_instance_moves_its_clients_to_the_other(
    deployment: Deployment, converged: PlaybookRun
) -> None:
    box = deployment.container
    clients = [deployment.probe(NGINX_PORT) for _ in range(3)]
    stopped = 0
    try:
        for client in clients:
            client.expect("connect")
        counts = deployment.connections(len(clients))
        stopped = max(counts, key=counts.__getitem__)
        [remaining] = [port for port in PORTS if port != stopped]
        assert deployment.http(stopped, "/ready")[0] == 200

        box.run("systemctl", "stop", deployment.unit(stopped))
        assert deployment.connections(len(clients)) == {stopped: 0, remaining: len(clients)}
        wait_until(
            lambda: (
                sum(any(m["type"] == "disconnect" for m in c.history) for c in clients)
                == counts[stopped]
            ),
            5,
            "exactly the stopped instance's clients to have been disconnected",
        )
        wait_until(lambda: all(c.connected() for c in clients), 15, "every client connected")
        deployment.publish("main:after-stop", {})
        for client in clients:
            client.expect_event("main:after-stop")
    finally:
        for client in clients:
            client.close()
        if stopped:
            box.run("systemctl", "start", deployment.unit(stopped), check=False)


def ready_status(deployment: Deployment, port: int) -> int | None:
    """/ready's status, None while nothing answers on the port."""
    try:
        return deployment.http(port, "/ready")[0]
    except AssertionError:
        return None


def assert_start_waits_for_redis(deployment: Deployment, port: int) -> None:
    """`systemctl start` returns once the instance delivers: with Redis down it stays
    "activating", its worker answering /ready 503 and systemd showing why, until Redis is back;
    the moment it returns, /ready answers 200."""
    box = deployment.container
    unit = deployment.unit(port)
    box.run("systemctl", "stop", unit)
    box.run("systemctl", "stop", "redis-server")
    start = subprocess.Popen(
        ["nsenter", f"--target={box.leader}", "--all", "--", "systemctl", "start", unit],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: ready_status(deployment, port) == 503, 30, "the worker to answer")
        assert start.poll() is None, "systemctl start returned before the instance can deliver"
        assert box.unit_property(unit, "ActiveState") == "activating"
        assert box.unit_property(unit, "StatusText").startswith("not ready: ")
        box.run("systemctl", "start", "redis-server")
        assert start.wait(30) == 0, start.communicate()[0]
        assert deployment.http(port, "/ready")[0] == 200
        assert box.unit_property(unit, "ActiveState") == "active"
    finally:
        if start.poll() is None:
            start.kill()
            start.wait()
        box.run("systemctl", "start", "redis-server", check=False)
        box.run("systemctl", "start", unit, check=False)


def test_start_returns_once_the_instance_is_ready(
    deployment: Deployment, converged: PlaybookRun
) -> None:
    assert_start_waits_for_redis(deployment, PORTS[0])
    box = deployment.container
    unit = deployment.unit(PORTS[0])
    # Documentation= names pages the package installed; the clock is waited for, not pulled in.
    uris = box.unit_property(unit, "Documentation").split()
    assert uris
    for uri in uris:
        box.run("test", "-s", uri.removeprefix("file:"))
    assert "time-sync.target" in box.unit_property(unit, "After").split()
    assert "time-sync.target" not in box.unit_property(unit, "Wants").split()


def test_one_socket_activated_instance_instead_of_two(
    deployment: Deployment, converged: PlaybookRun
) -> None:
    box = deployment.container
    deployment.playbook("-e", "zou_events_instances=1", "-e", "zou_events_socket_activation=true")
    extra, kept = deployment.unit(PORTS[1]), deployment.unit(PORTS[0])
    assert box.unit_property(extra, "ActiveState") == "inactive"
    assert box.unit_property(extra, "UnitFileState") == "disabled"
    upstream = box.run("cat", "/etc/nginx/conf.d/zou-events-upstream.conf").stdout
    assert f":{PORTS[1]}" not in upstream and "hash" not in upstream
    # systemd (PID 1 in the container) holds the listening socket across restarts.
    assert box.unit_property(kept, "TriggeredBy") == f"zou-events@{PORTS[0]}.socket"
    box.run("systemctl", "restart", kept)
    listener = box.run("ss", "-Hltnp", f"( sport = :{PORTS[0]} )").stdout
    assert '("systemd",pid=1,' in listener
    client = deployment.probe(NGINX_PORT)
    try:
        client.expect("connect")
    finally:
        client.close()


def test_a_socket_activated_start_also_returns_once_ready(
    deployment: Deployment, converged: PlaybookRun
) -> None:
    assert deployment.container.unit_property(deployment.unit(PORTS[0]), "TriggeredBy")
    assert_start_waits_for_redis(deployment, PORTS[0])


def test_journald_files_each_log_line_at_its_level(
    deployment: Deployment, converged: PlaybookRun
) -> None:
    """The real journald reads the `<priority>` each JSON line starts with: an instance's
    lines are filed at their level, and `journalctl -p err` finds a failed start's
    configuration error (a JSON line too), which `-o cat` prints as plain JSON."""
    box = deployment.container
    priorities = {"debug": "7", "info": "6", "warning": "4", "error": "3", "critical": "2"}
    unit = f"zou-events-probe-{secrets.token_hex(4)}"
    box.run(
        *("systemd-run", f"--unit={unit}", "--wait", "--quiet", "-p", "User=zou-events"),
        *("-E", f"SECRET_KEY={SECRET_KEY}", "-E", "EVENT_STREAM_PORT=not-a-port"),
        *("/opt/zou-events/venv/bin/zou-events", "serve"),
        check=False,  # exits 2
    )

    def errors() -> list[dict[str, Any]]:
        cat = box.run("journalctl", "--no-pager", "-o", "cat", "-p", "err", "-u", unit).stdout
        return [json.loads(line) for line in cat.splitlines() if line.startswith("{")]

    (error,) = wait_until(errors, 10, "the configuration error in the journal", 0.2)
    assert error["event"] == "configuration error" and "EVENT_STREAM_PORT" in error["error"]
    entries = box.run(
        *("journalctl", "--no-pager", "-o", "json", "-u", deployment.unit(PORTS[0]))
    ).stdout.splitlines()
    filed = [
        (entry["PRIORITY"], json.loads(entry["MESSAGE"])["level"])
        for entry in map(json.loads, entries)
        if isinstance(entry.get("MESSAGE"), str) and entry["MESSAGE"].startswith("{")
    ]
    assert filed and all(priority == priorities[level] for priority, level in filed), filed
