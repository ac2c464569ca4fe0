#!/usr/bin/env bash
# One command for the Hydrogen web-client check:
#
#   bash tests/web/run.sh <homeserver_url> <username> <password> <room_id> "<expected text>" <screenshot.png>
#
# Installs the pinned npm packages (npm ci) when node_modules/ is missing or
# older than package-lock.json, builds the page with vite when dist/ is missing
# or older than its sources, then runs drive.mjs with the given arguments
# (see drive.mjs for the environment knobs). Exit status and output are
# drive.mjs's: one JSON line on stdout, exit 0 when the text was shown.
# Progress of the npm/vite steps goes to stderr, so stdout stays one line.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if [ "$#" -ne 6 ]; then
  echo "usage: bash tests/web/run.sh <homeserver_url> <username> <password> <room_id> <expected_text> <screenshot.png>" >&2
  exit 2
fi

# A relative screenshot path is relative to the caller's directory, not this one.
shot="$6"
case "$shot" in
  /*) ;;
  *) shot="$OLDPWD/$shot" ;;
esac

source "$here/deps.sh"

stale=0
if [ ! -f dist/index.html ]; then
  stale=1
else
  for f in index.html main.js vite.config.js package-lock.json; do
    if [ "$f" -nt dist/index.html ]; then stale=1; fi
  done
fi
if [ "$stale" = 1 ]; then
  t=$(now)
  echo "run.sh: vite build" >&2
  npx --no-install vite build --logLevel error >&2
  echo "run.sh: vite build took $(took "$t") s" >&2
fi

t=$(now)
status=0
node drive.mjs "$1" "$2" "$3" "$4" "$5" "$shot" || status=$?
echo "run.sh: drive took $(took "$t") s (exit $status)" >&2
exit "$status"
