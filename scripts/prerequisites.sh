# Sourced by run.sh and test.sh: what a fresh Debian 12 / Ubuntu 24.04 machine with only Rust
# (rustup) lacks, installed when we are root, otherwise named in one line with the command
# that installs it.

log() { printf '\n== %s\n' "$*" >&2; }

# Where installs outside the clone are cached (virtualenvs, the matrix-sdk checker's build).
if [ "$(id -u)" = 0 ]; then
  CONCLAVE_CACHE="${CONCLAVE_CACHE:-/var/cache}"
else
  CONCLAVE_CACHE="${CONCLAVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/conclave}"
fi
mkdir -p "$CONCLAVE_CACHE"

apt_updated=
# ensure_packages PACKAGE... : the Debian packages not installed yet are installed (as root)
# or named, with the command, before stopping.
ensure_packages() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
      || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "conclave: missing Debian packages: ${missing[*]} — install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$apt_updated" ]; then
    apt-get update -qq
    apt_updated=1
  fi
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "conclave: cargo not found — install Rust with rustup (https://rustup.rs), then open a new shell" >&2
    exit 1
  fi
}

# What building the server needs: a C toolchain, Debian's RocksDB and libclang for its bindings.
BUILD_PACKAGES=(build-essential pkg-config librocksdb-dev libclang-dev clang)
