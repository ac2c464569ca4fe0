#!/usr/bin/env bash
# One command for the synapse-admin check:
#
#   bash tests/web/synapse-admin.sh <scenario.json> <screenshot.png>
#
# Installs tests/web's npm packages when needed (deps.sh), builds the vendored synapse-admin
# UI once per version outside the clone (build-synapse-admin.sh), then runs synapse_admin.mjs
# (see there for the scenario). Output and exit status are the driver's.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ "$#" -ne 2 ]; then
  echo "usage: bash tests/web/synapse-admin.sh <scenario.json> <screenshot.png>" >&2
  exit 2
fi
source "$here/deps.sh"

t=$(now)
dist="$(bash "$here/build-synapse-admin.sh")"
echo "synapse-admin.sh: UI ready in $(took "$t") s at $dist" >&2

t=$(now)
status=0
node "$here/synapse_admin.mjs" "$dist" "$1" "$2" || status=$?
echo "synapse-admin.sh: drive took $(took "$t") s (exit $status)" >&2
exit "$status"
