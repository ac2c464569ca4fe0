#!/bin/sh
# Complement's homeserver entry point: a TLS certificate for $SERVER_NAME signed by the CA that
# Complement mounts at /complement/ca, then Conclave. Complement may start a container several
# times (blueprints are committed images): the certificate is made anew at each start, the
# database in /conclave/database is kept.
#
# Environment:
#   SERVER_NAME                 the server's name (Complement sets it: hs1, hs2, ...)
#   CONCLAVE_PORT               client API port (default 8008, plain HTTP)
#   CONCLAVE_FEDERATION__PORT   federation port (default 8448, TLS)
#   CONCLAVE_ADDRESS            listening address (default 0.0.0.0)
# and any other CONCLAVE_<KEY> to override /conclave/conclave.toml.
set -eu

: "${SERVER_NAME:?SERVER_NAME must name the server, e.g. hs1}"
: "${CONCLAVE_PORT:=8008}"
: "${CONCLAVE_FEDERATION__PORT:=8448}"
export CONCLAVE_SERVER_NAME="$SERVER_NAME" CONCLAVE_PORT CONCLAVE_FEDERATION__PORT

CA_DIR=${COMPLEMENT_CA_DIR:-/complement/ca}
TLS_DIR=/conclave/tls
for file in ca.crt ca.key; do
  if ! [ -r "$CA_DIR/$file" ]; then
    echo "complement-entrypoint: $CA_DIR/$file is missing (Complement mounts its CA there)" >&2
    exit 1
  fi
done

# The host part of the server name ("hs1", "hs1:8448", "[::1]:8448", "10.0.0.2:8448").
case "$SERVER_NAME" in
  \[*) host=${SERVER_NAME#\[}; host=${host%%\]*} ;;
  *:*:*) host=$SERVER_NAME ;;
  *) host=${SERVER_NAME%%:*} ;;
esac
if printf '%s' "$host" | grep -Eq '^([0-9]{1,3}\.){3}[0-9]{1,3}$|:'; then
  san="IP:$host"
else
  san="DNS:$host"
fi

# openssl's chatter goes to a file, shown only when it fails.
ssl() {
  openssl "$@" 2>"$TLS_DIR/openssl.log" || {
    cat "$TLS_DIR/openssl.log" >&2
    exit 1
  }
}

umask 077
ssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$TLS_DIR/server.key" -subj "/O=Complement/CN=$host" \
  -out "$TLS_DIR/server.csr"
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' "$san" \
  >"$TLS_DIR/server.ext"
ssl x509 -req -sha256 -days 2 -in "$TLS_DIR/server.csr" \
  -CA "$CA_DIR/ca.crt" -CAkey "$CA_DIR/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
  -extfile "$TLS_DIR/server.ext" -out "$TLS_DIR/server.crt"
# The chain Conclave serves: its certificate, then the CA's.
cat "$CA_DIR/ca.crt" >>"$TLS_DIR/server.crt"

# Other containers' certificates (and Complement's own servers') come from the same CA; the
# federation client trusts it through ca_file, the system store is for everything else.
if [ -d /usr/local/share/ca-certificates ]; then
  cp "$CA_DIR/ca.crt" /usr/local/share/ca-certificates/complement.crt
  update-ca-certificates >/dev/null 2>&1 || true
fi

echo "complement-entrypoint: $SERVER_NAME, client API on :$CONCLAVE_PORT, federation (TLS, $san) on :$CONCLAVE_FEDERATION__PORT" >&2
exec conclave "$@"
