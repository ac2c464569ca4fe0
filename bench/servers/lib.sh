# Shared by conclave.sh and synapse.sh (sourced, not run). Expects `log` and START_TIMEOUT.

port_in_use() {
    # bash's /dev/tcp: a successful connect means something already listens.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

json_field() {
    # Prints field $1 of the JSON document on stdin (empty if absent).
    python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"
}

# wait_until_up NAME URL PID LOG...: waits for URL's /versions to answer; if the process dies
# or START_TIMEOUT passes, shows the last lines of the LOG files and exits.
wait_until_up() {
    local name=$1 url=$2 pid=$3 deadline=$((SECONDS + START_TIMEOUT))
    shift 3
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "$name exited during start-up; last output:"
            tail -n 30 "$@" >&2 2>/dev/null || true
            exit 1
        fi
        if curl -fsS -o /dev/null --max-time 2 "$url/_matrix/client/versions" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    log "$name did not answer $url/_matrix/client/versions within $START_TIMEOUT s; last output:"
    tail -n 30 "$@" >&2 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    exit 1
}
