//! Raw TOML values -> typed `Config`, pushing one `ConfigProblem` per bad
//! value (named by its TOML key) instead of stopping at the first.
//!
//! Messages may quote a value the operator wrote (an address, a duration) but
//! never the content of a file: secrets live in files.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::raw;
use super::*;

/// The file as parsed, section by section.
pub struct Raw {
    pub listen: raw::Listen,
    pub upstream: raw::Upstream,
    pub auth: raw::Auth,
    pub keys: raw::Keys,
    pub store: raw::Store,
    pub cache: raw::Cache,
    pub admin: raw::Admin,
    pub rate_limit: raw::RateLimit,
    pub limits: raw::Limits,
    pub login: Option<raw::Login>,
    pub self_service: raw::SelfService,
    pub log: raw::Log,
    pub runtime: raw::Runtime,
}

/// Shortest HMAC secret accepted, in characters (SPEC: >= 32).
const MIN_SECRET_LEN: usize = 32;

/// Builds the runtime config; `None` when a value needed to build it is bad
/// (the problem is already recorded).
pub fn build(raw: Raw, problems: &mut Vec<ConfigProblem>) -> Option<Config> {
    let mut p = Problems(problems);
    let listen = listen(raw.listen, &mut p);
    let upstream = upstream(raw.upstream, &mut p);
    let auth = auth(raw.auth, &mut p);
    let keys = keys(raw.keys, &mut p);
    let store = store(raw.store, &mut p);
    let cache = cache(raw.cache, &mut p);
    let admin_addr = p.socket_addr("admin.addr", &raw.admin.addr);
    let token_file = match crate::admin::tokens::read(std::path::Path::new(&raw.admin.token_file)) {
        Ok(_) => Some(PathBuf::from(&raw.admin.token_file)),
        Err(e) => {
            p.push("admin.token_file", e);
            None
        }
    };
    let limits = limits(raw.limits, &mut p);
    let login = raw.login.map(|l| login(l, &mut p));
    let self_service = self_service(raw.self_service, &mut p);
    let log = log(raw.log, &mut p);
    let runtime = runtime(raw.runtime, &mut p);
    Some(Config {
        listen: listen?,
        upstream: upstream?,
        auth: auth?,
        keys: keys?,
        store: store?,
        cache: cache?,
        admin: Admin {
            addr: admin_addr?,
            token_file: token_file?,
            plaintext: raw.admin.plaintext,
        },
        rate_limit: RateLimit {
            failed_auth_per_minute: raw.rate_limit.failed_auth_per_minute,
            requests_per_second: raw.rate_limit.requests_per_second,
        },
        limits: limits?,
        login: login.map(|l| l.ok_or(())).transpose().ok()?,
        self_service: self_service?,
        log: log?,
        runtime: runtime?,
    })
}

/// Parse a humantime duration ("30s", "30d", "1h 30m").
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration {text:?} ({e}); use e.g. \"30s\", \"15m\", \"30d\""))
}

struct Problems<'a>(&'a mut Vec<ConfigProblem>);

impl Problems<'_> {
    fn push(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(ConfigProblem::new(key, message));
    }

    fn socket_addr(&mut self, key: &str, text: &str) -> Option<SocketAddr> {
        match text.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.push(
                    key,
                    format!("invalid socket address {text:?}; expected IP:PORT such as \"0.0.0.0:8443\" or \"[::1]:8443\""),
                );
                None
            }
        }
    }

    /// A positive duration.
    fn duration(&mut self, key: &str, text: &str) -> Option<Duration> {
        match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                self.push(key, "must be greater than zero");
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.push(key, e);
                None
            }
        }
    }

    /// A file that must exist and be readable now.
    fn readable_file(&mut self, key: &str, path: &str) -> Option<PathBuf> {
        match std::fs::File::open(path) {
            Ok(_) => Some(PathBuf::from(path)),
            Err(e) => {
                self.push(key, format!("cannot read {path}: {e}"));
                None
            }
        }
    }

    fn cidrs(&mut self, key: &str, list: &[String]) -> Option<Vec<IpNet>> {
        let mut out = Vec::with_capacity(list.len());
        let mut ok = true;
        for (i, text) in list.iter().enumerate() {
            match parse_cidr(text) {
                Some(net) => out.push(net),
                None => {
                    ok = false;
                    self.push(
                        &format!("{key}[{i}]"),
                        format!("invalid address or CIDR {text:?}; expected e.g. \"10.0.0.0/8\" or \"127.0.0.1\""),
                    );
                }
            }
        }
        ok.then_some(out)
    }

    fn header_name(&mut self, key: &str, text: &str) -> Option<http::HeaderName> {
        match http::HeaderName::from_bytes(text.as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                self.push(key, format!("{text:?} is not a valid HTTP header name"));
                None
            }
        }
    }
}

fn parse_cidr(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))
}

fn listen(raw: raw::Listen, p: &mut Problems) -> Option<Listen> {
    let addr = p.socket_addr("listen.addr", &raw.addr);
    let trusted_proxies = p.cidrs("listen.trusted_proxies", &raw.trusted_proxies);
    let tls = if raw.plaintext {
        None
    } else {
        let cert = match raw.tls_cert.as_deref() {
            Some(c) => p.readable_file("listen.tls_cert", c),
            None => {
                p.push("listen.tls_cert", "required unless plaintext = true");
                None
            }
        };
        let key = match raw.tls_key.as_deref() {
            Some(k) => p.readable_file("listen.tls_key", k),
            None => {
                p.push("listen.tls_key", "required unless plaintext = true");
                None
            }
        };
        let (cert, key) = (cert?, key?);
        if let Err(e) = crate::tls::server_config(&cert, &key) {
            p.push(e.config_key(), e.to_string());
            return None;
        }
        Some(TlsFiles { cert, key })
    };
    Some(Listen {
        addr: addr?,
        tls,
        trusted_proxies: trusted_proxies?,
    })
}

fn upstream(raw: raw::Upstream, p: &mut Problems) -> Option<Upstream> {
    let url = match raw.url.as_deref() {
        None => {
            p.push(
                "upstream.url",
                "required: the backend to forward to, e.g. \"http://127.0.0.1:8080\"",
            );
            None
        }
        Some(text) => upstream_url(text, p),
    };
    let ca_file = match raw.ca_file.as_deref() {
        Some(path) => {
            let file = p.readable_file("upstream.ca_file", path)?;
            if let Err(e) = crate::upstream::load_ca_file(&file) {
                p.push("upstream.ca_file", e);
                return None;
            }
            Some(file)
        }
        None => None,
    };
    let connect_timeout = p.duration(
        "upstream.connect_timeout",
        raw.connect_timeout.as_deref().unwrap_or("5s"),
    );
    let response_timeout = p.duration(
        "upstream.response_timeout",
        raw.response_timeout.as_deref().unwrap_or("60s"),
    );
    let pool_idle_timeout = p.duration(
        "upstream.pool_idle_timeout",
        raw.pool_idle_timeout.as_deref().unwrap_or("90s"),
    );
    Some(Upstream {
        url: url?,
        ca_file,
        connect_timeout: connect_timeout?,
        response_timeout: response_timeout?,
        pool_idle_timeout: pool_idle_timeout?,
        pool_max_idle: raw.pool_max_idle.unwrap_or(256),
    })
}

fn upstream_url(text: &str, p: &mut Problems) -> Option<http::Uri> {
    const KEY: &str = "upstream.url";
    let Ok(uri) = text.parse::<http::Uri>() else {
        p.push(KEY, format!("invalid URL {text:?}"));
        return None;
    };
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            p.push(KEY, format!("{text:?} must start with http:// or https://"));
            return None;
        }
    }
    if uri.authority().is_none() {
        p.push(KEY, format!("{text:?} has no host"));
        return None;
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        p.push(
            KEY,
            format!("{text:?} has a path or query; keygate forwards each request path unchanged, so give only scheme://host:port"),
        );
        return None;
    }
    Some(uri)
}

fn auth(raw: raw::Auth, p: &mut Problems) -> Option<Auth> {
    let mut ok = true;
    if raw.username.is_empty() || raw.username.contains(':') {
        p.push(
            "auth.username",
            "must be non-empty and must not contain ':'",
        );
        ok = false;
    }
    let identity_header = p.header_name("auth.identity_header", &raw.identity_header);
    if let Some(h) = &identity_header {
        if crate::http::headers::is_reserved(h) {
            p.push(
                "auth.identity_header",
                format!(
                    "{h} is a header keygate manages itself; choose another, e.g. X-Remote-User"
                ),
            );
            ok = false;
        }
    }
    let anonymous = match raw.anonymous.as_str() {
        "reject" => Some(Anonymous::Reject),
        "passthrough" => Some(Anonymous::Passthrough),
        other => {
            p.push(
                "auth.anonymous",
                format!("{other:?} is not one of \"reject\", \"passthrough\""),
            );
            None
        }
    };
    if raw.realm.contains('"') || raw.realm.chars().any(|c| c.is_control()) {
        p.push(
            "auth.realm",
            "must not contain quotes or control characters",
        );
        ok = false;
    }
    if !(raw.basic || raw.apikey_header || raw.bearer) {
        p.push(
            "auth.basic",
            "at least one of auth.basic, auth.apikey_header, auth.bearer must be true",
        );
        ok = false;
    }
    let auth = Auth {
        username: raw.username,
        identity_header: identity_header?,
        anonymous: anonymous?,
        realm: raw.realm,
        accept: crate::auth::Accept {
            basic: raw.basic,
            apikey_header: raw.apikey_header,
            bearer: raw.bearer,
        },
    };
    ok.then_some(auth)
}

fn keys(raw: raw::Keys, p: &mut Problems) -> Option<Keys> {
    let prefix_ok = !raw.prefix.is_empty()
        && raw.prefix.len() <= 16
        && raw.prefix.bytes().all(|b| b.is_ascii_alphanumeric());
    if !prefix_ok {
        p.push("keys.prefix", "must be 1 to 16 ASCII letters or digits");
    }
    let default_ttl = p.duration("keys.default_ttl", &raw.default_ttl);
    let max_ttl = if raw.max_ttl.trim() == "never" {
        Some(None)
    } else {
        p.duration("keys.max_ttl", &raw.max_ttl).map(Some)
    };
    let (default_ttl, max_ttl) = (default_ttl?, max_ttl?);
    if let Some(max) = max_ttl {
        if default_ttl > max {
            p.push(
                "keys.default_ttl",
                format!(
                    "{} is longer than keys.max_ttl ({})",
                    raw.default_ttl, raw.max_ttl
                ),
            );
            return None;
        }
    }
    prefix_ok.then_some(Keys {
        prefix: raw.prefix,
        default_ttl,
        max_ttl,
    })
}

fn store(raw: raw::Store, p: &mut Problems) -> Option<Store> {
    match raw.kind.as_str() {
        "memory" => Some(Store::Memory),
        "redis" => {
            // The URL may hold a password: the message names the key, not the value.
            let target = crate::store::parse_redis_url(&raw.url);
            let scheme_ok = match &target {
                Ok(_) => true,
                Err(message) => {
                    p.push("store.url", message);
                    false
                }
            };
            let ca_file = match raw.ca_file.as_deref() {
                Some(_) if target.as_ref().is_ok_and(|t| !t.is_tls()) => {
                    p.push(
                        "store.ca_file",
                        "applies to TLS connections only, and store.url is not a rediss URL",
                    );
                    None
                }
                Some(path) => {
                    let file = p.readable_file("store.ca_file", path);
                    if let Some(Err(e)) = file.as_deref().map(crate::upstream::load_ca_file) {
                        p.push("store.ca_file", e);
                    }
                    file
                }
                None => None,
            };
            let ns_ok = !raw.namespace.is_empty()
                && raw
                    .namespace
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !ns_ok {
                p.push(
                    "store.namespace",
                    "must be non-empty ASCII letters, digits, '-', '_' or '.'",
                );
            }
            let timeout = p.duration("store.timeout", &raw.timeout);
            let secret = match (super::env::secret(), raw.secret_file) {
                (Some(from_env), _) => check_secret("KEYGATE_SECRET", from_env, p),
                (None, Some(path)) => match std::fs::read_to_string(&path) {
                    Ok(text) => check_secret(&path, text, p),
                    Err(e) => {
                        p.push("store.secret_file", format!("cannot read {path}: {e}"));
                        None
                    }
                },
                (None, None) => {
                    p.push(
                        "store.secret_file",
                        "required for kind = \"redis\" (or set KEYGATE_SECRET)",
                    );
                    None
                }
            };
            let (secret, timeout) = (secret?, timeout?);
            (scheme_ok && ns_ok).then_some(Store::Redis {
                url: raw.url,
                namespace: raw.namespace,
                secret,
                timeout,
                ca_file,
            })
        }
        other => {
            p.push(
                "store.kind",
                format!("{other:?} is not one of \"redis\", \"memory\""),
            );
            None
        }
    }
}

/// Shortest and longest `cache.lease`: pings go out every third of it.
const LEASE_RANGE: (Duration, Duration) = (Duration::from_millis(300), Duration::from_secs(60));

fn cache(raw: raw::Cache, p: &mut Problems) -> Option<Cache> {
    if raw.capacity == 0 {
        p.push(
            "cache.capacity",
            "must be at least 1 (turn the cache off with enabled = false)",
        );
    }
    let max_age = p.duration("cache.max_age", &raw.max_age);
    let lease = p.duration("cache.lease", &raw.lease);
    if let Some(l) = lease {
        if l < LEASE_RANGE.0 || l > LEASE_RANGE.1 {
            p.push("cache.lease", "must be between 300ms and 60s");
        }
    }
    (raw.capacity > 0).then_some(Cache {
        enabled: raw.enabled,
        capacity: raw.capacity,
        max_age: max_age?,
        lease: lease?,
    })
}

/// The HMAC secret, trimmed, long enough. Its content is never quoted.
fn check_secret(source: &str, text: String, p: &mut Problems) -> Option<crate::keys::DigestKey> {
    let secret = text.trim();
    if secret.chars().count() < MIN_SECRET_LEN {
        p.push(
            "store.secret_file",
            format!("{source} holds fewer than {MIN_SECRET_LEN} characters; make one with `openssl rand -hex 32`"),
        );
        return None;
    }
    Some(crate::keys::DigestKey::new(secret.as_bytes()))
}

fn limits(raw: raw::Limits, p: &mut Problems) -> Option<Limits> {
    let mut ok = true;
    if !(1024..=16 * 1024 * 1024).contains(&raw.max_header_bytes) {
        p.push(
            "limits.max_header_bytes",
            format!("{} is outside 1024..=16777216", raw.max_header_bytes),
        );
        ok = false;
    }
    if raw.max_connections == 0 {
        p.push("limits.max_connections", "must be at least 1");
        ok = false;
    }
    let tls_handshake_timeout =
        p.duration("limits.tls_handshake_timeout", &raw.tls_handshake_timeout);
    let header_read_timeout = p.duration("limits.header_read_timeout", &raw.header_read_timeout);
    let idle_timeout = p.duration("limits.idle_timeout", &raw.idle_timeout);
    let limits = Limits {
        max_header_bytes: raw.max_header_bytes,
        max_connections: raw.max_connections,
        tls_handshake_timeout: tls_handshake_timeout?,
        header_read_timeout: header_read_timeout?,
        idle_timeout: idle_timeout?,
    };
    ok.then_some(limits)
}

fn login(raw: raw::Login, p: &mut Problems) -> Option<Login> {
    let public_url = raw
        .public_url
        .as_deref()
        .map(|u| origin_url(p, "login.public_url", u));
    let timeout = p.duration("login.timeout", raw.timeout.as_deref().unwrap_or("5s"));
    let session_ttl = p.duration(
        "login.session_ttl",
        raw.session_ttl.as_deref().unwrap_or("8h"),
    );
    let method = login_method(&raw, public_url.is_some(), p);
    Some(Login {
        method: method?,
        public_url: public_url.transpose().ok()?,
        timeout: timeout?,
        session_ttl: session_ttl?,
    })
}

fn login_method(raw: &raw::Login, has_public_url: bool, p: &mut Problems) -> Option<LoginMethod> {
    fn required<'a>(
        p: &mut Problems,
        key: &str,
        v: &'a Option<String>,
        method: &str,
    ) -> Option<&'a str> {
        if v.is_none() {
            p.push(key, format!("required with method = \"{method}\""));
        }
        v.as_deref()
    }
    // Keys that belong to another method are mistakes, not silently ignored.
    let mut only = |key: &str, set: bool, method: &str| {
        if set {
            p.push(
                &format!("login.{key}"),
                format!("only used with method = \"{method}\""),
            );
        }
    };
    let method = raw.method.as_deref().unwrap_or("");
    if method != "backend_session" {
        only("whoami_url", raw.whoami_url.is_some(), "backend_session");
        only(
            "user_pointer",
            raw.user_pointer.is_some(),
            "backend_session",
        );
        only("login_url", raw.login_url.is_some(), "backend_session");
        only("guest_users", raw.guest_users.is_some(), "backend_session");
    }
    if method != "trusted_header" {
        only("header", raw.header.is_some(), "trusted_header");
        only(
            "trusted_proxies",
            raw.trusted_proxies.is_some(),
            "trusted_header",
        );
    }
    if method != "cas" {
        only("cas_url", raw.cas_url.is_some(), "cas");
        only("session_ttl", raw.session_ttl.is_some(), "cas");
    }
    match raw.method.as_deref() {
        Some("backend_session") => {
            let whoami = required(p, "login.whoami_url", &raw.whoami_url, "backend_session");
            let pointer = raw.user_pointer.clone().unwrap_or_else(|| "/email".into());
            if !pointer.is_empty() && !pointer.starts_with('/') {
                p.push(
                    "login.user_pointer",
                    "a JSON pointer starts with '/', e.g. \"/email\"",
                );
                return None;
            }
            let login_url = raw.login_url.clone().unwrap_or_else(|| "/login".into());
            let login_url_ok = (login_url.starts_with('/') && !login_url.starts_with("//"))
                || login_url.starts_with("https://")
                || login_url.starts_with("http://");
            if !login_url_ok || login_url.chars().any(|c| c.is_control() || c == ' ') {
                p.push(
                    "login.login_url",
                    "must be a path (\"/login\") or an http(s):// URL",
                );
                return None;
            }
            let whoami_url = match whoami?.parse::<http::Uri>() {
                Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {
                    u
                }
                _ => {
                    p.push(
                        "login.whoami_url",
                        "must be an absolute http:// or https:// URL",
                    );
                    return None;
                }
            };
            Some(LoginMethod::BackendSession {
                whoami_url,
                user_pointer: pointer,
                login_url,
                guest_users: raw
                    .guest_users
                    .clone()
                    .unwrap_or_else(|| vec!["guest".into()]),
            })
        }
        Some("trusted_header") => {
            let header = p.header_name(
                "login.header",
                raw.header.as_deref().unwrap_or("X-Remote-User"),
            );
            let proxies = match &raw.trusted_proxies {
                Some(list) if !list.is_empty() => p.cidrs("login.trusted_proxies", list),
                _ => {
                    p.push(
                        "login.trusted_proxies",
                        "required with method = \"trusted_header\": the addresses of the SSO proxy",
                    );
                    None
                }
            };
            if let Some(h) = &header {
                if crate::http::headers::is_reserved(h) {
                    p.push(
                        "login.header",
                        format!("{h} is a header keygate manages itself; use e.g. X-Remote-User"),
                    );
                    return None;
                }
            }
            Some(LoginMethod::TrustedHeader {
                header: header?,
                trusted_proxies: proxies?,
            })
        }
        Some("cas") => {
            if !has_public_url {
                p.push(
                    "login.public_url",
                    "required with method = \"cas\": the gateway's address as browsers see it, e.g. \"https://keygate.example.org\" (the CAS service URL is built on it)",
                );
            }
            let url = required(p, "login.cas_url", &raw.cas_url, "cas")?;
            match url.parse::<http::Uri>() {
                // Plain http only to a CAS server on this machine: over a
                // network, whoever can answer /p3/serviceValidate picks the
                // signed-in user, and browsers would send passwords in clear.
                Ok(u)
                    if (u.scheme_str() == Some("https")
                        || (u.scheme_str() == Some("http")
                            && u.host().is_some_and(is_loopback)))
                        && u.host().is_some()
                        && u.query().is_none() =>
                {
                    Some(LoginMethod::Cas {
                        cas_url: url.trim_end_matches('/').to_owned(),
                    })
                }
                _ => {
                    p.push(
                        "login.cas_url",
                        "must be an absolute https:// URL without a query (http:// only on a loopback address), e.g. \"https://cas.example.org/cas\"",
                    );
                    None
                }
            }
        }
        Some(other) => {
            p.push(
                "login.method",
                format!("{other:?} is not one of \"backend_session\", \"trusted_header\", \"cas\""),
            );
            None
        }
        None => {
            p.push("login.method", "required when [login] is present");
            None
        }
    }
}

/// `scheme://host[:port]` with nothing after it (a trailing `/` is dropped).
/// `localhost`, 127.0.0.0/8 or `::1` (a URI host, IPv6 in brackets).
fn is_loopback(host: &str) -> bool {
    let ip = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn origin_url(p: &mut Problems, key: &str, text: &str) -> Result<String, ()> {
    let trimmed = text.trim_end_matches('/');
    match trimmed.parse::<http::Uri>() {
        Ok(u)
            if matches!(u.scheme_str(), Some("http" | "https"))
                && u.host().is_some()
                && matches!(u.path(), "" | "/")
                && u.query().is_none() =>
        {
            Ok(trimmed.to_owned())
        }
        _ => {
            p.push(
                key,
                format!("{text:?} must be scheme://host[:port] only, e.g. \"https://keygate.example.org\""),
            );
            Err(())
        }
    }
}

fn self_service(raw: raw::SelfService, p: &mut Problems) -> Option<SelfService> {
    let mut ok = true;
    if !(1..=10_000).contains(&raw.max_live_keys) {
        p.push("self_service.max_live_keys", "must be from 1 to 10000");
        ok = false;
    }
    if raw.creates_per_hour == 0 {
        p.push("self_service.creates_per_hour", "must be at least 1");
        ok = false;
    }
    ok.then_some(SelfService {
        max_live_keys: raw.max_live_keys,
        creates_per_hour: raw.creates_per_hour,
    })
}

fn log(raw: raw::Log, p: &mut Problems) -> Option<Log> {
    let format = match raw.format.as_str() {
        "human" => Some(LogFormat::Human),
        "json" => Some(LogFormat::Json),
        other => {
            p.push(
                "log.format",
                format!("{other:?} is not one of \"human\", \"json\""),
            );
            None
        }
    };
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&raw.level) {
        p.push("log.level", format!("invalid filter {:?}: {e}", raw.level));
        return None;
    }
    Some(Log {
        format: format?,
        level: raw.level,
        access_log: raw.access_log,
    })
}

fn runtime(raw: raw::Runtime, p: &mut Problems) -> Option<Runtime> {
    if raw.workers > 1024 {
        p.push(
            "runtime.workers",
            format!("{} is more than 1024", raw.workers),
        );
        return None;
    }
    Some(Runtime {
        workers: raw.workers,
        shutdown_grace: p.duration("runtime.shutdown_grace", &raw.shutdown_grace)?,
    })
}
