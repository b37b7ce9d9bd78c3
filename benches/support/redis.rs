//! A redis-server for a benchmark, on a free loopback port; killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use keygate::store::Store;

pub struct Redis {
    pub url: String,
    child: Child,
    dir: std::path::PathBuf,
}

impl Redis {
    /// Start it and connect a store (namespace `ns`) once it answers.
    pub async fn start(ns: &str) -> (Redis, Store) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("keygate-bench-{ns}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        // Owned from here on: killed and reaped on drop, also if it never answers.
        let redis = Redis {
            url: format!("redis://127.0.0.1:{port}/0"),
            child,
            dir,
        };
        for _ in 0..100 {
            if let Ok(store) = Store::redis(&redis.url, ns, Duration::from_secs(10)).await {
                return (redis, store);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not answer on {}", redis.url);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
