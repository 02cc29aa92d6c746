#!/usr/bin/env bash
# The real Zou API (pinned release) for the compatibility tests and the benchmarks. Zou pins
# its own versions of our dependencies, so it lives in a separate virtualenv, cached outside
# the repository and linked as .venv-zou. A venv that cannot import zou is rebuilt.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
cd "$ROOT"

ZOU_VERSION=1.0.97
VENV="$CACHE_DIR/venv-zou-$ZOU_VERSION"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3

venv_ok() {
    [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/zou" ] && [ -x "$VENV/bin/gunicorn" ] &&
        "$VENV/bin/python" - "$ZOU_VERSION" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version

import geventwebsocket.gunicorn.workers  # noqa: F401  (Zou's event stream worker)
import zou  # noqa: F401

sys.exit(version("zou") != sys.argv[1])
EOF
}

# The test stack creates and drops its databases with createdb/dropdb.
command -v createdb >/dev/null || apt_install postgresql-client

if ! venv_ok; then
    "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
    log "installing zou==$ZOU_VERSION into $VENV (about a minute)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip </dev/null >/dev/null
    "$VENV/bin/pip" install -q --disable-pip-version-check "zou==$ZOU_VERSION" </dev/null
    venv_ok || { log "zou==$ZOU_VERSION installed but does not import"; exit 1; }
fi

# Replace a stale link (or a leftover directory from an older layout) with the cached venv.
if [ "$(readlink .venv-zou 2>/dev/null)" != "$VENV" ]; then
    rm -rf .venv-zou
    ln -s "$VENV" .venv-zou
fi
