#!/usr/bin/env bash
# Builds and starts the server (`cargo run --release`), after installing what the build needs
# on a fresh machine. Arguments go to the server: ./run.sh --config /etc/conclave.toml
set -euo pipefail
cd "$(dirname "$0")"
. scripts/prerequisites.sh
ensure_rust
ensure_packages "${BUILD_PACKAGES[@]}"
exec cargo run --release --bin conclave -- "$@"
