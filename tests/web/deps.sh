# Sourced by the browser checks' scripts (run.sh, synapse-admin.sh): checks for Node and
# Chromium, and installs tests/web's pinned npm packages (playwright-core among them) when
# node_modules/ is missing or older than package-lock.json. Progress goes to stderr.

web_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

command -v node >/dev/null || { echo "$(basename "$0"): node is not installed (Node >= 20.19 needed)" >&2; exit 2; }
chromium_path="${CHROMIUM_PATH:-/usr/bin/chromium}"
[ -x "$chromium_path" ] || { echo "$(basename "$0"): no Chromium at $chromium_path (apt-get install chromium)" >&2; exit 2; }

# Steps are timed on stderr so slow CI runs can be told apart.
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Both checks may start at once (the test runner runs them in parallel): one installs while
# the other waits, then finds the packages there.
(
  flock -x 9
  if [ ! -f "$web_dir/node_modules/.package-lock.json" ] \
    || [ "$web_dir/package-lock.json" -nt "$web_dir/node_modules/.package-lock.json" ]; then
    t=$(now)
    echo "$(basename "$0"): npm ci" >&2
    (cd "$web_dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$(basename "$0"): npm ci took $(took "$t") s" >&2
  fi
) 9>"$web_dir/.npm-install.lock" || exit $?
