#!/usr/bin/env bash
# jq (Debian's), with which the tests run the log recipes of docs/operations.md over real output.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

command -v jq >/dev/null || apt_install jq
jq --version >/dev/null
