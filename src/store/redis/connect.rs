//! Which Redis deployment `store.url` names, and one command connection for
//! each kind: standalone, Cluster, or a master found through Sentinel.
//!
//! URL forms (the `+cluster`/`+sentinel` ones follow the `redis+sentinel://`
//! convention of redis-py tooling and Lettuce's `redis-sentinel://`):
//!
//! | form | deployment |
//! |---|---|
//! | `redis://[user:pass@]host[:6379][/db]`, `rediss://…` | one server (TLS with `rediss`) |
//! | `unix:///path/redis.sock`, `redis+unix:///path` | one server on a local socket |
//! | `redis+cluster://[user:pass@]h1[:6379],h2[:6379]`, `rediss+cluster://…` | Redis Cluster, seed nodes |
//! | `redis+sentinel://[user:pass@]s1[:26379],s2/MASTER[/db]`, `rediss+sentinel://…` | the master named MASTER, found through these sentinels |
//!
//! Credentials are those of the data nodes (sentinels are asked without).
//! `store.ca_file` adds a CA for every TLS connection of the deployment.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection, PubSub,
};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, Pipeline,
    RedisError, RedisFuture, RedisResult, TlsCertificates, TlsMode, Value,
};

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
            Err(_) => Err(format!("is not a valid {scheme}:// URL")),
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

/// A command connection to the deployment; cheap to clone (all share one
/// multiplexed socket per node). Commands go through `ConnectionLike`, so
/// the store's code is the same for the three kinds.
#[derive(Clone)]
pub enum Conn {
    /// Reconnects by itself (redis-rs).
    Single {
        manager: ConnectionManager,
        /// For pub/sub connections to the same server (boxed: the variants
        /// stay small, the store is cloned per call).
        client: Box<Client>,
    },
    /// Follows the slot map, MOVED/ASK and failovers by itself (redis-rs).
    Cluster {
        conn: ClusterConnection,
        /// Seed nodes, for pub/sub connections.
        nodes: Vec<Client>,
    },
    Sentinel(SentinelConn),
}

/// Open the command connection. Lazy: nothing is dialled until the first
/// command, so the caller decides whether Redis must answer at start.
pub fn open(target: &Target, ca: Option<&[u8]>, timeout: Duration) -> RedisResult<Conn> {
    let certs = || TlsCertificates {
        client_tls: None,
        root_cert: ca.map(<[u8]>::to_vec),
    };
    match target {
        Target::Single(url) => {
            let client = match ca {
                Some(_) => Client::build_with_tls(url.as_str(), certs())?,
                None => Client::open(url.as_str())?,
            };
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(1);
            let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
            Ok(Conn::Single {
                manager,
                client: Box::new(client),
            })
        }
        Target::Cluster {
            nodes,
            tls,
            userinfo,
        } => {
            let urls: Vec<String> = nodes
                .iter()
                .map(|(h, p)| node_url(*tls, userinfo.as_deref(), h, *p))
                .collect();
            let mut builder = ClusterClientBuilder::new(urls.clone())
                .connection_timeout(timeout)
                .response_timeout(timeout);
            if ca.is_some() {
                builder = builder.certs(certs());
            }
            let client = builder.build()?;
            let conn = client.get_pending_async_connection_with_config(
                redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout),
            );
            let nodes = urls
                .iter()
                .map(|u| match ca {
                    Some(_) => Client::build_with_tls(u.as_str(), certs()),
                    None => Client::open(u.as_str()),
                })
                .collect::<RedisResult<_>>()?;
            Ok(Conn::Cluster { conn, nodes })
        }
        Target::Sentinel {
            sentinels,
            master,
            db,
            tls,
            userinfo,
        } => {
            let addrs = sentinels.iter().map(|(host, port)| match tls {
                true => ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port: *port,
                    insecure: false,
                    tls_params: None,
                },
                false => ConnectionAddr::Tcp(host.clone(), *port),
            });
            let mut b = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)?
                .set_client_to_redis_db(*db);
            if let Some(userinfo) = userinfo {
                // redis-rs decodes the percent-encoding of a URL's userinfo.
                let info = format!("redis://{userinfo}@localhost").into_connection_info()?;
                let redis = info.redis_settings();
                if let Some(user) = redis.username() {
                    b = b.set_client_to_redis_username(user);
                }
                if let Some(pass) = redis.password() {
                    b = b.set_client_to_redis_password(pass);
                }
            }
            if *tls {
                b = b
                    .set_client_to_redis_tls_mode(TlsMode::Secure)
                    .set_client_to_sentinel_tls_mode(TlsMode::Secure);
                if ca.is_some() {
                    b = b
                        .set_client_to_redis_certificates(certs())
                        .set_client_to_sentinel_certificates(certs());
                }
            }
            Ok(Conn::Sentinel(SentinelConn::new(b.build()?, *db, timeout)))
        }
    }
}

fn node_url(tls: bool, userinfo: Option<&str>, host: &str, port: u16) -> String {
    let scheme = if tls { "rediss" } else { "redis" };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    match userinfo {
        Some(u) => format!("{scheme}://{u}@{host}:{port}"),
        None => format!("{scheme}://{host}:{port}"),
    }
}

// === impl Conn ===

impl Conn {
    pub fn is_cluster(&self) -> bool {
        matches!(self, Conn::Cluster { .. })
    }

    /// A pub/sub connection: to the server, to the current master, or (in a
    /// cluster, where classic PUBLISH reaches every node) to the first seed
    /// node that answers.
    pub async fn pubsub(&self) -> RedisResult<PubSub> {
        match self {
            Conn::Single { client, .. } => client.get_async_pubsub().await,
            Conn::Sentinel(s) => s.master().await?.get_async_pubsub().await,
            Conn::Cluster { nodes, .. } => {
                first_node(nodes, |n| async move { n.get_async_pubsub().await }).await
            }
        }
    }

    /// PUBLISH where `pubsub` subscribes: in a cluster, the first seed node
    /// that answers, so that the receiver count (which Redis gives per node)
    /// counts every keygate instance of the deployment.
    pub async fn publish(&self, channel: &str, payload: &[u8]) -> RedisResult<u64> {
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(channel).arg(payload);
        match self {
            Conn::Cluster { nodes, .. } => {
                let publish = &publish;
                first_node(nodes, |n| async move {
                    let mut conn = n.get_multiplexed_async_connection().await?;
                    publish.query_async(&mut conn).await
                })
                .await
            }
            _ => publish.query_async(&mut self.clone()).await,
        }
    }
}

/// The first seed node's answer to `call`, in the order `store.url` lists them.
async fn first_node<'a, T, F, Fut>(nodes: &'a [Client], call: F) -> RedisResult<T>
where
    F: Fn(&'a Client) -> Fut,
    Fut: std::future::Future<Output = RedisResult<T>>,
{
    let mut last = None;
    for node in nodes {
        match call(node).await {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| (ErrorKind::Client, "no cluster node").into()))
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single { manager, .. } => manager.req_packed_command(cmd),
            Conn::Cluster { conn, .. } => conn.req_packed_command(cmd),
            Conn::Sentinel(s) => s.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single { manager, .. } => manager.req_packed_commands(pipeline, offset, count),
            Conn::Cluster { conn, .. } => conn.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(s) => s.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single { manager, .. } => manager.get_db(),
            Conn::Cluster { conn, .. } => conn.get_db(),
            Conn::Sentinel(s) => s.get_db(),
        }
    }
}

/// A connection to the master that Sentinel names, following failovers.
///
/// redis-rs's `SentinelClient` resolves the master once per connection it
/// opens, and `ConnectionManager` reconnects to a fixed address, so neither
/// follows a failover alone. This wrapper keeps one multiplexed connection to
/// the resolved master and forgets it on any error that means "this is no
/// longer the master I can write to" (I/O error, dropped or refused
/// connection, timeout, `READONLY` from a demoted master). The failing call
/// still fails (the request gets 503, fail closed); the next one asks the
/// sentinels again, and redis-rs checks the answer with `ROLE`. Sentinel
/// itself disconnects clients of a master it demotes (`CLIENT KILL`).
///
/// Until Sentinel has finished a failover it names the old master; if that
/// address answers as a master (a restarted old master without persistence,
/// before Sentinel demotes it) keygate reads from it: the classic Sentinel
/// caveat, which persistence on the master (or not restarting it by hand)
/// avoids.
#[derive(Clone)]
pub struct SentinelConn {
    inner: Arc<SentinelInner>,
}

struct SentinelInner {
    /// Asks the sentinels; one resolution at a time (callers queue behind it
    /// and then reuse its answer), each bounded by its caller's timeout.
    sentinel: tokio::sync::Mutex<SentinelClient>,
    /// The master connection in use and its generation, so an error on an
    /// old connection never discards a newer one.
    current: StdMutex<Option<(u64, MultiplexedConnection)>>,
    config: AsyncConnectionConfig,
    db: i64,
}

// === impl SentinelConn ===

impl SentinelConn {
    fn new(sentinel: SentinelClient, db: i64, timeout: Duration) -> SentinelConn {
        // Shorter than the store's bound on every call: a master that hangs
        // (partitioned, frozen) must fail here, where the connection is
        // forgotten, not be cut off by the caller's timeout, which would
        // leave the connection in place for the next call.
        let timeout = timeout * 3 / 4;
        SentinelConn {
            inner: Arc::new(SentinelInner {
                sentinel: tokio::sync::Mutex::new(sentinel),
                current: StdMutex::new(None),
                config: AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout)),
                db,
            }),
        }
    }

    fn cached(&self) -> Option<(u64, MultiplexedConnection)> {
        self.inner.current.lock().expect("sentinel lock").clone()
    }

    /// A client for the current master (asks the sentinels).
    async fn master(&self) -> RedisResult<Client> {
        self.inner.sentinel.lock().await.async_get_client().await
    }

    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let mut sentinel = self.inner.sentinel.lock().await;
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let master = sentinel.async_get_client().await?;
        let conn = master
            .get_multiplexed_async_connection_with_config(&self.inner.config)
            .await?;
        let mut current = self.inner.current.lock().expect("sentinel lock");
        let generation = current.as_ref().map_or(0, |(g, _)| g + 1);
        *current = Some((generation, conn.clone()));
        tracing::info!(
            generation,
            "connected to the Redis master named by Sentinel"
        );
        Ok((generation, conn))
    }

    fn check<T>(&self, generation: u64, result: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &result {
            if stale(e) {
                let mut current = self.inner.current.lock().expect("sentinel lock");
                if current.as_ref().is_some_and(|(g, _)| *g == generation) {
                    tracing::warn!(error = %e, "Redis master connection lost; asking the sentinels again on the next call");
                    *current = None;
                }
            }
        }
        result
    }
}

/// Whether an error means the connection no longer reaches a writable master.
fn stale(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || e.code() == Some("READONLY")
        || e.to_string().contains("READONLY")
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut conn) = self.connection().await?;
            let result = conn.req_packed_command(cmd).await;
            self.check(generation, result)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut conn) = self.connection().await?;
            let result = conn.req_packed_commands(pipeline, offset, count).await;
            self.check(generation, result)
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.db
    }
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
