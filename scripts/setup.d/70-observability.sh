#!/usr/bin/env bash
# promtool and the prometheus binary (Debian's `prometheus` package) for the observability tests,
# and the package's own /etc/prometheus/prometheus.yml: the role's wiring test adds the
# zou-events job and rules to a copy of it and loads that into this Prometheus (2.42 on
# Debian 12, which has no scrape_config_files). The tests run their own Prometheus on a free
# loopback port, so the packaged service must not start: a temporary policy-rc.d forbids it
# during the install, and on a host booted with systemd the unit the package enables is
# disabled again so nothing holds port 9090. No Grafana server: Debian has no package.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

config=/etc/prometheus/prometheus.yml
command -v promtool >/dev/null && command -v prometheus >/dev/null && [ -f "$config" ] && exit 0

policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt_install prometheus
if [ ! -f "$config" ]; then  # a conffile removed by hand: the package puts it back
    log "restoring the prometheus package's $config"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --reinstall \
        -o Dpkg::Options::=--force-confmiss prometheus </dev/null >/dev/null
fi

if [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
promtool --version >/dev/null
