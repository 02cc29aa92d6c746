#!/usr/bin/env bash
# Installs and starts everything the server and the test suite need, idempotently.
# Each step lives in scripts/setup.d/ and may be run on its own.
set -euo pipefail
cd "$(dirname "$0")/.."
for step in scripts/setup.d/*.sh; do
    bash "$step"
done
