# shellcheck shell=bash disable=SC2034  # PEER_* are read by lib/peers.sh
# keygate checking API keys, the counterpart of nginx-auth. A key is minted
# through the admin API at start and every request carries it: Basic
# apikey:<key> -> checksum -> lookup (validation cache, or the store) ->
# HMAC-SHA256 compare -> X-Remote-User set, Authorization removed.
#
# Variants (keygate-auth:VAR=value,...), each on its own ports:
#   KEYGATE_STORE=memory (default)  the in-process store: one process, so one
#                   listener: KEYGATE_LISTENER=tls (default; tls-*, h2-*) or
#                   plain (h1-*, badkey-c8)
#   KEYGATE_STORE=redis   both listeners (two processes) on a Redis pinned to
#                   the peer's CPU (its CPU time counts), fleet members with
#                   the validation cache
#   KEYGATE_CACHE=off     [cache] enabled = false: a Redis lookup per request
#   KEYGATE_ACCESS_LOG, KEYGATE_THREADS, KEYGATE_MAX_CONNECTIONS (lib/keygate.sh)
# Ports: 18200+i (HTTP) / 18500+i (TLS), admin 18300+i / 18320+i, Redis
# 18340+i; i = (redis ? 1 : 0) + 2 x access-log index + 6 x (cache off).
source "$BENCH_DIR/lib/keygate.sh"
KEYGATE_STORE=${KEYGATE_STORE:-memory}
KEYGATE_LISTENER=${KEYGATE_LISTENER:-tls}
KEYGATE_CACHE=${KEYGATE_CACHE:-on}
[[ $KEYGATE_STORE == memory || $KEYGATE_STORE == redis ]] || die "KEYGATE_STORE=$KEYGATE_STORE: memory or redis"
_i=$(( $([[ $KEYGATE_STORE == redis ]] && echo 1 || echo 0) + 2 * KEYGATE_LOG_INDEX + 6 * $([[ $KEYGATE_CACHE == off ]] && echo 1 || echo 0) ))
PEER_DESC="$(keygate_desc), API keys, $KEYGATE_STORE store, cache $KEYGATE_CACHE"
PEER_HTTP_PORT=$((18200 + _i))
PEER_TLS_PORT=$((18500 + _i))
if [[ $KEYGATE_STORE == memory && $KEYGATE_LISTENER == tls ]]; then PEER_HTTP_PORT=; fi
if [[ $KEYGATE_STORE == memory && $KEYGATE_LISTENER == plain ]]; then PEER_TLS_PORT=; fi
PEER_H2=1
PEER_AUTH=1

peer_start() {
  [[ -x $KEYGATE_BIN ]] || die "KEYGATE_BIN=$KEYGATE_BIN is not an executable (cargo build --release)"
  keygate_admin_token
  local store='kind = "memory"' redis=$((18340 + _i)) admin_url
  local auth="username = \"$AUTH_USER\"
identity_header = \"X-Remote-User\"
anonymous = \"reject\""
  if [[ $KEYGATE_STORE == redis ]]; then
    (umask 077; openssl rand -hex 32 >"$PEER_DIR/secret")
    spawn keygate-redis taskset -c "$PEER_CPU" redis-server --bind "$BIND" --port "$redis" \
      --save '' --appendonly no --dir "$PEER_DIR"
    wait_port "$redis" 10 || die "$PEER: redis-server did not start"
    store="kind = \"redis\"
url = \"redis://$BIND:$redis/0\"
namespace = \"keygate-bench\"
secret_file = \"$PEER_DIR/secret\""
  fi
  store+="

[cache]
enabled = $([[ $KEYGATE_CACHE == off ]] && echo false || echo true)"
  # With Redis the key minted on one process is known to the other.
  if [[ -n $PEER_TLS_PORT ]]; then
    keygate_config "$PEER_DIR/tls.toml" "$PEER_TLS_PORT" $((18320 + _i)) 1 "$auth" "$store"
    keygate_start keygate-tls "$PEER_DIR/tls.toml"
    admin_url=https://localhost:$((18320 + _i))
  fi
  if [[ -n $PEER_HTTP_PORT ]]; then
    keygate_config "$PEER_DIR/plain.toml" "$PEER_HTTP_PORT" $((18300 + _i)) 0 "$auth" "$store"
    keygate_start keygate-plain "$PEER_DIR/plain.toml"
    admin_url=${admin_url:-http://localhost:$((18300 + _i))}
  fi
  wait_port "${admin_url##*:}" 60 $(cat "$PEER_DIR"/keygate-*.pid) || die "$PEER: the admin listener did not come up"
  keygate_mint "$admin_url"
}
