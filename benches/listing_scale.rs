//! `GET /v1/keys` over a million keys (issue 11): a real redis-server and a
//! real `keygate serve` process (this package's release binary), both
//! spawned here on loopback. LISTING_KEYS keys (default 1,000,000) over
//! LISTING_USERS users (default 10,000) are written by the store's bulk fill
//! (`Store::insert_many`: what `insert` writes, record and index members,
//! 1,000 keys per pipeline), then each listing is asked ROUNDS times
//! (default 1,000), one
//! request at a time on a kept-alive HTTP/1.1 connection to the admin
//! listener, and timed from request to the last byte of the answer:
//!
//! * the first page (`limit=100`), a middle page (by a cursor reached by
//!   walking half the keys), a one-user filter, a label filter, and the
//!   first page of keys expiring within a day (expiry order);
//! * beside them, the same first page asked of the store in this process
//!   (no HTTP, no JSON): the floor keygate's answer stands on.
//!
//! keygate's resident memory is read from /proc: idle (started, nothing
//! listed yet), then now and at its peak (VmHWM) after every phase: the
//! peak is reset after the walk to the middle (pages of 1,000), so the
//! listings by pages of 100 have a peak of their own. Redis's
//! `used_memory` gives the index cost per key. keygate's allocator
//! (mimalloc) reads `MIMALLOC_*` settings from the environment, which the
//! spawned `keygate serve` inherits.
//!
//!     cargo bench --bench listing_scale
//!     LISTING_KEYS=100000 ROUNDS=200 cargo bench --bench listing_scale

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keygate::keys::{self, DigestKey, Scope};
use keygate::store::{KeyFilter, Order, Store};

mod support {
    pub mod redis;
}
use support::redis::Redis;

const TOKEN: &str = "bench-token-0123456789abcdef";
const LABELS: [&str; 8] = [
    "ci",
    "laptop",
    "notebook",
    "cron",
    "backup",
    "deploy",
    "",
    "r-scripts",
];
const DAY: u64 = 86_400;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// VmRSS or VmHWM of a process, MiB.
fn memory_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Mint `keys` keys over `users` users (8 labels, 4 lifetimes) and write
/// them with the store's bulk fill, 1,000 per batch, 4 batches in flight.
async fn fill(store: &Store, keys: usize, users: usize) {
    let digest = DigestKey::new(b"0123456789abcdef0123456789abcdef-bench");
    let record = |i: usize| {
        let ttl = [DAY / 2, 30 * DAY, 90 * DAY, 365 * DAY][i % 4];
        keys::mint(
            "kg",
            &digest,
            &format!("user{}@example.org", i % users),
            LABELS[(i / users) % LABELS.len()],
            Scope::Full,
            Some(Duration::from_secs(ttl)),
        )
        .record
    };
    stream::iter((0..keys).step_by(1000))
        .map(|start| {
            let batch: Vec<_> = (start..(start + 1000).min(keys)).map(record).collect();
            async move { store.insert_many(&batch).await.expect("insert") }
        })
        .buffer_unordered(4)
        .collect::<Vec<()>>()
        .await;
}

/// `keygate serve` on the bench's Redis, plain HTTP on loopback.
struct Keygate {
    child: std::process::Child,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Keygate {
    fn start(redis_url: &str) -> Keygate {
        let dir = tempfile::tempdir().unwrap();
        let port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (main, admin) = (port(), port());
        std::fs::write(
            dir.path().join("secret"),
            "0123456789abcdef0123456789abcdef-bench\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("token"), format!("bench:{TOKEN}\n")).unwrap();
        let config = dir.path().join("keygate.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[listen]
addr = "127.0.0.1:{main}"
plaintext = true
[upstream]
url = "http://127.0.0.1:9"
[store]
kind = "redis"
url = "{redis_url}"
namespace = "listing"
secret_file = "secret"
[admin]
addr = "127.0.0.1:{admin}"
token_file = "token"
plaintext = true
[log]
access_log = false
level = "warn"
"#
            ),
        )
        .unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
            .arg("serve")
            .arg("-c")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start keygate serve");
        Keygate {
            child,
            admin: format!("http://127.0.0.1:{admin}"),
            _dir: dir,
        }
    }
}

impl Drop for Keygate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

/// GET an admin path: status, body, and the time to its last byte.
async fn get(client: &Http, url: &str) -> (u16, Bytes, Duration) {
    let req = http::Request::get(url)
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Empty::new())
        .unwrap();
    let t = Instant::now();
    let resp = client.request(req).await.expect("keygate answers");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, body, t.elapsed())
}

fn json(body: &Bytes) -> serde_json::Value {
    serde_json::from_slice(body).expect("JSON")
}

/// Ask `path()` `rounds` times; p50, p99, max and the keys per answer.
async fn measure(
    client: &Http,
    base: &str,
    rounds: usize,
    mut path: impl FnMut(usize) -> String,
) -> (Vec<Duration>, usize) {
    let mut times = Vec::with_capacity(rounds);
    let mut listed = 0;
    for i in 0..rounds {
        let (status, body, took) = get(client, &format!("{base}{}", path(i))).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        listed = json(&body)["keys"].as_array().map_or(0, Vec::len);
        times.push(took);
    }
    times.sort();
    (times, listed)
}

/// keygate's resident memory now and at its peak so far.
fn rss(pid: u32) -> String {
    format!(
        "keygate RSS {:.1} MiB, peak {:.1} MiB",
        memory_mib(pid, "VmRSS:"),
        memory_mib(pid, "VmHWM:")
    )
}

fn row(name: &str, times: &[Duration], listed: usize, after: &str) {
    println!(
        "| {name} | {listed} | {:.2} | {:.2} | {:.2} | {after} |",
        ms(percentile(times, 0.50)),
        ms(percentile(times, 0.99)),
        ms(*times.last().unwrap()),
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let total = env_usize("LISTING_KEYS", 1_000_000);
    let users = env_usize("LISTING_USERS", 10_000);
    let rounds = env_usize("ROUNDS", 1_000);
    println!("load average at start: {}", load());
    let (redis, store) = Redis::start("listing").await;

    let t = Instant::now();
    fill(&store, total, users).await;
    println!(
        "inserted {total} keys over {users} users in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let mut raw = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let info: String = redis::cmd("INFO").arg("memory").query(&mut raw).unwrap();
    let used: f64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    println!(
        "Redis used_memory {:.0} MiB, {:.0} bytes per key (record and every index)",
        used / 1048576.0,
        used / total as f64
    );

    let kg = Keygate::start(&redis.url);
    let client: Http = Client::builder(TokioExecutor::new()).build_http();
    let base = kg.admin.clone();
    let mut ready = false;
    for _ in 0..600 {
        let req = http::Request::get(format!("{base}/readyz"))
            .body(Empty::new())
            .unwrap();
        if let Ok(r) = client.request(req).await {
            if r.status() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "keygate serve never became ready");
    let pid = kg.child.id();
    let idle = memory_mib(pid, "VmRSS:");
    println!("keygate ready: {}", rss(pid));
    // Keys written straight to the store have no expiry notices yet:
    // keygate files them once after its start (the notice backfill, as
    // after an upgrade). Measure that, then list in the steady state.
    let t = Instant::now();
    let due = "listing:{lifecycle}:due";
    let (mut filed, mut still) = (0u64, 0);
    for _ in 0..1200 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let n: u64 = redis::cmd("ZCARD").arg(due).query(&mut raw).unwrap();
        still = if n == filed && n > 0 { still + 1 } else { 0 };
        filed = n;
        if still == 6 {
            break;
        }
    }
    println!(
        "notice backfill: {filed} notices filed in about {:.0} s; {}",
        t.elapsed().as_secs_f64() - 3.0,
        rss(pid)
    );
    let backfill_peak = memory_mib(pid, "VmHWM:");
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");

    // A cursor half way: walk half the keys, 1,000 at a time.
    let t = Instant::now();
    let mut cursor = String::new();
    let mut walked = 0;
    while walked < total / 2 {
        let path = match walked {
            0 => "/v1/keys?limit=1000".to_owned(),
            _ => format!("/v1/keys?limit=1000&cursor={cursor}"),
        };
        let (status, body, _) = get(&client, &format!("{base}{path}")).await;
        assert_eq!(status, 200);
        let page = json(&body);
        walked += page["keys"].as_array().unwrap().len();
        cursor = page["next_cursor"].as_str().expect("more pages").to_owned();
    }
    println!(
        "walked {walked} keys, 1,000 per page, in {:.1} s ({:.1} ms per page); {}",
        t.elapsed().as_secs_f64(),
        t.elapsed().as_secs_f64() * 1000.0 / (walked / 1000) as f64,
        rss(pid)
    );
    let walk_peak = memory_mib(pid, "VmHWM:");
    // The peak of the listings below on their own: first pages of 100 until
    // the allocator has given back what the walk freed, then 5 resets
    // VmHWM to the current RSS (proc(5), /proc/pid/clear_refs).
    measure(&client, &base, 200, |_| "/v1/keys?limit=100".into()).await;
    let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let before = memory_mib(pid, "VmRSS:");
    println!("peak reset: {reset}; {}", rss(pid));

    println!("\n| listing (`GET /v1/keys?…`) | keys | p50 ms | p99 ms | max ms | after it |");
    println!("|---|---:|---:|---:|---:|---|");
    let (t, n) = measure(&client, &base, rounds, |_| "/v1/keys?limit=100".into()).await;
    row("first page `limit=100`", &t, n, &rss(pid));
    let (t, n) = measure(&client, &base, rounds, |_| {
        format!("/v1/keys?limit=100&cursor={cursor}")
    })
    .await;
    row(
        &format!("middle page `limit=100&cursor=…` (after key {walked})"),
        &t,
        n,
        &rss(pid),
    );
    let (t, n) = measure(&client, &base, rounds, |i| {
        format!(
            "/v1/keys?limit=100&user=user{}%40example.org",
            (i * 7919) % users
        )
    })
    .await;
    row("one user `limit=100&user=…`", &t, n, &rss(pid));
    let (t, n) = measure(&client, &base, rounds, |_| {
        "/v1/keys?limit=100&label=ci".into()
    })
    .await;
    row("one label `limit=100&label=ci`", &t, n, &rss(pid));
    let tomorrow =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(DAY));
    let (t, n) = measure(&client, &base, rounds, |_| {
        format!("/v1/keys?limit=100&sort=expires&expires_before={tomorrow}")
    })
    .await;
    row("expiring within a day, expiry order", &t, n, &rss(pid));

    // The floor: the store's own page, in this process.
    let mut floor = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let page = store
            .page(Order::default(), &KeyFilter::default(), None, 100)
            .await
            .unwrap();
        floor.push(t.elapsed());
        assert_eq!(page.keys.len(), 100);
    }
    floor.sort();
    row(
        "(floor) the store's first page, in process",
        &floor,
        100,
        &rss(pid),
    );

    let peak = memory_mib(pid, "VmHWM:");
    println!(
        "\nkeygate RSS: idle {idle:.1} MiB; the notice backfill peaked at {backfill_peak:.1} MiB \
         (+{:.1} MiB); the walk by pages of 1,000 at {walk_peak:.1} MiB (+{:.1} MiB over idle)",
        backfill_peak - idle,
        walk_peak - idle
    );
    if reset {
        println!(
            "the listings by pages of 100 (after 200 first pages, then the peak reset at \
             {before:.1} MiB) peaked at {peak:.1} MiB (+{:.1} MiB over idle)",
            peak - idle
        );
    }
    println!("load average at end: {}", load());
}
