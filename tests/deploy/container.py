"""A Debian system container booted with systemd-nspawn: systemd is its PID 1.

The root filesystem is the cached tree of build-rootfs.sh, mounted read-only under a tmpfs
overlay (--volatile=overlay), so every boot starts from the same pristine system and leaves
nothing behind. The container has its own network namespace with loopback only
(--private-network): its ports never collide with the host's, and Redis and nginx run inside.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.support.server import wait_until

HALT_TIMEOUT = 20.0
PR_SET_PDEATHSIG = 1


def halt_with_parent() -> None:
    """In the nspawn child: SIGTERM (a clean halt) if the test process dies without teardown."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Container:
    def __init__(self, rootfs: Path, name: str, log_path: Path) -> None:
        self.rootfs = rootfs
        self.name = name
        self.log_path = log_path
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.leader = 0

    def boot(self, timeout: float = 60.0) -> None:
        with self.log_path.open("wb") as log:
            self.nspawn = subprocess.Popen(
                [
                    "systemd-nspawn",
                    "--quiet",
                    "--register=no",  # no machined on the host
                    "--keep-unit",  # no systemd on the host to create a scope
                    "--private-network",
                    "--volatile=overlay",
                    f"--machine={self.name}",
                    f"--directory={self.rootfs}",
                    "--console=pipe",
                    "--boot",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as one at teardown
                preexec_fn=halt_with_parent,
            )
        wait_until(self._find_leader, 15, "the container's systemd to start")
        wait_until(self._booted, timeout, f"the container to boot (log: {self.log_path})", 0.2)

    def _check_alive(self) -> None:
        assert self.nspawn is not None
        if self.nspawn.poll() is not None:
            raise AssertionError(f"systemd-nspawn exited: {self.log_path.read_text()}")

    def _find_leader(self) -> bool:
        """The container's PID 1 is the child of systemd-nspawn that runs systemd."""
        self._check_alive()
        children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children")
        for pid in children.read_text().split():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    self.leader = int(pid)
                    return True
            except FileNotFoundError:
                continue
        return False

    def _booted(self) -> bool:
        self._check_alive()
        # "offline" until systemd listens on its private socket, then "starting".
        state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
        return state in {"running", "degraded"}

    def run(
        self,
        *cmd: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the container (all its namespaces), as root."""
        result = subprocess.run(
            ["nsenter", f"--target={self.leader}", "--all", "--", *cmd],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result

    def in_network(self, cmd: Sequence[str]) -> list[str]:
        """``cmd`` run from the host's filesystem inside the container's network namespace."""
        return ["nsenter", f"--net=/proc/{self.leader}/ns/net", "--", *cmd]

    def write(self, path: str, content: str, mode: str = "0644") -> None:
        self.run("install", "-D", "-m", mode, "/dev/stdin", path, input=content)

    def python_version(self) -> str:
        """The full version of the system's Python (what the wheelhouse is resolved for)."""
        script = "import platform; print(platform.python_version())"
        return self.run("python3", "-c", script).stdout.strip()

    def unit_property(self, unit: str, name: str) -> str:
        return self.run("systemctl", "show", "--value", "-p", name, unit).stdout.strip()

    def stop(self) -> None:
        """Halt the container (SIGTERM makes nspawn shut systemd down), kill it if it hangs."""
        if self.nspawn is None:
            return
        if self.nspawn.poll() is None:
            self.nspawn.terminate()
            try:
                self.nspawn.wait(HALT_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.nspawn.pid, signal.SIGKILL)
                self.nspawn.wait(10)
        # nspawn leaves an empty mount-propagation directory per machine name.
        propagate = Path("/run/systemd/nspawn/propagate") / self.name
        if propagate.is_dir():
            propagate.rmdir()
        # The overlay lives in the container's mount namespace; a killed nspawn may still leave
        # mounts on the host under the tree, and they must not pin the cached rootfs.
        for target in sorted(self._host_mounts(), reverse=True):
            subprocess.run(["umount", "--lazy", target], check=False)

    def _host_mounts(self) -> list[str]:
        with open("/proc/self/mountinfo") as mounts:
            targets = [line.split()[4] for line in mounts]
        return [t for t in targets if t == str(self.rootfs) or t.startswith(f"{self.rootfs}/")]
