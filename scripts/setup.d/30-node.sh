#!/usr/bin/env bash
# npm packages: socket.io-client, the library Kitsu's web client uses, for the end-to-end
# tests (tests/js); socket.io's server, the benchmark's Node.js contender (bench/node).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
command -v npm >/dev/null || apt_install nodejs npm
for dir in tests/js bench/node; do
    cd "$ROOT/$dir"
    stamp="node-${dir//\//-}"
    if [ ! -d node_modules ] || ! stamp_fresh "$stamp" package.json package-lock.json; then
        log "installing npm packages for $dir"
        npm ci --no-audit --no-fund --silent </dev/null
        stamp_write "$stamp" package.json package-lock.json
    fi
done
