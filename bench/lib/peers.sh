# shellcheck shell=bash
# Peers: the proxies under test, one file each in peers/NAME.sh (see the
# README, "Adding a peer"). A peer spec is NAME or NAME:VAR=value[,VAR=value...]:
# the variables are set before peers/NAME.sh is sourced, and the whole spec
# is the peer's label in the results (nginx-auth:NGINX_ACCESS_LOG=1).
#
# After peer_meta SPEC, P_HTTP[SPEC], P_TLS[SPEC], P_H2[SPEC], P_AUTH[SPEC]
# and P_DESC[SPEC] hold its settings; after peer_up SPEC, P_AUTHZ[SPEC] the
# Authorization header value it accepts. Checks go to $CHECKS.

declare -A P_HTTP P_TLS P_H2 P_AUTH P_DESC P_AUTHZ UP
CHECKS=${CHECKS:-/dev/null}

peer_file() { echo "$BENCH_DIR/peers/${1%%:*}.sh"; }
peer_dir() { echo "$RUN_ROOT/$(tr -c 'A-Za-z0-9_.=-' '_' <<<"$1" | sed 's/_$//')"; }

# with_peer SPEC CMD... : in a subshell, set the spec's variables, source the peer file, run CMD
with_peer() {
  local spec=$1; shift
  (
    PEER=$spec PEER_DIR=$(peer_dir "$spec"); export PEER PEER_DIR
    if [[ $spec == *:* ]]; then
      local kv
      while IFS= read -r kv; do
        [[ $kv =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "bad variable '$kv' in peer spec '$spec'"
        export "${kv?}"
      done < <(tr ',' '\n' <<<"${spec#*:}")
    fi
    source "$(peer_file "$spec")" >/dev/null || die "$(peer_file "$spec") failed to load"
    "$@"
  )
}

print_meta() {
  printf '%s\x1f%s\x1f%s\x1f%s\x1f%s' "${PEER_HTTP_PORT:-}" "${PEER_TLS_PORT:-}" \
    "${PEER_H2:-0}" "${PEER_AUTH:-0}" "${PEER_DESC:-$PEER}"
}

peer_meta() {
  local name=$1 meta port
  [[ -f $(peer_file "$name") ]] || die "no such peer: $name (peers: $(cd "$BENCH_DIR/peers" && ls -- *.sh | sed 's/\.sh$//' | tr '\n' ' '))"
  meta=$(with_peer "$name" print_meta) || die "$name: could not read its settings"
  IFS=$'\x1f' read -r "P_HTTP[$name]" "P_TLS[$name]" "P_H2[$name]" "P_AUTH[$name]" "P_DESC[$name]" <<<"$meta"
  [[ -n ${P_HTTP[$name]}${P_TLS[$name]} ]] || die "$name: neither PEER_HTTP_PORT nor PEER_TLS_PORT set"
  for port in ${P_HTTP[$name]} ${P_TLS[$name]}; do
    [[ $port =~ ^18[0-9]{3}$ ]] || die "$name: port $port outside 18000-18999"
  done
}

# peer_pids SPEC : the PIDs of the processes the peer started
peer_pids() {
  local f
  for f in "$(peer_dir "$1")"/*.pid; do [[ -e $f ]] && cat "$f"; done
}

peer_up() {
  local name=$1 dir port pids
  dir=$(peer_dir "$name")
  [[ -n $name && $dir == "$RUN_ROOT"/?* ]] || die "peer_up: bad peer dir '$dir'"
  rm -rf -- "$dir"; mkdir -p "$dir"
  for port in ${P_HTTP[$name]} ${P_TLS[$name]}; do
    [[ $port == "$BACKEND_PORT" ]] && continue
    port_free "$port" || die "$name: port $port already in use"
  done
  log "starting peer $name: ${P_DESC[$name]}"
  with_peer "$name" peer_start || die "$name: peer_start failed"
  UP[$name]=1
  mapfile -t pids < <(peer_pids "$name")
  for port in ${P_HTTP[$name]} ${P_TLS[$name]}; do
    wait_port "$port" 60 "${pids[@]}" || die "$name: nothing listening on $BIND:$port (logs in $dir)"
  done
  if ((${#pids[@]})); then
    audit_listeners "${pids[@]}" || die "$name listens outside 127.0.0.1:18000-18999"
  fi
  if [[ -s $dir/authorization ]]; then P_AUTHZ[$name]=$(cat "$dir/authorization")
  else P_AUTHZ[$name]=$DEFAULT_AUTHZ; fi
  check_peer "$name"
}

stop_peer_procs() {
  if declare -F peer_stop >/dev/null; then peer_stop; fi
  stop_spawned "$PEER_DIR"
}

peer_down() {
  local name=$1
  [[ -n ${UP[$name]:-} ]] || return 0
  with_peer "$name" stop_peer_procs
  unset "UP[$name]"
  log "stopped peer $name"
}

# expect NAME WHAT GOT WANT
expect() {
  if [[ $3 == "$4" ]]; then echo "  ok   $2: $3" >>"$CHECKS"
  else echo "  FAIL $2: got '$3', want '$4'" >>"$CHECKS"; log "$1: check failed: $2: got '$3', want '$4'"; CHECK_FAIL=1; fi
}

# check_peer SPEC : 401 without a key and with a wrong one (auth peers), 200
# "ok" with the key, HTTP/1.1 and h2 by ALPN over TLS, TLS 1.3. A peer that
# fails is not measured.
check_peer() {
  local n=$1 http=${P_HTTP[$1]} tls=${P_TLS[$1]} authz=${P_AUTHZ[$1]} got u urls=()
  local wrong="Basic $(printf '%s:%s' "$AUTH_USER" "wrong-key-${AUTH_PASS:10}" | base64 -w0)"
  local body=$RUN_ROOT/body.tmp
  CHECK_FAIL=0
  echo "$n (${P_DESC[$n]})" >>"$CHECKS"
  [[ -n $http ]] && urls+=("http://$BIND:$http/")
  [[ -n $tls ]] && urls+=("https://$BIND:$tls/")
  for u in "${urls[@]}"; do
    if [[ ${P_AUTH[$n]} == 1 ]]; then
      got=$(curl -sk -m 30 -o /dev/null -w '%{http_code}' "$u"); expect "$n" "$u no credentials" "$got" 401
      got=$(curl -sk -m 30 -o /dev/null -D - "$u" | tr -d '\r' | grep -i '^www-authenticate:' | cut -d' ' -f2)
      expect "$n" "$u WWW-Authenticate scheme" "$got" Basic
      got=$(curl -sk -m 60 -o /dev/null -w '%{http_code}' -H "Authorization: $wrong" "$u"); expect "$n" "$u wrong key" "$got" 401
    fi
    got=$(curl -sk -m 60 -o "$body" -w '%{http_code}' -H "Authorization: $authz" "$u")
    expect "$n" "$u right key" "$got" 200
    expect "$n" "$u body" "$(cat "$body")" ok
  done
  rm -f "$body"
  if [[ -n $tls ]]; then
    u=https://$BIND:$tls/
    got=$(curl -sk -m 30 -o /dev/null -w '%{http_code} %{http_version}' --http1.1 -H "Authorization: $authz" "$u")
    expect "$n" "$u HTTP/1.1 over TLS" "$got" "200 1.1"
    if [[ ${P_H2[$n]} == 1 ]]; then
      got=$(curl -sk -m 30 -o /dev/null -w '%{http_code} %{http_version}' --http2 -H "Authorization: $authz" "$u")
      expect "$n" "$u h2 via ALPN" "$got" "200 2"
    fi
    got=$(curl -skv -m 30 -o /dev/null -H "Authorization: $authz" "$u" 2>&1 | grep -o 'SSL connection using [^ ]*' | awk '{print $4}')
    expect "$n" "$u negotiated TLS version" "$got" "TLSv1.3"
  fi
  ((CHECK_FAIL == 0)) || die "$n failed its checks (see $CHECKS); refusing to measure it"
}
