#!/usr/bin/env bash
# Builds (once) the Debian 12 root filesystem the deployment tests boot with systemd-nspawn and
# prints its path. The cache key is this file plus the apt sources it is built from, so a rerun
# with nothing changed returns at once; the tests boot it with --volatile=overlay, which keeps
# the cached tree pristine.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"

# What the target of the role looks like before Ansible: systemd as PID 1, Python for Ansible's
# modules, and the services Zou's host already runs (Redis, nginx).
PACKAGES=systemd,systemd-sysv,dbus,procps,sudo,python3,python3-venv,python3-packaging,python3-apt
PACKAGES+=,redis-server,nginx-light

# The host's own Debian sources (same mirror, same snapshot); ZOU_EVENTS_DEBIAN_SOURCES overrides.
sources="${ZOU_EVENTS_DEBIAN_SOURCES:-}"
if [ -z "$sources" ]; then
    for candidate in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
        if [ -s "$candidate" ]; then sources=$candidate; break; fi
    done
fi
[ -n "$sources" ] || { log "no Debian apt sources found; set ZOU_EVENTS_DEBIAN_SOURCES"; exit 1; }

key=$(cat "$0" "$sources" | sha256sum | cut -c1-16)
base="$CACHE_DIR/deploy"
rootfs="$base/rootfs-bookworm-$key"
if [ ! -f "$rootfs/.complete" ]; then
    mkdir -p "$base"
    # Older trees (other keys) and half-built ones are removed: only the current one is kept.
    for old in "$base"/rootfs-*; do
        [ -e "$old" ] || continue
        { findmnt -R -n -o TARGET "$old" || true; } | sort -r | xargs -r -n1 umount -l
        rm -rf --one-file-system "$old"
    done
    log "building the Debian 12 root filesystem for the deployment tests (about a minute)"
    building="$rootfs.building"
    # /etc/hostname and /etc/hosts: an installed Debian has both, mmdebstrap writes neither
    # (and "localhost", Redis's default host, must resolve).
    mmdebstrap --quiet --variant=minbase --include="$PACKAGES" \
        --customize-hook='echo zou-events-test >"$1/etc/hostname"' \
        --customize-hook='printf "127.0.0.1 localhost\n::1 localhost\n" >"$1/etc/hosts"' \
        bookworm "$building" "$sources"
    touch "$building/.complete"
    mv "$building" "$rootfs"
fi
echo "$rootfs"
