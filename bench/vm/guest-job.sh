#!/usr/bin/env bash
# The benchmark inside the guest (run by guest-init.sh, chrooted into the host's tree):
# the limits this guest's kernel lets root raise, a Redis of its own, then bench.run.
# Usage: guest-job.sh OUT_DIR ROOT BENCH_ARGS...
set -uo pipefail
out=$1 root=$2
shift 2
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8

# Past 20,000: each of the worker and the load client holds every socket.
sysctl -qw fs.nr_open=1048576 fs.file-max=2000000
ulimit -Hn 1048576
ulimit -Sn 1048576
# 64 source addresses x ~64,000 ports each, and room for a burst of connects.
sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.core.somaxconn=65535 \
    net.ipv4.tcp_max_syn_backlog=65535 net.core.netdev_max_backlog=65535

redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --dir /tmp \
    --daemonize yes --logfile /tmp/redis.log
for _ in $(seq 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done

echo "guest: $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ {print $2 / 1048576 " GiB"}' /proc/meminfo), nofile $(ulimit -n)"
cd "$root" && PYTHONDONTWRITEBYTECODE=1 .venv/bin/python -m bench.run --output "$out/result.json" "$@"
