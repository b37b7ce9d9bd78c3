# shellcheck shell=bash disable=SC2034  # PEER_* are read by lib/peers.sh
# keygate as a proxy without keys, the counterpart of nginx-noauth.
#
# [auth] anonymous = "passthrough" and username = "bench-not-a-key": the
# rig's `Basic apikey:<48 chars>` (sent to every peer) is then the
# application's own credential, which keygate passes through untouched
# (with username = "apikey" it would be taken for a key keygate never
# issued: 401). So unlike nginx-noauth, keygate forwards that header and sets
# X-Forwarded-* rather than X-Remote-User. PEER_AUTH=0: no 401 checks.
#
# One main listener per process, so two processes: TLS (h2 + http/1.1 by
# ALPN) and plaintext HTTP/1.1; each scenario loads one of them.
# Variants: KEYGATE_ACCESS_LOG=json|human (own ports), KEYGATE_THREADS,
# KEYGATE_MAX_CONNECTIONS (lib/keygate.sh).
# Ports: 18150+i (HTTP) / 18450+i (TLS), admin 18360+i / 18370+i, i = 0, 1, 2
# for the access log off, json, human.
source "$BENCH_DIR/lib/keygate.sh"
_i=$KEYGATE_LOG_INDEX
PEER_DESC="$(keygate_desc), no keys (anonymous passthrough)"
PEER_HTTP_PORT=$((18150 + _i))
PEER_TLS_PORT=$((18450 + _i))
PEER_H2=1
PEER_AUTH=0

peer_start() {
  [[ -x $KEYGATE_BIN ]] || die "KEYGATE_BIN=$KEYGATE_BIN is not an executable (cargo build --release)"
  keygate_admin_token
  local auth='username = "bench-not-a-key"
anonymous = "passthrough"'
  keygate_config "$PEER_DIR/tls.toml" "$PEER_TLS_PORT" $((18370 + _i)) 1 "$auth" 'kind = "memory"'
  keygate_config "$PEER_DIR/plain.toml" "$PEER_HTTP_PORT" $((18360 + _i)) 0 "$auth" 'kind = "memory"'
  keygate_start keygate-tls "$PEER_DIR/tls.toml"
  keygate_start keygate-plain "$PEER_DIR/plain.toml"
}
