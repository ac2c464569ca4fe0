#!/usr/bin/env bash
# Runs the matrix-js-sdk end-to-end encryption scenario against a homeserver:
#
#   bash tests/clients/js/run.sh <homeserver_url>
#
# Installs the pinned npm packages (npm ci) when node_modules/ is missing or older than
# package-lock.json. Output is e2ee.mjs's: one JSON line on stdout, progress on stderr.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ "$#" -ne 1 ]; then
  echo "usage: bash tests/clients/js/run.sh <homeserver_url>" >&2
  exit 2
fi
command -v node >/dev/null || { echo "run.sh: node is not installed" >&2; exit 2; }
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "run.sh: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
exec node e2ee.mjs "$1"
