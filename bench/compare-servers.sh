#!/usr/bin/env bash
# Conclave beside Synapse (SQLite and PostgreSQL), same machine, same scenarios, one run.
#
# Usage: bench/compare-servers.sh [extra conclave-bench run arguments...]
#
# Builds release binaries of Conclave and conclave-bench, then for each server in turn
# (Conclave, Synapse with SQLite, Synapse with PostgreSQL): starts it empty on loopback with
# the scripts in bench/servers/, lets it settle, runs conclave-bench against it (sampling the
# server's RSS and CPU), and stops it. Servers run one at a time, so each has the machine to
# itself. At the end it prints a Markdown table of the figures the project tracks, with each
# ratio to Synapse and the target (the table in docs/performance.md comes from here).
#
# Output: $BENCH_OUT (default target/bench-compare/<timestamp>/) holds each server's JSON
# report, SVG plot and log, `compare` texts, and table.md.
#
# Needs what bench/servers/synapse.sh needs (python3, curl, postgresql-15, network access to
# PyPI the first time) and a Rust toolchain.

set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
target=${CARGO_TARGET_DIR:-$repo/target}
out=${BENCH_OUT:-$target/bench-compare/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
servers=${BENCH_SERVERS:-conclave synapse-sqlite synapse-postgres}

log() { printf '\n== %s\n' "$*" >&2; }

log "building release binaries"
cargo build --release --quiet -p conclave -p conclave-bench
export CONCLAVE_BIN=$target/release/conclave
bench=$target/release/conclave-bench

# The same population and scenarios for every server: the figures the issue tracks.
args=(
    --users 40 --rooms 10 --members-per-room 8
    --send-concurrency 16 --send-duration-secs 10
    --sequential-sends 200
    --wakeup-reps 50
    --history-messages 200 --sync-rooms 300 --sync-reps 20
    --chat-senders 8 --chat-rate 40 --chat-duration-secs 15
    --join-storm-users 20 --login-burst 20 --register-burst 10
    --seed 1 --quiet
    "$@"
)

start() {
    case $1 in
        conclave) bench/servers/conclave.sh start ;;
        synapse-sqlite) bench/servers/synapse.sh start sqlite ;;
        synapse-postgres) bench/servers/synapse.sh start postgres ;;
        *) echo "unknown server $1" >&2; exit 2 ;;
    esac
}

stop() {
    case $1 in
        conclave) bench/servers/conclave.sh stop ;;
        synapse-sqlite) bench/servers/synapse.sh stop sqlite ;;
        synapse-postgres) bench/servers/synapse.sh stop postgres ;;
    esac
}

for server in $servers; do
    log "$server: starting"
    line=$(start "$server" | tail -n1)
    URL='' PID=''
    eval "$line"
    trap 'stop "$server" >/dev/null 2>&1 || true' EXIT
    # Idle RSS is read after the server has settled, as an operator would see it.
    sleep 5
    log "$server: running conclave-bench against $URL (pid $PID)"
    "$bench" run --url "$URL" --pid "$PID" --label "$server" \
        --report "$out/$server.json" --plot "$out/$server.svg" "${args[@]}" \
        | tee "$out/$server.txt"
    stop "$server" >/dev/null
    trap - EXIT
done

if [[ $servers == *conclave* ]]; then
    for other in $servers; do
        [[ $other == conclave ]] && continue
        "$bench" compare "$out/conclave.json" "$out/$other.json" >"$out/compare-$other.txt"
    done
fi

python3 - "$out" $servers >"$out/table.md" <<'PY'
import json, sys
out, servers = sys.argv[1], sys.argv[2:]
reports = {s: json.load(open(f"{out}/{s}.json")) for s in servers}

def scen(s, name):
    return reports[s]["scenarios"].get(name) or {}

def lat(key, p="p50"):
    return lambda s: ((scen(s, key).get("latency_ms") or {}).get(p))

def delivery(key, p="p50"):
    return lambda s: ((scen(s, key).get("delivery_ms") or {}).get(p))

def thr(key):
    return lambda s: scen(s, key).get("throughput_per_sec")

def rss(s):
    v = reports[s].get("idle_rss_bytes")
    return v / 1e6 if v else None

# (figure, unit, getter, higher is better, target as text, target test on (conclave, synapse))
rows = [
    ("concurrent sends into one room, 16 connections", "msg/s", thr("concurrent-send"), True,
     "≥ 20× Synapse", lambda c, s: c >= 20 * s),
    ("sequential send latency p50", "ms", lat("sequential-send"), False,
     "≤ 1/50 of Synapse", lambda c, s: c * 50 <= s),
    ("sequential send latency p99", "ms", lat("sequential-send", "p99"), False, "", None),
    ("long-poll wake-up after the send returns, p50", "ms", lat("wakeup"), False,
     "≤ 2 ms", lambda c, s: c <= 2.0),
    ("long-poll wake-up from the start of the send, p50", "ms", delivery("wakeup"), False, "", None),
    ("idle RSS after start", "MB", rss, False, "≤ 30 MB", lambda c, s: c <= 30.0),
    ("initial sync, fresh device, room with 200 messages, p50", "ms", lat("initial-sync-history"),
     False, "≥ 20× faster", lambda c, s: c * 20 <= s),
    ("initial sync, fresh device, user in 300 rooms, p50", "ms", lat("initial-sync-rooms"),
     False, "≥ 20× faster", lambda c, s: c * 20 <= s),
    ("steady chat: send → delivery p50", "ms", delivery("steady-chat"), False, "", None),
    ("steady chat: send → delivery p99", "ms", delivery("steady-chat", "p99"), False, "", None),
    ("join storm, 20 users at once, p50", "ms", lat("join-storm"), False, "", None),
    ("login burst, 20 at once, p50", "ms", lat("login-burst"), False, "", None),
    ("registration burst, 10 at once, p50", "ms", lat("register-burst"), False, "", None),
]

def fmt(v):
    if v is None:
        return "–"
    return f"{v:,.0f}" if v >= 100 else f"{v:.2f}" if v < 10 else f"{v:.1f}"

synapses = [s for s in servers if s != "conclave"]
head = ["figure", "unit"] + servers + [f"Conclave vs {s}" for s in synapses if "conclave" in servers]
if "conclave" in servers and synapses:
    head += ["target", "met"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for name, unit, get, higher, target, test in rows:
    values = {s: get(s) for s in servers}
    cells = [name, unit] + [fmt(values[s]) for s in servers]
    met = []
    if "conclave" in servers:
        c = values["conclave"]
        for s in synapses:
            v = values[s]
            if c is None or v is None or c == 0 or v == 0:
                cells.append("–")
                continue
            ratio = c / v if higher else v / c
            cells.append(f"{ratio:.1f}× {'better' if ratio >= 1 else 'worse'}")
            if test is not None:
                met.append(test(c, v))
        if synapses:
            cells.append(target)
            cells.append("–" if test is None or not met else ("yes" if all(met) else "**no**"))
    print("| " + " | ".join(cells) + " |")
errors = {s: {k: v.get("errors", 0) for k, v in reports[s]["scenarios"].items() if v.get("errors")}
          for s in servers}
print()
for s in servers:
    print(f"- {s}: errors {errors[s] or 'none'}")
PY
log "table ($out/table.md)"
cat "$out/table.md"
