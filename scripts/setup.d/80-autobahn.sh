#!/usr/bin/env bash
# Autobahn|Testsuite's fuzzing client (wstest), the standard RFC 6455 conformance suite, for
# tests/autobahn/: it runs under Python 2.7 only (pyenv's on this machine), in .venv-autobahn.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
cd "$ROOT"

[ -x .venv-autobahn/bin/wstest ] && exit 0
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
log "creating .venv-autobahn (Autobahn|Testsuite under $PY27)"
"$PY27" -m pip install -q --disable-pip-version-check "virtualenv<20.22"
"$PY27" -m virtualenv -q .venv-autobahn
.venv-autobahn/bin/pip install -q --disable-pip-version-check autobahntestsuite==25.10.1
.venv-autobahn/bin/wstest --help >/dev/null
