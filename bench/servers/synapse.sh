#!/usr/bin/env bash
# Run the reference homeserver, Synapse, on loopback so the load tool can be
# pointed at it side by side with Conclave (see conclave.sh next to this file).
#
# Usage:
#   bench/servers/synapse.sh start sqlite|postgres [--port P]
#   bench/servers/synapse.sh stop sqlite|postgres
#   bench/servers/synapse.sh stop-all
#   bench/servers/synapse.sh status sqlite|postgres
#
# Default ports: sqlite 18008, postgres 18009 (Conclave: 18010), so all three
# can run at once.
#
# `start` always begins from an EMPTY server: the SQLite file / the PostgreSQL
# database is deleted and recreated, and a Synapse that is already running
# for that variant is stopped first. Progress goes to stderr; the LAST line on
# stdout is machine-readable, space-separated KEY=VALUE pairs with no quoting
# needed (values never contain spaces), so a caller can do
#     eval "$(bench/servers/synapse.sh start sqlite | tail -n1)"
# The line (also saved as <work dir>/server.env, and printed by `status`):
#   URL=http://127.0.0.1:18008 PID=1234 ADMIN_TOKEN=syt_... \
#   ADMIN_USER=@benchadmin:localhost REGISTRATION=open SERVER=synapse-sqlite
# REGISTRATION=open means POST /_matrix/client/v3/register with the
# m.login.dummy UIA stage works for anyone; rate limits are all raised.
#
# Environment:
#   BENCH_WORK            work dir (default /var/cache/conclave-bench/synapse-<variant>).
#                         It names the dir of the one variant being handled, so
#                         give each variant its own value when running both.
#   BENCH_START_TIMEOUT   seconds to wait for the server to answer (default 60).
#   SYNAPSE_VENV          virtualenv (default /var/cache/conclave-bench/synapse-venv),
#                         created with `pip install matrix-synapse==PINNED` if missing.
#   PG_PORT               port of the local PostgreSQL 15 cluster "main" (default 5432).
#
# Needs: python3 (3.10+), curl, and for the postgres variant Debian's
# postgresql-15 (run as root: the script starts the cluster and uses the
# `postgres` superuser through runuser). `stop-all` does not stop PostgreSQL
# itself, as other things may use it.

set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly SYNAPSE_VERSION=1.163.2
readonly BENCH_ROOT=/var/cache/conclave-bench
readonly VENV=${SYNAPSE_VENV:-$BENCH_ROOT/synapse-venv}
readonly START_TIMEOUT=${BENCH_START_TIMEOUT:-60}
readonly SERVER_NAME=localhost
# Loopback-only throwaway credentials: nothing here is reachable from outside.
readonly ADMIN_LOCALPART=benchadmin
readonly ADMIN_PASSWORD=benchadmin-password
readonly PG_VERSION=15 PG_CLUSTER=main
# Not readonly: they are handed to the config writer as environment.
PG_PORT=${PG_PORT:-5432}
PG_DB=synapse_bench PG_USER=synapse_bench PG_PASSWORD=synapse_bench

log() { printf 'synapse.sh: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

usage() {
    sed -n '5,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

check_variant() {
    case ${1:-} in
    sqlite | postgres) ;;
    *) usage ;;
    esac
}

work_dir() { printf '%s\n' "${BENCH_WORK:-$BENCH_ROOT/synapse-$1}"; }

default_port() {
    case $1 in
    sqlite) echo 18008 ;;
    postgres) echo 18009 ;;
    esac
}

# --- Processes ------------------------------------------------------------------

# True if PID is a live Synapse started with this work dir's config. Checked
# before every kill so a stale pid file can never hit a recycled, unrelated pid.
is_our_synapse() {
    local pid=$1 config=$2 cmdline
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmdline == *synapse.app.homeserver* && $cmdline == *"$config"* ]]
}

# PIDs of Synapse processes using exactly this config file, found via /proc:
# a fallback for when the pid file was lost.
find_synapse_pids() {
    local config=$1 dir pid
    for dir in /proc/[0-9]*; do
        pid=${dir#/proc/}
        if is_our_synapse "$pid" "$config"; then
            echo "$pid"
        fi
    done
}

stop_variant() {
    local variant=$1 work config pids pid waited
    work=$(work_dir "$variant")
    config=$work/homeserver.yaml
    pids=""
    if [[ -f $work/synapse.pid ]]; then
        pid=$(<"$work/synapse.pid")
        if is_our_synapse "$pid" "$config"; then pids=$pid; fi
    fi
    [[ -n $pids ]] || pids=$(find_synapse_pids "$config")
    rm -f "$work/synapse.pid" "$work/server.env"
    if [[ -z $pids ]]; then
        log "synapse-$variant is not running"
        return 0
    fi
    for pid in $pids; do
        log "stopping synapse-$variant (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        # Synapse shuts down gracefully on SIGTERM within a few seconds; only
        # force it if it hangs, so the next start can bind the port.
        waited=0
        while kill -0 "$pid" 2>/dev/null; do
            if ((waited >= 300)); then
                log "pid $pid ignored SIGTERM for 30 s; sending SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
    done
}

# --- Installation ---------------------------------------------------------------

ensure_venv() {
    mkdir -p "$BENCH_ROOT"
    # Two starts at once (sqlite and postgres) must not both pip-install.
    exec 9>"$BENCH_ROOT/.synapse-venv.lock"
    flock 9
    if [[ -x $VENV/bin/python ]] &&
        [[ $("$VENV/bin/python" -c 'import synapse, psycopg2; print(synapse.__version__)' 2>/dev/null) == "$SYNAPSE_VERSION" ]]; then
        exec 9>&- # close (and so unlock), or Synapse would inherit the fd
        return 0
    fi
    log "installing matrix-synapse==$SYNAPSE_VERSION into $VENV (takes a minute)"
    [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
    # psycopg2-binary: the prebuilt wheel, so no libpq headers or compiler are needed.
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        "matrix-synapse==$SYNAPSE_VERSION" psycopg2-binary >&2
    exec 9>&-
}

# --- PostgreSQL -----------------------------------------------------------------

psql_super() {
    # cd / so psql, running as postgres, does not complain about root's cwd.
    (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" "$@")
}

ensure_postgres() {
    command -v pg_ctlcluster >/dev/null ||
        die "PostgreSQL is not installed (apt-get install postgresql-$PG_VERSION)"
    [[ $(id -u) == 0 ]] || die "the postgres variant must run as root (it starts the cluster and uses the postgres superuser)"
    if ! pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; then
        log "starting PostgreSQL $PG_VERSION/$PG_CLUSTER"
        pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start ||
            service postgresql start >&2 ||
            die "cannot start PostgreSQL (see /var/log/postgresql/)"
        local i
        for ((i = 0; i < 300; i++)); do
            pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && return 0
            sleep 0.1
        done
        die "PostgreSQL did not become ready on 127.0.0.1:$PG_PORT"
    fi
}

recreate_database() {
    log "recreating PostgreSQL role and database $PG_DB (empty)"
    # Synapse refuses databases whose collation/ctype is not C (it would sort
    # state keys inconsistently), and template1 may carry another locale, so
    # clone template0. WITH (FORCE) drops leftover connections (PG >= 13).
    psql_super -d postgres <<SQL >&2
SET client_min_messages = warning;
DROP DATABASE IF EXISTS $PG_DB WITH (FORCE);
DROP ROLE IF EXISTS $PG_USER;
CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD';
CREATE DATABASE $PG_DB OWNER $PG_USER
    ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
SQL
}

# --- Configuration --------------------------------------------------------------

write_config() {
    local variant=$1 work=$2 port=$3
    # Generate first so Synapse itself creates the signing key and fresh
    # secrets (registration_shared_secret included), then override what the
    # benchmark needs. Done in Python with Synapse's own PyYAML so the result
    # is real YAML rather than sed-edited text.
    (cd "$work" && "$VENV/bin/python" -m synapse.app.homeserver \
        --server-name "$SERVER_NAME" --config-path homeserver.yaml \
        --generate-config --report-stats=no >/dev/null)
    # Its generated INFO-level log config is replaced by log.config below.
    rm -f "$work/$SERVER_NAME.log.config"
    WORK=$work PORT=$port VARIANT=$variant \
        PG_PORT=$PG_PORT PG_DB=$PG_DB PG_USER=$PG_USER PG_PASSWORD=$PG_PASSWORD \
        "$VENV/bin/python" - <<'PY'
import json, os, re, sys

import yaml
import synapse.config.ratelimiting as ratelimiting

work, port, variant = os.environ["WORK"], int(os.environ["PORT"]), os.environ["VARIANT"]
path = os.path.join(work, "homeserver.yaml")
with open(path) as f:
    cfg = yaml.safe_load(f)

# Client API only, plain HTTP on loopback: no federation listener, no TLS, and
# no X-Forwarded-For trust (nothing sits in front of it).
cfg["listeners"] = [{
    "port": port,
    "bind_addresses": ["127.0.0.1"],
    "type": "http",
    "tls": False,
    "x_forwarded": False,
    "resources": [{"names": ["client"], "compress": False}],
}]

if variant == "sqlite":
    cfg["database"] = {"name": "sqlite3",
                       "args": {"database": os.path.join(work, "homeserver.db")}}
else:
    cfg["database"] = {"name": "psycopg2", "args": {
        "user": os.environ["PG_USER"], "password": os.environ["PG_PASSWORD"],
        "database": os.environ["PG_DB"], "host": "127.0.0.1",
        "port": int(os.environ["PG_PORT"]), "cp_min": 5, "cp_max": 10}}

# Open registration with the m.login.dummy stage. Synapse refuses to start with
# enable_registration alone unless told that no email/captcha/token is wanted.
cfg["enable_registration"] = True
cfg["enable_registration_without_verification"] = True

# A load test sends far more than a human: raise every rate limiter the pinned
# Synapse parses, so we measure throughput rather than 429s.
big = {"per_second": 100000, "burst_count": 100000}
rc = {
    "rc_message": big,
    "rc_registration": big,
    "rc_registration_token_validity": big,
    "rc_login": {"address": big, "account": big, "failed_attempts": big},
    "rc_admin_redaction": big,
    "rc_joins": {"local": big, "remote": big},
    "rc_joins_per_room": big,
    "rc_key_requests": big,
    "rc_3pid_validation": big,
    "rc_invites": {"per_room": big, "per_user": big, "per_issuer": big},
    "rc_third_party_invite": big,
    "rc_media_create": big,
    "rc_presence": {"per_user": big},
    "rc_delayed_event_mgmt": big,
    "rc_room_creation": big,
    "rc_reports": big,
    "rc_user_directory": big,
    "rc_profile": big,
    # Federation is off here; raised anyway for completeness.
    "rc_federation": {"window_size": 1000, "sleep_limit": 100000,
                      "sleep_delay": 500, "reject_limit": 100000,
                      "concurrent": 100000},
}
# Round-trip through JSON so each limiter gets its own dict: PyYAML would
# otherwise write one shared dict as &id001 anchors/aliases, hard to read.
rc = json.loads(json.dumps(rc))
cfg.update(rc)
# If the pin is ever bumped, say which new limiters this list misses instead
# of silently benchmarking against a default limit.
with open(ratelimiting.__file__) as f:
    source = f.read()
known = set(re.findall(r'"(rc_[a-z0-9_]+(?:\.[a-z0-9_]+)?)"', source))
# Internal names and the legacy flat keys read only when rc_message is absent.
known -= {"rc_messages", "rc_remote_media_downloads",
          "rc_messages_per_second", "rc_message_burst_count"}
for key in sorted(known):
    node = rc
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is None:
        print(f"synapse.sh: warning: rate limiter {key} is not raised", file=sys.stderr)

# Let every room be published to the room directory (the default allows only
# admins), as Conclave does.
cfg["room_list_publication_rules"] = [{"action": "allow"}]
# No outbound key fetching: there is no network, and no federation.
cfg["trusted_key_servers"] = []
cfg["suppress_key_server_warning"] = True
cfg["presence"] = {"enabled": True}
# Conclave's default: the user directory finds every local user. Synapse's
# default (false) would make directory searches cheaper there, skewing results.
cfg["user_directory"] = {"search_all_users": True}
cfg["report_stats"] = False
cfg["media_store_path"] = os.path.join(work, "media_store")
cfg["log_config"] = os.path.join(work, "log.config")
# Synapse only writes pid_file when it daemonizes; we track the pid ourselves.
cfg.pop("pid_file", None)
assert cfg.get("registration_shared_secret"), "generated config lacks registration_shared_secret"

with open(path, "w") as f:
    f.write("# Generated by bench/servers/synapse.sh; rewritten on every start.\n")
    yaml.safe_dump(cfg, f, sort_keys=False)

# WARNING and above to a file only: INFO logging of every request costs real
# CPU under load and would be noise on the console.
log_config = {
    "version": 1,
    "formatters": {"precise": {"format":
        "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s"}},
    "handlers": {"file": {"class": "logging.FileHandler", "formatter": "precise",
                          "filename": os.path.join(work, "homeserver.log"),
                          "encoding": "utf8"}},
    "loggers": {"synapse.storage.SQL": {"level": "WARNING"}},
    "root": {"level": "WARNING", "handlers": ["file"]},
    "disable_existing_loggers": False,
}
with open(cfg["log_config"], "w") as f:
    yaml.safe_dump(log_config, f, sort_keys=False)
PY
}

# --- HTTP helpers ---------------------------------------------------------------

create_admin() {
    local url=$1 work=$2 body
    # register_new_matrix_user uses the shared-secret admin API, so it works
    # whatever the registration settings are, and -a makes a server admin.
    "$VENV/bin/register_new_matrix_user" -c "$work/homeserver.yaml" \
        -u "$ADMIN_LOCALPART" -p "$ADMIN_PASSWORD" -a "$url" >&2
    body=$(printf '{"type":"m.login.password","identifier":{"type":"m.id.user","user":"%s"},"password":"%s","initial_device_display_name":"bench admin"}' \
        "$ADMIN_LOCALPART" "$ADMIN_PASSWORD")
    curl -fsS --max-time 30 -H 'Content-Type: application/json' \
        -d "$body" "$url/_matrix/client/v3/login" | json_field access_token
}

# --- Commands -------------------------------------------------------------------

start_variant() {
    local variant=$1 port=$2 work config url pid token line
    work=$(work_dir "$variant")
    config=$work/homeserver.yaml
    url=http://127.0.0.1:$port

    if [[ -f $work/synapse.pid ]] || [[ -n $(find_synapse_pids "$config") ]]; then
        log "synapse-$variant seems to be running already; restarting it from empty"
    fi
    stop_variant "$variant" 2>/dev/null || true
    if port_in_use "$port"; then
        die "port $port on 127.0.0.1 is already in use by something else (try --port)"
    fi

    ensure_venv
    mkdir -p "$work"
    # Start from nothing: drop everything a previous run left. Only named
    # files are removed, so a mistaken BENCH_WORK cannot wipe a whole tree.
    rm -rf "$work/homeserver.db" "$work/homeserver.db-wal" "$work/homeserver.db-shm" \
        "$work/homeserver.db-journal" "$work/media_store" "$work/homeserver.yaml" \
        "$work/log.config" "$work/$SERVER_NAME.log.config" "$work/$SERVER_NAME.signing.key" \
        "$work/homeserver.log" "$work/synapse.out"
    if [[ $variant == postgres ]]; then
        ensure_postgres
        recreate_database
    fi
    write_config "$variant" "$work" "$port"

    log "starting synapse-$variant on $url (work dir $work)"
    # setsid + nohup: the server outlives this script and is not hit by a
    # Ctrl-C meant for the caller. stdin/stdout/stderr are detached so a caller
    # reading our stdout through a pipe is not kept waiting by the server.
    # Without job control the subshell is no group leader, so setsid and nohup
    # both exec in place and $! is Synapse's own pid (checked below).
    (cd "$work" && exec setsid nohup "$VENV/bin/python" -m synapse.app.homeserver \
        -c "$config" </dev/null >>"$work/synapse.out" 2>&1) &
    pid=$!
    sleep 0.2
    if ! is_our_synapse "$pid" "$config"; then
        pid=$(find_synapse_pids "$config" | head -n1)
        [[ -n $pid ]] || {
            tail -n 30 "$work/synapse.out" >&2 || true
            die "Synapse did not start"
        }
    fi
    echo "$pid" >"$work/synapse.pid"
    wait_until_up Synapse "$url" "$pid" "$work/synapse.out" "$work/homeserver.log"

    token=$(create_admin "$url" "$work") || die "could not create or log in the admin user"
    [[ -n $token ]] || die "login of the admin user returned no access token"
    line="URL=$url PID=$pid ADMIN_TOKEN=$token ADMIN_USER=@$ADMIN_LOCALPART:$SERVER_NAME REGISTRATION=open SERVER=synapse-$variant"
    echo "$line" >"$work/server.env"
    log "synapse-$variant ready (log: $work/homeserver.log)"
    echo "$line"
}

status_variant() {
    local variant=$1 work pid
    work=$(work_dir "$variant")
    pid=$(cat "$work/synapse.pid" 2>/dev/null || true)
    if [[ -n $pid ]] && is_our_synapse "$pid" "$work/homeserver.yaml" && [[ -f $work/server.env ]]; then
        log "synapse-$variant running, $(grep VmRSS "/proc/$pid/status" | tr -s ' \t' ' ')"
        cat "$work/server.env"
    else
        log "synapse-$variant is not running"
        return 1
    fi
}

main() {
    local cmd=${1:-} variant port
    case $cmd in
    start)
        variant=${2:-}
        check_variant "$variant"
        port=$(default_port "$variant")
        shift 2
        while (($#)); do
            case $1 in
            --port)
                port=${2:-}
                shift 2 || usage
                ;;
            --port=*)
                port=${1#--port=}
                shift
                ;;
            *) usage ;;
            esac
        done
        if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
            die "bad port: $port"
        fi
        start_variant "$variant" "$port"
        ;;
    stop)
        check_variant "${2:-}"
        stop_variant "$2"
        ;;
    stop-all)
        stop_variant sqlite
        stop_variant postgres
        ;;
    status)
        check_variant "${2:-}"
        status_variant "$2"
        ;;
    *) usage ;;
    esac
}

main "$@"
