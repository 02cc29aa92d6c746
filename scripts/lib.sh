# Shared helpers for the setup steps (sourced, not run).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${ZOU_EVENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/zou-events}"
mkdir -p "$CACHE_DIR"

log() { printf '[setup] %s\n' "$*" >&2; }

# apt_install PKG... : installs the Debian packages that are missing.
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Another apt run (an unattended upgrade, a second setup) holds the lock: wait for it.
    local wait_lock=(-o DPkg::Lock::Timeout=600)
    if [ ! -f "$CACHE_DIR/apt-updated" ] || [ -n "$(find "$CACHE_DIR/apt-updated" -mmin +720)" ]; then
        apt-get "${wait_lock[@]}" update -qq </dev/null && touch "$CACHE_DIR/apt-updated"
    fi
    apt-get "${wait_lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
}

# stamp_fresh NAME FILE... : true when NAME was stamped with the same content hash of FILEs.
stamp_fresh() {
    local name=$1; shift
    local want; want=$(cat "$@" | sha256sum | cut -c1-16)
    [ -f "$ROOT/.setup-stamps/$name" ] && [ "$(cat "$ROOT/.setup-stamps/$name")" = "$want" ]
}
stamp_write() {
    local name=$1; shift
    mkdir -p "$ROOT/.setup-stamps"
    cat "$@" | sha256sum | cut -c1-16 >"$ROOT/.setup-stamps/$name"
}

# The supported Pythons besides .venv's (3.11): their venvs (setup.d/25-matrix.sh) run tests/unit
# and tests/integration in `make matrix`.
MATRIX_PYTHONS="${MATRIX_PYTHONS:-3.10 3.12 3.13}"
