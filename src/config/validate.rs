//! Raw TOML values -> typed `Config`, pushing one `ConfigProblem` per bad
//! value (named by its TOML key) instead of stopping at the first.
//!
//! Messages may quote a value the operator wrote (an address, a duration) but
//! never the content of a file: secrets live in files.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::raw;
use super::*;

mod authz;
mod leaks;
mod lifecycle;
pub(super) mod login;
mod oidc;
mod rate_limit;
mod store;

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
    pub leaks: raw::Leaks,
    pub webhooks: Vec<raw::Webhook>,
    pub authz: Option<raw::Authz>,
}

/// Shortest HMAC secret accepted, in characters.
const MIN_SECRET_LEN: usize = 32;

/// Builds the runtime config; `None` when a value needed to build it is bad
/// (the problem is already recorded). Relative paths are resolved against
/// `folder` (the config file's) when given.
pub fn build(raw: Raw, folder: Option<&Path>, problems: &mut Vec<ConfigProblem>) -> Option<Config> {
    let mut p = Problems {
        list: problems,
        folder,
    };
    let admin_plaintext = raw.admin.plaintext || raw.listen.plaintext;
    let listen_plaintext = raw.listen.plaintext;
    let listen = listen(raw.listen, &mut p);
    let upstream = upstream(raw.upstream, &mut p);
    let auth = auth(raw.auth, &mut p);
    let keys = keys(raw.keys, &mut p);
    let store = store::section(raw.store, &mut p);
    let cache = store::cache(raw.cache, &mut p);
    let admin_addr = p.socket_addr("admin.addr", &raw.admin.addr);
    let token_path = p.path(&raw.admin.token_file);
    let token_file = match crate::tokens::read(&token_path) {
        Ok(_) => Some(token_path),
        Err(e) => {
            let hint = missing_hint("admin.token_file", &token_path);
            p.push("admin.token_file", format!("{e}{hint}"));
            None
        }
    };
    let client_ca = admin_client_ca(raw.admin.client_ca.as_deref(), admin_plaintext, &mut p);
    let admin_groups = admin_groups(&raw.admin.groups, raw.login.as_ref(), &mut p);
    let admin_users = admin_users(&raw.admin.users, raw.login.is_some(), &mut p);
    let rate_limit = rate_limit::section(raw.rate_limit, &mut p);
    let limits = limits(raw.limits, &mut p);
    let login = raw.login.map(|l| login::section(l, &mut p));
    let self_service = login::self_service(raw.self_service, &mut p);
    let log = log(raw.log, &mut p);
    let runtime = runtime(raw.runtime, &mut p);
    let leaks = leaks::section(raw.leaks, &mut p);
    let webhooks = leaks::webhooks(raw.webhooks, &mut p);
    let authz = authz::section(raw.authz, listen_plaintext, &mut p);
    distinct_listeners(
        &[
            ("listen.addr", listen.as_ref().map(|l| l.addr)),
            ("admin.addr", admin_addr),
            (
                "authz.addr",
                authz.as_ref().and_then(|a| a.as_ref()).map(|a| a.addr),
            ),
        ],
        &mut p,
    );
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
            client_ca: client_ca?,
            groups: admin_groups?,
            users: admin_users?,
        },
        rate_limit: rate_limit?,
        limits: limits?,
        login: login.map(|l| l.ok_or(())).transpose().ok()?,
        self_service: self_service?,
        log: log?,
        runtime: runtime?,
        leaks: leaks?,
        webhooks: webhooks?,
        authz: authz?,
    })
}

/// The longest duration keygate takes anywhere: as good as never, and far
/// enough from every clock's and counter's limit that adding it to "now"
/// (an instant, a Unix time, milliseconds for Redis) cannot overflow.
const LONGEST_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// Why a key lifetime with a fraction of a second is refused.
pub const WHOLE_SECONDS: &str = "must be a whole number of seconds";

/// Parse a humantime duration ("30s", "30d", "1h 30m"), at most 100 years.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text.trim()) {
        Ok(d) if d > LONGEST_DURATION => Err(format!(
            "duration {text:?} is longer than 100 years (\"100y\"), the longest keygate takes"
        )),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "invalid duration {text:?} ({e}); use e.g. \"30s\", \"15m\", \"30d\""
        )),
    }
}

struct Problems<'a> {
    list: &'a mut Vec<ConfigProblem>,
    /// The config file's folder: relative paths name files in it.
    folder: Option<&'a Path>,
}

impl Problems<'_> {
    fn push(&mut self, key: &str, message: impl Into<String>) {
        self.list.push(ConfigProblem::new(key, message));
    }

    /// A path as written in the file, resolved against the file's folder.
    fn path(&self, text: &str) -> PathBuf {
        match self.folder {
            Some(folder) if Path::new(text).is_relative() => folder.join(text),
            _ => PathBuf::from(text),
        }
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

    /// A key's lifetime: positive and whole seconds, as a key's own `ttl`
    /// (expiry is kept to the second; "1500ms" would quietly be 1 s).
    fn key_lifetime(&mut self, key: &str, text: &str) -> Option<Duration> {
        let d = self.duration(key, text)?;
        if d.subsec_nanos() != 0 {
            self.push(key, WHOLE_SECONDS);
            return None;
        }
        Some(d)
    }

    /// A file that must exist and be readable now (resolved by `path`).
    fn readable_file(&mut self, key: &str, path: &str) -> Option<PathBuf> {
        let path = self.path(path);
        match std::fs::File::open(&path) {
            Ok(_) => Some(path),
            Err(e) => {
                let hint = missing_hint(key, &path);
                self.push(key, format!("cannot read {}: {e}{hint}", path.display()));
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

/// For a file that cannot be read: whom to let read it, or, for one
/// `keygate init` writes and that is not there, how to make it.
fn missing_hint(key: &str, path: &Path) -> String {
    let denied = |e: &std::io::Error| e.kind() == std::io::ErrorKind::PermissionDenied;
    match std::fs::metadata(path) {
        Ok(_) if std::fs::File::open(path).is_err_and(|e| denied(&e)) => return denied_hint(path),
        Ok(_) => return String::new(),
        Err(e) if denied(&e) => return denied_hint(path),
        Err(_) => {}
    }
    let init_writes = |name: &str| match (path.file_name(), path.parent()) {
        (Some(n), Some(dir)) if n == name => {
            format!("; `keygate init {}` writes it", dir.display())
        }
        _ => format!("; `keygate init DIR` writes one (DIR/{name})"),
    };
    match key {
        "listen.tls_cert" | "listen.tls_key" => {
            "; put your certificate chain and key there (`keygate init DIR --self-signed HOST` makes a self-signed pair)".into()
        }
        "store.secret_file" => init_writes("secret"),
        "admin.token_file" => init_writes("admin-token"),
        _ => String::new(),
    }
}

/// A file this process may not read: `check` run as another user than
/// the service's, or the service's user not let in (deploy/README's
/// `chgrp`/`chmod g+r` step).
fn denied_hint(path: &Path) -> String {
    let file = path.display();
    format!(
        "; this process runs as {}: run `keygate check` as the user keygate runs as, and let that user read the file and its folders (deploy/systemd: `chgrp keygate {file} && chmod g+r {file}`)",
        crate::audit::os_login()
    )
}

/// An address or CIDR; an IPv4-mapped IPv6 one (`::ffff:10.0.0.0/104`)
/// as the IPv4 range it maps, since peers are compared as IPv4 (a
/// dual-stack listener's `::ffff:a.b.c.d` peer is `a.b.c.d`).
fn parse_cidr(text: &str) -> Option<IpNet> {
    let net = text
        .parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<std::net::IpAddr>().ok().map(IpNet::from))?;
    Some(match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::new(v4.into(), v6.prefix_len() - 96).ok()?,
            None => net,
        },
        net => net,
    })
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

/// Two listeners on one port would pass the check and then fail at start
/// with "address in use", which reads as another process holding it.
fn distinct_listeners(listeners: &[(&str, Option<SocketAddr>)], p: &mut Problems) {
    for (i, (key, addr)) in listeners.iter().enumerate() {
        let Some(addr) = addr else { continue };
        let earlier = listeners[..i]
            .iter()
            .find_map(|(k, a)| a.filter(|a| clash(a, addr)).map(|a| (k, a)));
        if let Some((other_key, other)) = earlier {
            p.push(
                key,
                format!(
                    "{addr} clashes with {other_key} = \"{other}\": two listeners cannot \
                     share a port on one address; give each its own"
                ),
            );
        }
    }
}

/// Whether binding both fails: the same port on the same address, or on an
/// unspecified one, which covers its family's addresses (`[::]` both
/// families: Linux binds it dual-stack). Port 0 picks a free port each time.
fn clash(a: &SocketAddr, b: &SocketAddr) -> bool {
    let covers =
        |x: &SocketAddr, y: &SocketAddr| x.ip().is_unspecified() && (x.is_ipv6() || y.is_ipv4());
    a.port() != 0 && a.port() == b.port() && (a.ip() == b.ip() || covers(a, b) || covers(b, a))
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
        Some(text) => upstream_url(text)
            .map_err(|e| p.push("upstream.url", e))
            .ok(),
    };
    let ca_file = match raw.ca_file.as_deref() {
        Some(path) => {
            let file = p.readable_file("upstream.ca_file", path)?;
            if let Err(e) = crate::tls::load_ca_file(&file) {
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

/// `upstream.url`: scheme, host and port only (also `keygate init --upstream`).
pub fn upstream_url(text: &str) -> Result<http::Uri, String> {
    // Before anything quotes `text`: an '@' can only be userinfo (a path
    // or query is refused anyway), and what precedes it may be a password.
    if text.contains('@') {
        return Err(USERINFO_REFUSED.into());
    }
    let Ok(uri) = text.parse::<http::Uri>() else {
        return Err(format!("invalid URL {text:?}"));
    };
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(format!("{text:?} must start with http:// or https://")),
    }
    // "http://:8080" parses with an empty host, and port 0 is no port to
    // dial: every request would be a 502.
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    if uri.port_u16() == Some(0) {
        return Err(format!("{text:?} has port 0, which no server listens on"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!("{text:?} has a path or query; keygate forwards each request path unchanged, so give only scheme://host:port"));
    }
    Ok(uri)
}

/// Said without quoting the URL, which would print the password.
const USERINFO_REFUSED: &str = "a user name or password in the URL is not supported: keygate \
     sends no credentials of its own upstream (it passes the identity header); give only \
     scheme://host:port, e.g. \"http://127.0.0.1:8080\"";

fn auth(raw: raw::Auth, p: &mut Problems) -> Option<Auth> {
    let mut ok = true;
    // A Basic user name ends at the first ':', and `~/.netrc` (where the
    // keys are meant to live) splits its fields at whitespace.
    let unusable = |c: char| c == ':' || c.is_whitespace() || c.is_control();
    if raw.username.is_empty() || raw.username.contains(unusable) {
        p.push(
            "auth.username",
            "must be non-empty, without ':', spaces or control characters (clients send it \
             as the Basic user name, and ~/.netrc splits its fields at spaces), e.g. \"apikey\"",
        );
        ok = false;
    }
    let identity_header = p.header_name("auth.identity_header", &raw.identity_header);
    if let Some(h) = &identity_header {
        if crate::header_names::is_reserved(h) {
            p.push(
                "auth.identity_header",
                format!(
                    "{h} is a header keygate reads or manages itself (a credential, Host, \
                     X-Forwarded-For/-Proto/-Host, hop-by-hop, ...); choose another, e.g. X-Remote-User"
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
    // A quoted-string in the challenge: a backslash would escape its end.
    if raw.realm.contains(['"', '\\']) || raw.realm.chars().any(|c| c.is_control()) {
        p.push(
            "auth.realm",
            "must not contain quotes, backslashes or control characters",
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
        accept: Accept {
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
    let default_ttl = p.key_lifetime("keys.default_ttl", &raw.default_ttl);
    let max_ttl = if raw.max_ttl.trim() == "never" {
        Some(None)
    } else {
        p.key_lifetime("keys.max_ttl", &raw.max_ttl).map(Some)
    };
    let lifecycle = lifecycle::section(&raw, p);
    let (default_ttl, max_ttl, lifecycle) = (default_ttl?, max_ttl?, lifecycle?);
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
        lifecycle,
    })
}

/// Most open client connections `limits.max_connections` may allow.
const MAX_CONNECTIONS: usize = 10_000_000;

fn limits(raw: raw::Limits, p: &mut Problems) -> Option<Limits> {
    let mut ok = true;
    if !(1024..=16 * 1024 * 1024).contains(&raw.max_header_bytes) {
        p.push(
            "limits.max_header_bytes",
            format!("{} is outside 1024..=16777216", raw.max_header_bytes),
        );
        ok = false;
    }
    // Far beyond any host's open files, and within what a semaphore holds.
    if !(1..=MAX_CONNECTIONS).contains(&raw.max_connections) {
        p.push(
            "limits.max_connections",
            format!("{} is outside 1..={MAX_CONNECTIONS}", raw.max_connections),
        );
        ok = false;
    }
    let tls_handshake_timeout =
        p.duration("limits.tls_handshake_timeout", &raw.tls_handshake_timeout);
    let header_read_timeout = p.duration("limits.header_read_timeout", &raw.header_read_timeout);
    let idle_timeout = p.duration("limits.idle_timeout", &raw.idle_timeout);
    let send_timeout = p.duration("limits.send_timeout", &raw.send_timeout);
    let header_list = raw.h2_max_header_list_size.unwrap_or(raw.max_header_bytes);
    let mut within = |key: &str, value: usize, range: std::ops::RangeInclusive<usize>| {
        let inside = range.contains(&value);
        if !inside {
            p.push(
                key,
                format!("{value} is outside {}..={}", range.start(), range.end()),
            );
        }
        inside
    };
    ok &= within(
        "limits.h2_max_concurrent_streams",
        raw.h2_max_concurrent_streams as usize,
        1..=10_000,
    );
    ok &= within(
        "limits.h2_max_pending_accept_reset_streams",
        raw.h2_max_pending_accept_reset_streams,
        1..=100_000,
    );
    ok &= within(
        "limits.h2_max_local_error_reset_streams",
        raw.h2_max_local_error_reset_streams,
        1..=100_000,
    );
    // Unset, it is max_header_bytes, whose own problem is named above.
    if raw.h2_max_header_list_size.is_some() {
        ok &= within(
            "limits.h2_max_header_list_size",
            header_list,
            1024..=16 * 1024 * 1024,
        );
    }
    ok &= within(
        "limits.h2_max_send_buf_size",
        raw.h2_max_send_buf_size,
        16 * 1024..=16 * 1024 * 1024,
    );
    ok &= within(
        "limits.h2_max_control_frames",
        raw.h2_max_control_frames as usize,
        10..=1_000_000,
    );
    let limits = Limits {
        max_header_bytes: raw.max_header_bytes,
        max_connections: raw.max_connections,
        tls_handshake_timeout: tls_handshake_timeout?,
        header_read_timeout: header_read_timeout?,
        idle_timeout: idle_timeout?,
        send_timeout: send_timeout?,
        h2: Http2Limits {
            max_concurrent_streams: raw.h2_max_concurrent_streams,
            max_pending_accept_reset_streams: raw.h2_max_pending_accept_reset_streams,
            max_local_error_reset_streams: raw.h2_max_local_error_reset_streams,
            max_header_list_size: u32::try_from(header_list).unwrap_or(u32::MAX),
            max_send_buf_size: raw.h2_max_send_buf_size,
            max_control_frames: raw.h2_max_control_frames,
        },
    };
    ok.then_some(limits)
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
    let mut ok = true;
    if raw.level.trim().is_empty() {
        // An empty filter allows errors only: every warning would be lost.
        p.push(
            "log.level",
            "is empty; give a filter such as \"info\" or \"keygate=debug,info\"",
        );
        ok = false;
    } else if let Err(e) = tracing_subscriber::EnvFilter::try_new(&raw.level) {
        p.push("log.level", format!("invalid filter {:?}: {e}", raw.level));
        ok = false;
    } else if let Some(why) = super::silences_keygate(&raw.level) {
        p.push("log.level", why);
        ok = false;
    }
    if !(1..=10_000_000).contains(&raw.buffer_lines) {
        p.push(
            "log.buffer_lines",
            format!("{} is not between 1 and 10000000", raw.buffer_lines),
        );
        ok = false;
    }
    let file = match raw.file.as_deref() {
        Some(f) => Some(log_file(p.path(f), p)?),
        None => None,
    };
    let log = Log {
        format: format?,
        level: raw.level,
        access_log: raw.access_log,
        file,
        buffer_lines: raw.buffer_lines,
    };
    ok.then_some(log)
}

/// `log.file`: in a folder that exists, and open for appending.
fn log_file(path: PathBuf, p: &mut Problems) -> Option<PathBuf> {
    if let Some(folder) = path.parent() {
        if !folder.as_os_str().is_empty() && !folder.is_dir() {
            p.push(
                "log.file",
                format!(
                    "the folder {0} does not exist; make it, writable by the user keygate runs as (`install -d -o keygate -g keygate -m 0750 {0}`; deploy/systemd's LogsDirectory= makes /var/log/keygate, but only when the service starts)",
                    folder.display()
                ),
            );
            return None;
        }
    }
    if let Err(e) = try_append(&path) {
        let hint = match e.kind() {
            std::io::ErrorKind::PermissionDenied => format!(
                "; this process runs as {}: run `keygate check` as the user keygate runs as, and let that user write the file and its folder",
                crate::audit::os_login()
            ),
            _ => String::new(),
        };
        p.push(
            "log.file",
            format!("cannot open {} for appending: {e}{hint}", path.display()),
        );
        return None;
    }
    Some(path)
}

/// Open `path` for appending as `serve` will (which exits 1 when it
/// cannot), as the user running the check. A missing log is never created
/// here, not even for a moment: made by root for `keygate check`, the
/// service user could not append to it, and one `serve` reopened on SIGHUP
/// meanwhile would be unlinked under it. A probe file beside it tells
/// whether it could be created.
fn try_append(path: &Path) -> std::io::Result<()> {
    match std::fs::OpenOptions::new().append(true).open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let probe = dir.join(format!(".keygate-check-{}", std::process::id()));
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&probe)?;
            std::fs::remove_file(probe)
        }
        opened => opened.map(drop),
    }
}

fn runtime(raw: raw::Runtime, p: &mut Problems) -> Option<Runtime> {
    let workers_ok = raw.workers <= 1024;
    if !workers_ok {
        p.push(
            "runtime.workers",
            format!("{} is more than 1024", raw.workers),
        );
    }
    let shutdown_grace = p.duration("runtime.shutdown_grace", &raw.shutdown_grace);
    workers_ok.then_some(Runtime {
        workers: raw.workers,
        shutdown_grace: shutdown_grace?,
    })
}

/// `admin.groups`: group names, which only `[login] method = "oidc"` knows.
fn admin_groups(
    groups: &[String],
    login: Option<&raw::Login>,
    p: &mut Problems,
) -> Option<Vec<String>> {
    let oidc = login.and_then(|l| l.method.as_deref()) == Some("oidc");
    if !groups.is_empty() && !oidc {
        p.push(
            "admin.groups",
            "only used with [login] method = \"oidc\" (the groups come from the OpenID provider)",
        );
        return None;
    }
    oidc::groups(p, "admin.groups", Some(groups))
}

/// `admin.users`: user names as `[login]` gives them (and as keys carry
/// them: `keys::user`), which only a `[login]` signs in.
fn admin_users(users: &[String], login: bool, p: &mut Problems) -> Option<Vec<String>> {
    if !users.is_empty() && !login {
        p.push(
            "admin.users",
            "needs a [login] section: admins sign in to the console through it",
        );
        return None;
    }
    let mut ok = true;
    for (i, u) in users.iter().enumerate() {
        if let Err(why) = crate::keys::user::check(u) {
            p.push(&format!("admin.users[{i}]"), why);
            ok = false;
        }
    }
    ok.then(|| users.to_vec())
}

/// `admin.client_ca`: readable PEM CA certificates, on a TLS admin listener.
fn admin_client_ca(
    path: Option<&str>,
    plaintext: bool,
    p: &mut Problems,
) -> Option<Option<PathBuf>> {
    let Some(path) = path else {
        return Some(None);
    };
    if plaintext {
        p.push(
            "admin.client_ca",
            "needs TLS on the admin listener (admin.plaintext and listen.plaintext off)",
        );
        return None;
    }
    let file = p.readable_file("admin.client_ca", path)?;
    if let Err(e) = crate::tls::client_verifier(&file) {
        p.push(e.config_key(), e.to_string());
        return None;
    }
    Some(Some(file))
}
