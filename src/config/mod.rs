//! Configuration: the TOML file (`raw`), checked and turned into runtime
//! types (`validate`), with every problem collected and named by its TOML key.
//!
//! `load` never stops at the first problem: `keygate check` prints them all,
//! the way oauth2-proxy does, so an operator fixes a file in one round.

mod advice;
mod env;
mod log_filter;
mod raw;
mod redact;
mod suggest;
mod type_words;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::de::DeserializeOwned;

pub use advice::warnings;
pub use log_filter::silences_keygate;
pub use raw::SECTIONS;
pub use redact::{redacted_url, shown_upstream};
pub use validate::login::is_loopback;
pub use validate::{parse_duration, upstream_url, WHOLE_SECONDS};

/// A validated configuration: every value typed, every file that must exist checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Listen,
    pub upstream: Upstream,
    pub auth: Auth,
    pub keys: Keys,
    pub store: Store,
    pub cache: Cache,
    pub admin: Admin,
    pub rate_limit: RateLimit,
    pub limits: Limits,
    pub login: Option<Login>,
    pub self_service: SelfService,
    pub log: Log,
    pub runtime: Runtime,
    pub leaks: Leaks,
    pub webhooks: Vec<Webhook>,
    /// `[authz]`: the auth listener for proxies that ask (`None`: off).
    pub authz: Option<Authz>,
}

#[derive(Debug, Clone)]
pub struct Listen {
    pub addr: SocketAddr,
    /// `None` only with `plaintext = true` (behind a TLS-terminating load balancer).
    pub tls: Option<TlsFiles>,
    pub trusted_proxies: Vec<IpNet>,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub url: http::Uri,
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// Time from sending the request to receiving the response headers (504 after it).
    pub response_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anonymous {
    Reject,
    Passthrough,
}

#[derive(Debug, Clone)]
pub struct Auth {
    pub username: String,
    pub identity_header: http::HeaderName,
    pub anonymous: Anonymous,
    pub realm: String,
    pub accept: Accept,
}

/// Which credential forms are accepted (`[auth] basic`, `apikey_header`, `bearer`).
#[derive(Debug, Clone, Copy)]
pub struct Accept {
    pub basic: bool,
    pub apikey_header: bool,
    pub bearer: bool,
}

#[derive(Debug, Clone)]
pub struct Keys {
    pub prefix: String,
    pub default_ttl: Duration,
    /// `None` = "never": keys without expiry are allowed.
    pub max_ttl: Option<Duration>,
    pub lifecycle: Lifecycle,
}

/// `[keys]` on rotation, expiry notices and idle keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    /// `warn_before`, longest first: `key.expiring` at each, and the first
    /// is the window of the `KeyGate-Key-Expires` header. Empty: no notices.
    pub warn_before: Vec<Duration>,
    pub self_rotation: bool,
    /// A rotation's grace period when it names none (at most `max_rotation_grace`).
    pub rotation_grace: Duration,
    pub max_rotation_grace: Duration,
    /// Keys unused this long are revoked; `None`: never.
    pub revoke_unused_after: Option<Duration>,
}

#[derive(Debug, Clone)]
pub enum Store {
    Memory,
    Redis {
        /// May hold a password: never logged.
        url: String,
        namespace: String,
        /// The HMAC secret, read from `secret_file` or `KEYGATE_SECRET` at load.
        secret: crate::keys::DigestKey,
        /// Bound on every store call and on connecting.
        timeout: Duration,
        /// Extra CA (PEM) for `rediss` connections, besides the system roots.
        ca_file: Option<PathBuf>,
    },
}

// === impl Store ===

impl Store {
    /// Which store, for a message that must say where keygate looked:
    /// `store.url = "redis://app:***@redis:6379/0"` (never the password).
    pub fn shown(&self) -> String {
        match self {
            Store::Memory => "store.kind = \"memory\"".into(),
            Store::Redis { url, .. } => format!("store.url = {:?}", redacted_url(url)),
        }
    }
}

/// The validation cache and its fleet lease (used with the Redis store only).
#[derive(Debug, Clone)]
pub struct Cache {
    pub enabled: bool,
    pub capacity: usize,
    /// No entry is served longer than this after it was read from the store.
    pub max_age: Duration,
    /// How long a cache may be served without a confirmed link to the fleet,
    /// and so the longest a revocation waits for a silent instance.
    pub lease: Duration,
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub addr: SocketAddr,
    /// Checked at load: readable, at least one token.
    pub token_file: PathBuf,
    /// Plain HTTP on the admin listener (also when the main listener is plaintext: no certificate).
    pub plaintext: bool,
    /// When set, the admin listener requires a client certificate issued by a CA in this PEM file.
    pub client_ca: Option<PathBuf>,
    /// `[admin] groups`: members of these OIDC groups are console admins.
    pub groups: Vec<String>,
    /// `[admin] users`: these signed-in users are console admins.
    pub users: Vec<String>,
}

// === impl Admin ===

impl Admin {
    /// Whether one of a signed-in person's groups (`login::Person::groups`,
    /// from the OpenID provider) makes them a console admin.
    pub fn by_group(&self, groups: &[String]) -> bool {
        groups.iter().any(|g| self.groups.contains(g))
    }

    /// Whether a signed-in person (their user name, and their groups among
    /// `[admin] groups`) gets the admin console: the one admin check.
    pub fn is_admin(&self, user: &str, groups: &[String]) -> bool {
        self.users.iter().any(|u| u == user) || self.by_group(groups)
    }
}

#[derive(Debug, Clone)]
pub struct RateLimit {
    pub failed_auth_per_minute: u32,
    pub requests_per_second: u32,
    /// Client addresses each per-address limit remembers at most.
    pub max_tracked_clients: usize,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub tls_handshake_timeout: Duration,
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and no bytes moving for this long is closed.
    pub idle_timeout: Duration,
    /// A connection whose client has not taken a response's next bytes for this long is closed.
    pub send_timeout: Duration,
    pub h2: Http2Limits,
}

/// hyper's HTTP/2 server limits and keygate's control-frame allowance
/// (`[limits] h2_*`), each set explicitly rather than left to hyper's defaults.
#[derive(Debug, Clone)]
pub struct Http2Limits {
    pub max_concurrent_streams: u32,
    /// Streams the client resets before keygate accepted them (rapid reset): GOAWAY beyond it.
    pub max_pending_accept_reset_streams: usize,
    /// Streams keygate resets for the client's errors (refused streams...): GOAWAY beyond it.
    pub max_local_error_reset_streams: usize,
    pub max_header_list_size: u32,
    /// Bytes buffered per stream for a client that reads slowly.
    pub max_send_buf_size: usize,
    /// PING, SETTINGS, PRIORITY, WINDOW_UPDATE and RST_STREAM frames allowed
    /// beyond what the traffic explains (`conn::h2_guard`).
    pub max_control_frames: u32,
}

/// `[authz]`: the external-auth listener (nginx `auth_request`, Caddy
/// `forward_auth`, Traefik ForwardAuth, Envoy ext_authz).
#[derive(Debug, Clone)]
pub struct Authz {
    pub addr: SocketAddr,
    /// TLS with the `[listen]` certificate; `false` = plain HTTP.
    pub tls: bool,
    /// The proxies that may ask; every other peer is refused (403).
    pub trusted_proxies: Vec<IpNet>,
}

/// `[login]`: who is signed in on the self-service page.
#[derive(Debug, Clone)]
pub struct Login {
    pub method: LoginMethod,
    /// The gateway's external origin (`https://host[:port]`, no trailing `/`):
    /// the CAS service URL is built on it and API calls must come from it.
    /// `None`: the request's own `Host` is the origin (not for `cas`).
    pub public_url: Option<String>,
    /// Bound on each call to the who-am-I URL, the CAS server or the OpenID provider.
    pub timeout: Duration,
    /// Lifetime of keygate's own session cookie (`cas`, `oidc`).
    pub session_ttl: Duration,
}

#[derive(Debug, Clone)]
pub enum LoginMethod {
    BackendSession {
        whoami_url: http::Uri,
        user_pointer: String,
        login_url: String,
        /// Users the app names for a browser that is not signed in (LabKey: "guest").
        guest_users: Vec<String>,
    },
    TrustedHeader {
        header: http::HeaderName,
        trusted_proxies: Vec<IpNet>,
    },
    Cas {
        /// Without a trailing `/`, e.g. `https://cas.example.org/cas`.
        cas_url: String,
    },
    Oidc(OidcClient),
    /// `keygate dev` only (no TOML spelling): everyone is this user.
    Dev {
        user: String,
    },
}

/// `method = "oidc"`: keygate as an OpenID Connect client (relying party).
#[derive(Debug, Clone)]
pub struct OidcClient {
    /// Exactly as the provider names itself (`iss`); discovery is at
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// From `client_secret_file` or `KEYGATE_OIDC_CLIENT_SECRET`.
    pub client_secret: ClientSecret,
    /// The claim that names the user (`email`, `preferred_username`, `sub`...).
    pub user_claim: String,
    /// The claim that lists the user's groups (a JSON array of strings).
    pub groups_claim: String,
    /// When not empty, only members of one of these groups may sign in.
    pub allowed_groups: Vec<String>,
    /// Asked for in the authorization request; always holds `openid`.
    pub scopes: Vec<String>,
}

/// A secret that never shows in `Debug` (configs are printed in tests and logs).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(pub String);

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(***)")
    }
}

/// `[self_service]`: per-user limits on the self-service API.
#[derive(Debug, Clone)]
pub struct SelfService {
    /// Live keys a user may hold; creating one more is refused (409).
    pub max_live_keys: usize,
    /// Keys a user may create in an hour from the first, counted in the
    /// store so every instance shares it (429 beyond it).
    pub creates_per_hour: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone)]
pub struct Log {
    pub format: LogFormat,
    pub level: String,
    pub access_log: bool,
    /// `None`: stderr. Reopened on SIGHUP.
    pub file: Option<PathBuf>,
    /// Lines that may wait for the writer thread; beyond, lines are dropped (and counted).
    pub buffer_lines: usize,
}

#[derive(Debug, Clone)]
pub struct Runtime {
    /// 0 = one per CPU core; 1 = a single-threaded runtime.
    pub workers: usize,
    pub shutdown_grace: Duration,
}

/// `[leaks]`: secret-scanning report intakes and revocation by possession.
#[derive(Debug, Clone)]
pub struct Leaks {
    /// `POST /.keygate/leaks/github`, when on.
    pub github: Option<KeysFrom>,
    /// `POST /.keygate/leaks/gitlab`, when on.
    pub gitlab: Option<KeysFrom>,
    pub action: LeakAction,
    /// Shortest time between two reads of a scanner's key list.
    pub refetch_interval: Duration,
    /// Bound on reading a scanner's key list from its URL.
    pub fetch_timeout: Duration,
    /// A report whose revocations take longer is answered 503 (they go on).
    pub answer_within: Duration,
    pub max_report_bytes: usize,
    /// `POST /.keygate/revoke`, when on.
    pub possession: bool,
    /// Per client address; 0 = unlimited.
    pub possession_per_minute: u32,
}

impl Leaks {
    /// The deadline for a whole request body keygate reads itself: a
    /// report's, `/.keygate/revoke`'s, and its APIs' JSON (then 408).
    pub fn body_within(&self) -> Duration {
        self.answer_within / 2
    }
}

/// Where a secret scanner's public keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysFrom {
    Url(http::Uri),
    File(PathBuf),
}

/// What a valid report does to the live keys in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakAction {
    Revoke,
    /// Only the audit log and `key.leaked` webhooks.
    Notify,
}

/// One `[[webhooks]]` entry.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: http::Uri,
    /// Read from `secret_file` at load.
    pub secret: crate::webhooks::Secret,
    pub events: Vec<crate::webhooks::EventType>,
    /// Bound on one delivery attempt.
    pub timeout: Duration,
    /// How long an undelivered event is kept (and retried).
    pub keep: Duration,
    /// Longest pause between two attempts.
    pub max_retry_interval: Duration,
}

/// One thing wrong with a configuration file, named by its TOML key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

impl ConfigProblem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found in one file; never empty.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration ({} problem", self.0.len())?;
        if self.0.len() != 1 {
            f.write_str("s")?;
        }
        f.write_str(")")?;
        for p in &self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Read, parse and validate the file at `path`. Relative paths in it
/// (`listen.tls_cert`, `store.secret_file`, ...) name files in the folder
/// that holds it, as nginx's `include` does, whatever the current directory.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigProblem::new(
            path.display().to_string(),
            format!("cannot read the configuration file: {e}"),
        )])
    })?;
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // Absolute, so messages and SIGHUP reloads name the file unambiguously.
    let folder = std::path::absolute(folder).unwrap_or_else(|_| folder.to_owned());
    parse_in(&text, Some(&folder))
}

/// Parse and validate configuration text (relative paths are taken as given:
/// from the current directory).
pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
    parse_in(text, None)
}

/// Parse and validate, relative paths resolved against `folder` when given.
fn parse_in(text: &str, folder: Option<&Path>) -> Result<Config, ConfigErrors> {
    let root: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let at = e
            .span()
            .map(|s| {
                let line = text[..s.start].matches('\n').count() + 1;
                format!(" (line {line})")
            })
            .unwrap_or_default();
        ConfigErrors(vec![ConfigProblem::new(
            "toml",
            format!("{}{at}", e.message().trim_end()),
        )])
    })?;

    let mut problems = Vec::new();
    for (name, value) in &root {
        if !raw::SECTIONS.contains(&name.as_str()) {
            let hint = suggest::did_you_mean(name, raw::SECTIONS, |s| format!("[{s}]"));
            problems.push(ConfigProblem::new(
                name.as_str(),
                format!("unknown section{hint}"),
            ));
        } else if name == "webhooks" {
            if !value
                .as_array()
                .is_some_and(|a| a.iter().all(toml::Value::is_table))
            {
                problems.push(ConfigProblem::new(
                    name.as_str(),
                    "must be an array of tables ([[webhooks]] entries)",
                ));
            }
        } else if !value.is_table() {
            problems.push(ConfigProblem::new(
                name.as_str(),
                "must be a table ([section])",
            ));
        }
    }

    let raw = validate::Raw {
        listen: section(&root, "listen", &mut problems),
        upstream: section(&root, "upstream", &mut problems),
        auth: section(&root, "auth", &mut problems),
        keys: section(&root, "keys", &mut problems),
        store: section(&root, "store", &mut problems),
        cache: section(&root, "cache", &mut problems),
        admin: section(&root, "admin", &mut problems),
        rate_limit: section(&root, "rate_limit", &mut problems),
        limits: section(&root, "limits", &mut problems),
        login: root
            .get("login")
            .map(|_| section(&root, "login", &mut problems)),
        self_service: section(&root, "self_service", &mut problems),
        log: section(&root, "log", &mut problems),
        runtime: section(&root, "runtime", &mut problems),
        leaks: section(&root, "leaks", &mut problems),
        webhooks: entries(&root, "webhooks", &mut problems),
        authz: root
            .get("authz")
            .map(|_| section(&root, "authz", &mut problems)),
    };
    // A value of the wrong type stands in as its default, which validation
    // may then fault ("cannot read /etc/keygate/secret" for a
    // `secret_file = 5`, "required" for a `url = 5`): a key already named
    // for its type is named once.
    let named: Vec<String> = problems.iter().map(|p| p.key.clone()).collect();
    let mut validation = Vec::new();
    let config = validate::build(raw, folder, &mut validation);
    problems.extend(validation.into_iter().filter(|p| !named.contains(&p.key)));
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => Err(ConfigErrors(problems)),
    }
}

/// Each entry of an array of tables (`[[name]]`), as `section` reads one
/// table, its problems named `name[i].key`.
fn entries<T: DeserializeOwned + Default>(
    root: &toml::Table,
    name: &str,
    problems: &mut Vec<ConfigProblem>,
) -> Vec<T> {
    let Some(toml::Value::Array(list)) = root.get(name) else {
        return Vec::new();
    };
    list.iter()
        .enumerate()
        .filter(|(_, v)| v.is_table())
        .map(|(i, value)| table(value, &format!("{name}[{i}]"), problems))
        .collect()
}

/// Deserialize one section, recording every unknown key and every bad value
/// as problems; a bad value's default stands in for it (`table`).
fn section<T: DeserializeOwned + Default>(
    root: &toml::Table,
    name: &str,
    problems: &mut Vec<ConfigProblem>,
) -> T {
    match root.get(name) {
        Some(value @ toml::Value::Table(_)) => table(value, name, problems),
        _ => T::default(),
    }
}

/// `section` for one table, its problems named `name.key`. serde stops at
/// the first bad value: that key is recorded, taken out and the table read
/// again, so the section's other values are still read and checked rather
/// than all thrown back to their defaults.
fn table<T: DeserializeOwned + Default>(
    value: &toml::Value,
    name: &str,
    problems: &mut Vec<ConfigProblem>,
) -> T {
    let mut value = value.clone();
    let mut unknown: Vec<String> = Vec::new();
    let mut bad = Vec::new();
    let parsed = loop {
        let mut record = |path: serde_ignored::Path| {
            let key = path.to_string();
            if !unknown.contains(&key) {
                unknown.push(key);
            }
        };
        let de = serde_ignored::Deserializer::new(value.clone(), &mut record);
        match serde_path_to_error::deserialize::<_, T>(de) {
            Ok(v) => break v,
            Err(e) => {
                let path = e.path().to_string();
                let key = if path == "." {
                    name.to_string()
                } else {
                    format!("{name}.{path}")
                };
                bad.push(ConfigProblem::new(
                    key,
                    type_words::in_words(e.inner().message()),
                ));
                if !remove_top_key(&mut value, e.path()) {
                    break T::default();
                }
            }
        }
    };
    for key in unknown {
        let mut hint = suggest::did_you_mean(&key, suggest::fields::<T>(), str::to_owned);
        if hint.is_empty() {
            hint = in_other_sections(&key, name);
        }
        problems.push(ConfigProblem::new(
            format!("{name}.{key}"),
            format!("unknown key{hint}"),
        ));
    }
    problems.extend(bad);
    parsed
}

/// For a key no nearer name in its own section explains: the sections
/// that have it, as when a key was written under the wrong `[section]`
/// line (`level` under `[store]`).
fn in_other_sections(key: &str, section: &str) -> String {
    let section = section.split('[').next().unwrap_or(section);
    let homes: Vec<String> = section_fields()
        .iter()
        .filter(|(name, fields)| *name != section && fields.contains(&key))
        .map(|(name, _)| format!("{name}.{key}"))
        .collect();
    if homes.is_empty() {
        return String::new();
    }
    format!(
        "; did you mean {}? (a key belongs to the [section] line above it)",
        homes.join(" or ")
    )
}

/// Each section of `raw::SECTIONS` with the keys it takes.
fn section_fields() -> [(&'static str, &'static [&'static str]); 16] {
    [
        ("listen", suggest::fields::<raw::Listen>()),
        ("upstream", suggest::fields::<raw::Upstream>()),
        ("auth", suggest::fields::<raw::Auth>()),
        ("keys", suggest::fields::<raw::Keys>()),
        ("store", suggest::fields::<raw::Store>()),
        ("cache", suggest::fields::<raw::Cache>()),
        ("admin", suggest::fields::<raw::Admin>()),
        ("rate_limit", suggest::fields::<raw::RateLimit>()),
        ("limits", suggest::fields::<raw::Limits>()),
        ("login", suggest::fields::<raw::Login>()),
        ("self_service", suggest::fields::<raw::SelfService>()),
        ("log", suggest::fields::<raw::Log>()),
        ("runtime", suggest::fields::<raw::Runtime>()),
        ("leaks", suggest::fields::<raw::Leaks>()),
        ("webhooks", suggest::fields::<raw::Webhook>()),
        ("authz", suggest::fields::<raw::Authz>()),
    ]
}

/// Take the key of the table that `path` starts at out of it; false when
/// there is none to take (the error is about the table itself).
fn remove_top_key(table: &mut toml::Value, path: &serde_path_to_error::Path) -> bool {
    let Some(serde_path_to_error::Segment::Map { key }) = path.iter().next() else {
        return false;
    };
    table
        .as_table_mut()
        .is_some_and(|t| t.remove(key.as_str()).is_some())
}

#[cfg(test)]
mod tests {
    /// Every section is searched for a key written under the wrong one.
    #[test]
    fn every_section_is_searched_for_a_misplaced_key() {
        let names: Vec<&str> = super::section_fields().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, super::raw::SECTIONS);
    }
}
