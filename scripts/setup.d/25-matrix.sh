#!/usr/bin/env bash
# One virtualenv per extra supported Python (MATRIX_PYTHONS in lib.sh: .venv-py3.10, ...) for the
# interpreter matrix (`make matrix`), with the same pinned dependencies as .venv (the full
# suite's Python, 3.11). Built once per machine in the cache and linked, like .venv-zou.
# Interpreters: pyenv's, else uv-managed ones, else python3.X on PATH; none is installed here.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
cd "$ROOT"

is_python() {  # is_python PATH VERSION: PATH runs and is that minor version
    [ -x "$1" ] && "$1" -c "import sys; sys.exit(f'{sys.version_info[0]}.{sys.version_info[1]}' != '$2')" 2>/dev/null
}

find_python() {  # find_python VERSION: prints the interpreter's path, or fails
    local version=$1 candidate
    # The newest patch release pyenv has (read from its directory: the pyenv command may not be
    # on CI's PATH); its real binary, not the shim, which follows `pyenv local` or PYENV_VERSION.
    for candidate in $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}/versions/$version".* 2>/dev/null | sort -rV); do
        is_python "$candidate/bin/python$version" "$version" &&
            { echo "$candidate/bin/python$version"; return; }
    done
    if command -v uv >/dev/null; then
        candidate=$(uv python find --python-preference only-managed "$version" 2>/dev/null || true)
        is_python "$candidate" "$version" && { echo "$candidate"; return; }
    fi
    candidate=$(command -v "python$version" || true)
    if [ -n "$candidate" ] && is_python "$candidate" "$version"; then
        echo "$candidate"
        return
    fi
    log "no Python $version for the interpreter matrix: install it with" \
        "'pyenv install $version' or 'uv python install $version'"
    return 1
}

# The project's dependencies with the dev extra, one a line (tomllib: .venv's 3.11 reads it).
requirements() {
    .venv/bin/python -c 'import sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print(*project["dependencies"], *project["optional-dependencies"]["dev"], sep="\n")'
}

# What a matrix venv holds: the interpreter (path and patch release), the requirements and the
# pins; other edits to pyproject.toml do not rebuild it.
inputs() {  # inputs PYTHON
    "$1" -c 'import sys; print(sys.executable, sys.version)'
    requirements
    cat constraints.txt
}

link_venv() {  # link_venv VERSION PYTHON: .venv-pyVERSION -> the cached venv for its inputs
    local version=$1 python=$2 key venv
    key=$(inputs "$python" | sha256sum | cut -c1-16)
    venv="$CACHE_DIR/venv-py$version-$key"
    if [ ! -f "$venv/.complete" ]; then
        log "building the Python $version virtualenv of the matrix with $python"
        rm -rf "$CACHE_DIR/venv-py$version-"*  # older inputs' venvs, or an interrupted build
        "$python" -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip </dev/null >/dev/null
        # The dependencies only: the tests import zou_events from the tree they run in.
        "$venv/bin/pip" install -q --disable-pip-version-check -c constraints.txt \
            -r <(requirements) </dev/null
        touch "$venv/.complete"
    fi
    if [ "$(readlink ".venv-py$version" 2>/dev/null)" != "$venv" ]; then
        rm -rf ".venv-py$version"
        ln -s "$venv" ".venv-py$version"
    fi
}

# Every interpreter is found before anything is built, so a missing one fails at once.
declare -A pythons
for version in $MATRIX_PYTHONS; do
    pythons[$version]=$(find_python "$version")
done
# The builds run side by side (nothing is built in the tree); each one's failure is reported.
pids=()
for version in $MATRIX_PYTHONS; do
    link_venv "$version" "${pythons[$version]}" &
    pids+=("$!")
done
failed=0
for pid in "${pids[@]}"; do
    wait "$pid" || failed=1
done
[ "$failed" -eq 0 ] || { log "a virtualenv of the matrix failed to build (see above)"; exit 1; }
