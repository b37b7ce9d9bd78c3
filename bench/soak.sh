#!/usr/bin/env bash
# bench/soak.sh -- 30 minutes of mixed traffic against keygate (Redis store,
# validation cache), its memory and file descriptors sampled every 10 s.
#
#   bench/soak.sh                        # DURATION=1800
#   DURATION=60 bench/soak.sh            # a quick look
#
# keygate as the rig's keygate-auth:KEYGATE_STORE=redis peer runs it (release
# build, 1 worker thread, redis-server and keygate pinned to PEER_CPU=0, the
# backend and the load on LOAD_CPU=1), two processes sharing one Redis: TLS
# (HTTP/1.1 and h2 by ALPN; the one whose RSS the verdict is about) and plain
# HTTP/1.1, with [login] method = "trusted_header" (X-Soak-User from
# 127.0.0.1) for the self-service page. For DURATION seconds, at once:
#   good-h1      wrk, plain HTTP/1.1, the good key           (200)
#   good-tls     wrk, HTTP/1.1 over TLS, the good key        (200)
#   good-h2      h2load, HTTP/2, the good key                (2xx)
#   wrong-key    wrk, well-formed keys with wrong secrets or unknown ids,
#                BADKEYS distinct ones (a lookup each)        (401)
#   malformed    wrk, credentials refused before any lookup   (400/401)
#   admin-*, page-*  lib/soak_traffic.py, once a second: a key created and
#                the previous one revoked (admin API), each used once; the
#                page, its API's listing, a key created, used and deleted
# Each wrk connection waits SOAK_DELAY_MS between requests and each h2load
# client sends H2_RPS requests a second: a steady load, not a flood.
# Every SAMPLE seconds: RSS and open fds of each keygate, Redis's used memory
# and keys, requests answered (keygate_http_requests_total) -> samples.csv.
# At the end: requests by kind and status (unexpected ones counted), RSS at
# start / after WARMUP / end / max, fds, the RSS slope over the second half
# (KiB/min) and whether it is flat (under FLAT_KIB_PER_MIN).
#
# Ports: SOAK_PORT_BASE (19000) + 80 backend, +200 plain, +500 TLS, +300 and
# +320 admin, +340 Redis: outside the rig's 18000-18999, so a soak runs beside
# run.sh. State and results under BENCH_OUT (/tmp/soak-keygate).
# Needs wrk, h2load, nginx, redis-server, redis-cli, curl, python3 (setup.sh).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOAK_PORT_BASE=${SOAK_PORT_BASE:-19000}
export BENCH_OUT=${BENCH_OUT:-/tmp/soak-keygate}
export BACKEND_PORT=${BACKEND_PORT:-$((SOAK_PORT_BASE + 80))}
source "$HERE/lib/common.sh"
source "$HERE/lib/nginx.sh"
source "$HERE/lib/keygate.sh"

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,34p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

DURATION=${DURATION:-1800}
SAMPLE=${SAMPLE:-10}
WARMUP=${WARMUP:-$((DURATION >= 1800 ? 300 : DURATION / 6))}
FLAT_KIB_PER_MIN=${FLAT_KIB_PER_MIN:-50}
SOAK_DELAY_MS=${SOAK_DELAY_MS:-2}
H2_RPS=${H2_RPS:-200}
BADKEYS=${BADKEYS:-200000}
BUILD=${BUILD:-1}
PLAIN_PORT=$((SOAK_PORT_BASE + 200)) TLS_PORT=$((SOAK_PORT_BASE + 500))
ADMIN_PLAIN=$((SOAK_PORT_BASE + 300)) ADMIN_TLS=$((SOAK_PORT_BASE + 320)) REDIS_PORT=$((SOAK_PORT_BASE + 340))
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 30 ]] || die "DURATION=$DURATION: seconds, at least 30"

need wrk h2load nginx redis-server redis-cli curl python3 taskset openssl
if [[ $BUILD == 1 ]]; then
  log "building keygate (release)"
  (cd "$REPO" && CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2} cargo build --release --bin keygate) >&2 \
    || die "cargo build --release failed"
fi
[[ -x $KEYGATE_BIN ]] || die "KEYGATE_BIN=$KEYGATE_BIN is not an executable"
for port in "$BACKEND_PORT" "$PLAIN_PORT" "$TLS_PORT" "$ADMIN_PLAIN" "$ADMIN_TLS" "$REDIS_PORT"; do
  port_free "$port" || die "port $port is in use (another soak? SOAK_PORT_BASE moves them all)"
done

ensure_state
load_state
RESULTS=$BENCH_OUT/results/$(date +%Y%m%d-%H%M%S)
PEER=soak PEER_DIR=$RUN_ROOT/soak
export PEER PEER_DIR
rm -rf -- "$PEER_DIR"; mkdir -p "$PEER_DIR" "$RESULTS"
: >"$PID_REGISTRY"
LOADS=()
cleanup() {
  trap - EXIT INT TERM
  local p
  for p in "${LOADS[@]}"; do kill_tree "$p"; done
  stop_spawned "$PEER_DIR"
  backend_stop
  stop_registry
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ keygate
backend_start
keygate_admin_token
(umask 077; openssl rand -hex 32 >"$PEER_DIR/secret")
spawn keygate-redis taskset -c "$PEER_CPU" redis-server --bind "$BIND" --port "$REDIS_PORT" \
  --save '' --appendonly no --dir "$PEER_DIR"
wait_port "$REDIS_PORT" 10 || die "redis-server did not start"
auth='username = "apikey"
identity_header = "X-Remote-User"
anonymous = "reject"'
store="kind = \"redis\"
url = \"redis://$BIND:$REDIS_PORT/0\"
namespace = \"keygate-soak\"
secret_file = \"$PEER_DIR/secret\"

[cache]
enabled = true

[login]
method = \"trusted_header\"
header = \"X-Soak-User\"
trusted_proxies = [\"127.0.0.1/32\"]
public_url = \"https://127.0.0.1:$TLS_PORT\""
keygate_config "$PEER_DIR/tls.toml" "$TLS_PORT" "$ADMIN_TLS" 1 "$auth" "$store"
keygate_config "$PEER_DIR/plain.toml" "$PLAIN_PORT" "$ADMIN_PLAIN" 0 "$auth" "$store"
keygate_start keygate-tls "$PEER_DIR/tls.toml"
keygate_start keygate-plain "$PEER_DIR/plain.toml"
TLS_PID=$(cat "$PEER_DIR/keygate-tls.pid") PLAIN_PID=$(cat "$PEER_DIR/keygate-plain.pid")
REDIS_PID=$(cat "$PEER_DIR/keygate-redis.pid")
for port in "$ADMIN_TLS" "$ADMIN_PLAIN" "$TLS_PORT" "$PLAIN_PORT"; do
  wait_port "$port" 60 "$TLS_PID" "$PLAIN_PID" || die "keygate did not listen on $port (logs in $PEER_DIR)"
done
ADMIN_URL=https://localhost:$ADMIN_TLS
keygate_mint "$ADMIN_URL"
AUTHZ=$(cat "$PEER_DIR/authorization")
got=$(curl -sk -m 10 -o /dev/null -w '%{http_code}' -H "Authorization: $AUTHZ" "https://$BIND:$TLS_PORT/")
[[ $got == 200 ]] || die "the minted key answered $got on TLS, not 200"
got=$(curl -sk -m 10 -o /dev/null -w '%{http_code}' -H "X-Soak-User: soak-check" "https://$BIND:$TLS_PORT/.keygate/keys")
[[ $got == 200 ]] || die "the self-service page answered $got, not 200"

log "generating $BADKEYS wrong keys"
python3 "$BENCH_DIR/lib/soak_traffic.py" badkeys "$PEER_DIR/authorization" "$BADKEYS" \
  "$PEER_DIR/wrong.authz" "$PEER_DIR/malformed.authz" || die "could not generate the wrong keys"
printf '%s\n' "$AUTHZ" >"$PEER_DIR/good.authz"

# ------------------------------------------------------------------ load
# load NAME CMD... : a load process on LOAD_CPU, output to $RESULTS/NAME.txt
load() {
  local name=$1; shift
  taskset -c "$LOAD_CPU" timeout -k 5 $((DURATION + 60)) "$@" >"$RESULTS/$name.txt" 2>&1 &
  LOADS+=("$!")
  echo "$! soak/$name" >>"$PID_REGISTRY"
  printf '%s %s\n' "$name" "$(printf '%q ' "$@" | sed -E 's/(Basic\\? )[A-Za-z0-9+\/=]+/\1<base64(apikey:KEY)>/g')" >>"$RESULTS/commands.txt"
}
# wrk_load NAME CONNECTIONS AUTHZ_FILE URL
wrk_load() {
  SOAK_AUTHZ_FILE=$3 SOAK_DELAY_MS=$SOAK_DELAY_MS load "$1" wrk -t1 -c"$2" -d"${DURATION}s" --timeout 10s \
    -s "$BENCH_DIR/lua/soak.lua" "$4"
}

sample_header='time,elapsed_s,tls_rss_kib,tls_fd,plain_rss_kib,plain_fd,redis_used_bytes,redis_keys,tls_requests,plain_requests'
# requests PORT : keygate_http_requests_total of one instance (all classes)
requests() {
  curl -sk -m 5 "https://localhost:$1/metrics" --resolve "localhost:$1:$BIND" 2>/dev/null \
    | awk '/^keygate_http_requests_total/ { n += $NF } END { printf "%d", n }'
}
# plain's admin listener is plaintext (keygate_config TLS=0)
requests_plain() {
  curl -s -m 5 "http://$BIND:$1/metrics" 2>/dev/null \
    | awk '/^keygate_http_requests_total/ { n += $NF } END { printf "%d", n }'
}
sample() {
  printf '%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n' "$(date -u +%H:%M:%S)" "$1" \
    "$(rss_kib "$TLS_PID")" "$(fds "$TLS_PID")" "$(rss_kib "$PLAIN_PID")" "$(fds "$PLAIN_PID")" \
    "$(redis-cli -h "$BIND" -p "$REDIS_PORT" info memory | awk -F: '/^used_memory:/ { printf "%d", $2 }')" \
    "$(redis-cli -h "$BIND" -p "$REDIS_PORT" dbsize)" "$(requests "$ADMIN_TLS")" "$(requests_plain "$ADMIN_PLAIN")"
}

{
  echo "date: $(date -Is)"
  echo "host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r)"
  echo "keygate: $(keygate_desc), $KEYGATE_BIN built $(date -Is -r "$KEYGATE_BIN")"
  echo "DURATION=$DURATION SAMPLE=$SAMPLE WARMUP=$WARMUP SOAK_DELAY_MS=$SOAK_DELAY_MS H2_RPS=$H2_RPS BADKEYS=$BADKEYS"
  echo "keygate + redis-server on CPU $PEER_CPU, backend + load on CPU $LOAD_CPU"
} | tee "$RESULTS/meta.txt" >&2

START=$(date +%s)
echo "$sample_header" >"$RESULTS/samples.csv"
sample 0 >>"$RESULTS/samples.csv"
wrk_load good-h1 4 "$PEER_DIR/good.authz" "http://$BIND:$PLAIN_PORT/"
wrk_load good-tls 4 "$PEER_DIR/good.authz" "https://$BIND:$TLS_PORT/"
wrk_load wrong-key 2 "$PEER_DIR/wrong.authz" "http://$BIND:$PLAIN_PORT/"
wrk_load malformed 1 "$PEER_DIR/malformed.authz" "https://$BIND:$TLS_PORT/"
load good-h2 h2load -t1 -c2 -m4 --rps="$H2_RPS" -D "$DURATION" -H "authorization: $AUTHZ" "https://$BIND:$TLS_PORT/"
load admin-page python3 "$BENCH_DIR/lib/soak_traffic.py" run --admin "$ADMIN_URL" \
  --token-file "$PEER_DIR/admin-token" --tls-port "$TLS_PORT" --plain-port "$PLAIN_PORT" \
  --cacert "$TLS_CERT" --duration "$DURATION" --out "$RESULTS/admin-page.json"
log "soak running for ${DURATION}s; samples in $RESULTS/samples.csv"

next=$((START + SAMPLE))
while :; do
  now=$(date +%s)
  ((now >= START + DURATION)) && break
  ((next > now)) && sleep $((next - now))
  alive "$TLS_PID" && alive "$PLAIN_PID" || die "a keygate process exited (logs in $PEER_DIR)"
  sample $(($(date +%s) - START)) >>"$RESULTS/samples.csv"
  next=$((next + SAMPLE))
done
log "waiting for the load generators to finish"
for p in "${LOADS[@]}"; do wait "$p"; done
LOADS=()
sample $(($(date +%s) - START)) >>"$RESULTS/samples.csv"
curl -sk -m 5 --resolve "localhost:$ADMIN_TLS:$BIND" "https://localhost:$ADMIN_TLS/metrics" >"$RESULTS/metrics-tls.txt"
curl -s -m 5 "http://$BIND:$ADMIN_PLAIN/metrics" >"$RESULTS/metrics-plain.txt"
redis-cli -h "$BIND" -p "$REDIS_PORT" --scan --pattern '*' | sed -E 's/[A-Za-z0-9]{12}/ID/g; s/[0-9]+/N/g' \
  | sort | uniq -c | sort -rn >"$RESULTS/redis-keys.txt"
cp "$PEER_DIR"/*.log "$RESULTS/" 2>/dev/null
python3 "$BENCH_DIR/lib/soak_report.py" "$RESULTS" --warmup "$WARMUP" --duration "$DURATION" \
  --flat "$FLAT_KIB_PER_MIN" | tee "$RESULTS/summary.md"
