#!/usr/bin/env bash
# bench/run.sh [peer...] -- keygate beside nginx and the bare backend, in one run.
#
# Builds keygate and the hyper_floor example (release), starts the backend
# (nginx, CPU 1) and the peers (peers/NAME.sh, CPU 0), checks each one (401
# without / with a wrong key, 200 with the right one, h2 by ALPN, TLS 1.3),
# warms them up, runs every scenario REPS times with the load generator on
# CPU 1, prints a table of medians and ratios, and stops everything it
# started (by PID). See bench/README.md.
#
#   bench/run.sh                      # the default peers, every scenario (~25 min)
#   DURATION=2 REPS=1 WARMUP=1 SCENARIOS="h1-c8 tls-c8 h2-c8m8" bench/run.sh   # a quick look
#   bench/run.sh nginx-auth nginx-auth:NGINX_ACCESS_LOG=1 keygate-auth:KEYGATE_STORE=redis
#
# Environment (defaults):
#   DURATION=10 REPS=3 WARMUP=3   seconds per run, runs per scenario, warm-up seconds per protocol
#   ORDER=interleave   rep 1 of every peer, then rep 2, ... (drifts of a shared machine
#                      hit every peer alike); sequential: one peer after the other
#                      (chosen by itself when two peers share a port)
#   SCENARIOS="h1-c64 h1-c8 tls-c64 tls-c8 h2-c8m8 tls-hs badkey-c8"
#   SETTLE=20          before each run, wait up to this many seconds for idle CPUs
#                      (0: don't; for a machine that is busy anyway)
#   SKIP_BUILD=0       1: measure the binaries as they are
#   KEYGATE_BIN, HYPER_FLOOR_BIN   the binaries (default: target/release/...)
#   BENCH_OUT=${TMPDIR:-/tmp}/keygate-bench   STATE_DIR=$BENCH_OUT/state
#   RESULTS=$BENCH_OUT/results/<timestamp>
#   CERT_KIND=ec       ec (P-256) or rsa (2048) server certificate
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/common.sh"
source "$HERE/lib/nginx.sh"
source "$HERE/lib/peers.sh"

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  echo "peers: $(cd "$BENCH_DIR/peers" && ls -- *.sh | sed 's/\.sh$//' | tr '\n' ' ')"
  exit 0
fi

DURATION=${DURATION:-10}
REPS=${REPS:-3}
WARMUP=${WARMUP:-3}
PAUSE=${PAUSE:-1}
SETTLE=${SETTLE:-20}
ORDER=${ORDER:-interleave}
SCENARIOS=${SCENARIOS:-"h1-c64 h1-c8 tls-c64 tls-c8 h2-c8m8 tls-hs badkey-c8"}
RESULTS=${RESULTS:-$BENCH_OUT/results/$(date +%Y%m%d-%H%M%S)}
PEERS=("$@")
((${#PEERS[@]})) || PEERS=(direct nginx-noauth nginx-auth hyper-floor keygate keygate-auth:KEYGATE_STORE=redis)
read -ra SCENS <<<"$SCENARIOS"

need wrk h2load curl taskset nginx python3 openssl ss
(($(nproc) >= 2)) || die "needs 2 CPUs (peer on CPU $PEER_CPU, load and backend on CPU $LOAD_CPU)"

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  log "cargo build --release, then --example hyper_floor (nice 10)"
  # Two invocations: built together, the example's dev-dependencies would
  # unify their features into the keygate binary under test.
  (cd "$REPO" && nice -n 10 cargo build --release --bin keygate \
    && nice -n 10 cargo build --release --example hyper_floor) || die "build failed"
fi

mkdir -p "$RESULTS/raw"
RUNS=$RESULTS/runs.jsonl
CHECKS=$RESULTS/checks.txt
COMMANDS=$RESULTS/commands.txt
: >"$RUNS"
ensure_state
load_state
mkdir -p "$RUN_ROOT"
: >"$PID_REGISTRY"

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  log "stopping everything this run started"
  for p in "${!UP[@]}"; do peer_down "$p"; done
  backend_stop
  stop_registry
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ load
LOAD=(timeout -k 5)   # every load run is bounded twice: -d/-D and timeout

# run_scenario PEER SCENARIO REP [WARMUP_SECONDS]
run_scenario() {
  local p=$1 s=$2 rep=$3 wu=${4:-} http=${P_HTTP[$1]} tls=${P_TLS[$1]} authz=${P_AUTHZ[$1]}
  local tool=wrk expect=200 url c=64 m=1 extra=() cmd
  local DURATION=${wu:-$DURATION}
  case $s in
    h1-c*) [[ -n $http ]] || return 0; url=http://$BIND:$http/; c=${s#h1-c} ;;
    tls-c*) [[ -n $tls ]] || return 0; url=https://$BIND:$tls/; c=${s#tls-c} ;;
    h2-c*) [[ -n $tls && ${P_H2[$p]} == 1 ]] || return 0; tool=h2load; url=https://$BIND:$tls/
      [[ $s =~ ^h2-c([0-9]+)m([0-9]+)$ ]] || die "bad scenario $s (want h2-cNmM)"
      c=${BASH_REMATCH[1]}; m=${BASH_REMATCH[2]} ;;
    tls-hs) [[ -n $tls ]] || return 0; url=https://$BIND:$tls/; extra=(-H "Connection: close") ;;
    h1-close) [[ -n $http ]] || return 0; url=http://$BIND:$http/; extra=(-H "Connection: close") ;;
    badkey-c*) [[ -n $http && ${P_AUTH[$p]} == 1 ]] || return 0; url=http://$BIND:$http/; c=${s#badkey-c}
      expect=401; authz=""; extra=(-s "$BENCH_DIR/lua/badkey.lua") ;;
    *) die "unknown scenario $s" ;;
  esac
  local tag=$p.$s.r$rep
  [[ -n $wu ]] && tag=$p.$s.warmup
  local raw=$RESULTS/raw/$tag.txt h2log=$RESULTS/raw/$tag.h2log
  if [[ $tool == wrk ]]; then
    cmd=("${LOAD[@]}" $((DURATION + 30)) taskset -c "$LOAD_CPU" wrk -t1 -c"$c" -d"${DURATION}s" --timeout 30s --latency "${extra[@]}")
    [[ -n $authz ]] && cmd+=(-H "Authorization: $authz")
    cmd+=("$url")
  else
    cmd=("${LOAD[@]}" $((DURATION + 30)) taskset -c "$LOAD_CPU" h2load -t1 -c"$c" -m"$m" -D "$DURATION"
      -H "authorization: $authz" --log-file="$h2log" "$url")
  fi
  if [[ -n $wu ]]; then "${cmd[@]}" >"$raw" 2>&1; rm -f "$h2log"; return 0; fi
  # the command as run, the credential elided
  printf '%s %s\n' "$s" "$(printf '%q ' "${cmd[@]}" | sed -E 's/(Basic\\? )[A-Za-z0-9+\/=]+/\1<base64(apikey:KEY)>/g')" >>"$COMMANDS.all"
  local before after rc
  settle "$SETTLE"
  before=$(cpu_snapshot)
  "${cmd[@]}" >"$raw" 2>&1
  rc=$?
  after=$(cpu_snapshot)
  ((rc == 0)) || log "$tag: load generator exited $rc"
  python3 "$BENCH_DIR/lib/report.py" record --peer "$p" --scenario "$s" --rep "$rep" --tool "$tool" \
    --raw "$raw" ${h2log:+--h2log "$h2log"} --cpu-before "$before" --cpu-after "$after" --expect "$expect" >>"$RUNS" \
    || log "$tag: could not parse output"
  rm -f "$h2log"
  log "$(tail -n1 "$RUNS" | python3 "$BENCH_DIR/lib/report.py" line)"
  sleep "$PAUSE"
}

warm_peer() {
  ((WARMUP > 0)) || return 0
  log "warming up $1 (${WARMUP}s per protocol)"
  run_scenario "$1" h1-c64 0 "$WARMUP"
  run_scenario "$1" tls-c64 0 "$WARMUP"
  run_scenario "$1" h2-c8m8 0 "$WARMUP"
}

# ------------------------------------------------------------------ main
for p in "${PEERS[@]}"; do peer_meta "$p"; done
if [[ $ORDER == interleave ]]; then   # all peers up at once: their ports must differ
  declare -A SEEN=()
  for p in "${PEERS[@]}"; do
    for port in ${P_HTTP[$p]} ${P_TLS[$p]}; do
      [[ $port == "$BACKEND_PORT" ]] && continue
      if [[ -n ${SEEN[$port]:-} ]]; then log "$p and ${SEEN[$port]} share port $port: ORDER=sequential"; ORDER=sequential; fi
      SEEN[$port]=$p
    done
  done
fi
{
  echo "date: $(date -Is)"
  echo "host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r)"
  echo "peer CPU $PEER_CPU, load+backend CPU $LOAD_CPU, DURATION=$DURATION REPS=$REPS WARMUP=$WARMUP ORDER=$ORDER CERT_KIND=$CERT_KIND"
  echo "scenarios: ${SCENS[*]}"
  for p in "${PEERS[@]}"; do echo "peer $p: ${P_DESC[$p]} (http=${P_HTTP[$p]:--} tls=${P_TLS[$p]:--} h2=${P_H2[$p]} auth=${P_AUTH[$p]})"; done
  echo "keygate: $KEYGATE_BIN, built $(date -Is -r "$KEYGATE_BIN" 2>/dev/null || echo '?')"
  echo "git: $(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')"
  echo "rustc: $(rustc --version 2>/dev/null || echo '?')"
  echo "nginx: $(nginx -v 2>&1 | sed 's|.*/||'), wrk: $(wrk -v 2>&1 | head -1 | awk '{print $2}'), h2load: $(h2load --version | awk '{print $NF}'), $(openssl version)"
  echo "command: $(printf '%q ' "$0" "$@")"
} >"$RESULTS/meta.txt"
cat "$RESULTS/meta.txt" >&2

backend_start
if [[ $ORDER == interleave ]]; then
  for p in "${PEERS[@]}"; do peer_up "$p"; done
  for p in "${PEERS[@]}"; do warm_peer "$p"; done
  for ((rep = 1; rep <= REPS; rep++)); do
    log "=== repetition $rep/$REPS"
    for p in "${PEERS[@]}"; do
      for s in "${SCENS[@]}"; do run_scenario "$p" "$s" "$rep"; done
    done
  done
else
  for p in "${PEERS[@]}"; do
    peer_up "$p"
    warm_peer "$p"
    for ((rep = 1; rep <= REPS; rep++)); do
      for s in "${SCENS[@]}"; do run_scenario "$p" "$s" "$rep"; done
    done
    peer_down "$p"
  done
fi

sort -u "$COMMANDS.all" >"$COMMANDS" 2>/dev/null
rm -f "$COMMANDS.all"
python3 "$BENCH_DIR/lib/report.py" table "$RUNS" --peers "$(printf '%s\n' "${PEERS[@]}")" \
  --scenarios "$(printf '%s\n' "${SCENS[@]}")" | tee "$RESULTS/table.md"
echo
echo "raw outputs, runs.jsonl, checks.txt, commands.txt, meta.txt: $RESULTS"
