#!/usr/bin/env bash
# One small virtualenv per python-socketio version Zou's API has published with (JSON era),
# so the compatibility tests publish with the real libraries: 5.14.1, 5.15.0, 5.16.2.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
for version in 5.14.1 5.15.0 5.16.2; do
    venv="$CACHE_DIR/publisher-socketio-$version"
    if ! "$venv/bin/python" -c "import importlib.metadata as m, redis, sys; sys.exit(m.version('python-socketio') != '$version')" 2>/dev/null; then
        log "creating the python-socketio $version publisher"
        rm -rf "$venv"
        "$PYTHON" -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check "python-socketio==$version" "redis<8"
    fi
done
