#!/usr/bin/env bash
# The whole test suite (`cargo nextest run`), on a fresh Debian 12 / Ubuntu 24.04 with Rust:
# installs what the tests need (Debian packages as root, Python environments and the
# matrix-sdk checker in a cache outside the clone), then runs every test.
# Arguments go to nextest: ./test.sh --test metrics
set -euo pipefail
cd "$(dirname "$0")"
. scripts/prerequisites.sh
ensure_rust

# The server's build; clients we did not write: matrix-nio and mautrix (Python), matrix-js-sdk
# and the Hydrogen web client (Node, Debian's Chromium); a real Synapse as the federation
# partner (its script makes certificates with openssl and waits with curl); coturn for TURN;
# podman, runc and debootstrap for the container images, promtool (package prometheus) for the
# metrics, systemd-analyze for the unit file.
# Node from elsewhere (NodeSource bundles npm) is used as it is: Debian's npm would conflict.
node=()
command -v npm >/dev/null 2>&1 || node=(nodejs npm)
ensure_packages "${BUILD_PACKAGES[@]}" ca-certificates procps python3 python3-venv \
  "${node[@]}" chromium openssl curl coturn \
  podman runc debootstrap prometheus systemd

VENV="$CONCLAVE_CACHE/conclave-venv"
# podman-compose 1.6 (PyPI) checks docker/docker-compose.yml: Debian 12's 1.0.3 has no `config`.
if ! "$VENV/bin/python" -c 'import nio, vodozemac, mautrix, podman_compose' >/dev/null 2>&1; then
  log "installing matrix-nio[e2e], mautrix and podman-compose into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'matrix-nio[e2e]==0.26.*' 'mautrix==0.21.*' 'podman-compose==1.6.*'
fi
export CONCLAVE_TEST_PYTHON="$VENV/bin/python"

SYNAPSE_VENV="$CONCLAVE_CACHE/synapse-venv"
if ! "$SYNAPSE_VENV/bin/python" -c 'import synapse' >/dev/null 2>&1; then
  log "installing matrix-synapse into $SYNAPSE_VENV"
  python3 -m venv "$SYNAPSE_VENV"
  "$SYNAPSE_VENV/bin/pip" install -q 'matrix-synapse==1.163.*'
fi
export SYNAPSE_VENV

if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# Element X's engine (matrix-sdk 0.18) as a separate crate, built once and cached.
SDK_TARGET="$CONCLAVE_CACHE/conclave-sdk-target"
log "building the matrix-sdk checker (tests/clients/rust-sdk)"
CARGO_TARGET_DIR="$SDK_TARGET" cargo build --release --locked --quiet \
  --manifest-path tests/clients/rust-sdk/Cargo.toml
export CONCLAVE_SDK_CHECK="$SDK_TARGET/release/sdk-check"

log "cargo nextest run"
exec cargo nextest run --no-fail-fast "$@"
