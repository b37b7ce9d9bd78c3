//! The TOML file as written: one struct per section, field names exactly as in
//! `config/keygate.example.toml` and `docs/reference.md`, defaults filled in here.
//!
//! Values stay close to their text form (durations as strings, addresses as
//! strings) so that `validate.rs` can report each bad value with its TOML key
//! instead of serde stopping at the first one. Unknown keys are collected by
//! `config::load` (through `serde_ignored`) and reported as errors.

use serde::Deserialize;

/// The sections `config::load` knows. A top-level key that is not one of
/// these is reported as unknown.
pub const SECTIONS: &[&str] = &[
    "listen",
    "upstream",
    "auth",
    "keys",
    "store",
    "cache",
    "admin",
    "rate_limit",
    "limits",
    "login",
    "self_service",
    "log",
    "runtime",
    "leaks",
    "webhooks",
    "authz",
];

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct Listen {
    pub addr: String,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub plaintext: bool,
    /// Peers whose `X-Forwarded-For` is kept and extended; from anyone else it is replaced.
    pub trusted_proxies: Vec<String>,
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            addr: "0.0.0.0:8443".into(),
            tls_cert: Some("/etc/keygate/tls/fullchain.pem".into()),
            tls_key: Some("/etc/keygate/tls/key.pem".into()),
            plaintext: false,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Upstream {
    /// Required: the only key without a default.
    pub url: Option<String>,
    /// Extra CA certificates (PEM) trusted for an `https://` upstream, besides the system roots.
    pub ca_file: Option<String>,
    pub connect_timeout: Option<String>,
    pub response_timeout: Option<String>,
    pub pool_idle_timeout: Option<String>,
    pub pool_max_idle: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct Auth {
    pub username: String,
    pub identity_header: String,
    pub anonymous: String,
    pub realm: String,
    pub basic: bool,
    pub apikey_header: bool,
    pub bearer: bool,
}

impl Default for Auth {
    fn default() -> Self {
        Self {
            username: "apikey".into(),
            identity_header: "X-Remote-User".into(),
            anonymous: "reject".into(),
            realm: "keygate".into(),
            basic: true,
            apikey_header: true,
            bearer: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct Keys {
    pub prefix: String,
    pub default_ttl: String,
    pub max_ttl: String,
    /// Offsets before a key's expiry at which `key.expiring` is sent.
    pub warn_before: Vec<String>,
    /// `POST /.keygate/api/rotate`: a key rotates itself.
    pub self_rotation: bool,
    /// A rotation's grace period when it names none.
    pub rotation_grace: String,
    pub max_rotation_grace: String,
    /// Unset: idle keys are never revoked.
    pub revoke_unused_after: Option<String>,
}

impl Default for Keys {
    fn default() -> Self {
        Self {
            prefix: "kg".into(),
            default_ttl: "30d".into(),
            max_ttl: "365d".into(),
            warn_before: vec!["14d".into(), "3d".into(), "1d".into()],
            self_rotation: false,
            rotation_grace: "24h".into(),
            max_rotation_grace: "7d".into(),
            revoke_unused_after: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct Store {
    pub kind: String,
    pub url: String,
    pub namespace: String,
    pub secret_file: Option<String>,
    pub timeout: String,
    pub ca_file: Option<String>,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            kind: "redis".into(),
            url: "redis://127.0.0.1:6379/0".into(),
            namespace: "keygate".into(),
            secret_file: Some("/etc/keygate/secret".into()),
            timeout: "2s".into(),
            ca_file: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct Cache {
    pub enabled: bool,
    pub capacity: usize,
    pub max_age: String,
    pub lease: String,
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            enabled: true,
            capacity: 100_000,
            max_age: "5m".into(),
            lease: "3s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct Admin {
    pub addr: String,
    pub token_file: String,
    pub plaintext: bool,
    /// PEM CA certificate(s): when set, the admin listener requires client certificates they issued.
    pub client_ca: Option<String>,
    /// OIDC groups whose members are console admins (`[login] method = "oidc"`).
    pub groups: Vec<String>,
    /// People signed in through `[login]` who get the admin console.
    pub users: Vec<String>,
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:9443".into(),
            token_file: "/etc/keygate/admin-token".into(),
            plaintext: false,
            client_ca: None,
            groups: Vec::new(),
            users: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RateLimit {
    pub failed_auth_per_minute: u32,
    pub requests_per_second: u32,
    pub max_tracked_clients: u64,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            failed_auth_per_minute: 30,
            requests_per_second: 0,
            max_tracked_clients: 100_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct Limits {
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub tls_handshake_timeout: String,
    pub header_read_timeout: String,
    pub idle_timeout: String,
    pub send_timeout: String,
    pub h2_max_concurrent_streams: u32,
    pub h2_max_pending_accept_reset_streams: usize,
    pub h2_max_local_error_reset_streams: usize,
    /// Default: `max_header_bytes`.
    pub h2_max_header_list_size: Option<usize>,
    pub h2_max_send_buf_size: usize,
    pub h2_max_control_frames: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 65536,
            max_connections: 10_000,
            tls_handshake_timeout: "10s".into(),
            header_read_timeout: "10s".into(),
            idle_timeout: "75s".into(),
            send_timeout: "60s".into(),
            h2_max_concurrent_streams: 128,
            h2_max_pending_accept_reset_streams: 20,
            h2_max_local_error_reset_streams: 1024,
            h2_max_header_list_size: None,
            h2_max_send_buf_size: 400 * 1024,
            h2_max_control_frames: 1000,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Login {
    pub method: Option<String>,
    pub whoami_url: Option<String>,
    pub user_pointer: Option<String>,
    pub login_url: Option<String>,
    pub header: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub cas_url: Option<String>,
    pub guest_users: Option<Vec<String>>,
    pub public_url: Option<String>,
    pub timeout: Option<String>,
    pub session_ttl: Option<String>,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret_file: Option<String>,
    pub user_claim: Option<String>,
    pub groups_claim: Option<String>,
    pub allowed_groups: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct SelfService {
    pub max_live_keys: usize,
    pub creates_per_hour: u32,
}

impl Default for SelfService {
    fn default() -> Self {
        Self {
            max_live_keys: 10,
            creates_per_hour: 20,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct Log {
    pub format: String,
    pub level: String,
    pub access_log: bool,
    pub file: Option<String>,
    pub buffer_lines: usize,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            format: "human".into(),
            level: "info".into(),
            access_log: true,
            file: None,
            buffer_lines: 128_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct Runtime {
    /// 0 = one worker thread per CPU core.
    pub workers: usize,
    pub shutdown_grace: String,
}

impl Default for Runtime {
    fn default() -> Self {
        Self {
            workers: 0,
            shutdown_grace: "30s".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct Leaks {
    pub github: bool,
    pub gitlab: bool,
    pub action: String,
    pub github_keys_url: String,
    pub gitlab_keys_url: Option<String>,
    pub public_keys_file: Option<String>,
    pub refetch_interval: String,
    pub fetch_timeout: String,
    pub answer_within: String,
    pub max_report_bytes: usize,
    pub possession: bool,
    pub possession_per_minute: u32,
}

impl Default for Leaks {
    fn default() -> Self {
        Self {
            github: false,
            gitlab: false,
            action: "revoke".into(),
            github_keys_url: "https://api.github.com/meta/public_keys/secret_scanning".into(),
            gitlab_keys_url: None,
            public_keys_file: None,
            refetch_interval: "1m".into(),
            fetch_timeout: "10s".into(),
            answer_within: "8s".into(),
            max_report_bytes: 8 * 1024 * 1024,
            possession: true,
            possession_per_minute: 10,
        }
    }
}

/// One `[[webhooks]]` entry.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct Webhook {
    pub url: Option<String>,
    pub secret_file: Option<String>,
    /// Default: every event type.
    pub events: Option<Vec<String>>,
    pub timeout: String,
    pub keep: String,
    pub max_retry_interval: String,
}

impl Default for Webhook {
    fn default() -> Self {
        Self {
            url: None,
            secret_file: None,
            events: None,
            timeout: "15s".into(),
            keep: "24h".into(),
            max_retry_interval: "30m".into(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Authz {
    /// The auth listener's address; none = no auth listener.
    pub addr: Option<String>,
    /// Plain HTTP instead of TLS with the `[listen]` certificate.
    pub plaintext: bool,
    /// Plain HTTP on an address other than loopback (keys cross the network in clear).
    pub plaintext_off_loopback: bool,
    /// The proxies that may ask (their forwarded headers describe the request).
    pub trusted_proxies: Vec<String>,
}
