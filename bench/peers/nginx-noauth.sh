# shellcheck shell=bash disable=SC2034  # PEER_* are read by lib/peers.sh
# nginx proxy_pass without authentication: what the proxy hop alone costs.
# Variants: NGINX_ACCESS_LOG=1 (own ports, 5 higher), NGINX_TLS_RESUME=0,
# NGINX_CONNECTIONS (lib/nginx.sh).
PEER_DESC="nginx $(nginx -v 2>&1 | sed 's|.*/||') proxy_pass, no auth, access log $([[ ${NGINX_ACCESS_LOG:-0} == 1 ]] && echo on || echo off)"
PEER_HTTP_PORT=$((18100 + ${NGINX_ACCESS_LOG:-0} * 5))
PEER_TLS_PORT=$((18400 + ${NGINX_ACCESS_LOG:-0} * 5))
PEER_H2=1
PEER_AUTH=0

peer_start() {
  source "$BENCH_DIR/lib/nginx.sh"
  nginx_proxy_start "" "anonymous"
}
