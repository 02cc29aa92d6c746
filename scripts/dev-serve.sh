#!/usr/bin/env bash
# `make serve`: run zou-events from this checkout. Uses the environment as given (SECRET_KEY,
# KV_HOST, ...); without a SECRET_KEY a random development key is kept in .dev-secret-key.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SECRET_KEY:-}" ]; then
    [ -s .dev-secret-key ] || (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' >.dev-secret-key)
    SECRET_KEY=$(cat .dev-secret-key)
    export SECRET_KEY
    echo "make serve: SECRET_KEY not set, using the development key in .dev-secret-key" >&2
fi
export ZOU_EVENTS_LOG_FORMAT="${ZOU_EVENTS_LOG_FORMAT:-console}"
exec .venv/bin/zou-events serve
