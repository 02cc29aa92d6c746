#!/usr/bin/env bash
# socket.io-client from npm, the library Kitsu's web client uses, for the end-to-end tests.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"
cd "$ROOT/tests/js"
command -v npm >/dev/null || apt_install nodejs npm
if [ ! -d node_modules ] || ! stamp_fresh node package.json package-lock.json; then
    log "installing npm packages for tests/js"
    npm ci --no-audit --no-fund --silent </dev/null
    stamp_write node package.json package-lock.json
fi
