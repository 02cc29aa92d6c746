#!/usr/bin/env bash
# The interpreter matrix (`make matrix`): tests/unit and tests/integration on every extra
# supported Python (MATRIX_PYTHONS, venvs from setup.d/25-matrix.sh); `make test` runs the
# full suite on .venv's 3.11. The runs go side by side: most of their time is spent waiting
# on servers, clients and timers, and every test server has its own Redis channel and key
# prefix. Each run writes a log; a failed run's log is printed whole.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
declare -A pids
started=$SECONDS
for version in $MATRIX_PYTHONS; do
    [ -x ".venv-py$version/bin/pytest" ] || { log "no .venv-py$version: run make setup"; exit 1; }
    # No cache provider: three pytest processes would share .pytest_cache.
    ".venv-py$version/bin/pytest" -q -p no:cacheprovider tests/unit tests/integration \
        </dev/null >"$logs/$version.log" 2>&1 &
    pids[$version]=$!
done
failed=()
for version in $MATRIX_PYTHONS; do
    if wait "${pids[$version]}"; then
        echo "Python $version: $(tail -n 1 "$logs/$version.log")"
    else
        echo "=== Python $version failed: its log ==="
        cat "$logs/$version.log"
        failed+=("$version")
    fi
done
echo "matrix ($MATRIX_PYTHONS): $((SECONDS - started)) s"
[ "${#failed[@]}" -eq 0 ] || { log "failed on Python ${failed[*]}"; exit 1; }
