#!/usr/bin/env bash
# bench/instructions.sh [peer...] -- user-space instructions per proxied request,
# counted by callgrind, for nginx (as the rig's nginx-noauth), the hyper floor
# (examples/hyper_floor.rs), keygate (as the rig's `keygate` peer: no key
# checked) and keygate-auth (every request checks a real key: checksum,
# memory-store lookup, HMAC compare, identity header).
#
# Wall-clock CPU per request on this shared 2-core machine moves by +-1 us
# between runs; callgrind's instruction count moves by about 0.3 %, so it
# shows changes of a few hundred instructions that the rig cannot. It counts
# user space only: the kernel's share (about two thirds of the rig's
# proxy-core us/req, and alike for every peer) is not in it.
#
#   bench/instructions.sh                    # nginx hyper-floor keygate keygate-auth
#   bench/instructions.sh keygate            # one peer
#   KEYGATE_BIN=/tmp/old/keygate bench/instructions.sh keygate
#   KEEP=1 bench/instructions.sh keygate     # keep the profiles for callgrind_annotate
#
# Each peer runs under valgrind (one worker, plaintext HTTP/1.1) in front of a
# `return 200 "ok\n"` nginx backend; wrk -c64 loads it for DURATION seconds
# (default 5) after a warm-up request, with the rig's Authorization header
# (keygate-auth: Basic apikey:<a key minted through the admin API at start).
# Needs nginx, valgrind, wrk, curl, python3. Ports 127.0.0.1:18980-18987.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
KEYGATE_BIN=${KEYGATE_BIN:-$REPO/target/release/keygate}
HYPER_FLOOR_BIN=${HYPER_FLOOR_BIN:-$REPO/target/release/examples/hyper_floor}
DURATION=${DURATION:-5}
WORK=$(mktemp -d)
BACKEND=18980
peers=("$@")
((${#peers[@]})) || peers=(nginx hyper-floor keygate keygate-auth)

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

# measure NAME PORT COMMAND... : Ir per request of COMMAND under wrk -c64.
# READY (a URL that answers 2xx once the peer is up; default its /) and
# BEFORE_LOAD (a command run once it is, e.g. to mint a key and set AUTH)
# may be set for one call.
measure() {
  local name=$1 port=$2
  shift 2
  local out=$WORK/$name.cg AUTH=$AUTH # BEFORE_LOAD may change AUTH for this peer only
  taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_http "${READY:-http://127.0.0.1:$port/}"
  [[ -n ${BEFORE_LOAD:-} ]] && $BEFORE_LOAD
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

# keygate_config FILE LISTEN_PORT ADMIN_PORT [AUTH_SECTION_LINES]
keygate_config() {
  printf 'bench:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$WORK/admin-token"
  chmod 600 "$WORK/admin-token"
  cat >"$1" <<CONF
[listen]
addr = "127.0.0.1:$2"
plaintext = true
[upstream]
url = "http://127.0.0.1:$BACKEND"
pool_max_idle = 256
[auth]
$4
[rate_limit]
failed_auth_per_minute = 0
[store]
kind = "memory"
[admin]
addr = "127.0.0.1:$3"
token_file = "$WORK/admin-token"
[log]
access_log = false
level = "warn"
[runtime]
workers = 1
[limits]
idle_timeout = "300s"
CONF
}

# Mint a key through keygate-auth's admin API; AUTH becomes Basic apikey:<key>.
mint_key() {
  local key
  key=$(curl -sf -H "Authorization: Bearer $(cut -d: -f2 "$WORK/admin-token")" \
    -H 'Content-Type: application/json' -d '{"user":"bench"}' http://127.0.0.1:18987/v1/keys \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
  AUTH="Authorization: Basic $(printf 'apikey:%s' "$key" | base64 -w0)"
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
      # the rig's 'Basic apikey:...' is then the app's own credential
      keygate_config "$WORK/keygate.toml" 18983 18984 'username = "bench-not-a-key"
anonymous = "passthrough"'
      measure keygate 18983 "$KEYGATE_BIN" serve -c "$WORK/keygate.toml"
      ;;
    keygate-auth)
      [[ -x $KEYGATE_BIN ]] || { echo "instructions.sh: build it: cargo build --release" >&2; exit 1; }
      keygate_config "$WORK/keygate-auth.toml" 18986 18987 'anonymous = "reject"'
      READY=http://127.0.0.1:18987/healthz BEFORE_LOAD=mint_key \
        measure keygate-auth 18986 "$KEYGATE_BIN" serve -c "$WORK/keygate-auth.toml"
      ;;
    *)
      echo "instructions.sh: unknown peer $peer (nginx, hyper-floor, keygate, keygate-auth)" >&2
      exit 2
      ;;
  esac
done
