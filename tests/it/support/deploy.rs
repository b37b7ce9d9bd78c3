//! Real Redis deployments on loopback for the store: a 3-master Cluster made
//! with `redis-cli --cluster create`, a master + replica + Sentinel set, and
//! a TLS server. Every process on its own ephemeral ports and directory,
//! killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis::{await_ping, free_port, RedisServer};
use super::tls::Ca;

/// Poll `check` every 20 ms until it holds, for `secs` at most.
fn wait_until(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what}: not within {secs}s");
}

/// One command on a plain connection to `port` (test bookkeeping only).
pub fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    cmd.query(&mut connect(port)?)
}

fn connect(port: u16) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    Ok(conn)
}

/// Wait until a replica confirms a write to the master on `port` (WAIT).
/// Neither "link up" on the replica nor "online" in the master's ROLE is
/// enough: after a diskless sync the master streams writes only from the
/// replica's first REPLCONF ACK, up to a second later, and a master killed
/// before that takes every write with it.
pub fn replica_online(port: u16) {
    wait_until("a replica confirms a write", 20, || {
        connect(port)
            .and_then(|mut conn| {
                redis::pipe()
                    .cmd("SET")
                    .arg("test:replication-probe")
                    .arg(1)
                    .ignore()
                    .cmd("DEL")
                    .arg("test:replication-probe")
                    .ignore()
                    .cmd("WAIT")
                    .arg(1)
                    .arg(100)
                    .query::<(i64,)>(&mut conn)
            })
            .is_ok_and(|(acked,)| acked >= 1)
    });
}

/// A master and a replica of it that has caught up.
pub fn master_and_replica() -> (RedisServer, RedisServer) {
    let master = RedisServer::start();
    let port = master.port;
    let replica = RedisServer::start_with(|_, _| {
        vec!["--replicaof".into(), "127.0.0.1".into(), port.to_string()]
    });
    replica_online(port);
    (master, replica)
}

/// Certificate, key and CA files for redis-server's TLS options.
struct TlsFiles {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    ca: std::path::PathBuf,
}

impl TlsFiles {
    fn write(ca: &Ca, dir: &Path) -> TlsFiles {
        let (cert, key) = ca.leaf("redis").write(dir);
        let ca_file = dir.join("redis-ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        TlsFiles {
            cert,
            key,
            ca: ca_file,
        }
    }

    /// TLS on `tls_port` (clients need no certificate), and `extra` such as
    /// `tls-replication yes`.
    fn args(&self, tls_port: u16, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            self.cert.display().to_string(),
            "--tls-key-file".into(),
            self.key.display().to_string(),
            "--tls-ca-cert-file".into(),
            self.ca.display().to_string(),
            "--tls-auth-clients".into(),
            "no".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }
}

pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    /// With TLS: each node's TLS port (clients and the cluster bus use TLS).
    tls_ports: Option<Vec<u16>>,
}

impl RedisCluster {
    /// Three masters, no replicas, all 16,384 slots assigned, state ok.
    pub fn start() -> RedisCluster {
        RedisCluster::start_with(None, 0)
    }

    /// The same over TLS (`tls-cluster yes`), certificates from `ca`.
    pub fn start_tls(ca: &Ca, files: &Path) -> RedisCluster {
        RedisCluster::start_with(Some((ca, files)), 0)
    }

    /// Three masters with a replica each, every replica streaming writes.
    pub fn start_replicated() -> RedisCluster {
        let cluster = RedisCluster::start_with(None, 1);
        for master in cluster.masters() {
            wait_until("a replica confirms a write", 20, || {
                // A key this master owns: the others answer MOVED.
                (0..64).any(|i| {
                    let key = format!("test:probe{i}");
                    connect(master)
                        .and_then(|mut c| {
                            redis::pipe()
                                .cmd("SET")
                                .arg(&key)
                                .arg(1)
                                .ignore()
                                .cmd("DEL")
                                .arg(&key)
                                .ignore()
                                .cmd("WAIT")
                                .arg(1)
                                .arg(100)
                                .query::<(i64,)>(&mut c)
                        })
                        .is_ok_and(|(acked,)| acked >= 1)
                })
            });
        }
        cluster
    }

    /// The plain ports of the nodes that are masters now.
    pub fn masters(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .map(|n| n.port)
            .filter(|&p| {
                query::<Vec<redis::Value>>(p, &redis::cmd("ROLE")).is_ok_and(
                    |r| matches!(r.first(), Some(redis::Value::BulkString(b)) if b == b"master"),
                )
            })
            .collect()
    }

    fn start_with(tls: Option<(&Ca, &Path)>, replicas: usize) -> RedisCluster {
        let tls_files = tls.map(|(ca, files)| TlsFiles::write(ca, files));
        let mut tls_ports = Vec::new();
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| {
                let tls_port = free_port();
                tls_ports.push(tls_port);
                RedisServer::start_with(|_, _| {
                    let mut args: Vec<String> = [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                        // The bus port would be port + 10000, maybe past 65535 or taken.
                        "--cluster-port",
                        &free_port().to_string(),
                    ]
                    .map(String::from)
                    .to_vec();
                    if let Some(files) = &tls_files {
                        args.extend(files.args(tls_port, &["--tls-cluster", "yes"]));
                    }
                    args
                })
            })
            .collect();
        let tls_ports = tls_files.as_ref().map(|_| tls_ports);
        let mut create = Command::new("redis-cli");
        if let Some(files) = &tls_files {
            create.arg("--tls").arg("--cacert").arg(&files.ca);
        }
        let ports: Vec<u16> = match &tls_ports {
            Some(t) => t.clone(),
            None => nodes.iter().map(|n| n.port).collect(),
        };
        let out = create
            .arg("--cluster")
            .arg("create")
            .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli is installed with redis-server");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for node in &nodes {
            wait_until("cluster_state:ok on every node", 20, || {
                query::<String>(node.port, redis::cmd("CLUSTER").arg("INFO"))
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            });
        }
        RedisCluster { nodes, tls_ports }
    }

    pub fn url(&self) -> String {
        match &self.tls_ports {
            Some(ports) => {
                let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
                format!("rediss+cluster://{}", hosts.join(","))
            }
            None => {
                let hosts: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.port))
                    .collect();
                format!("redis+cluster://{}", hosts.join(","))
            }
        }
    }

    /// Make each node tell clients to reach it on `ports[i]` (a relay in
    /// front of it) instead of its own port, and wait until every node's
    /// slot map says so: a client that follows the map then goes through
    /// the relays. `redis+cluster://` with the relays' addresses.
    pub fn announce(&self, ports: &[u16]) -> String {
        assert_eq!(ports.len(), self.nodes.len());
        for (node, port) in self.nodes.iter().zip(ports) {
            let set = redis::cmd("CONFIG")
                .arg("SET")
                .arg("cluster-announce-port")
                .arg(port)
                .clone();
            query::<()>(node.port, &set).unwrap();
        }
        // The other nodes learn a node's new port from its gossip.
        wait_until("every node's slot map names the relays", 20, || {
            self.nodes.iter().all(|n| {
                query::<Vec<Vec<redis::Value>>>(n.port, redis::cmd("CLUSTER").arg("SLOTS"))
                    .is_ok_and(|slots| {
                        slots.iter().all(|range| {
                            range[2..].iter().all(|node| {
                                matches!(node, redis::Value::Array(n)
                                    if matches!(n.get(1), Some(redis::Value::Int(p))
                                        if ports.contains(&(*p as u16))))
                            })
                        })
                    })
            })
        });
        let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// Every key stored on each node (port, keys); the test's namespace only.
    pub fn keys_by_node(&self, pattern: &str) -> Vec<(u16, Vec<String>)> {
        self.nodes
            .iter()
            .map(|n| {
                let keys = query(n.port, redis::cmd("KEYS").arg(pattern)).unwrap();
                (n.port, keys)
            })
            .collect()
    }
}

/// A master, one replica and one Sentinel (quorum 1) that fails over within
/// seconds: `down-after-milliseconds` 1000, `failover-timeout` 5000.
pub struct SentinelSet {
    pub master: RedisServer,
    pub replica: RedisServer,
    pub sentinel_port: u16,
    /// With TLS: the sentinel's TLS port (every link of the set is TLS).
    sentinel_tls_port: Option<u16>,
    sentinel: Child,
    _sentinel_dir: tempfile::TempDir,
}

pub const MASTER_NAME: &str = "keygate-test";

impl SentinelSet {
    pub fn start() -> SentinelSet {
        SentinelSet::start_with(None)
    }

    /// The same with TLS on every link: clients, replication, sentinel.
    pub fn start_tls(ca: &Ca, files: &Path) -> SentinelSet {
        SentinelSet::start_with(Some((ca, files)))
    }

    fn start_with(tls: Option<(&Ca, &Path)>) -> SentinelSet {
        let files = tls.map(|(ca, dir)| TlsFiles::write(ca, dir));
        let tls_args = |port: u16| match &files {
            Some(f) => f.args(port, &["--tls-replication", "yes"]),
            None => Vec::new(),
        };
        let master_tls = free_port();
        let master = RedisServer::start_with(|_, _| tls_args(master_tls));
        // What the sentinel monitors and the replica follows.
        let master_port = match files {
            Some(_) => master_tls,
            None => master.port,
        };
        let replica_tls = free_port();
        let replica = RedisServer::start_with(|_, _| {
            let mut args = vec![
                "--replicaof".into(),
                "127.0.0.1".into(),
                master_port.to_string(),
            ];
            args.extend(tls_args(replica_tls));
            args
        });
        replica_online(master.port);
        let sentinel_tls = free_port();
        let (sentinel, sentinel_port, dir) = (0..5)
            .find_map(|_| {
                let dir = tempfile::tempdir().unwrap();
                let port = free_port();
                let conf = dir.path().join("sentinel.conf");
                let tls_conf: String = tls_args(sentinel_tls)
                    .chunks(2)
                    .map(|kv| format!("{} {}\n", kv[0].trim_start_matches("--"), kv[1]))
                    .collect();
                std::fs::write(
                    &conf,
                    format!(
                        "port {port}\nbind 127.0.0.1\ndir {}\n{tls_conf}\
                         sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 1\n\
                         sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
                         sentinel failover-timeout {MASTER_NAME} 5000\n",
                        dir.path().display()
                    ),
                )
                .unwrap();
                // redis-sentinel is redis-server in sentinel mode (Debian ships no separate binary).
                let child = Command::new("redis-server")
                    .arg(&conf)
                    .arg("--sentinel")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                await_ping(child, port).map(|c| (c, port, dir))
            })
            .expect("redis-server --sentinel did not start");
        let set = SentinelSet {
            master,
            replica,
            sentinel_port,
            sentinel_tls_port: files.as_ref().map(|_| sentinel_tls),
            sentinel,
            _sentinel_dir: dir,
        };
        wait_until("the sentinel knows the replica", 20, || {
            query::<Vec<std::collections::HashMap<String, String>>>(
                sentinel_port,
                redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER_NAME),
            )
            .is_ok_and(|r| {
                r.iter()
                    .any(|r| r.get("flags").is_some_and(|f| f == "slave"))
            })
        });
        set
    }

    pub fn url(&self) -> String {
        match self.sentinel_tls_port {
            Some(port) => format!("rediss+sentinel://127.0.0.1:{port}/{MASTER_NAME}/0"),
            None => format!(
                "redis+sentinel://127.0.0.1:{}/{MASTER_NAME}/0",
                self.sentinel_port
            ),
        }
    }

    /// The master's port as the sentinel names it now.
    pub fn current_master(&self) -> Option<u16> {
        let addr: Vec<String> = query(
            self.sentinel_port,
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(MASTER_NAME),
        )
        .ok()?;
        addr.get(1)?.parse().ok()
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        let _ = self.sentinel.kill();
        let _ = self.sentinel.wait();
    }
}

/// A redis-server that speaks TLS on `tls_port` (certificate from `ca`, for
/// 127.0.0.1 and localhost) and plain TCP on its other port (readiness).
pub struct TlsRedis {
    /// Kept for its lifetime: the process dies with it.
    _server: RedisServer,
    pub tls_port: u16,
}

impl TlsRedis {
    pub fn start(ca: &Ca, files: &Path) -> TlsRedis {
        let files = TlsFiles::write(ca, files);
        let tls_port = free_port();
        let server = RedisServer::start_with(|_, _| files.args(tls_port, &[]));
        TlsRedis {
            _server: server,
            tls_port,
        }
    }

    pub fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}/0", self.tls_port)
    }
}
