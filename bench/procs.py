"""What the benchmark reads from /proc about the processes it measures, and their CPU pins."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name, which may itself hold spaces and parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def runqueue_wait_seconds(pid: int) -> float:
    """Time the main thread of ``pid`` was ready to run but waited for a CPU (schedstat)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def machine_busy_seconds() -> float:
    """CPU time spent by every CPU on anything but idling and waiting for I/O, in seconds."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def listen_overflows() -> int:
    """Connections the kernel dropped since boot because a listening socket's accept queue
    was full (TcpExt ListenOverflows): each costs its client a SYN retransmission, 1 s or
    more, whatever the server's speed."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith("TcpExt:"):
            fields = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(fields["ListenOverflows"])
    return 0


def rss_bytes(pid: int) -> int:
    resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return resident_pages * _PAGE_SIZE


def _parent(stat_path: Path) -> int | None:
    try:
        stat = stat_path.read_text()
    except OSError:  # the process ended while we looked
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def children(pid: int) -> list[int]:
    # /proc/<pid>/task/<tid>/children needs CONFIG_PROC_CHILDREN: scan the parents instead.
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _parent(entry / "stat") == pid
    ]


def only_child(pid: int, timeout: float = 20.0) -> int:
    """The single child of ``pid`` (a gunicorn master's worker), waiting for it to appear."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = children(pid)
        if len(found) == 1:
            return found[0]
        time.sleep(0.05)
    raise RuntimeError(f"process {pid} has children {children(pid)}, expected exactly one")


def pin(pid: int, cpus: set[int] | None) -> None:
    """Restrict every thread of ``pid`` to ``cpus`` (None: leave it alone)."""
    if cpus is None:
        return
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)


def raise_open_files_limit(wanted: int) -> int:
    """RLIMIT_NOFILE up to ``wanted`` (the hard limit too, where allowed: root), or else to
    the hard limit; inherited by every process started from here. Returns the soft limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if wanted > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):  # not root: as far as the hard limit goes
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard
