#!/usr/bin/env bash
# bench/setup.sh -- install the Debian packages the scripts in bench/ use
# (as root, or through sudo). Debian 12: nginx 1.22, wrk 4.1, h2load 1.52,
# redis 7.0, valgrind 3.19.
#
#   nginx-light      the backend and the nginx peers (any nginx with the
#                    http2, ssl and auth_basic modules will do)
#   wrk              HTTP/1.1 load (plain and TLS)
#   nghttp2-client   h2load: HTTP/2 load
#   redis-server     keygate-auth:KEYGATE_STORE=redis, soak.sh (redis-cli:
#                    redis-tools, which it pulls in)
#   valgrind         instructions.sh (callgrind)
#   python3-h2       idle.sh's HTTP/2 clients
#   curl openssl python3 util-linux iproute2 procps
#                    checks, certificates, reports, taskset, ss, ps
set -euo pipefail
packages=(nginx-light wrk nghttp2-client redis-server redis-tools valgrind python3-h2 curl openssl python3 util-linux iproute2 procps)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# nginx-light, -core, -full, -extras: any of them
if command -v nginx >/dev/null; then missing=("${missing[@]/nginx-light}"); fi
read -ra missing <<<"${missing[*]}"
((${#missing[@]})) || { echo "bench/setup.sh: everything is installed"; exit 0; }
sudo=()
((EUID == 0)) || sudo=(sudo)
echo "bench/setup.sh: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
# The nginx package starts a system nginx on port 80; the bench starts its own.
