#!/usr/bin/env bash
# The project's virtualenv (.venv) with the package in editable mode and the dev tools.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
cd "$ROOT"

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    "$PYTHON" -m venv .venv
fi
if ! stamp_fresh venv pyproject.toml constraints.txt; then
    log "installing Python packages into .venv"
    .venv/bin/pip install -q --disable-pip-version-check --upgrade pip >/dev/null
    .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
    stamp_write venv pyproject.toml constraints.txt
fi
