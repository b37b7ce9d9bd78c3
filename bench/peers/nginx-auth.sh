# shellcheck shell=bash disable=SC2034  # PEER_* are read by lib/peers.sh
# nginx auth_basic + auth_basic_user_file, the htpasswd entry {SSHA} (one
# salted SHA-1). nginx re-reads the file and re-hashes the password on every
# request (no cache). Variants: NGINX_ACCESS_LOG=1 (own ports, 5 higher),
# NGINX_TLS_RESUME=0, NGINX_CONNECTIONS (lib/nginx.sh).
PEER_DESC="nginx $(nginx -v 2>&1 | sed 's|.*/||') auth_basic, htpasswd {SSHA}, access log $([[ ${NGINX_ACCESS_LOG:-0} == 1 ]] && echo on || echo off)"
PEER_HTTP_PORT=$((18110 + ${NGINX_ACCESS_LOG:-0} * 5))
PEER_TLS_PORT=$((18410 + ${NGINX_ACCESS_LOG:-0} * 5))
PEER_H2=1
PEER_AUTH=1

peer_start() {
  source "$BENCH_DIR/lib/nginx.sh"
  mkdir -p "$PEER_DIR"
  local hash
  hash=$(printf '%s' "$AUTH_PASS" | python3 -c 'import base64, hashlib, os, sys
pw, salt = sys.stdin.read().encode(), os.urandom(8)
print("{SSHA}" + base64.b64encode(hashlib.sha1(pw + salt).digest() + salt).decode())') || die "htpasswd hash failed"
  printf '%s:%s\n' "$AUTH_USER" "$hash" >"$PEER_DIR/htpasswd"
  chmod 644 "$PEER_DIR/htpasswd"    # read by the worker (user nobody) per request
  nginx_proxy_start "    auth_basic \"bench\";
    auth_basic_user_file $PEER_DIR/htpasswd;" '$remote_user'
}
