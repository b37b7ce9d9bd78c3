# shellcheck shell=bash
# nginx, as the backend and as the nginx peers: one instance with its own
# prefix, config and pid file, 1 worker.

# nginx_http_common : the http-block settings every instance shares
nginx_http_common() {
  cat <<CONF
  client_body_temp_path $PEER_DIR/t_body;
  proxy_temp_path $PEER_DIR/t_proxy;
  fastcgi_temp_path $PEER_DIR/t_fcgi;
  uwsgi_temp_path $PEER_DIR/t_uwsgi;
  scgi_temp_path $PEER_DIR/t_scgi;
  keepalive_timeout 300s;
  keepalive_requests 10000000;       # never close a keep-alive connection during a run (also h2 in 1.22)
CONF
}

# nginx_main : the main context. Under callgrind, one process (no master):
# callgrind then profiles the process that serves.
nginx_main() {
  local connections=${NGINX_CONNECTIONS:-8192}
  cat <<CONF
daemon off;
master_process $([[ ${CALLGRIND:-0} == 1 ]] && echo off || echo on);
worker_processes 1;
worker_rlimit_nofile $((connections * 2 + 64));
pid $PEER_DIR/nginx.pid;
error_log $PEER_DIR/error.log warn;
events { worker_connections $connections; }
CONF
}

# nginx_proxy_start AUTH_BLOCK IDENTITY_VALUE : the nginx peers. A plain
# HTTP/1.1 listener and a TLS 1.3 listener offering h2, proxying to the
# backend over keep-alive connections, the credential removed and
# X-Remote-User set. Settings (environment):
#   NGINX_ACCESS_LOG=1   nginx's default access log (combined, one write per
#                        request) to $PEER_DIR/access.log; off by default
#   NGINX_TLS_RESUME=0   no session tickets or cache: every handshake is full
#   NGINX_CONNECTIONS    worker_connections (default 8192)
nginx_proxy_start() {
  local auth_block=$1 identity=$2 resume="" access_log="access_log off;"
  [[ ${NGINX_TLS_RESUME:-1} == 0 ]] && resume="ssl_session_tickets off; ssl_session_cache off;"
  [[ ${NGINX_ACCESS_LOG:-0} == 1 ]] && access_log="access_log $PEER_DIR/access.log combined;"
  mkdir -p "$PEER_DIR"
  cat >"$PEER_DIR/nginx.conf" <<CONF
$(nginx_main)
http {
  $access_log
$(nginx_http_common)
  upstream backend {
    server $BIND:$BACKEND_PORT;
    keepalive 256;                   # idle keep-alive connections kept to the backend
    keepalive_requests 10000000;
    keepalive_timeout 300s;
  }
  server {
    listen $BIND:$PEER_HTTP_PORT backlog=4096;
    listen $BIND:$PEER_TLS_PORT ssl http2 backlog=4096;
    ssl_certificate     $TLS_CERT;
    ssl_certificate_key $TLS_KEY;
    ssl_protocols TLSv1.3;
    $resume
$auth_block
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";        # the credential does not go upstream
      proxy_set_header X-Remote-User "$identity";
    }
  }
}
CONF
  nginx -t -q -p "$PEER_DIR" -c "$PEER_DIR/nginx.conf" -e "$PEER_DIR/error.log" || die "$PEER: nginx config invalid"
  spawn_peer nginx nginx -p "$PEER_DIR" -c "$PEER_DIR/nginx.conf" -e "$PEER_DIR/error.log"
}

# backend_start / backend_stop : the backend every peer proxies to, on
# LOAD_CPU with the load generator: 1 worker answering 200 "ok\n", and its
# request count at BACKEND_COUNTER (backend_requests).
backend_start() {
  local PEER=backend PEER_DIR=$RUN_ROOT/backend CALLGRIND=0
  mkdir -p "$PEER_DIR"
  port_free "$BACKEND_PORT" || die "port $BACKEND_PORT already in use"
  cat >"$PEER_DIR/nginx.conf" <<CONF
$(nginx_main)
http {
  access_log off;
$(nginx_http_common)
  server {
    listen $BIND:$BACKEND_PORT backlog=4096;
    location / { return 200 "ok\n"; }
    location = $BACKEND_COUNTER { stub_status; }
  }
}
CONF
  nginx -t -q -p "$PEER_DIR" -c "$PEER_DIR/nginx.conf" -e "$PEER_DIR/error.log" || die "backend nginx config invalid"
  spawn nginx taskset -c "$LOAD_CPU" nginx -p "$PEER_DIR" -c "$PEER_DIR/nginx.conf" -e "$PEER_DIR/error.log"
  wait_port "$BACKEND_PORT" 10 || die "backend did not come up (see $PEER_DIR/nginx.log)"
}

BACKEND_COUNTER=/keygate-bench/requests

# backend_requests : the requests the backend has answered so far, this
# question included (nginx's stub_status).
backend_requests() {
  curl -sf "http://$BIND:$BACKEND_PORT$BACKEND_COUNTER" | awk 'NR == 3 { print $3 }'
}

backend_stop() {
  local PEER=backend PEER_DIR=$RUN_ROOT/backend
  stop_spawned "$PEER_DIR"
}
