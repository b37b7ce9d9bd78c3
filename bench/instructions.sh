#!/usr/bin/env bash
# bench/instructions.sh [peer...] -- user-space instructions per request,
# counted by callgrind, for the same peers as run.sh.
#
# The rig's µs/req moves by about 1 µs between runs on a shared 2-core
# machine; callgrind's count moves by about 0.3 %, and not with the load of
# other processes, so it shows what one change saves. It counts user space
# only: the kernel's share (about two thirds of the rig's µs/req, alike for
# every peer) and the CPU of processes not under callgrind (the Redis of
# keygate-auth:KEYGATE_STORE=redis) are not in it.
#
#   bench/instructions.sh                             # the default peers, h1
#   SCENARIOS="h1 tls h2" bench/instructions.sh keygate nginx-noauth
#   bench/instructions.sh keygate keygate:KEYGATE_ACCESS_LOG=json nginx-noauth:NGINX_ACCESS_LOG=1
#   KEYGATE_BIN=/tmp/old/keygate bench/instructions.sh keygate
#   KEEP=1 bench/instructions.sh keygate              # keep the profiles (callgrind_annotate)
#
# Each peer is started as run.sh starts it (peers/NAME.sh), with its
# processes under valgrind --tool=callgrind (nginx without a master
# process), and checked. Per scenario, h2load on CPU 1 with the rig's
# Authorization header: WARMUP seconds (default 10: connections and
# handshakes), then DURATION seconds (default 10) over which the counters of
# all the peer's processes are taken and summed.
#   h1   h2load --h1 -c64, plain HTTP/1.1    tls  h2load --h1 -c64, HTTP/1.1 over TLS 1.3
#   h2   h2load -c8 -m8, HTTP/2 over TLS
# Needs valgrind, nginx, h2load, curl, python3 (bench/setup.sh).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HERE/lib/common.sh"
source "$HERE/lib/nginx.sh"
source "$HERE/lib/peers.sh"

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

export CALLGRIND=1
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-10}
read -ra SCENS <<<"${SCENARIOS:-h1}"
PEERS=("$@")
((${#PEERS[@]})) || PEERS=(nginx-noauth hyper-floor keygate keygate-auth:KEYGATE_LISTENER=plain)
need valgrind callgrind_annotate callgrind_control nginx h2load curl python3 taskset ss
STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/keygate-instructions.XXXXXX")
RUN_ROOT=$STATE_DIR/run PID_REGISTRY=$STATE_DIR/run/pids
export STATE_DIR RUN_ROOT PID_REGISTRY
ensure_state
load_state
: >"$PID_REGISTRY"

cleanup() {
  trap - EXIT INT TERM
  for p in "${!UP[@]}"; do peer_down "$p"; done
  backend_stop
  stop_registry
  if [[ ${KEEP:-0} == 1 ]]; then log "profiles kept in $RUN_ROOT/*/ (callgrind_annotate FILE.cg.N)"
  else rm -rf "$STATE_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# total_ir FILE... : the instructions in these callgrind dumps together
total_ir() {
  local f sum=0 ir
  for f in "$@"; do
    ir=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    sum=$((sum + ${ir:-0}))
  done
  echo "$sum"
}

# profiled SPEC : the pid files of the peer's processes under callgrind (a
# LABEL.pid with its LABEL.cg), not its helpers such as keygate-auth's
# redis-server: callgrind_control given one PID not under valgrind zeroes
# and dumps none of them.
profiled() {
  local f
  for f in "$(peer_dir "$1")"/*.pid; do
    [[ -e $f && -e ${f%.pid}.cg ]] && echo "$f"
  done
}

# measure SPEC SCENARIO : one line of the table. Each process's counters are
# zeroed once h2load's warm-up (connections and TLS handshakes made, WARMUP
# seconds) is over and dumped DURATION seconds later. The requests are those
# the backend answered between the end of the busiest process's zeroing and
# the end of its dump, not h2load's count: callgrind_control takes up to a
# few hundred milliseconds per process, which put h2load's window off from
# callgrind's by up to 3 % of the requests.
measure() {
  local p=$1 s=$2 url shape=(-c64 -m1 --h1) raw load i f n ir=0 one most=-1 req=0
  local pidfiles=() pids=() before=() zeroed=() served=() dumps=()
  case $s in
    h1) [[ -n ${P_HTTP[$p]} ]] && url=http://$BIND:${P_HTTP[$p]}/ ;;
    tls) [[ -n ${P_TLS[$p]} ]] && url=https://$BIND:${P_TLS[$p]}/ ;;
    h2) [[ -n ${P_TLS[$p]} && ${P_H2[$p]} == 1 ]] && url=https://$BIND:${P_TLS[$p]}/ && shape=(-c8 -m8) ;;
    *) die "unknown scenario $s (h1, tls, h2)" ;;
  esac
  if [[ -z ${url:-} ]]; then
    printf '%-44s %-4s no %s listener\n' "$p" "$s" "$s"
    return
  fi
  mapfile -t pidfiles < <(profiled "$p")
  for f in "${pidfiles[@]}"; do pids+=("$(cat "$f")"); done
  n=${#pids[@]}
  for f in "$(peer_dir "$p")"/*.cg.*; do [[ -e $f ]] && before+=("$f"); done
  raw=$(peer_dir "$p")/load.$s.txt
  timeout -k 5 $((WARMUP + DURATION + 60)) taskset -c "$LOAD_CPU" h2load -t1 "${shape[@]}" \
    --warm-up-time="${WARMUP}s" -D "$DURATION" -H "authorization: ${P_AUTHZ[$p]}" "$url" >"$raw" 2>&1 &
  load=$!
  sleep "$WARMUP"
  for i in "${!pids[@]}"; do
    callgrind_control -z "${pids[i]}" >/dev/null 2>&1
    zeroed[i]=$(backend_requests)
  done
  sleep "$DURATION"
  # Between one process's two readings come the n - 1 other processes' and
  # its own second one: n of the counted requests are these readings.
  for i in "${!pids[@]}"; do
    callgrind_control -d "${pids[i]}" >/dev/null 2>&1
    served[i]=$(($(backend_requests) - zeroed[i] - n))
  done
  wait "$load"
  for i in "${!pids[@]}"; do
    # this process's dumps: its files that were not there before
    dumps=()
    for f in "${pidfiles[i]%.pid}".cg.*; do
      [[ -e $f && " ${before[*]} " != *" $f "* ]] && dumps+=("$f")
    done
    one=$(total_ir "${dumps[@]}")
    ir=$((ir + one))
    if ((one > most)); then most=$one req=${served[i]}; fi
  done
  if ((req > 0)); then
    printf '%-44s %-4s %8d requests %9d instructions/request\n' "$p" "$s" "$req" $((ir / req))
  else
    printf '%-44s %-4s no requests completed (see %s)\n' "$p" "$s" "$raw"
  fi
}

backend_start
printf '%-44s %-4s %s\n' peer scen "user-space instructions per request (callgrind, $DURATION s of load)"
for p in "${PEERS[@]}"; do
  peer_meta "$p"
  peer_up "$p" >&2
  for s in "${SCENS[@]}"; do measure "$p" "$s"; done
  peer_down "$p"
done
