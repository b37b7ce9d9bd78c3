//! keygate's integration tests: one binary (see STYLE.md), real TLS, real
//! upstream servers, real clients, everything on 127.0.0.1.

mod support;

mod admin;
mod admin_console;
mod admin_input;
mod admin_listing;
mod auth;
mod authz;
mod clients;
mod config_check;
mod dashboard;
mod dev;
mod fd_limit;
mod fleet;
mod h2_abuse;
mod hostile_upstream;
mod init;
mod keys_cli;
mod kubernetes;
mod leaks;
mod lifecycle;
mod limits;
mod log_file;
mod memory_bounds;
mod operator;
mod properties;
mod proxy;
mod redis_acl;
mod redis_deployments;
mod redis_restart;
mod redis_slow;
mod reference;
mod rotation;
mod secrets;
mod selfservice;
mod sso;
mod store_conformance;
mod tls_audit;
mod tunnels;
mod user_names;
