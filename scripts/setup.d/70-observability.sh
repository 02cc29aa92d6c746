#!/usr/bin/env bash
# promtool and the prometheus binary (Debian's `prometheus` package) for the observability tests.
# The tests run their own Prometheus on a free loopback port, so the packaged service must not
# start: a temporary policy-rc.d forbids it during the install, and on a host booted with systemd
# the unit the package enables is disabled again so nothing holds port 9090.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

command -v promtool >/dev/null && command -v prometheus >/dev/null && exit 0

policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt_install prometheus

if [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
promtool --version >/dev/null
