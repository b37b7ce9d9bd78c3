# shellcheck shell=bash
# Helpers of the benchmark scripts (run.sh, instructions.sh, idle.sh,
# soak.sh) and of every peers/NAME.sh, which is sourced in a subshell with
# this file loaded.
#
# Rules kept here: everything listens on 127.0.0.1, ports 18000-18999 (soak.sh:
# 19000-19999, so that it runs beside the others); every
# process is started by `spawn`, its PID recorded, and stopped by that PID
# (never by name).

BENCH_DIR=${BENCH_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
REPO=${REPO:-$(cd "$BENCH_DIR/.." && pwd)}
BENCH_OUT=${BENCH_OUT:-${TMPDIR:-/tmp}/keygate-bench}
STATE_DIR=${STATE_DIR:-$BENCH_OUT/state}       # generated: password, certificates, per-peer configs and logs
RUN_ROOT=$STATE_DIR/run
PID_REGISTRY=$RUN_ROOT/pids                     # "PID LABEL" of everything started, for cleanup

PEER_CPU=${PEER_CPU:-0}         # the proxy under test
LOAD_CPU=${LOAD_CPU:-1}         # the backend and the load generator
BIND=127.0.0.1
BACKEND_PORT=${BACKEND_PORT:-18080}
AUTH_USER=${AUTH_USER:-apikey}
CERT_KIND=${CERT_KIND:-ec}      # ec (P-256) or rsa (2048)
KEYGATE_BIN=${KEYGATE_BIN:-$REPO/target/release/keygate}
HYPER_FLOOR_BIN=${HYPER_FLOOR_BIN:-$REPO/target/release/examples/hyper_floor}

export BENCH_DIR REPO BENCH_OUT STATE_DIR RUN_ROOT PID_REGISTRY PEER_CPU LOAD_CPU BIND \
  BACKEND_PORT AUTH_USER CERT_KIND KEYGATE_BIN HYPER_FLOOR_BIN

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# need TOOL... : stop with the Debian package to install when a tool is missing
need() {
  local t pkg
  for t in "$@"; do
    command -v "$t" >/dev/null && continue
    case $t in
      h2load) pkg=nghttp2-client ;; redis-server) pkg=redis-server ;; redis-cli) pkg=redis-tools ;; callgrind_annotate) pkg=valgrind ;;
      taskset) pkg=util-linux ;; ss) pkg=iproute2 ;; *) pkg=$t ;;
    esac
    die "missing tool: $t (Debian package $pkg; bench/setup.sh installs them all)"
  done
}

# ---------------------------------------------------------------- password, certificates
ensure_state() {
  mkdir -p "$STATE_DIR" "$RUN_ROOT"
  chmod 755 "$STATE_DIR"   # nginx-auth's worker (user nobody) reads its htpasswd per request
  if [[ ! -s $STATE_DIR/password ]]; then
    # 48 characters from [A-Za-z0-9], like the rig's credential for every peer
    local p=""
    while ((${#p} < 48)); do p+=$(openssl rand -base64 48 | tr -dc 'A-Za-z0-9'); done
    (umask 077; printf '%s' "${p:0:48}" >"$STATE_DIR/password")
  fi
  local tls=$STATE_DIR/tls-$CERT_KIND newkey
  if [[ ! -s $tls/cert.pem ]]; then
    mkdir -p "$tls"
    if [[ $CERT_KIND == rsa ]]; then newkey=(-newkey rsa:2048)
    else newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1); fi
    openssl req -x509 "${newkey[@]}" -nodes -days 3650 -subj "/CN=localhost" \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
      -keyout "$tls/key.pem" -out "$tls/cert.pem" 2>/dev/null || die "openssl req failed"
    chmod 600 "$tls"/*.pem
  fi
}

load_state() {
  AUTH_PASS=$(cat "$STATE_DIR/password")
  TLS_CERT=$STATE_DIR/tls-$CERT_KIND/cert.pem
  TLS_KEY=$STATE_DIR/tls-$CERT_KIND/key.pem
  DEFAULT_AUTHZ="Basic $(printf '%s:%s' "$AUTH_USER" "$AUTH_PASS" | base64 -w0)"
  export AUTH_PASS TLS_CERT TLS_KEY DEFAULT_AUTHZ
}

# ---------------------------------------------------------------- processes
# spawn LABEL CMD... : start CMD in the background, output to
# $PEER_DIR/LABEL.log, PID in $PEER_DIR/LABEL.pid and the registry.
spawn() {
  local label=$1; shift
  : "${PEER_DIR:?spawn needs PEER_DIR}"
  mkdir -p "$PEER_DIR"
  "$@" >"$PEER_DIR/$label.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$PEER_DIR/$label.pid"
  echo "$pid ${PEER:-?}/$label" >>"$PID_REGISTRY"
  log "started ${PEER:-?}/$label pid=$pid: $*"
}

# spawn_peer LABEL CMD... : a process of the proxy under test, pinned to
# PEER_CPU (taskset execs, so the PID is the server's own). Under
# instructions.sh (CALLGRIND=1) it runs under callgrind, its profile in
# $PEER_DIR/LABEL.cg.
spawn_peer() {
  local label=$1; shift
  if [[ ${CALLGRIND:-0} == 1 ]]; then
    spawn "$label" taskset -c "$PEER_CPU" valgrind --tool=callgrind \
      --callgrind-out-file="$PEER_DIR/$label.cg" "$@"
  else
    spawn "$label" taskset -c "$PEER_CPU" "$@"
  fi
}

# alive PID : the process exists and is not a zombie
alive() { [[ -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

# children PID : direct children of PID
children() { ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' '; }

# kill_tree PID : TERM the process and its descendants (by PID), wait 5 s, then KILL
kill_tree() {
  local pid=$1 all=() queue=("$1") p c i
  while ((${#queue[@]})); do
    p=${queue[0]}; queue=("${queue[@]:1}")
    alive "$p" || continue
    all+=("$p")
    for c in $(children "$p"); do queue+=("$c"); done
  done
  ((${#all[@]})) || return 0
  kill -TERM "${all[@]}" 2>/dev/null
  for i in $(seq 50); do
    local up=0
    for p in "${all[@]}"; do alive "$p" && up=1; done
    ((up)) || break
    sleep 0.1
  done
  for p in "${all[@]}"; do
    if alive "$p"; then log "pid $p ignored TERM, sending KILL"; kill -KILL "$p" 2>/dev/null; fi
  done
  wait "$pid" 2>/dev/null || true
}

# stop_spawned [DIR] : stop every process whose pidfile is in DIR (default $PEER_DIR)
stop_spawned() {
  local dir=${1:-$PEER_DIR} f pid
  [[ -d $dir ]] || return 0
  for f in "$dir"/*.pid; do
    [[ -e $f ]] || continue
    pid=$(cat "$f")
    [[ -n $pid ]] && kill_tree "$pid"
    rm -f "$f"
  done
}

# stop_registry : last-resort cleanup of everything this run started
stop_registry() {
  [[ -s $PID_REGISTRY ]] || return 0
  local pid label
  while read -r pid label; do
    if alive "$pid"; then log "cleanup: stopping $label pid=$pid"; kill_tree "$pid"; fi
  done < <(tac "$PID_REGISTRY")
  : >"$PID_REGISTRY"
}

# wait_port PORT [SECONDS [PID...]] : wait until 127.0.0.1:PORT accepts TCP;
# give up early when one of the PIDs has exited
wait_port() {
  local port=$1 t=${2:-15} i p
  shift 2 2>/dev/null || shift $#
  for ((i = 0; i < t * 10; i++)); do
    if (exec 3<>"/dev/tcp/$BIND/$port") 2>/dev/null; then return 0; fi
    for p in "$@"; do alive "$p" || { log "pid $p exited"; return 1; }; done
    sleep 0.1
  done
  return 1
}

# port_free PORT : nothing listens on 127.0.0.1:PORT
port_free() { ! (exec 3<>"/dev/tcp/$BIND/$1") 2>/dev/null; }

# audit_listeners PID... : every socket these PIDs (and their children)
# listen on is on 127.0.0.1:18000-18999; prints the others
audit_listeners() {
  local pids=() p c bad=0 line addr re
  for p in "$@"; do pids+=("$p"); for c in $(children "$p"); do pids+=("$c"); done; done
  re=$(printf 'pid=%s,|' "${pids[@]}"); re=${re%|}
  while read -r line; do
    addr=$(awk '{print $5}' <<<"$line")
    if [[ ! $addr =~ ^127\.0\.0\.1:18[0-9]{3}$ ]]; then echo "BAD LISTENER: $line"; bad=1; fi
  done < <(ss -Hlntup 2>/dev/null | grep -E "$re")
  return $bad
}

# rss_kib PID... : resident memory of these processes together (KiB)
rss_kib() {
  local p total=0 kb
  for p in "$@"; do
    kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
    total=$((total + ${kb:-0}))
  done
  echo "$total"
}

# fds PID... : open file descriptors of these processes together
fds() {
  local p total=0
  for p in "$@"; do total=$((total + $(ls "/proc/$p/fd" 2>/dev/null | wc -l))); done
  echo "$total"
}

# ---------------------------------------------------------------- CPU accounting
# cpu_snapshot : "cpuN user nice system idle iowait irq softirq steal;" per CPU
cpu_snapshot() { awk '/^cpu[0-9]+ /{printf "%s %s %s %s %s %s %s %s %s;", $1,$2,$3,$4,$5,$6,$7,$8,$9}' /proc/stat; }

# settle [MAX_SECONDS] : wait until both CPUs are nearly idle (< 15 % busy
# over 0.5 s), so leftover work does not leak into the next measurement; 0: don't wait
settle() {
  local max=${1:-20} i a b
  ((max > 0)) || return 0
  for ((i = 0; i < max * 2; i++)); do
    a=$(cpu_snapshot); sleep 0.5; b=$(cpu_snapshot)
    python3 "$BENCH_DIR/lib/report.py" idle "$a" "$b" && return 0
  done
  log "settle: CPUs still busy after ${max}s, measuring anyway"
}
