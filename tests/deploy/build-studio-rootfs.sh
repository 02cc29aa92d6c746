#!/usr/bin/env bash
# Builds (once) the root filesystem of a studio's Kitsu host for tests/deploy/test_studio.py and
# prints its path: the deployment tests' Debian 12 tree (build-rootfs.sh) plus what Zou's setup
# guide installs before any configuration, PostgreSQL from Debian and Zou from pip in its own
# venv (/opt/zou/zouenv). Zou's users, files, units, database and nginx site are the test's
# job: they are the guide's steps. The cache key is this file plus the base tree (whose name
# carries its own key), so a rerun with nothing changed returns at once.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"

ZOU_VERSION=1.0.97
PYTHON="$ROOT/.venv-deploy/bin/python"  # Debian 12's Python, as in the container

base_rootfs=$(bash "$(dirname "$0")/build-rootfs.sh")
key=$(cat "$0" <(echo "$base_rootfs") | sha256sum | cut -c1-16)
cache="$CACHE_DIR/deploy"
rootfs="$cache/studio-bookworm-$key"
if [ -f "$rootfs/.complete" ]; then
    echo "$rootfs"
    exit 0
fi

# Zou's wheels, resolved on the host for the container's Python: the container has no network.
house="$cache/zou-wheels-$ZOU_VERSION-$("$PYTHON" -c 'import platform; print(platform.python_version())')"
if [ ! -f "$house/.complete" ]; then
    log "downloading zou==$ZOU_VERSION and its dependencies for the studio container"
    rm -rf "$house"
    "$PYTHON" -m pip wheel -q --disable-pip-version-check "zou==$ZOU_VERSION" -w "$house" \
        >"$house.log" 2>&1 || { cat "$house.log" >&2; exit 1; }
    touch "$house/.complete"
fi

for old in "$cache"/studio-*; do
    [ -e "$old" ] || continue
    { findmnt -R -n -o TARGET "$old" || true; } | sort -r | xargs -r -n1 umount -l
    rm -rf --one-file-system "$old"
done
log "building the studio root filesystem (PostgreSQL, zou==$ZOU_VERSION; about two minutes)"
building="$rootfs.building"
cp -a --reflink=auto "$base_rootfs" "$building"
rm "$building/.complete"
# Packages are installed, not started: there is no systemd running in this build container.
printf '#!/bin/sh\nexit 101\n' >"$building/usr/sbin/policy-rc.d"
chmod 0755 "$building/usr/sbin/policy-rc.d"
# Zou's guide: "sudo apt-get install postgresql postgresql-client" (and curl, which any host has),
# then
# "python3 -m venv /opt/zou/zouenv" and "/opt/zou/zouenv/bin/python -m pip install zou".
systemd-nspawn --quiet --register=no --keep-unit --as-pid2 --directory="$building" \
    --bind-ro="$house:/tmp/zou-wheels" --setenv=DEBIAN_FRONTEND=noninteractive \
    /bin/sh -ec "
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends postgresql postgresql-client curl >/dev/null
        # The cluster took the next free port, this build sharing the host's network.
        sed -i 's/^port = .*/port = 5432/' /etc/postgresql/*/main/postgresql.conf
        apt-get clean
        rm -rf /var/lib/apt/lists/*
        python3 -m venv /opt/zou/zouenv
        /opt/zou/zouenv/bin/python -m pip install -q --disable-pip-version-check --no-index \
            --find-links /tmp/zou-wheels zou==$ZOU_VERSION
    " >&2
rm "$building/usr/sbin/policy-rc.d"
touch "$building/.complete"
mv "$building" "$rootfs"
echo "$rootfs"
