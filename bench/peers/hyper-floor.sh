# shellcheck shell=bash disable=SC2034  # the PEER_* settings are read by the rig, which sources this file
# hyper-floor: the cost floor of the hyper + tokio + rustls stack keygate is
# built on (examples/hyper_floor.rs), as a peer of the shared benchmark rig
# (../shared/bench, README "Adding a peer"). Used through bench/run.sh, which
# builds the example and passes EXTRA_PEERS=bench/peers.
#
# The smallest proxy made of keygate's crates, with none of keygate's features:
# tokio current-thread runtime, hyper-util auto server, keygate's rustls server
# config (ring, h2 + http/1.1 by ALPN, stateless tickets), HTTP/1.1 to the
# backend over a stack of pooled keep-alive connections. Read keygate's numbers
# against it: keygate minus hyper-floor is what keygate's own code costs,
# hyper-floor minus nginx-noauth what the stack costs.
#
#   * No auth, no header rewriting (PEER_AUTH=0): like keygate.sh, and unlike
#     nginx-noauth (which blanks Authorization and sets X-Remote-User), the
#     rig's ~80-byte Authorization header is forwarded to the backend as is.
#   * No timeouts, no limits, no logs; an upstream error is a 502.
#
# One listener per process, so two processes, both pinned to $PEER_CPU:
#   hyper-floor-tls    TLS (h2 + http/1.1 by ALPN) on PEER_TLS_PORT
#   hyper-floor-plain  plaintext HTTP/1.1 on PEER_HTTP_PORT
# Only one of them is loaded at a time (each scenario targets one port).
#
# Settings (environment):
#   HYPER_FLOOR_BIN  the binary (default: <repo>/target/release/examples/hyper_floor,
#                    resolved relative to this file; bench/run.sh exports it)
#
# Ports: 18180 (HTTP) / 18480 (TLS). None of these is used by the rig's own
# peers (18100-18130/18400-18430, gateway.sh 18140/18440/18148/18149, Redis
# 18379, backend 18080), the README's example (18150/18450), keygate.sh
# (18160/18460/18168/18169) or keygate-auth.sh (18170/18470/18178/18179,
# Redis 18389), so it runs side by side with all of them (ORDER=interleave).

_HYPER_FLOOR_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HYPER_FLOOR_BIN=${HYPER_FLOOR_BIN:-$_HYPER_FLOOR_REPO/target/release/examples/hyper_floor}

_hyper_floor_rev() {
  local rev
  rev=$(git -C "$_HYPER_FLOOR_REPO" rev-parse --short HEAD 2>/dev/null)
  if [[ -n $rev ]] && ! git -C "$_HYPER_FLOOR_REPO" diff --quiet HEAD 2>/dev/null; then rev+="+dirty"; fi
  printf '%s' "${rev:-?}"
}

PEER_DESC="hyper-floor ($(_hyper_floor_rev)): hyper + tokio current-thread + rustls proxy, no keygate features, no auth"
PEER_HTTP_PORT=18180
PEER_TLS_PORT=18480
PEER_H2=1
PEER_AUTH=0

peer_start() {
  [[ -x $HYPER_FLOOR_BIN ]] \
    || die "HYPER_FLOOR_BIN=$HYPER_FLOOR_BIN is not an executable (cargo build --release --example hyper_floor first)"
  mkdir -p "$PEER_DIR"
  spawn hyper-floor-tls taskset -c "$PEER_CPU" "$HYPER_FLOOR_BIN" \
    "$BIND:$PEER_TLS_PORT" "$BIND:$BACKEND_PORT" "$TLS_CERT" "$TLS_KEY"
  spawn hyper-floor-plain taskset -c "$PEER_CPU" "$HYPER_FLOOR_BIN" \
    "$BIND:$PEER_HTTP_PORT" "$BIND:$BACKEND_PORT"
  # the rig waits for both ports too; waiting here names the process that failed
  wait_port "$PEER_TLS_PORT" 20 "$(cat "$PEER_DIR/hyper-floor-tls.pid")" \
    || die "$PEER: hyper-floor-tls did not listen on $BIND:$PEER_TLS_PORT (see $PEER_DIR/hyper-floor-tls.log)"
  wait_port "$PEER_HTTP_PORT" 20 "$(cat "$PEER_DIR/hyper-floor-plain.pid")" \
    || die "$PEER: hyper-floor-plain did not listen on $BIND:$PEER_HTTP_PORT (see $PEER_DIR/hyper-floor-plain.log)"
}

# no peer_stop: the rig stops, by PID, every process spawn recorded in $PEER_DIR
# (hyper_floor has no graceful shutdown: SIGTERM ends it at once).
