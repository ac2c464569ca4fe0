#!/usr/bin/env bash
# Proof that synapse-peer.sh gives working federation peers: two Synapses on
# loopback, a user on each, a public room on A joined over federation from B,
# a message from B read back on A.
#
# Usage: tests/federation/two-synapses-smoke.sh
# Environment:
#   SMOKE_IP_A, SMOKE_IP_B  addresses (default 127.0.0.21, 127.0.0.22)
#   SMOKE_WORK              parent of the two workdirs (default /tmp/synapse-peers)
#   KEEP_PEERS=1            leave both Synapses running afterwards
# Exit status 0 and a final "PASS" line on success.

set -euo pipefail

readonly HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly IP_A=${SMOKE_IP_A:-127.0.0.21} IP_B=${SMOKE_IP_B:-127.0.0.22}
readonly WORK=${SMOKE_WORK:-/tmp/synapse-peers}
readonly WORK_A=$WORK/a WORK_B=$WORK/b
readonly T0=${EPOCHREALTIME/./}

log() {
    local us=$((${EPOCHREALTIME/./} - T0))
    printf 'smoke [%3d.%02ds]: %s\n' $((us / 1000000)) $((us % 1000000 / 10000)) "$*" >&2
}
fail() {
    log "FAIL: $*"
    exit 1
}

cleanup() {
    if [[ ${KEEP_PEERS:-} != 1 ]]; then
        "$HERE/synapse-peer.sh" stop "$WORK_A" 2>/dev/null &
        "$HERE/synapse-peer.sh" stop "$WORK_B" 2>/dev/null &
        wait || true
        log "peers stopped"
    fi
}
trap cleanup EXIT

# jget FIELD: prints a top-level field of the JSON document on stdin.
jget() { python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
# urlenc STRING
urlenc() { python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }

# api METHOD URL [TOKEN] [BODY]: sets RESP (body) and CODE (HTTP status).
api() {
    local method=$1 url=$2 token=${3:-} body=${4:-} out
    local args=(-sS --max-time 60 -X "$method" -w '\n%{http_code}')
    [[ -n $token ]] && args+=(-H "Authorization: Bearer $token")
    [[ -n $body ]] && args+=(-H 'Content-Type: application/json' -d "$body")
    out=$(curl "${args[@]}" "$url") || fail "curl $method $url failed"
    CODE=${out##*$'\n'}
    RESP=${out%$'\n'*}
}

# register CLIENT_URL LOCALPART: prints the access token. The dummy stage may
# first answer 401 with a UIA session; repeat with it.
register() {
    local url=$1 user=$2 body session
    body=$(printf '{"username":"%s","password":"smoke-%s-pw","auth":{"type":"m.login.dummy"}}' "$user" "$user")
    api POST "$url/_matrix/client/v3/register" "" "$body"
    if [[ $CODE == 401 ]]; then
        session=$(jget session <<<"$RESP")
        body=$(printf '{"username":"%s","password":"smoke-%s-pw","auth":{"type":"m.login.dummy","session":"%s"}}' \
            "$user" "$user" "$session")
        api POST "$url/_matrix/client/v3/register" "" "$body"
    fi
    [[ $CODE == 200 ]] || fail "register $user on $url: HTTP $CODE $RESP"
    jget access_token <<<"$RESP"
}

# --- 1. Two peers, started in parallel (each prints its env line last). ------
log "starting peers $IP_A and $IP_B"
mkdir -p "$WORK"
"$HERE/synapse-peer.sh" start "$IP_A" "$WORK_A" >"$WORK/a.env" 2>"$WORK/a.err" &
pid_a=$!
"$HERE/synapse-peer.sh" start "$IP_B" "$WORK_B" >"$WORK/b.env" 2>"$WORK/b.err" &
pid_b=$!
wait "$pid_a" || { cat "$WORK/a.err" >&2; fail "peer A did not start"; }
wait "$pid_b" || { cat "$WORK/b.err" >&2; fail "peer B did not start"; }
eval "$(tail -n1 "$WORK/a.env" | sed 's/\([A-Z_]*\)=/A_\1=/g')"
eval "$(tail -n1 "$WORK/b.env" | sed 's/\([A-Z_]*\)=/B_\1=/g')"
log "peers up: $A_SERVER_NAME (pid $A_PID), $B_SERVER_NAME (pid $B_PID)"

# --- 2. A user on each. -------------------------------------------------------
tok_a=$(register "$A_CLIENT_URL" alice)
tok_b=$(register "$B_CLIENT_URL" bob)
log "registered @alice:$A_SERVER_NAME and @bob:$B_SERVER_NAME"

# --- 3. Alice creates a public room on A. ------------------------------------
api POST "$A_CLIENT_URL/_matrix/client/v3/createRoom" "$tok_a" \
    '{"preset":"public_chat","visibility":"public","name":"federation smoke"}'
[[ $CODE == 200 ]] || fail "createRoom: HTTP $CODE $RESP"
room=$(jget room_id <<<"$RESP")
room_enc=$(urlenc "$room")
log "room $room created on A"

# --- 4. Bob joins it over federation (make_join/send_join A <- B). ----------
api POST "$B_CLIENT_URL/_matrix/client/v3/join/$room_enc?server_name=$(urlenc "$A_SERVER_NAME")" "$tok_b" '{}'
[[ $CODE == 200 ]] || fail "remote join from B: HTTP $CODE $RESP"
log "bob joined from B"

# --- 5. Bob sends; Alice must see it on A via /send (B -> A). ----------------
text="hello from $B_SERVER_NAME $(date +%s%N)"
api PUT "$B_CLIENT_URL/_matrix/client/v3/rooms/$room_enc/send/m.room.message/txn1" "$tok_b" \
    "$(printf '{"msgtype":"m.text","body":"%s"}' "$text")"
[[ $CODE == 200 ]] || fail "send from B: HTTP $CODE $RESP"
event=$(jget event_id <<<"$RESP")
log "bob sent $event"

deadline=$((SECONDS + 30))
while :; do
    api GET "$A_CLIENT_URL/_matrix/client/v3/rooms/$room_enc/messages?dir=b&limit=50" "$tok_a"
    [[ $CODE == 200 ]] || fail "/messages on A: HTTP $CODE $RESP"
    found=$(python3 -c '
import json, sys
chunk = json.load(sys.stdin)["chunk"]
ev = [e for e in chunk if e.get("event_id") == sys.argv[1]]
ok = ev and ev[0]["content"].get("body") == sys.argv[2] and ev[0]["sender"] == sys.argv[3]
print("yes" if ok else "no")' "$event" "$text" "@bob:$B_SERVER_NAME" <<<"$RESP")
    [[ $found == yes ]] && break
    ((SECONDS < deadline)) || fail "A never showed bob's message; last /messages: $RESP"
    sleep 0.2
done
log "alice read bob's message on A"
echo PASS
