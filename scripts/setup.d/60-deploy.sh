#!/usr/bin/env bash
# What the deployment tests (tests/deploy/) need: mmdebstrap and systemd-nspawn to boot Debian 12
# and Debian 13 system containers, the pinned Ansible and release tools in .venv-deploy, and the
# containers' root filesystems (the studio's for test_studio.py), built once and cached.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
cd "$ROOT"

apt_install mmdebstrap systemd-container python3-venv

# Debian's own Python, not whatever python3 comes first on PATH: the wheelhouse the tests
# install in the container is resolved by this interpreter, and must suit the target's
# Python (Debian 12's 3.11.2: redis then needs async-timeout).
if [ ! -x .venv-deploy/bin/python ]; then
    log "creating .venv-deploy"
    /usr/bin/python3 -m venv .venv-deploy
fi
if ! stamp_fresh venv-deploy tests/deploy/requirements.txt; then
    log "installing the deployment tools into .venv-deploy"
    .venv-deploy/bin/pip install -q --disable-pip-version-check -r tests/deploy/requirements.txt
    stamp_write venv-deploy tests/deploy/requirements.txt
fi

if [ "$(id -u)" -eq 0 ]; then
    bash tests/deploy/build-rootfs.sh bookworm >/dev/null
    bash tests/deploy/build-rootfs.sh trixie >/dev/null
    bash tests/deploy/build-studio-rootfs.sh >/dev/null  # Zou's host for test_studio.py
else
    log "not root: the deployment tests that boot a container will be skipped"
fi
