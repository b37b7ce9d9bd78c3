//! What `store.url` names: one server, a Cluster, or a master behind
//! Sentinel. The `+cluster`/`+sentinel` forms follow the `redis+sentinel://`
//! convention of redis-py tooling and Lettuce's `redis-sentinel://`:
//!
//! | form | deployment |
//! |---|---|
//! | `redis://[user:pass@]host[:6379][/db]`, `rediss://…` | one server (TLS with `rediss`) |
//! | `unix:///path/redis.sock`, `redis+unix:///path` | one server on a local socket |
//! | `redis+cluster://[user:pass@]h1[:6379],h2[:6379]`, `rediss+cluster://…` | Redis Cluster, seed nodes |
//! | `redis+sentinel://[user:pass@]s1[:26379],s2/MASTER[/db]`, `rediss+sentinel://…` | the master named MASTER, found through these sentinels |
//!
//! Credentials are those of the data nodes (sentinels are asked without).

use redis::IntoConnectionInfo;

/// What `store.url` accepts; in every message about a bad URL (which is
/// never quoted: it may hold a password).
const FORMS: &str = "must be redis://, rediss://, unix://, redis+cluster://host:port,host:port, \
                     or redis+sentinel://host:port,host:port/MASTER[/db] (rediss+… for TLS)";

/// A deployment as `store.url` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Passed to redis-rs as written.
    Single(String),
    Cluster {
        nodes: Vec<(String, u16)>,
        tls: bool,
        /// `user:pass` as written (percent-encoded), for every node.
        userinfo: Option<String>,
    },
    Sentinel {
        sentinels: Vec<(String, u16)>,
        master: String,
        db: i64,
        tls: bool,
        userinfo: Option<String>,
    },
}

impl Target {
    /// Whether connections use TLS (where `store.ca_file` applies).
    pub fn is_tls(&self) -> bool {
        match self {
            Target::Single(url) => url
                .get(..9)
                .is_some_and(|s| s.eq_ignore_ascii_case("rediss://")),
            Target::Cluster { tls, .. } | Target::Sentinel { tls, .. } => *tls,
        }
    }
}

/// `: Invalid database number` from redis-rs's error, when it carries no
/// detail: its description is fixed text, while a detail may quote the URL.
fn reason(e: &redis::RedisError) -> String {
    if e.detail().is_some() || e.kind() != redis::ErrorKind::InvalidClientConfig {
        return String::new();
    }
    let text = e.to_string();
    let description = text.split(" - ").next().unwrap_or_default();
    format!(": {description}")
}

/// Parse `store.url`; the error says what is wrong without quoting it.
pub fn parse(url: &str) -> Result<Target, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(FORMS.into());
    };
    let scheme = scheme.to_ascii_lowercase();
    let tls = scheme.starts_with("rediss");
    match scheme.as_str() {
        "redis" | "rediss" | "unix" | "redis+unix" => match url.into_connection_info() {
            Ok(_) => Ok(Target::Single(url.to_owned())),
            Err(e) => Err(format!("is not a valid {scheme}:// URL{}", reason(&e))),
        },
        "redis+cluster" | "rediss+cluster" => {
            let (userinfo, hosts, path) = split(rest)?;
            if !path.is_empty() {
                return Err("a cluster URL has no path: Redis Cluster has database 0 only".into());
            }
            Ok(Target::Cluster {
                nodes: nodes(hosts, 6379)?,
                tls,
                userinfo,
            })
        }
        "redis+sentinel" | "rediss+sentinel" => {
            let (userinfo, hosts, path) = split(rest)?;
            let (master, db) = path.split_once('/').unwrap_or((path, ""));
            if master.is_empty() {
                return Err(
                    "a sentinel URL names the master: redis+sentinel://host:26379/MASTER[/db]"
                        .into(),
                );
            }
            let db = match db.trim_end_matches('/') {
                "" => 0,
                n => n
                    .parse()
                    .map_err(|_| "the database after the master name must be a number")?,
            };
            Ok(Target::Sentinel {
                sentinels: nodes(hosts, 26379)?,
                master: master.to_owned(),
                db,
                tls,
                userinfo,
            })
        }
        _ => Err(FORMS.into()),
    }
}

/// `userinfo@hosts/path` → its parts; no query string.
fn split(rest: &str) -> Result<(Option<String>, &str, &str), String> {
    if rest.contains('?') || rest.contains('#') {
        return Err("takes no query string or fragment".into());
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_owned()), h),
        None => (None, authority),
    };
    Ok((userinfo, hosts, path))
}

/// `h1[:p1],[::1]:p2,…`
fn nodes(hosts: &str, default_port: u16) -> Result<Vec<(String, u16)>, String> {
    let bad = || format!("lists hosts as host[:port],host[:port] (default port {default_port})");
    let mut out = Vec::new();
    for part in hosts.split(',').map(str::trim) {
        let (host, port) = if let Some(v6) = part.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            (host, after.strip_prefix(':'))
        } else {
            match part.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (part, None),
            }
        };
        let port = match port {
            None => default_port,
            Some(p) => p.parse().map_err(|_| bad())?,
        };
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        out.push((host.to_owned(), port));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        assert_eq!(
            parse("redis://127.0.0.1:6379/0"),
            Ok(Target::Single("redis://127.0.0.1:6379/0".into()))
        );
        assert!(matches!(parse("rediss://h/0"), Ok(Target::Single(_))));
        assert_eq!(
            parse("redis+cluster://a:7000,b,[::1]:7002"),
            Ok(Target::Cluster {
                nodes: vec![("a".into(), 7000), ("b".into(), 6379), ("::1".into(), 7002)],
                tls: false,
                userinfo: None
            })
        );
        assert_eq!(
            parse("rediss+sentinel://u:p%40ss@s1,s2:26380/mymaster/3"),
            Ok(Target::Sentinel {
                sentinels: vec![("s1".into(), 26379), ("s2".into(), 26380)],
                master: "mymaster".into(),
                db: 3,
                tls: true,
                userinfo: Some("u:p%40ss".into())
            })
        );
    }

    #[test]
    fn tls_forms() {
        for (url, tls) in [
            ("redis://h", false),
            ("rediss://h", true),
            ("unix:///tmp/r.sock", false),
            ("redis+cluster://a,b", false),
            ("rediss+cluster://a,b", true),
            ("redis+sentinel://s/m", false),
            ("rediss+sentinel://s/m", true),
        ] {
            assert_eq!(parse(url).unwrap().is_tls(), tls, "{url}");
        }
    }

    #[test]
    fn bad_urls_are_refused_without_quoting_them() {
        for url in [
            "http://h",
            "redis+sentinel://s1:26379",
            "redis+sentinel://s1/m/x",
            "redis+cluster://a:7000/1",
            "redis+cluster://a:x",
            "redis+cluster://,",
            "redis+cluster://secretpass@a:7000?x=1",
            "nonsense",
        ] {
            let e = parse(url).expect_err(url);
            assert!(!e.contains("secretpass"), "{e}");
        }
    }
}
