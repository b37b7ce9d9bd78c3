#!/usr/bin/env bash
# bench/run.sh [peer...] -- benchmark keygate with the shared rig (../shared/bench).
#
# Builds the release binary and the hyper_floor example (the hyper-floor peer),
# then runs the shared rig's run.sh with this repository's peer files
# (bench/peers/) and the generated state and results kept outside the
# read-only rig. Arguments are peer specs, passed to the rig as is
# (default: direct nginx-noauth nginx-auth keygate keygate-auth
# keygate-auth:KEYGATE_STORE=redis); every rig setting passes through the
# environment (DURATION, REPS, WARMUP, ORDER, SCENARIOS, CERT_KIND, ...).
#
#   bench/run.sh                                    # full run (~10 min)
#   DURATION=2 REPS=1 WARMUP=1 SCENARIOS="h1-c8 tls-c8 h2-c8m8" bench/run.sh   # quick look
#   bench/run.sh direct nginx-noauth keygate keygate:KEYGATE_THREADS=2
#
# Environment (defaults):
#   SKIP_BUILD=0     1: do not run cargo build (use the binary as it is)
#   KEYGATE_BIN      the binary to measure (default: <cargo target dir>/release/keygate)
#   HYPER_FLOOR_BIN  the hyper-floor peer's binary (default: <cargo target dir>/release/examples/hyper_floor)
#   BENCH_RIG        the rig's run.sh (default: <repo>/../shared/bench/run.sh)
#   BENCH_OUT        ${TMPDIR:-/tmp}/keygate-bench
#   STATE_DIR        $BENCH_OUT/state   (password, certs, per-peer configs and logs)
#   RESULTS          $BENCH_OUT/results/<timestamp>
#   EXTRA_PEERS      <repo>/bench/peers
#   SCENARIOS        the rig's default set
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null) || REPO=$(cd "$HERE/.." && pwd)

if [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 0
fi

BENCH_RIG=${BENCH_RIG:-$REPO/../shared/bench/run.sh}
[[ -f $BENCH_RIG ]] || { echo "bench/run.sh: no rig at $BENCH_RIG (set BENCH_RIG)" >&2; exit 1; }
BENCH_RIG=$(cd "$(dirname "$BENCH_RIG")" && pwd)/$(basename "$BENCH_RIG")

BENCH_OUT=${BENCH_OUT:-${TMPDIR:-/tmp}/keygate-bench}
export STATE_DIR=${STATE_DIR:-$BENCH_OUT/state}
export RESULTS=${RESULTS:-$BENCH_OUT/results/$(date +%Y%m%d-%H%M%S)}
export EXTRA_PEERS=${EXTRA_PEERS:-$REPO/bench/peers}
[[ -n ${SCENARIOS:-} ]] && export SCENARIOS

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  echo "bench/run.sh: cargo build --release, then --example hyper_floor (nice 10: the machine is shared)" >&2
  # Two invocations: built together, the example's dev-dependencies would unify
  # their features (tokio "process", ...) into the keygate binary under test.
  (cd "$REPO" && nice -n 10 cargo build --release --bin keygate \
    && nice -n 10 cargo build --release --example hyper_floor)
fi
if [[ -z ${KEYGATE_BIN:-} || -z ${HYPER_FLOOR_BIN:-} ]]; then
  target_dir=$(cd "$REPO" && cargo metadata --format-version 1 --no-deps 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null) \
    || target_dir=$REPO/target
  KEYGATE_BIN=${KEYGATE_BIN:-$target_dir/release/keygate}
  HYPER_FLOOR_BIN=${HYPER_FLOOR_BIN:-$target_dir/release/examples/hyper_floor}
fi
export KEYGATE_BIN HYPER_FLOOR_BIN
[[ -x $KEYGATE_BIN ]] || { echo "bench/run.sh: $KEYGATE_BIN is not an executable (build it, or set KEYGATE_BIN)" >&2; exit 1; }

peers=("$@")
((${#peers[@]})) || peers=(direct nginx-noauth nginx-auth keygate keygate-auth keygate-auth:KEYGATE_STORE=redis)

# what was measured, next to the rig's own meta.txt
mkdir -p "$RESULTS" "$STATE_DIR"
{
  echo "date: $(date -Is)"
  echo "keygate binary: $KEYGATE_BIN ($("$KEYGATE_BIN" --version 2>/dev/null || echo '?'))"
  echo "binary mtime: $(date -Is -r "$KEYGATE_BIN")"
  echo "hyper_floor binary: $HYPER_FLOOR_BIN ($(date -Is -r "$HYPER_FLOOR_BIN" 2>/dev/null || echo 'not built'))"
  echo "git: $(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo '?')$(git -C "$REPO" diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')"
  echo "rustc: $(rustc --version 2>/dev/null || echo '?')"
  echo "rig: $BENCH_RIG"
  echo "peers: ${peers[*]}"
  echo "SCENARIOS=${SCENARIOS:-rig default} DURATION=${DURATION:-10} REPS=${REPS:-3} WARMUP=${WARMUP:-3} ORDER=${ORDER:-interleave}"
  echo "command: $(printf '%q ' "$0" "$@")"
} >"$RESULTS/keygate.txt"

echo "bench/run.sh: rig $BENCH_RIG, peers: ${peers[*]}" >&2
echo "bench/run.sh: results in $RESULTS, state in $STATE_DIR" >&2
rc=0
"$BENCH_RIG" "${peers[@]}" || rc=$?

echo
if [[ -s $RESULTS/table.md ]]; then
  echo "== $RESULTS/table.md"
  cat "$RESULTS/table.md"
else
  echo "bench/run.sh: no table.md in $RESULTS (rig exit status $rc; see checks.txt and the log above)" >&2
fi
exit "$rc"
