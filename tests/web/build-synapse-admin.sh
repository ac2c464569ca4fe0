#!/usr/bin/env bash
# Builds the synapse-admin web UI (vendored in tests/web/synapse-admin/) outside the clone,
# once per version of its files, and prints the directory of the built page.
#
#   bash tests/web/build-synapse-admin.sh
#
# The build lives in $CONCLAVE_WEB_CACHE (default /var/cache/conclave-synapse-admin)/<hash>/,
# <hash> being that of the vendored files, so CI reuses it across clean clones; npm ci fetches
# the exact versions of package-lock.json. Progress goes to stderr; stdout is the dist path.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/synapse-admin"
cache="${CONCLAVE_WEB_CACHE:-/var/cache/conclave-synapse-admin}"
hash="$(cd "$src" && find . -type f -not -path './node_modules/*' -not -path './dist/*' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)"
build="$cache/$hash"

if [ ! -f "$build/dist/index.html" ]; then
  command -v npm >/dev/null || { echo "build-synapse-admin.sh: npm is not installed" >&2; exit 2; }
  echo "build-synapse-admin.sh: building synapse-admin in $build" >&2
  rm -rf "$build.tmp"
  mkdir -p "$build.tmp"
  cp -r "$src/." "$build.tmp/"
  (cd "$build.tmp" && npm ci --no-audit --no-fund --loglevel=error >&2 && npx --no-install vite build --logLevel error >&2)
  # Homeserver URLs are typed in on the login page: no restriction.
  echo '{}' > "$build.tmp/dist/config.json"
  rm -rf "$build"
  mv "$build.tmp" "$build"
fi
echo "$build/dist"
