"""Prints as JSON what listens on the TCP ports given as arguments, one entry per process:
{"port": 5001, "pid": 812, "command": "gunicorn", "unit": "zou-events.service"}.

Run on the target by tasks/preflight.yml (with -c, so it must stay one self-contained file).
The unit is read from the process's cgroup; a socket that systemd itself holds (socket
activation) is named by its .socket unit.
"""

import json
import re
import subprocess
import sys


def unit_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cgroup") as cgroup:
            path = cgroup.read().splitlines()[-1].rsplit(":", 1)[1]
    except (OSError, IndexError):
        return ""
    units = [part for part in path.split("/") if re.search(r"\.(service|socket|scope)$", part)]
    return units[-1] if units else ""


def socket_units() -> dict[int, str]:
    """Port -> the .socket unit listening there."""
    listing = subprocess.run(
        ["systemctl", "list-sockets", "--all", "--plain", "--no-legend"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    units = {}
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 2 and re.search(r":\d+$", fields[0]):
            units[int(fields[0].rsplit(":", 1)[1])] = fields[1]
    return units


def main() -> None:
    ports = {int(port) for port in sys.argv[1:]}
    listeners = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    holders = []
    for line in listeners.splitlines():
        fields = line.split()
        port = int(fields[3].rsplit(":", 1)[1])
        if port not in ports:
            continue
        for command, pid in re.findall(r'\("([^"]*)",pid=(\d+)', line):
            unit = socket_units().get(port, "") if pid == "1" else unit_of(int(pid))
            holders.append({"port": port, "pid": int(pid), "command": command, "unit": unit})
    print(json.dumps(holders))


main()
