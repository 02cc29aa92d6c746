#!/usr/bin/env bash
# Builds (once) the Debian root filesystem the deployment tests boot with systemd-nspawn and
# prints its path: `build-rootfs.sh [bookworm|trixie]` (Debian 12, the default, or 13). The
# cache key is this file plus the apt sources it is built from, so a rerun with nothing changed
# returns at once; the tests boot it with --volatile=overlay, which keeps the cached tree
# pristine.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"

suite=${1:-bookworm}
# What the target of the role looks like before Ansible: systemd as PID 1, Python for Ansible's
# modules, and the services Zou's host already runs (Redis, nginx; Prometheus, whose promtool
# the role checks its rules with).
PACKAGES=systemd,systemd-sysv,dbus,procps,sudo,python3,python3-venv,python3-packaging,python3-apt
PACKAGES+=,redis-server,prometheus
case "$suite" in
    bookworm) PACKAGES+=,nginx-light ;;
    trixie) PACKAGES+=,nginx ;;  # Debian 13 dropped the nginx-light flavour
    *) log "unknown Debian suite: $suite (bookworm or trixie)"; exit 2 ;;
esac

# The host's own Debian sources (same mirror, same snapshot), its release's name replaced by
# the suite's; ZOU_EVENTS_DEBIAN_SOURCES overrides.
host_sources="${ZOU_EVENTS_DEBIAN_SOURCES:-}"
if [ -z "$host_sources" ]; then
    for candidate in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
        if [ -s "$candidate" ]; then host_sources=$candidate; break; fi
    done
fi
[ -n "$host_sources" ] || { log "no Debian apt sources found; set ZOU_EVENTS_DEBIAN_SOURCES"; exit 1; }
host_codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
sources=$(sed -E "s/\\b$host_codename(-|\\b)/$suite\\1/g" "$host_sources")

key=$(cat "$0" <(echo "$sources") | sha256sum | cut -c1-16)
base="$CACHE_DIR/deploy"
rootfs="$base/rootfs-$suite-$key"
if [ ! -f "$rootfs/.complete" ]; then
    mkdir -p "$base"
    # This suite's older trees (other keys) and half-built ones are removed: only the current
    # one is kept.
    for old in "$base/rootfs-$suite"-*; do
        [ -e "$old" ] || continue
        { findmnt -R -n -o TARGET "$old" || true; } | sort -r | xargs -r -n1 umount -l
        rm -rf --one-file-system "$old"
    done
    log "building the Debian $suite root filesystem for the deployment tests (about a minute)"
    building="$rootfs.building"
    # mmdebstrap tells deb822 sources from one-line ones by the file's suffix.
    sources_file=$(mktemp --suffix=".${host_sources##*.}")
    trap 'rm -f "$sources_file"' EXIT
    echo "$sources" >"$sources_file"
    # /etc/hostname and /etc/hosts: an installed Debian has both, mmdebstrap writes neither
    # (and "localhost", Redis's default host, must resolve).
    mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
        --customize-hook='echo zou-events-test >"$1/etc/hostname"' \
        --customize-hook='printf "127.0.0.1 localhost\n::1 localhost\n" >"$1/etc/hosts"' \
        "$suite" "$building" "$sources_file"
    touch "$building/.complete"
    mv "$building" "$rootfs"
fi
echo "$rootfs"
