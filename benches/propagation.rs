//! Revocation propagation across three keygate instances sharing one real
//! redis-server (spawned here): each round mints a key, has every instance
//! cache it, revokes it through the first instance's keyring (what the admin
//! API and the CLI call) and times the call. The call returns only when all
//! three instances have acknowledged that they forgot the key (the fleet's
//! barrier), so its duration bounds the propagation latency.
//!
//!     cargo bench --bench propagation
//!     ROUNDS=2000 cargo bench --bench propagation
//!
//! The three instances run in this process (a 2-thread runtime), each with
//! its own listener, Redis connections, subscription and cache.

use std::time::{Duration, Instant};

use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keygate::app::{self, Running, TlsMode};
use keygate::audit::Actor;
use keygate::keyring::{Claim, Keyring, Revocation, Ttl};
use keygate::keys::{KeyId, Scope};
use keygate::store::Store;

mod support {
    pub mod redis;
}
use support::redis::Redis;

async fn instance(dir: &std::path::Path, redis_url: &str, upstream: &str) -> (Keyring, Running) {
    let text = format!(
        r#"
[listen]
addr = "127.0.0.1:0"
plaintext = true
[upstream]
url = "{upstream}"
[auth]
anonymous = "reject"
[store]
kind = "redis"
url = "{redis_url}"
namespace = "propagation"
secret_file = "{dir}/secret"
[admin]
addr = "127.0.0.1:0"
token_file = "{dir}/token"
[log]
access_log = false
"#,
        dir = dir.display()
    );
    let config = keygate::config::parse(&text).expect("bench config is valid");
    let keyring = Keyring::from_config(&config, Claim::IfProven)
        .await
        .expect("redis answers");
    let running = app::start(&config, TlsMode::FromConfig, &keyring)
        .await
        .expect("keygate starts");
    (keyring, running)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let (redis, store) = Redis::start("propagation").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("secret"),
        "0123456789abcdef0123456789abcdef-bench\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("token"),
        "bench:bench-token-0123456789abcdef\n",
    )
    .unwrap();

    // The upstream: keygate dev's echo server would do; any 200 is enough.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_url = format!("http://{}", upstream.local_addr().unwrap());
    tokio::spawn(keygate::echo::serve(upstream));

    let mut fleet = Vec::new();
    for _ in 0..3 {
        fleet.push(instance(dir.path(), &redis.url, &upstream_url).await);
    }
    let Store::Redis(redis_store) = &store else {
        unreachable!()
    };
    for _ in 0..200 {
        if redis_store.members().await.unwrap().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        redis_store.members().await.unwrap().len(),
        3,
        "three members registered"
    );

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let mut took = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let new = fleet[0]
            .0
            .mint(&Actor::cli(), "bench", Ttl::Default, "", Scope::Full)
            .await
            .unwrap();
        // Twice per instance: the second answer comes from the cache.
        for (_, running) in &fleet {
            for _ in 0..2 {
                let req = http::Request::get(format!("http://{}/", running.main_addr))
                    .header("apikey", new.key.expose())
                    .body(Empty::new())
                    .unwrap();
                let status = client.request(req).await.unwrap().status();
                assert_eq!(status, 200);
            }
        }
        let id = KeyId::parse(new.record.id.as_str()).unwrap();
        let t = Instant::now();
        let done = fleet[0]
            .0
            .revoke(&Actor::cli(), Revocation::Ids(vec![id]))
            .await
            .unwrap();
        took.push(t.elapsed());
        assert_eq!(done.fleet.acknowledged.len(), 3, "{:?}", done.fleet);
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "revocation barrier, 3 instances, {rounds} rounds: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&took, 0.50)),
        ms(percentile(&took, 0.90)),
        ms(percentile(&took, 0.99)),
        ms(*took.last().unwrap())
    );
    for (_, running) in fleet {
        running.shutdown().await;
    }
    drop(redis);
}
