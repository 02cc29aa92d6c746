#!/usr/bin/env bash
# Autobahn|Testsuite's fuzzing client (wstest), the standard RFC 6455 conformance suite, for
# tests/autobahn/: it runs under Python 2.7 only (pyenv's on this machine). The virtualenv is
# built once per machine in the cache (a first build compiles Twisted: minutes) and linked as
# .venv-autobahn, so a fresh clone only links it.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
cd "$ROOT"

VERSION=25.10.1
VENV="$CACHE_DIR/venv-autobahn-$VERSION"
link() { ln -sfn "$VENV" .venv-autobahn; }
if [ -f "$VENV/.complete" ]; then
    link
    exit 0
fi
PY27=""
# pyenv's own first: its shim answers for python2.7 but fails unless 2.7 is selected
for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7*/bin/python2.7 python2.7; do
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; then
        PY27=$candidate
        break
    fi
done
if [ -z "$PY27" ]; then
    log "no Python 2.7 found (pyenv install 2.7.18): Autobahn|Testsuite runs on nothing else"
    exit 1
fi
log "creating $VENV (Autobahn|Testsuite under $PY27)"
"$PY27" -m pip install -q --disable-pip-version-check "virtualenv<20.22"
rm -rf "$VENV"  # an interrupted build (scripts carry the venv's path: built in place)
"$PY27" -m virtualenv -q "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check "autobahntestsuite==$VERSION"
"$VENV/bin/wstest" --help >/dev/null
touch "$VENV/.complete"
link
