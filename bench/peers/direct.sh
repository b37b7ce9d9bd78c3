# shellcheck shell=bash disable=SC2034  # PEER_* are read by lib/peers.sh
# No proxy: the load generator talks to the backend itself. The ceiling of
# CPU 1 (load generator + backend); plain HTTP only.
PEER_DESC="direct to the backend (nginx return 200), no proxy"
PEER_HTTP_PORT=$BACKEND_PORT
PEER_TLS_PORT=
PEER_H2=0
PEER_AUTH=0

peer_start() { :; }   # the backend is always up
peer_stop() { :; }
