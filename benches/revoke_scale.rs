//! Revocation at scale against a real redis-server (spawned here on a free
//! loopback port): revoke-all of REVOKE_KEYS keys (default 1,000,000) and
//! revoke-by-user of USER_KEYS keys (default 10,000), with the time each
//! takes, the keys counted, and this process's peak RSS before and after
//! (the revocation must stream ids in batches, not load them).
//!
//!     cargo bench --bench revoke_scale
//!     REVOKE_KEYS=100000 cargo bench --bench revoke_scale

use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use keygate::keys::{self, DigestKey, Scope};
use keygate::store::Store;

mod support {
    pub mod redis;
}
use support::redis::Redis;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

async fn fill(store: &Store, user_of: impl Fn(usize) -> String, n: usize) {
    let digest = DigestKey::new(b"0123456789abcdef0123456789abcdef");
    stream::iter(0..n)
        .map(|i| {
            let record = keys::mint(
                "kg",
                &digest,
                &user_of(i),
                "",
                Scope::Full,
                Some(Duration::from_secs(86_400)),
            )
            .record;
            async move { store.insert(&record).await.expect("insert") }
        })
        .buffer_unordered(256)
        .collect::<Vec<()>>()
        .await;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let total = env_usize("REVOKE_KEYS", 1_000_000);
    let per_user = env_usize("USER_KEYS", 10_000);
    let (redis, store) = Redis::start("bench").await;

    let t = Instant::now();
    fill(&store, |i| format!("user{}", i % 50_000), total).await;
    println!(
        "inserted {total} keys for 50,000 users in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let rss_before = peak_rss_mib();
    let t = Instant::now();
    let n = store.revoke_all().await.expect("revoke all");
    let took = t.elapsed();
    println!(
        "revoke all: {n} keys in {:.2} s; peak RSS {rss_before:.1} MiB before, {:.1} MiB after",
        took.as_secs_f64(),
        peak_rss_mib()
    );
    assert_eq!(n as usize, total);

    fill(&store, |_| "bulk".to_owned(), per_user).await;
    let t = Instant::now();
    let n = store
        .revoke_users(&["bulk".to_owned()])
        .await
        .expect("revoke user");
    println!(
        "revoke one user's {n} keys in {:.3} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(n as usize, per_user);

    drop(redis);
}
