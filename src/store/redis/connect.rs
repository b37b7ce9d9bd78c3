//! One command connection for each kind of deployment (see [`super::url`]):
//! a `ConnectionManager` for one server, a `ClusterConnection` for a
//! Cluster (both [`Renewing`]: replaced when a command times out), a
//! [`SentinelConn`] for a master behind Sentinel. `store.ca_file` adds a CA
//! for every TLS connection of the deployment.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, Cmd, ConnectionAddr, ErrorKind, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult,
    TlsCertificates, TlsMode, Value,
};

use super::renewing::{command_limit, Renewing};
use super::sentinel::SentinelConn;
use super::url::Target;

/// A command connection to the deployment; cheap to clone (all share one
/// multiplexed socket per node). Commands go through `ConnectionLike`, so
/// the store's code is the same for the three kinds.
#[derive(Clone)]
pub enum Conn {
    /// Reconnects by itself (redis-rs), and when a command times out.
    Single {
        conn: Renewing<ConnectionManager>,
        /// For pub/sub connections (shared: `Conn` is cloned per call).
        client: std::sync::Arc<Client>,
    },
    /// Follows the slot map, MOVED/ASK and failovers by itself (redis-rs),
    /// and is replaced when a command times out.
    Cluster {
        conn: Renewing<ClusterConnection>,
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
                Some(_) if target.is_tls() => Client::build_with_tls(url.as_str(), certs())?,
                _ => Client::open(url.as_str())?,
            };
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(command_limit(timeout)))
                .set_response_timeout(Some(command_limit(timeout)))
                .set_number_of_retries(1);
            let first = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
            let dial = {
                let client = client.clone();
                Box::new(move || -> RedisFuture<'static, _> {
                    let (client, config) = (client.clone(), config.clone());
                    Box::pin(ConnectionManager::new_with_config(client, config))
                })
            };
            let conn = Renewing::new(timeout, first, dial);
            let client = std::sync::Arc::new(client);
            Ok(Conn::Single { conn, client })
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
            // The response timeout is also each command's overall one,
            // retries and redirections included (redis-rs).
            let mut builder = ClusterClientBuilder::new(urls.clone())
                .connection_timeout(timeout)
                .response_timeout(command_limit(timeout));
            if ca.is_some() && *tls {
                builder = builder.certs(certs());
            }
            let client = builder.build()?;
            let config = redis::cluster::ClusterConfig::new()
                .set_connection_timeout(timeout)
                .set_response_timeout(command_limit(timeout));
            let first = client.get_pending_async_connection_with_config(config.clone());
            let dial = Box::new(move || -> RedisFuture<'static, _> {
                let (client, config) = (client.clone(), config.clone());
                Box::pin(async move { client.get_async_connection_with_config(config).await })
            });
            let conn = Renewing::new(timeout, first, dial);
            let nodes = urls
                .iter()
                .map(|u| match ca {
                    Some(_) if *tls => Client::build_with_tls(u.as_str(), certs()),
                    _ => Client::open(u.as_str()),
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

    /// The cluster connection, for commands routed to chosen nodes.
    pub fn cluster(&self) -> Option<ClusterConnection> {
        match self {
            Conn::Cluster { conn, .. } => Some(conn.connection()),
            _ => None,
        }
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
    /// that answers. Redis counts receivers per node, so the count covers
    /// the instances subscribed on that node: every one when they share
    /// their first seed and reached it, fewer otherwise (never more; the
    /// barrier's receiver check is then best effort, and cannot hang).
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
            // Repeated on a dead connection: every fleet message is safe
            // to receive twice (forgetting again, acknowledging again).
            _ => publish.query_async(&mut self.repeating()).await,
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
            Conn::Single { conn, .. } => conn.req_packed_command(cmd),
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
            Conn::Single { conn, .. } => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster { conn, .. } => conn.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(s) => s.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single { conn, .. } => conn.get_db(),
            Conn::Cluster { conn, .. } => conn.get_db(),
            Conn::Sentinel(s) => s.get_db(),
        }
    }
}
