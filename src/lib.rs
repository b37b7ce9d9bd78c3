//! keygate: a TLS-terminating reverse proxy that gives an existing web
//! application API keys.
//!
//! # Layout
//!
//! Every arrow points down: a module uses the ones below it, never one above.
//!
//! ```text
//! main listener:  listener ─► tls ─► http::gateway ─┬─ route: selfservice (/.keygate/*) ─► login
//!                                                   │        http::self_rotation (/.keygate/api/rotate,
//!                                                   │        admitted by its key) ─► keyring.rotate
//!                                                   ├─ admit: http::admission
//!                                                   │     strip ─► auth (credential) ─► keyring.verify
//!                                                   │     ─► ratelimit ─► scope ─► identity headers
//!                                                   │     a refusal ─► http::refusal ─► http::response
//!                                                   └─ forward: upstream (pool, timeouts, WebSocket)
//! admin listener: listener ─► tls ─► admin (bearer token) ─► keyring
//! auth listener:  listener ─► tls ─► authz ─► contract (who asks, about what) ─► http::admission
//!                                          └─► 200 + identity headers, or http::refusal
//!
//! keyring ─► keys (format, digests) · store (memory | Redis) · fleet (cache, barrier) · audit · metrics · settings
//!         └► webhooks (events queued in the store's outbox, delivered by every instance's workers)
//! ```
//!
//! Connections and their bookkeeping:
//! * `listener`: accept loop, connection cap, TLS handshake deadline, the
//!   HTTP version by ALPN, graceful drain; it hands each request to a
//!   `conn::Handler`.
//! * `conn`: what the listener hands down (the handler trait, a request's
//!   connection context, the idle watch), so nothing above imports the
//!   listener; a connection's life (`conn::serving`: hyper's connection
//!   beside `conn::watchdog`, the drain, idle and send timeouts in a task of
//!   their own); and the connection-level defences hyper leaves to its user:
//!   HTTP/2 control-frame floods and a close the client can read
//!   (`conn::h2_guard`), clients that stop taking responses (`conn::send_stall`).
//! * [`tls`]: PEM -> rustls config, swapped on SIGHUP (the last good one
//!   stays), and the client config keygate dials with; `plain_http`: a plain
//!   HTTP request on a TLS port gets a 400 saying so.
//!
//! Requests:
//! * `http`: the gateway's steps (`gateway`: route, admit, forward;
//!   `admission`: strip, authenticate, limit, authorize, identify), its
//!   refusals mapped in one place (`refusal`), every answer keygate writes
//!   (`response`), the header rules, the response body and the access log;
//!   `self_rotation`: a key rotating itself, admitted by the gateway's steps.
//! * `auth`: finding the API credential (typed as an `ApiKey` from the
//!   decoder on), scopes, last use; `ratelimit`: failed authentications per
//!   client, requests per key.
//! * `upstream`: the keep-alive pool to the backend, timeouts, WebSocket tunnels.
//! * `authz`: the auth listener (`[authz] addr`): nginx `auth_request`,
//!   Caddy `forward_auth`, Traefik ForwardAuth and Envoy ext_authz ask it
//!   about each request; it admits the described request with the
//!   gateway's own steps and answers, never forwards.
//! * `admin`: the admin API; `selfservice`: `/.keygate/*`, the page where
//!   signed-in users make and revoke their own keys, and its JSON API;
//!   `login`: who is signed in (`[login] method`).
//! * [`leaks`]: `/.keygate/leaks/*` and `/.keygate/revoke` (routed by
//!   `selfservice`): secret scanners' signed reports and revocation by
//!   whoever holds a key, settled by the keyring; detection reports for the CLI.
//!
//! Keys:
//! * [`keyring`]: the only way in to keys. It verifies presented keys
//!   (validation cache, store, constant-time compare), mints, rotates,
//!   revokes and changes settings for an [`audit::Actor`], recording the
//!   audit event and the metrics inside each change; its chores send expiry
//!   notices from a schedule in the store and retire idle keys.
//! * [`keys`]: key format, checksum, ids and HMAC digests; [`store`]: where
//!   records live (memory, or Redis: standalone, Cluster, Sentinel), held by
//!   the keyring alone; `fleet`: every instance sharing one Redis, the
//!   validation cache's lease and the revocation barrier; [`audit`]: who
//!   changed which keys; `settings`: runtime settings shared through the
//!   store; [`metrics`]: Prometheus counters, one registry per process;
//!   `webhooks`: the events each change emits, signed and delivered once
//!   across the fleet.
//!
//! Around them:
//! * [`config`]: the TOML file, validated with every problem named by its
//!   key (it reads only leaves: `tls`, `tokens`, `header_names`, [`keys`],
//!   and the parsers of `leaks::signature` and `webhooks::{event, sign}`).
//! * [`app`]: wiring a `Config` into running listeners; [`cli`]: the
//!   commands; `signal`, `telemetry`, `fd_limit`: SIGHUP/SIGTERM, logs and
//!   the open-file limit.
//! * [`echo`]: the echo backend of `keygate dev`.
//!
//! Only the modules tests and benches use are public; the rest are `pub(crate)`.

#![forbid(unsafe_code)]

pub(crate) mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub(crate) mod authz;
pub mod cli;
pub mod config;
pub(crate) mod conn;
pub mod echo;
pub(crate) mod fd_limit;
pub(crate) mod fleet;
pub(crate) mod header_names;
pub mod http;
pub mod keyring;
pub mod keys;
pub mod leaks;
pub(crate) mod listener;
pub(crate) mod login;
pub mod metrics;
pub(crate) mod plain_http;
pub(crate) mod random;
pub(crate) mod ratelimit;
pub(crate) mod selfservice;
pub(crate) mod settings;
pub(crate) mod signal;
pub mod store;
pub(crate) mod telemetry;
pub mod tls;
pub(crate) mod tokens;
pub(crate) mod upstream;
pub(crate) mod webhooks;
