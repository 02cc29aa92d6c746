"""A studio's Kitsu host migrated from Zou's event stream to ours, as docs/migrating.md says.

The container is built the way Zou's setup guide builds a host (zou_in_container.py): Zou 1.0.97
in its venv with its API (zou.service) and its own event stream (zou-events.service, port 5001),
/etc/zou/zou.env as the guide writes it, the guide's nginx server block on port 8080. Kitsu is
played by its socket.io-client with the cookie of Zou's login and the Origin a browser sends on
that port; events come from Zou's REST API. The tests run in file order and share the host:
Zou's stream serving, the role refusing to start beside it, the install and check, the switch
with one setting, Zou's restart command afterwards, the rollback and a switch by hand. Every
shell command of docs/migrating.md is run from the document itself (``doc_commands``).
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.container import Container
from tests.deploy.harness import (
    HERE,
    JS_DIR,
    ROOT,
    PlaybookRun,
    Probe,
    build_release,
    deploy_tool,
    run_playbook,
    wheelhouse,
)
from tests.deploy.zou_in_container import ZOU_STREAM_UNIT, Studio
from tests.support.server import wait_until

HOST = "studio"
PORT = 5001
OUR_UNIT = f"zou-events@{PORT}.service"
MIGRATING = ROOT / "docs" / "migrating.md"
NEEDS = ("systemd-nspawn", "nsenter", "mmdebstrap", "node")

missing = [tool for tool in NEEDS if shutil.which(tool) is None]
pytestmark = [
    pytest.mark.slow,
    # Each step is a whole playbook run (or Zou's install) over nsenter: minutes on a busy machine.
    pytest.mark.timeout(600),
    pytest.mark.skipif(os.geteuid() != 0, reason="systemd-nspawn needs root"),
    pytest.mark.skipif(bool(missing), reason=f"not installed: {missing}; run 60-deploy.sh"),
    pytest.mark.skipif(
        not (JS_DIR / "node_modules" / "socket.io-client").is_dir(),
        reason="Kitsu's socket.io-client is not installed: run scripts/setup.d/30-node.sh",
    ),
]


def doc_commands(name: str) -> str:
    """The shell block of docs/migrating.md that follows ``<!-- studio-test: name -->``."""
    match = re.search(
        rf"<!-- studio-test: {re.escape(name)} -->\s*```sh\n(.*?)```", MIGRATING.read_text(), re.S
    )
    assert match, f"docs/migrating.md has no block marked {name!r}"
    return match.group(1)


def join_data(person: str, playlist: str, frame: int) -> dict[str, Any]:
    """What Kitsu sends with preview-room:join."""
    return {
        "user_id": person,
        "playlist_id": playlist,
        "local_id": str(uuid.uuid4()),
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


@dataclass
class Host:
    box: Container
    zou: Studio
    inventory: Path
    work: Path

    def playbook(self, *args: str) -> PlaybookRun:
        return run_playbook(self.inventory, *args)

    def sh(self, script: str) -> subprocess.CompletedProcess[str]:
        return self.box.run("bash", "-euc", script)

    def holder(self) -> str:
        """The unit whose process listens on port 5001 ("" for none)."""
        listener = self.box.run("ss", "-Hltnp", f"( sport = :{PORT} )").stdout
        pids = re.findall(r"pid=(\d+)", listener)
        if not pids:
            return ""
        cgroup = self.box.run("cat", f"/proc/{pids[0]}/cgroup").stdout
        return cgroup.strip().rsplit("/", 1)[1]

    def kitsu_tab(
        self, cookie: str, transports: list[str] | None = None, origin: str | None = None
    ) -> Probe:
        """A browser tab of Kitsu served through nginx on its non-default port: the cookie of
        Zou's login, the Origin of the page (its port included, which Host $host drops)."""
        extra: dict[str, Any] = {
            "cookie": cookie,
            "headers": {
                "Origin": origin or self.zou.kitsu_url,
                "User-Agent": "Mozilla/5.0 (X11; Linux)",
            },
        }
        if transports:
            extra["transports"] = transports
        return Probe(self.box, self.zou.kitsu_url, None, self.work, extra)

    def state(self) -> tuple[list[str], dict[str, bool]]:
        """Zou's database (its dump), and every Redis key with whether it expires."""
        dump = self.box.run("sudo", "-u", "postgres", "pg_dump", "zoudb").stdout
        keys = {}
        for db in range(16):
            for key in self.box.run("redis-cli", "-n", str(db), "--scan").stdout.split():
                ttl = self.box.run("redis-cli", "-n", str(db), "ttl", key).stdout.strip()
                keys[f"{db}:{key}"] = ttl != "-1"
        # pg_dump's \restrict line carries a random key, new at each dump.
        lines = dump.splitlines()
        return [line for line in lines if not line.startswith(("\\restrict", "\\unrestrict"))], keys


def kitsu_session(host: Host, transports: list[str] | None = None) -> None:
    """What a Kitsu user does: log in through nginx, open the event stream, see a change made
    through Zou's API arrive, then review a playlist with a second tab."""
    token, cookie = host.zou.login()
    tab, other = host.kitsu_tab(cookie, transports), host.kitsu_tab(cookie, transports)
    try:
        for probe in (tab, other):
            probe.expect("connect")
        if not transports:  # Kitsu's default: long-polling first, then the upgrade
            assert tab.history[0] == {"type": "open", "transport": "polling"}
            wait_until(
                lambda: {"type": "upgrade", "transport": "websocket"} in tab.history,
                20,
                "the upgrade to WebSocket",
                0.1,
            )
        project = host.zou.api("POST", "/data/projects", token, {"name": f"p-{uuid.uuid4()}"})
        playlist = host.zou.api(
            "POST", "/data/playlists", token, {"name": "review", "project_id": project["id"]}
        )["id"]
        [event] = tab.expect_event("playlist:new")  # published by Zou's API
        assert event == {"playlist_id": playlist, "project_id": project["id"]}

        person = host.zou.api("GET", "/auth/authenticated", token)["user"]["id"]
        for probe, frame in ((tab, 24), (other, 0)):
            # Kitsu opens the playlist with the page, joins later: Zou's stream handles each
            # event in its own greenlet, so a join sent at once could overtake the opening.
            probe.emit("preview-room:open-playlist", {"playlist_id": playlist})
            probe.expect_event("preview-room:room-people-updated")
            probe.emit("preview-room:join", join_data(person, playlist, frame))
            [state] = probe.expect_event("preview-room:room-updated")
            assert state["people"] == [person]
        assert state["current_frame"] == 24  # the newcomer is given the room's state
        change = {"playlist_id": playlist, "revision": 2}
        tab.emit("preview-room:change-version", change)
        assert other.expect_event("preview-room:change-version") == [change]
    finally:
        tab.close()
        other.close()


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    deploy_tool("ansible-playbook")
    build = subprocess.run(
        ["bash", str(HERE / "build-studio-rootfs.sh")], capture_output=True, text=True, check=False
    )
    assert build.returncode == 0, build.stderr[-3000:]
    work = tmp_path_factory.mktemp("studio")
    box = Container(Path(build.stdout.strip()), f"zou-studio-test-{os.getpid()}", work / "log")
    try:
        box.boot()
        zou = Studio(box)
        zou.install()
        wheel = build_release(work).wheel
        host_vars = {
            "ansible_connection": "community.docker.nsenter",
            "ansible_nsenter_pid": box.leader,
            "ansible_python_interpreter": "/usr/bin/python3",
        }
        # docs/migrating.md's inventory: SECRET_KEY, Redis and Zou's API are Zou's.
        group_vars = {
            "zou_events_wheel": str(wheel),
            # The container has no network.
            "zou_events_wheelhouse": str(wheelhouse(wheel, box.python_version())),
        }
        inventory = work / "inventory.yml"
        inventory.write_text(
            yaml.safe_dump(
                {
                    "all": {
                        "children": {"zou_events": {"hosts": {HOST: host_vars}, "vars": group_vars}}
                    }
                }
            )
        )
        yield Host(box, zou, inventory, work)
    finally:
        box.stop()


def test_zou_stream_serves_kitsu_before_the_migration(host: Host) -> None:
    assert host.holder() == ZOU_STREAM_UNIT
    kitsu_session(host)


def test_the_role_names_zou_stream_holding_the_port(host: Host) -> None:
    run = host.playbook()
    assert run.returncode != 0
    failure = run.failures()
    assert f"Port {PORT} is held by gunicorn" in failure, failure
    assert ZOU_STREAM_UNIT in failure and "zou_events_replace_zou_stream=true" in failure
    assert host.holder() == ZOU_STREAM_UNIT  # nothing touched
    assert host.box.run("test", "-e", "/opt/zou-events", check=False).returncode == 1


def test_install_then_check_with_zou_settings(host: Host) -> None:
    assert "-e zou_events_manage_service=false" in MIGRATING.read_text()
    run = host.playbook("-e", "zou_events_manage_service=false")
    assert run.returncode == 0, run.failures()
    assert host.holder() == ZOU_STREAM_UNIT
    check = host.sh(doc_commands("check")).stdout
    assert "configuration: ok" in check and "redis: ok" in check, check


def test_one_switch_replaces_zou_stream(host: Host) -> None:
    box = host.box
    nginx = ("sh", "-c", "find /etc/nginx -type f -exec sha256sum {} + | sort")
    nginx_before = box.run(*nginx).stdout
    state_before = host.state()
    assert "-e zou_events_replace_zou_stream=true" in MIGRATING.read_text()
    run = host.playbook("-e", "zou_events_replace_zou_stream=true")
    assert run.returncode == 0, run.failures()

    assert box.unit_property(ZOU_STREAM_UNIT, "ActiveState") == "inactive"
    assert box.unit_property(ZOU_STREAM_UNIT, "UnitFileState") == "masked"
    assert box.unit_property(OUR_UNIT, "ActiveState") == "active"
    assert host.holder() == OUR_UNIT
    # nginx untouched for one instance; Zou's database and Redis untouched.
    assert box.run(*nginx).stdout == nginx_before
    dump, keys = host.state()
    changes = list(difflib.unified_diff(state_before[0], dump, lineterm="", n=0))
    assert not changes, "\n".join(changes[:60])
    # New keys: ours (DB 2, our prefix), and the cache of Zou's API (DB 1, each with a TTL),
    # which it fills when asked about an account; keys gone: only that cache's, expired.
    added = keys.keys() - state_before[1].keys()
    assert all(k.startswith("2:zou-events:") or (k.startswith("1:") and keys[k]) for k in added)
    assert all(state_before[1][key] for key in state_before[1].keys() - keys.keys())


def test_a_second_switch_run_changes_nothing(host: Host) -> None:
    again = host.playbook("-e", "zou_events_replace_zou_stream=true")
    assert again.returncode == 0, again.failures()
    assert again.recap(HOST)["changed"] == 0, again.changed_tasks()


def origin_refusals(host: Host) -> float:
    """zou_events_connections_refused_total{reason="origin"} of our instance."""
    exposition = host.box.run("curl", "-sf", f"http://127.0.0.1:{PORT}/metrics").stdout
    found = re.search(
        r'^zou_events_connections_refused_total\{reason="origin"\} (\S+)$', exposition, re.M
    )
    return float(found.group(1)) if found else 0.0


def test_kitsu_through_zou_nginx_block_after_the_migration(host: Host) -> None:
    kitsu_session(host)
    kitsu_session(host, transports=["websocket"])  # Kitsu's option to skip long-polling


def test_a_foreign_page_is_refused_through_zou_nginx_block_and_counted(host: Host) -> None:
    """The same port, another site: the origin rule ignores ports, never hosts."""
    _, cookie = host.zou.login()
    before = origin_refusals(host)
    for transports in (None, ["websocket"]):
        tab = host.kitsu_tab(cookie, transports, origin="http://elsewhere.example:8080")
        try:
            tab.expect("connect_error")
            assert not any(m["type"] == "connect" for m in tab.history), tab.history
        finally:
            tab.close()
    wait_until(lambda: origin_refusals(host) >= before + 2, 10, "two origin refusals counted")


def test_zou_restart_command_leaves_ours_serving(host: Host) -> None:
    box = host.box
    api_pid = box.unit_property("zou.service", "MainPID")
    ours_pid = box.unit_property(OUR_UNIT, "MainPID")
    restart = box.run("systemctl", "restart", "zou", "zou-events", check=False)
    assert restart.returncode != 0 and "masked" in restart.stderr, restart
    assert box.unit_property("zou.service", "MainPID") != api_pid  # Zou's upgrade went through
    assert box.unit_property(OUR_UNIT, "MainPID") == ours_pid
    assert host.holder() == OUR_UNIT
    host.zou.wait_for_api()  # after its restart
    kitsu_session(host, transports=["websocket"])


def test_rollback_brings_zou_stream_back_and_a_switch_by_hand_undoes_it(host: Host) -> None:
    box = host.box
    host.sh(doc_commands("rollback"))
    assert box.unit_property(OUR_UNIT, "ActiveState") == "inactive"
    assert box.unit_property(ZOU_STREAM_UNIT, "UnitFileState") == "enabled"
    wait_until(lambda: host.holder() == ZOU_STREAM_UNIT, 30, "Zou's stream on its port", 0.5)
    kitsu_session(host, transports=["websocket"])
    leftovers = box.run("redis-cli", "-n", "2", "--scan", "--pattern", "zou-events:*").stdout
    assert not leftovers.strip(), leftovers

    host.sh(doc_commands("switch-by-hand"))
    assert box.unit_property(ZOU_STREAM_UNIT, "UnitFileState") == "masked"
    assert host.holder() == OUR_UNIT
    kitsu_session(host, transports=["websocket"])
