#!/usr/bin/env bash
# bench/instructions.sh [peer...] -- user-space instructions per proxied request,
# counted by callgrind, for nginx (as the rig's nginx-noauth), the hyper floor
# (examples/hyper_floor.rs) and keygate (as the rig's `keygate` peer).
#
# Wall-clock CPU per request on this shared 2-core machine moves by +-1 us
# between runs; callgrind's instruction count moves by about 0.3 %, so it
# shows changes of a few hundred instructions that the rig cannot. It counts
# user space only: the kernel's share (about two thirds of the rig's
# proxy-core us/req, and alike for every peer) is not in it.
#
#   bench/instructions.sh                    # nginx hyper-floor keygate
#   bench/instructions.sh keygate            # one peer
#   KEYGATE_BIN=/tmp/old/keygate bench/instructions.sh keygate
#   KEEP=1 bench/instructions.sh keygate     # keep the profiles for callgrind_annotate
#
# Each peer runs under valgrind (one worker, plaintext HTTP/1.1) in front of a
# `return 200 "ok\n"` nginx backend; wrk -c64 loads it for DURATION seconds
# (default 5) after a warm-up request, with the rig's Authorization header.
# Needs nginx, valgrind, wrk, curl. Ports 127.0.0.1:18980-18985.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
KEYGATE_BIN=${KEYGATE_BIN:-$REPO/target/release/keygate}
HYPER_FLOOR_BIN=${HYPER_FLOOR_BIN:-$REPO/target/release/examples/hyper_floor}
DURATION=${DURATION:-5}
WORK=$(mktemp -d)
BACKEND=18980
peers=("$@")
((${#peers[@]})) || peers=(nginx hyper-floor keygate)

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ ${KEEP:-0} == 1 ]]; then echo "profiles kept in $WORK (callgrind_annotate FILE.cg.1)" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# the rig's credential shape: Basic apikey:<48 chars>, passed to every peer
AUTH="Authorization: Basic $(printf 'apikey:%s' "$(head -c 36 /dev/urandom | base64 | tr -d '/+=' | head -c 48)" | base64 -w0)"

wait_http() { # URL
  for _ in $(seq 150); do curl -sf -o /dev/null "$1" && return 0; sleep 0.2; done
  echo "instructions.sh: nothing answers at $1" >&2
  return 1
}

nginx_conf() { # FILE LISTEN BODY
  cat >"$1" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx-$2.pid;
error_log $WORK/nginx-$2.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $WORK/t_body; proxy_temp_path $WORK/t_proxy;
  fastcgi_temp_path $WORK/t_fcgi; uwsgi_temp_path $WORK/t_uwsgi; scgi_temp_path $WORK/t_scgi;
  keepalive_timeout 300s;
  keepalive_requests 10000000;
  upstream backend { server 127.0.0.1:$BACKEND; keepalive 256; keepalive_requests 10000000; keepalive_timeout 300s; }
  server { listen 127.0.0.1:$2; $3 }
}
CONF
}

# the backend, on its own core when there are two
nginx_conf "$WORK/backend.conf" "$BACKEND" 'location / { return 200 "ok\n"; }'
taskset -c 1 nginx -p "$WORK" -c "$WORK/backend.conf" >/dev/null 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$BACKEND/"

# measure NAME PORT COMMAND... : Ir per request of COMMAND under wrk -c64
measure() {
  local name=$1 port=$2
  shift 2
  local out=$WORK/$name.cg
  taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_http "http://127.0.0.1:$port/"
  curl -sf -o /dev/null -H "$AUTH" "http://127.0.0.1:$port/"
  callgrind_control -z "$pid" >/dev/null 2>&1
  local req
  req=$(taskset -c 1 wrk -t1 -c64 -d"${DURATION}s" -H "$AUTH" "http://127.0.0.1:$port/" | awk '/requests in/ {print $1}')
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  local ir
  ir=$(callgrind_annotate "$out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  printf '%-12s %8d requests  %9d instructions/request\n' "$name" "$req" $((ir / req))
}

for peer in "${peers[@]}"; do
  case $peer in
    nginx)
      nginx_conf "$WORK/proxy.conf" 18981 'location / { proxy_pass http://backend; proxy_http_version 1.1;
        proxy_set_header Connection ""; proxy_set_header Authorization ""; proxy_set_header X-Remote-User "anonymous"; }'
      measure nginx 18981 nginx -p "$WORK" -c "$WORK/proxy.conf"
      ;;
    hyper-floor)
      [[ -x $HYPER_FLOOR_BIN ]] || { echo "instructions.sh: build it: cargo build --release --example hyper_floor" >&2; exit 1; }
      measure hyper-floor 18982 "$HYPER_FLOOR_BIN" 127.0.0.1:18982 "127.0.0.1:$BACKEND"
      ;;
    keygate)
      [[ -x $KEYGATE_BIN ]] || { echo "instructions.sh: build it: cargo build --release" >&2; exit 1; }
      printf 'bench:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$WORK/admin-token"
      chmod 600 "$WORK/admin-token"
      cat >"$WORK/keygate.toml" <<CONF
[listen]
addr = "127.0.0.1:18983"
plaintext = true
[upstream]
url = "http://127.0.0.1:$BACKEND"
pool_max_idle = 256
[auth]
username = "bench-not-a-key"   # the rig's 'Basic apikey:...' is then the app's own credential
anonymous = "passthrough"
[store]
kind = "memory"
[admin]
addr = "127.0.0.1:18984"
token_file = "$WORK/admin-token"
[log]
access_log = false
level = "warn"
[runtime]
workers = 1
[limits]
idle_timeout = "300s"
CONF
      measure keygate 18983 "$KEYGATE_BIN" serve -c "$WORK/keygate.toml"
      ;;
    *)
      echo "instructions.sh: unknown peer $peer (nginx, hyper-floor, keygate)" >&2
      exit 2
      ;;
  esac
done
