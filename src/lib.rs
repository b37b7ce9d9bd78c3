//! keygate: a TLS-terminating reverse proxy that gives an existing web
//! application API keys.
//!
//! # Layout
//!
//! A request on the main listener flows through the modules in this order:
//!
//! ```text
//! listener ──► tls ──► http::gateway ──► http::headers (strip spoofables) ──► auth ──► ratelimit ──► upstream
//!                          └─► selfservice (/.keygate/*, never forwarded) ──► login   │
//!                                                                        keys + store (Redis | memory)
//! admin listener:  listener ──► tls ──► admin (bearer token) ──► keyring + store + audit
//! ```
//!
//! * [`listener`]: accept loop, connection cap, TLS handshake deadline, idle
//!   watchdog, graceful drain.
//! * [`tls`]: PEM -> rustls config, swapped on SIGHUP (the last good one stays);
//!   [`plain_http`]: a plain HTTP request on a TLS port gets a 400 saying so.
//! * [`http`]: the gateway pipeline, header rules, keygate's own responses,
//!   the access log; on both listeners, HTTP/2 control-frame floods and a
//!   close the client can read (`http::h2_guard`), and clients that stop
//!   taking responses (`http::send_stall`).
//! * [`auth`]: finding the API credential and checking it (fail closed).
//! * [`ratelimit`]: failed authentications per client, requests per key.
//! * [`upstream`]: the keep-alive pool to the backend, timeouts, WebSocket tunnels.
//! * [`keys`]: key format, checksum and HMAC digests; [`store`]: where records
//!   live (memory, or Redis: standalone, Cluster, Sentinel); [`keyring`]:
//!   minting and TTL rules over the store.
//! * [`admin`]: the admin API; [`audit`]: who changed which keys.
//! * [`selfservice`]: `/.keygate/*`, the page where signed-in users make and
//!   revoke their own keys, and its JSON API; [`login`]: who is signed in
//!   (`[login] method`), also read by the gateway for `trusted_header`.
//! * [`config`]: the TOML file, validated with every problem named by its key.
//! * [`app`]: wiring a `Config` into running listeners; [`cli`]: the commands.
//! * [`echo`]: the echo backend of `keygate dev`.

#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod conn;
pub mod echo;
pub mod fleet;
pub mod header_names;
pub mod http;
pub mod keyring;
pub mod keys;
pub mod listener;
pub mod login;
pub mod metrics;
pub mod plain_http;
pub mod ratelimit;
pub mod selfservice;
pub mod settings;
pub mod signal;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod tokens;
pub mod upstream;
