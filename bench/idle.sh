#!/usr/bin/env bash
# bench/idle.sh [peer...] -- memory per idle keep-alive TLS connection, and
# how fast a new client is answered meanwhile.
#
#   bench/idle.sh                         # nginx-noauth keygate, h1 and h2, N=10000
#   N=2000 PROTOS=h2 bench/idle.sh keygate   # a quick look
#
# Per peer and protocol (PROTOS="h1 h2" by default; the peer started afresh
# for each, as run.sh starts it, pinned to CPU 0): the RSS of its processes,
# then N TLS connections (HTTP/1.1 or HTTP/2 by ALPN, from
# lib/idle_clients.py on CPU 1), each after one request, left idle; the RSS
# again (÷ N = KiB per idle connection) and SAMPLES new clients one after
# the other (curl, a new TLS connection each, same protocol: p50 / p99 time
# to the answer); then every connection closed (RSS kept after close), and a
# second round of N that must not grow the RSS beyond the first one's.
# Needs python3, curl; h2 also python3-h2 (bench/setup.sh; PYTHON= to pick
# the interpreter that has it, /usr/bin/python3 when python3 has not).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/common.sh"
source "$HERE/lib/nginx.sh"
source "$HERE/lib/peers.sh"

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

N=${N:-10000}
SAMPLES=${SAMPLES:-200}
PROTOS=${PROTOS:-h1 h2}
PEERS=("$@")
((${#PEERS[@]})) || PEERS=(nginx-noauth keygate)
need python3 curl nginx taskset ss openssl
PYTHON=${PYTHON:-python3}
if [[ " $PROTOS " == *" h2 "* ]] && ! "$PYTHON" -c 'import h2' 2>/dev/null; then
  /usr/bin/python3 -c 'import h2' 2>/dev/null && PYTHON=/usr/bin/python3 \
    || die "PROTOS has h2: $PYTHON has no h2 module (bench/setup.sh installs python3-h2)"
fi
# Room for N clients: nginx's worker_connections, keygate's max_connections.
export NGINX_CONNECTIONS=$((N + 1024)) KEYGATE_MAX_CONNECTIONS=$((N + 1024))
ensure_state
load_state
mkdir -p "$RUN_ROOT"
: >"$PID_REGISTRY"
HOLDER_PID=
cleanup() {
  trap - EXIT INT TERM
  [[ -n $HOLDER_PID ]] && kill_tree "$HOLDER_PID"
  for p in "${!UP[@]}"; do peer_down "$p"; done
  backend_stop
  stop_registry
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# hold SPEC : N connections up; sets HOLDER_PID and the FIFO HOLD_IN (close it to let them go)
hold() {
  local p=$1 dir out
  dir=$(peer_dir "$p")
  out=$dir/holder.$RANDOM.out
  rm -f "$dir/holder.in"; mkfifo "$dir/holder.in"
  taskset -c "$LOAD_CPU" "$PYTHON" "$BENCH_DIR/lib/idle_clients.py" "$BIND" "${P_TLS[$p]}" "$N" "${P_AUTHZ[$p]}" "$PROTO" \
    <"$dir/holder.in" >"$out" 2>&1 &
  HOLDER_PID=$!
  echo "$HOLDER_PID $p/holder" >>"$PID_REGISTRY"
  exec {HOLD_IN}>"$dir/holder.in"
  local i
  for ((i = 0; i < 600 * 10; i++)); do
    grep -q '^ready' "$out" && break
    alive "$HOLDER_PID" || break
    sleep 0.1
  done
  HELD=$(awk '/^ready/ {print $2 " held, " $4 " failed"}' "$out")
  [[ -n $HELD ]] || die "$p: the clients did not get their connections up: $(tail -3 "$out")"
}

release() {
  exec {HOLD_IN}>&-
  local i
  for ((i = 0; i < 300; i++)); do alive "$HOLDER_PID" || break; sleep 0.1; done
  alive "$HOLDER_PID" && kill_tree "$HOLDER_PID"
  HOLDER_PID=
  sleep 2   # let the peer notice the closes
}

# new_clients SPEC : p50 p99 (ms) of SAMPLES new TLS clients, one after the other
new_clients() {
  local p=$1 url=https://$BIND:${P_TLS[$1]}/ i times CURL_PROTO=--http1.1
  [[ $PROTO == h2 ]] && CURL_PROTO=--http2
  times=$(for ((i = 0; i < SAMPLES; i++)); do
    taskset -c "$LOAD_CPU" curl -sk -m 10 "$CURL_PROTO" -o /dev/null -w '%{time_total}\n' -H "Authorization: ${P_AUTHZ[$p]}" "$url"
  done | awk '{ printf "%.3f\n", $1 * 1000 }')
  printf '%s %s' "$(python3 "$BENCH_DIR/lib/report.py" percentile 50 <<<"$times")" \
    "$(python3 "$BENCH_DIR/lib/report.py" percentile 99 <<<"$times")"
}

backend_start
printf '| peer | protocol | N | RSS before | RSS with N idle | KiB per idle connection | new client p50 / p99 ms | RSS after close | RSS, 2nd round | RSS after 2nd close |\n'
printf '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n'
for PROTO in $PROTOS; do
for p in "${PEERS[@]}"; do
  peer_meta "$p"
  [[ -n ${P_TLS[$p]} ]] || die "$p has no TLS listener"
  [[ $PROTO == h1 || ${P_H2[$p]} == 1 ]] || { log "$p does not speak h2: skipped"; continue; }
  peer_up "$p" >&2
  pids=()   # the peer's processes and their children (nginx's worker)
  for q in $(peer_pids "$p"); do pids+=("$q" $(children "$q")); done
  curl -sk -o /dev/null -H "Authorization: ${P_AUTHZ[$p]}" "https://$BIND:${P_TLS[$p]}/"
  base=$(rss_kib "${pids[@]}")
  hold "$p"; log "$p: $HELD"
  held=$(rss_kib "${pids[@]}")
  read -r p50 p99 < <(new_clients "$p")
  release
  closed=$(rss_kib "${pids[@]}")
  hold "$p"; log "$p, 2nd round: $HELD"
  again=$(rss_kib "${pids[@]}")
  release
  closed2=$(rss_kib "${pids[@]}")
  printf '| %s | %s | %s | %s MiB | %s MiB | %s | %s / %s | %s MiB | %s MiB | %s MiB |\n' "$p" "$PROTO" "$N" \
    "$(mib "$base")" "$(mib "$held")" "$(awk -v a="$held" -v b="$base" -v n="$N" 'BEGIN { printf "%.1f", (a - b) / n }')" \
    "$p50" "$p99" "$(mib "$closed")" "$(mib "$again")" "$(mib "$closed2")"
  peer_down "$p" >&2
done
done
