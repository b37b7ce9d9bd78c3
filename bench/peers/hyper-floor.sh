# shellcheck shell=bash disable=SC2034  # PEER_* are read by lib/peers.sh
# hyper-floor: examples/hyper_floor.rs, the cost floor of the stack keygate
# is built on: tokio current-thread runtime, hyper-util's auto server,
# keygate's rustls config (h2 + http/1.1 by ALPN, stateless tickets),
# mimalloc, HTTP/1.1 to the backend over pooled keep-alive connections. No
# auth, no header rules, no timeouts, no limits, no logs. keygate minus
# hyper-floor is what keygate's own code costs. Like `keygate`, it forwards
# the rig's Authorization header as is (PEER_AUTH=0).
# One listener per process: TLS on 18480, plain HTTP/1.1 on 18180.
PEER_DESC="hyper-floor: hyper + tokio current-thread + rustls proxy, no keygate features"
PEER_HTTP_PORT=18180
PEER_TLS_PORT=18480
PEER_H2=1
PEER_AUTH=0

peer_start() {
  [[ -x $HYPER_FLOOR_BIN ]] \
    || die "HYPER_FLOOR_BIN=$HYPER_FLOOR_BIN is not an executable (cargo build --release --example hyper_floor)"
  spawn_peer hyper-floor-tls "$HYPER_FLOOR_BIN" "$BIND:$PEER_TLS_PORT" "$BIND:$BACKEND_PORT" "$TLS_CERT" "$TLS_KEY"
  spawn_peer hyper-floor-plain "$HYPER_FLOOR_BIN" "$BIND:$PEER_HTTP_PORT" "$BIND:$BACKEND_PORT"
}
