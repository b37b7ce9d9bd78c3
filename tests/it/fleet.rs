//! Many instances, one truth (issue 5): three keygate instances share one
//! Redis and cache keys; a revocation through one of them stops the keys on
//! all three before it answers, also when one instance is cut off from Redis.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::support::admin::{call, json_of};
use crate::support::client::{self, get, send, HttpsClient};
use crate::support::deploy::{replica_online, RedisCluster, SentinelSet};
use crate::support::gateway::{builder, Builder, TestGateway};
use crate::support::load::{await_traffic_after, finish, no_revoked_key_after, Sent};
use crate::support::proxy::Relay;
use crate::support::redis::{store_section_for, RedisServer};
use crate::support::upstream::Upstream;
use crate::support::{body, eventually, within};

const LEASE: &str = "1s";

struct Fleet {
    gateways: Vec<TestGateway>,
    clients: Vec<HttpsClient>,
    /// Between the third instance and Redis, when the test cuts it off.
    proxy: Option<Relay>,
    redis_url: String,
    /// The Redis servers, stopped on drop.
    _servers: Box<dyn std::any::Any + Send>,
    _upstream: Upstream,
    _dir: tempfile::TempDir,
}

/// Where the fleet keeps its keys.
enum Deployment {
    Standalone,
    /// Standalone, the third instance behind a relay the test can stall.
    StandaloneCut,
    /// Standalone, the first instance as its own ACL user `first` (every
    /// right, until the test takes some away).
    StandaloneOwnUser,
    Cluster,
    Sentinel,
    /// A master (the fleet's store) and its replica, kept as
    /// `(master, replica)`: a revocation waits for the replica (`WAIT`).
    Replicated,
    /// `StandaloneCut` with a fleet epoch made an hour ago in this
    /// namespace (a deployment long in service: no revocation takes it for
    /// a store emptied just now).
    StandaloneAged(&'static str),
}

/// Three instances on one Redis deployment.
async fn fleet(ns: &str, deployment: Deployment) -> Fleet {
    fleet_with(ns, deployment, [LEASE; 3], Duration::ZERO).await
}

/// Three instances with these `cache.lease`s, started `stagger` apart (so
/// their renewals fall at different times).
async fn fleet_with(
    ns: &str,
    deployment: Deployment,
    leases: [&str; 3],
    stagger: Duration,
) -> Fleet {
    fleet_configured(ns, deployment, leases, stagger, |_, _| {}).await
}

/// `fleet_with`, each instance's configuration (by its index) given more lines.
async fn fleet_configured(
    ns: &str,
    deployment: Deployment,
    leases: [&str; 3],
    stagger: Duration,
    more: impl Fn(usize, &mut Builder),
) -> Fleet {
    let mut first_url = None;
    let (url, servers, proxy): (String, Box<dyn std::any::Any + Send>, _) = match deployment {
        Deployment::Standalone => {
            let redis = RedisServer::start();
            (redis.url(), Box::new(redis), None)
        }
        Deployment::StandaloneCut => {
            let redis = RedisServer::start();
            let proxy = Relay::to_port(redis.port).await;
            (redis.url(), Box::new(redis), Some(proxy))
        }
        Deployment::StandaloneOwnUser => {
            let redis = RedisServer::start();
            first_url = Some(redis.own_user("first"));
            (redis.url(), Box::new(redis), None)
        }
        Deployment::StandaloneAged(ns) => {
            let redis = RedisServer::start();
            let client = redis::Client::open(redis.url()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let _: () = redis::cmd("EVAL")
                .arg(
                    "local t = redis.call('TIME') \
                     redis.call('SET', KEYS[1], (tonumber(t[1]) - 3600) * 1000 .. '-aged') \
                     return 0",
                )
                .arg(1)
                .arg(format!("{ns}:fleet:epoch"))
                .query_async(&mut conn)
                .await
                .unwrap();
            let proxy = Relay::to_port(redis.port).await;
            (redis.url(), Box::new(redis), Some(proxy))
        }
        Deployment::Replicated => {
            let master = RedisServer::start();
            let port = master.port;
            let replica = RedisServer::start_with(|_, _| {
                vec!["--replicaof".into(), "127.0.0.1".into(), port.to_string()]
            });
            replica_online(port);
            (master.url(), Box::new((master, replica)), None)
        }
        Deployment::Cluster => {
            let cluster = RedisCluster::start();
            (cluster.url(), Box::new(cluster), None)
        }
        Deployment::Sentinel => {
            let set = SentinelSet::start();
            (set.url(), Box::new(set), None)
        }
    };
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut gateways = Vec::new();
    for (i, lease) in leases.iter().enumerate() {
        let mut b = builder(&upstream.url());
        for line in store_section_for(&url, dir.path(), ns) {
            b.set("store", &line);
        }
        b.set("auth", "anonymous = \"reject\"")
            .set("cache", &format!("lease = \"{lease}\""))
            // the load's revoked keys must see 401s, not the failed-auth limit's 429s
            .set("rate_limit", "failed_auth_per_minute = 0");
        if let (2, Some(proxy)) = (i, &proxy) {
            b.set("store", &format!("url = \"{}\"", proxy.redis_url()));
        }
        if let (0, Some(first)) = (i, &first_url) {
            b.set("store", &format!("url = \"{first}\""));
        }
        more(i, &mut b);
        gateways.push(b.start().await);
        if i < 2 && !stagger.is_zero() {
            tokio::time::sleep(stagger).await;
        }
    }
    let clients = gateways.iter().map(|g| client::h1(&g.ca)).collect();
    let f = Fleet {
        gateways,
        clients,
        proxy,
        redis_url: url,
        _servers: servers,
        _upstream: upstream,
        _dir: dir,
    };
    for i in 0..3 {
        eventually(
            "every instance joins the fleet",
            100,
            Duration::from_millis(50),
            || {
                let f = &f;
                async move { (metric(f, i, "keygate_fleet_connected").await == 1.0).then_some(()) }
            },
        )
        .await;
    }
    f
}

/// A counter or gauge from an instance's /metrics.
async fn metric(f: &Fleet, i: usize, name: &str) -> f64 {
    f.gateways[i].metric(&f.clients[i], name).await
}

/// Requests from 4 workers per instance, round-robin over the keys, until `stop`.
fn load(
    f: &Fleet,
    victims: &[String],
    bystanders: &[String],
    stop: Arc<AtomicBool>,
) -> (Arc<Mutex<Vec<Sent>>>, Vec<tokio::task::JoinHandle<()>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let keys: Vec<(String, bool)> = victims
        .iter()
        .map(|k| (k.clone(), true))
        .chain(bystanders.iter().map(|k| (k.clone(), false)))
        .collect();
    let mut tasks = Vec::new();
    for instance in 0..3 {
        for worker in 0..4 {
            let (client, url) = (
                f.clients[instance].clone(),
                f.gateways[instance].url("/load"),
            );
            let (keys, log, stop) = (keys.clone(), log.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = worker;
                while !stop.load(Ordering::Relaxed) {
                    let (key, victim) = &keys[n % keys.len()];
                    n += 1;
                    let req = Request::get(&url)
                        .header("authorization", basic(key))
                        .body(body::empty())
                        .unwrap();
                    let started = Instant::now();
                    let status = send(&client, req).await.status;
                    log.lock().unwrap().push(Sent {
                        started,
                        instance,
                        victim: *victim,
                        status,
                    });
                }
            }));
        }
    }
    (log, tasks)
}

fn basic(key: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("apikey:{key}"))
    )
}

/// Keys for the victim user (to be revoked) and for a bystander.
async fn keys(f: &Fleet) -> (Vec<String>, Vec<String>) {
    let mut victims = Vec::new();
    let mut bystanders = Vec::new();
    for _ in 0..3 {
        victims.push(f.gateways[0].key("victim").await.0);
        bystanders.push(f.gateways[1].key("bystander").await.0);
    }
    (victims, bystanders)
}

/// Wait until every instance has let victims in (their caches are warm).
async fn warm(log: &Mutex<Vec<Sent>>) {
    eventually(
        "victim keys work on every instance",
        200,
        Duration::from_millis(25),
        || async {
            let log = log.lock().unwrap();
            (0..3)
                .all(|i| {
                    log.iter()
                        .filter(|s| s.instance == i && s.victim && s.status == StatusCode::OK)
                        .count()
                        >= 20
                })
                .then_some(())
        },
    )
    .await;
}

async fn revoke_victim(f: &Fleet) -> (Value, Instant) {
    let answer = call(
        &f.clients[0],
        &f.gateways[0],
        Method::POST,
        "/v1/revoke",
        Some(json!({ "users": ["victim"] })),
    )
    .await;
    let answered = Instant::now();
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    (json_of(&answer), answered)
}

/// How many instances a revocation answer lists as (acknowledged, unacknowledged).
fn acks(answer: &Value) -> (usize, usize) {
    let n = |k: &str| {
        answer["instances"][k]
            .as_array()
            .unwrap_or_else(|| panic!("no instances.{k} in {answer}"))
            .len()
    };
    (n("acknowledged"), n("unacknowledged"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_one_instance_stops_the_keys_on_all_three_before_it_answers() {
    barrier_holds(fleet("barrier", Deployment::Standalone).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_barrier_holds_on_a_redis_cluster() {
    barrier_holds(fleet("barrier", Deployment::Cluster).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_barrier_holds_through_sentinel() {
    barrier_holds(fleet("barrier", Deployment::Sentinel).await).await;
}

/// Under load on all three, revoke a user through the first: every instance
/// acknowledges, and no request that starts after the answer gets in.
async fn barrier_holds(f: Fleet) {
    let (victims, bystanders) = keys(&f).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (log, tasks) = load(&f, &victims, &bystanders, stop.clone());
    within(20, "caches warm up", warm(&log)).await;
    for i in 0..3 {
        assert!(
            metric(&f, i, "keygate_cache_hits").await > 0.0,
            "instance {i} never used its cache"
        );
    }

    let (answer, answered) = revoke_victim(&f).await;
    assert_eq!(answer["revoked"], 3);
    assert_eq!(acks(&answer), (3, 0), "{answer}");

    await_traffic_after(&log, answered, 40).await;
    let log = finish(&stop, tasks, log).await;
    let bystanders_ok = no_revoked_key_after(&log, answered);
    assert!(bystanders_ok > 30, "other users' keys must keep working");
    assert!(
        log.iter()
            .filter(|s| s.started > answered && s.victim)
            .all(|s| s.status == StatusCode::UNAUTHORIZED),
        "a revoked key gets 401 on every instance"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_cut_off_from_redis_stops_revoked_keys_by_the_time_the_revocation_answers() {
    // The third instance reaches Redis through a relay that we stall: its
    // subscription (and every other connection) hangs without breaking.
    let f = fleet("cut", Deployment::StandaloneCut).await;
    let proxy = f.proxy.as_ref().unwrap();

    let (victims, bystanders) = keys(&f).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (log, tasks) = load(&f, &victims, &bystanders, stop.clone());
    within(20, "caches warm up", warm(&log)).await;

    proxy.stall();
    let started = Instant::now();
    let (answer, answered) = revoke_victim(&f).await;
    let waited = answered - started;
    assert_eq!(answer["revoked"], 3);
    assert_eq!(acks(&answer), (2, 1), "{answer}");
    assert!(
        waited >= Duration::from_secs(1),
        "the revocation must wait out the silent instance's lease, answered after {waited:?}"
    );

    // Still cut off after the answer: the cut instance refuses the revoked
    // key (its lease ran out, and it cannot ask Redis). Asked here rather
    // than left to the load, whose workers may all be waiting on Redis.
    let (cut, c) = (&f.gateways[2], &f.clients[2]);
    let refused =
        |s: StatusCode| s == StatusCode::UNAUTHORIZED || s == StatusCode::SERVICE_UNAVAILABLE;
    let while_cut = status(c, cut, &victims[0]).await;
    assert!(refused(while_cut), "while cut off: {while_cut}");
    tokio::time::sleep(Duration::from_millis(300)).await; // traffic after the answer
    proxy.heal();
    // Once back, the cut instance trusts nothing it cached before: the
    // bystander works again, the victim stays out.
    eventually(
        "the cut instance serves again",
        100,
        Duration::from_millis(50),
        || async { (status(c, cut, &bystanders[0]).await == StatusCode::OK).then_some(()) },
    )
    .await;
    assert_eq!(status(c, cut, &victims[0]).await, StatusCode::UNAUTHORIZED);
    let log = finish(&stop, tasks, log).await;
    no_revoked_key_after(&log, answered);
    assert!(
        log.iter()
            .filter(|s| s.started > answered && s.instance == 2 && s.victim)
            .all(|s| refused(s.status)),
        "the cut instance refuses (401, or 503 while it cannot ask Redis)"
    );
}

/// One instance with the cache, a key it has cached, and a client.
async fn cached_key(
    redis: &RedisServer,
    dir: &std::path::Path,
    up: &Upstream,
) -> (TestGateway, HttpsClient, String) {
    let gw = builder(&up.url())
        .redis(redis, dir, "outage")
        .set("auth", "anonymous = \"reject\"")
        .set("rate_limit", "failed_auth_per_minute = 0")
        .set("cache", &format!("lease = \"{LEASE}\""))
        .start()
        .await;
    let c = client::h1(&gw.ca);
    let (key, _) = gw.key("olivia").await;
    eventually(
        "the key is served from the cache",
        100,
        Duration::from_millis(20),
        || async {
            assert_eq!(status(&c, &gw, &key).await, StatusCode::OK);
            let hits = get(&c, &gw.admin_url("/metrics")).await.text();
            hits.lines()
                .any(|l| l.starts_with("keygate_cache_hits_total ") && !l.ends_with(" 0"))
                .then_some(())
        },
    )
    .await;
    (gw, c, key)
}

async fn status(c: &HttpsClient, gw: &TestGateway, key: &str) -> StatusCode {
    let req = Request::get(gw.url("/"))
        .header("authorization", basic(key))
        .body(body::empty())
        .unwrap();
    within(5, "an answer, never a hang", send(c, req))
        .await
        .status
}

/// Ask every 20 ms for `span`; the statuses with their time since `from`.
async fn ask_for(
    c: &HttpsClient,
    gw: &TestGateway,
    key: &str,
    span: Duration,
) -> Vec<(Duration, StatusCode)> {
    let from = Instant::now();
    let mut seen = Vec::new();
    while from.elapsed() < span {
        let at = from.elapsed();
        seen.push((at, status(c, gw, key).await));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

#[tokio::test]
async fn a_redis_that_comes_back_empty_means_401_never_a_cached_200() {
    let mut redis = RedisServer::start();
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (gw, c, key) = cached_key(&redis, dir.path(), &up).await;

    redis.restart_empty();
    // Once the instance is back in touch (it joined again)...
    eventually(
        "the instance joins the new Redis",
        100,
        Duration::from_millis(50),
        || async {
            let text = get(&c, &gw.admin_url("/metrics")).await.text();
            text.lines()
                .any(|l| l == "keygate_fleet_joins_total 2")
                .then_some(())
        },
    )
    .await;
    // ...nothing it cached before counts: the key the new Redis lacks is refused.
    let seen = ask_for(&c, &gw, &key, Duration::from_millis(500)).await;
    assert!(
        seen.iter().all(|(_, s)| *s == StatusCode::UNAUTHORIZED),
        "a key the new Redis does not hold came back: {seen:?}"
    );
}

/// A key with the id of `key` and another secret, its checksum recomputed
/// (`<prefix>_<id>_<secret><check>`, the check the CRC32 of what precedes
/// it in 6 base62 characters): it passes the offline checks and is looked
/// up by the cached id.
fn same_id_other_secret(key: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let body = &key[..key.len() - 6];
    let last = body.as_bytes()[body.len() - 1];
    let mut forged = body[..body.len() - 1].to_owned();
    forged.push(if last == b'a' { 'b' } else { 'a' });
    let mut n = u64::from(crc32fast::hash(forged.as_bytes()));
    let mut check = [b'0'; 6];
    for slot in check.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    forged.push_str(std::str::from_utf8(&check).unwrap());
    forged
}

#[tokio::test]
async fn a_cached_key_id_with_another_secret_gets_the_same_401_as_an_unknown_key() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (gw, c, key) = cached_key(&redis, dir.path(), &up).await;
    let forged = same_id_other_secret(&key);
    assert_ne!(forged, key);
    let (never_issued, _) = keygate::keys::format::generate("kg", "nobody");

    let answer = |k: String| {
        let (c, gw) = (&c, &gw);
        async move {
            let req = Request::get(gw.url("/"))
                .header("authorization", basic(&k))
                .body(body::empty())
                .unwrap();
            let r = within(5, "an answer", send(c, req)).await;
            (r.status, r.text())
        }
    };
    let forwarded_before = up.requests().len();
    let (forged_status, forged_body) = answer(forged).await;
    let (unknown_status, unknown_body) = answer(never_issued.expose().to_owned()).await;
    assert_eq!(forged_status, StatusCode::UNAUTHORIZED, "{forged_body}");
    assert_eq!(
        (forged_status, &forged_body),
        (unknown_status, &unknown_body)
    );
    assert_eq!(up.requests().len(), forwarded_before, "nothing forwarded");
    assert_eq!(
        status(&c, &gw, &key).await,
        StatusCode::OK,
        "the real key still passes"
    );
}

#[tokio::test]
async fn a_redis_that_stops_answering_ends_cached_answers_within_one_lease_then_503() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (gw, c, key) = cached_key(&redis, dir.path(), &up).await;

    redis.freeze();
    let seen = ask_for(&c, &gw, &key, Duration::from_millis(2500)).await;
    redis.thaw();
    let lease = Duration::from_secs(1);
    assert!(
        seen.iter()
            .all(|(at, s)| *s == StatusCode::SERVICE_UNAVAILABLE
                || (*s == StatusCode::OK && *at < lease)),
        "only 200s from the cache within one lease, then 503: {seen:?}"
    );
    assert_eq!(
        seen.last().unwrap().1,
        StatusCode::SERVICE_UNAVAILABLE,
        "{seen:?}"
    );
    // Back again: served, and the readiness probe agrees.
    eventually(
        "served again after the thaw",
        100,
        Duration::from_millis(50),
        || async { (status(&c, &gw, &key).await == StatusCode::OK).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_killed_again_and_again_during_a_revocation_let_no_revoked_key_in() {
    let f = fleet("chaos", Deployment::Standalone).await;
    let (victims, bystanders) = keys(&f).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (log, tasks) = load(&f, &victims, &bystanders, stop.clone());
    within(20, "caches warm up", warm(&log)).await;

    // Every 20 ms Redis drops every subscriber (the instances' and the
    // revoker's own reply channel): each instance empties its cache and
    // joins again, the revoker may hear no answer at all.
    let killing = Arc::new(AtomicBool::new(true));
    let killer = {
        let (url, killing) = (f.redis_url.clone(), killing.clone());
        tokio::spawn(async move {
            let client = redis::Client::open(url).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let mut kills = 0;
            while killing.load(Ordering::Relaxed) {
                let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
                    .arg(&["KILL", "TYPE", "pubsub"])
                    .query_async(&mut conn)
                    .await;
                kills += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            kills
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await; // cuts before the revocation too
    let (answer, answered) = revoke_victim(&f).await;
    assert_eq!(answer["revoked"], 3);
    tokio::time::sleep(Duration::from_millis(400)).await;
    killing.store(false, Ordering::Relaxed);
    assert!(killer.await.unwrap() > 10);
    let log = finish(&stop, tasks, log).await;
    assert!(
        no_revoked_key_after(&log, answered) > 30,
        "other users' keys keep working (from Redis while the cache is off)"
    );
    // Each instance lost its subscription and joined again: the test cut
    // something. The last join may come after the killing stopped.
    for i in 0..3 {
        eventually(
            "every instance joins again after losing its subscription",
            100,
            Duration::from_millis(50),
            || async { (metric(&f, i, "keygate_fleet_joins").await > 1.0).then_some(()) },
        )
        .await;
    }
}

/// A command on the fleet's Redis, from outside keygate (an operator's redis-cli).
async fn redis_cli(f: &Fleet, args: &[&str]) {
    let client = redis::Client::open(f.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut cmd = redis::cmd(args[0]);
    cmd.arg(&args[1..]);
    let _: () = cmd.query_async(&mut conn).await.unwrap();
}

/// A key of `user` that every instance has let in (and so cached): (secret, id).
async fn cached_everywhere(f: &Fleet, user: &str) -> (String, String) {
    let (key, id) = f.gateways[0].key(user).await;
    for i in 0..3 {
        for _ in 0..2 {
            assert_eq!(
                status(&f.clients[i], &f.gateways[i], &key).await,
                StatusCode::OK
            );
        }
    }
    (key, id)
}

/// Ask instance `i` until `key` gets `want`, for at most `ms` milliseconds.
/// Revoke key `id` through instance `i`: the answer, whose status must be `want`.
async fn revoke_id(f: &Fleet, i: usize, id: &str, want: StatusCode) -> client::Answer {
    let answer = call(
        &f.clients[i],
        &f.gateways[i],
        Method::POST,
        "/v1/revoke",
        Some(json!({ "ids": [id] })),
    )
    .await;
    assert_eq!(answer.status, want, "{}", answer.text());
    answer
}

async fn until_status(f: &Fleet, i: usize, key: &str, want: StatusCode, ms: u32, what: &str) {
    let (c, gw) = (&f.clients[i], &f.gateways[i]);
    eventually(what, ms / 20, Duration::from_millis(20), || async {
        (status(c, gw, key).await == want).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_whose_publish_fails_stops_the_key_on_the_revoker_at_once_and_the_others_within_a_lease(
) {
    let f = fleet("nopub", Deployment::Standalone).await;
    let (key, id) = cached_everywhere(&f, "publess").await;
    redis_cli(&f, &["ACL", "SETUSER", "default", "-publish"]).await;

    let answer = revoke_id(&f, 0, &id, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        answer
            .text()
            .contains("could not tell every keygate instance"),
        "{}",
        answer.text()
    );
    // The revoker itself never serves what it has just deleted.
    assert_eq!(
        status(&f.clients[0], &f.gateways[0], &key).await,
        StatusCode::UNAUTHORIZED
    );
    // The others cannot publish either: they stop trusting their caches
    // (and say so) within a lease, so they ask the store, which refuses.
    for i in 1..3 {
        eventually(
            "an instance that cannot publish counts as out of touch",
            100,
            Duration::from_millis(20),
            || async { (metric(&f, i, "keygate_fleet_connected").await == 0.0).then_some(()) },
        )
        .await;
        assert_eq!(
            status(&f.clients[i], &f.gateways[i], &key).await,
            StatusCode::UNAUTHORIZED
        );
    }
    redis_cli(&f, &["ACL", "SETUSER", "default", "+publish"]).await;
    for i in 0..3 {
        eventually(
            "back in touch once PUBLISH works again",
            100,
            Duration::from_millis(50),
            || async { (metric(&f, i, "keygate_fleet_connected").await == 1.0).then_some(()) },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_that_cannot_tell_the_fleet_says_so_and_the_old_key_still_dies_everywhere() {
    // Only the rotating instance cannot publish: the others stay in touch,
    // with the old key cached, and hear of the rotation only from the
    // background retry.
    let f = fleet("rotnopub", Deployment::StandaloneOwnUser).await;
    let rotate = |id: String| {
        let f = &f;
        async move {
            call(
                &f.clients[0],
                &f.gateways[0],
                Method::POST,
                &format!("/v1/keys/{id}/rotate"),
                Some(json!({ "grace": "2s" })),
            )
            .await
        }
    };
    // Heard everywhere: nothing to warn about.
    let (_, heard) = cached_everywhere(&f, "rot-heard").await;
    let answer = rotate(heard).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let body = json_of(&answer);
    assert_eq!(body["old_key_stopped_everywhere"], true, "{body}");
    assert!(body.get("warning").is_none(), "{body}");

    let (old, id) = cached_everywhere(&f, "rot-publess").await;
    redis_cli(&f, &["ACL", "SETUSER", "first", "-publish"]).await;
    let answer = rotate(id).await;
    // The successor is made and shown (once), and the answer says loudly
    // that the old key is not confirmed dead everywhere.
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let body = json_of(&answer);
    assert_eq!(body["old_key_stopped_everywhere"], false, "{body}");
    let warning = body["warning"].as_str().unwrap_or_default();
    assert!(warning.contains("not every keygate instance"), "{body}");
    let new = body["key"]
        .as_str()
        .expect("the successor's secret")
        .to_owned();
    // The rotating instance refuses nothing yet (grace), nor do the others.
    for i in 0..3 {
        assert_eq!(
            status(&f.clients[i], &f.gateways[i], &new).await,
            StatusCode::OK
        );
    }
    // The others still have the old key cached as it was (no expiry) and
    // are in touch: only the retry can make them drop it.
    for i in 1..3 {
        assert_eq!(metric(&f, i, "keygate_fleet_connected").await, 1.0);
    }
    redis_cli(&f, &["ACL", "SETUSER", "first", "+publish"]).await;
    // Past the grace, the old record is gone from Redis; an instance that
    // still served its cached copy would answer 200 for up to cache.max_age.
    for i in 0..3 {
        until_status(
            &f,
            i,
            &old,
            StatusCode::UNAUTHORIZED,
            6000,
            "the old key dies everywhere once the retry got through",
        )
        .await;
    }
    for i in 1..3 {
        assert_eq!(metric(&f, i, "keygate_fleet_connected").await, 1.0);
        assert!(
            metric(&f, i, "keygate_fleet_invalidations_total").await >= 2.0,
            "instance {i} heard the retried invalidation"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_flushed_from_redis_outside_keygate_stop_on_every_instance_within_a_lease() {
    let f = fleet("flush", Deployment::Standalone).await;
    let (key, _) = cached_everywhere(&f, "flushed").await;
    redis_cli(&f, &["FLUSHALL"]).await;
    for i in 0..3 {
        until_status(
            &f,
            i,
            &key,
            StatusCode::UNAUTHORIZED,
            2000,
            "a flushed key dies",
        )
        .await;
    }
    // The fleet joins again under the new epoch, and a key made since works.
    for i in 0..3 {
        eventually(
            "back in touch after the flush",
            100,
            Duration::from_millis(50),
            || async { (metric(&f, i, "keygate_fleet_connected").await == 1.0).then_some(()) },
        )
        .await;
    }
    let (fresh, _) = cached_everywhere(&f, "after-flush").await;
    assert_eq!(
        status(&f.clients[2], &f.gateways[2], &fresh).await,
        StatusCode::OK
    );
}

/// Refused: 401, or 503 while the instance cannot ask Redis.
fn refused(s: StatusCode) -> bool {
    s == StatusCode::UNAUTHORIZED || s == StatusCode::SERVICE_UNAVAILABLE
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_epoch_another_member_made_after_a_flush_still_makes_revocations_wait_out_the_longest_lease(
) {
    // The third instance, behind the relay, holds a longer lease than the
    // revoker: after a flush the registry cannot tell the revoker so.
    let f = fleet_with(
        "remade",
        Deployment::StandaloneCut,
        [LEASE, LEASE, "2s"],
        Duration::ZERO,
    )
    .await;
    let (key, id) = cached_everywhere(&f, "remade").await;
    // The revoker learns the fleet's leases at its renewals (every third of
    // its lease): let one pass since the third instance registered. Nothing
    // outside shows that renewal, hence a plain wait.
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The third instance goes silent with its key cached, then Redis looks
    // as it does a moment after a FLUSHALL that another member noticed
    // first: an empty registry and a fresh epoch that someone else made.
    // (The key record stays, so that it can be revoked.)
    f.proxy.as_ref().unwrap().stall();
    redis_cli(
        &f,
        &[
            "EVAL",
            "local t = redis.call('TIME') \
             redis.call('DEL', KEYS[1]) \
             redis.call('SET', KEYS[2], (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)) .. '-elsewhere') \
             return 0",
            "2",
            "remade:fleet:members",
            "remade:fleet:epoch",
        ],
    )
    .await;
    revoked_past_the_cut_off_one(&f, 0, &id, &key, "the cut-off instance").await;
}

/// Revoke `id` through instance `revoker` while the third instance is cut
/// off (stalled behind the relay), then heal it: once the revocation has
/// answered, the third must refuse `key`.
async fn revoked_past_the_cut_off_one(f: &Fleet, revoker: usize, id: &str, key: &str, what: &str) {
    let answer = revoke_id(f, revoker, id, StatusCode::OK).await;
    let after = status(&f.clients[2], &f.gateways[2], key).await;
    assert!(
        refused(after),
        "{what}: a revoked key accepted after the revocation answered: {after} ({})",
        answer.text()
    );
    f.proxy.as_ref().unwrap().heal();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flush_noticed_first_by_other_members_lets_no_revoked_key_through_a_cut_off_one() {
    // Review 28, finding 1: staggered starts, so that after a FLUSHALL
    // another member re-makes the epoch before the third (behind the
    // relay) renews; it caches a key minted then and goes silent.
    for attempt in 0..10u64 {
        let ns = format!("race{attempt}");
        let f = fleet_with(
            &ns,
            Deployment::StandaloneCut,
            [LEASE; 3],
            Duration::from_millis(60 + 25 * attempt),
        )
        .await;
        let joins: Vec<f64> = futures_util::future::join_all(
            (0..3).map(|i| metric(&f, i, "keygate_fleet_joins_total")),
        )
        .await;
        let client = redis::Client::open(f.redis_url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
        let epoch = format!("{ns}:fleet:epoch");
        eventually(
            "a member makes the epoch again",
            500,
            Duration::from_millis(2),
            || {
                let (conn, epoch) = (conn.clone(), &epoch);
                async move {
                    let mut conn = conn;
                    let e: Option<String> = redis::cmd("GET")
                        .arg(epoch)
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    e.map(drop)
                }
            },
        )
        .await;
        let now: Vec<f64> = futures_util::future::join_all(
            (0..3).map(|i| metric(&f, i, "keygate_fleet_joins_total")),
        )
        .await;
        // The third has not noticed yet, another one has (and joined again).
        let Some(revoker) = (0..2).find(|&i| now[i] > joins[i]) else {
            eprintln!("attempt {attempt}: joins {joins:?} -> {now:?}: no split");
            continue;
        };
        if now[2] != joins[2] {
            eprintln!("attempt {attempt}: the third noticed first");
            continue;
        }
        let (key, id) = f.gateways[revoker].key(&format!("racer{attempt}")).await;
        if status(&f.clients[2], &f.gateways[2], &key).await != StatusCode::OK {
            eprintln!("attempt {attempt}: the third did not let the fresh key in");
            continue;
        }
        f.proxy.as_ref().unwrap().stall();
        revoked_past_the_cut_off_one(&f, revoker, &id, &key, &format!("attempt {attempt}")).await;
        return;
    }
    panic!("no attempt reached the race (staggering never split the fleet)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_allowing_only_the_documented_channels_keeps_the_fleet_in_touch() {
    // Review 28, finding 2: the channels README names, nothing more.
    let f = fleet("acl", Deployment::Standalone).await;
    let joins: Vec<f64> =
        futures_util::future::join_all((0..3).map(|i| metric(&f, i, "keygate_fleet_joins_total")))
            .await;
    redis_cli(
        &f,
        &[
            "ACL",
            "SETUSER",
            "default",
            "resetchannels",
            "&acl:fleet:invalidate",
            "&acl:fleet:ack:*",
        ],
    )
    .await;
    // Two renewals (a third of the lease each) under the new ACL: nothing
    // outside shows a renewal that did not fail, hence a plain wait.
    tokio::time::sleep(Duration::from_millis(800)).await;
    for (i, before) in joins.iter().enumerate() {
        assert_eq!(metric(&f, i, "keygate_fleet_connected").await, 1.0);
        assert_eq!(
            metric(&f, i, "keygate_fleet_joins_total").await,
            *before,
            "instance {i} lost touch under the documented ACL"
        );
    }
    let (key, id) = cached_everywhere(&f, "acl-user").await;
    let answer = revoke_id(&f, 0, &id, StatusCode::OK).await;
    assert_eq!(acks(&json_of(&answer)), (3, 0), "{}", answer.text());
    for i in 0..3 {
        assert_eq!(
            status(&f.clients[i], &f.gateways[i], &key).await,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_lists_no_member_still_lets_no_revoked_key_in() {
    // A long lease: the members register again only every 10 s, so the
    // registry stays empty for the rest of the test.
    let f = fleet_with(
        "unlisted",
        Deployment::StandaloneAged("unlisted"),
        ["30s"; 3],
        Duration::ZERO,
    )
    .await;
    let (key, id) = cached_everywhere(&f, "unlisted").await;
    // What eviction under an allkeys-* maxmemory policy, or Redis' clock
    // stepping forward past every registration, leaves: every instance
    // subscribed and caching, none of them listed.
    redis_cli(&f, &["DEL", "unlisted:fleet:members"]).await;
    let answer = revoke_id(&f, 0, &id, StatusCode::OK).await;
    for i in 0..3 {
        let after = status(&f.clients[i], &f.gateways[i], &key).await;
        assert!(
            refused(after),
            "instance {i}: a revoked key accepted after the revocation answered: {after} ({})",
            answer.text()
        );
    }
    // Every instance heard it: the round did not wait out the 30 s lease.
    assert_eq!(acks(&json_of(&answer)), (3, 0), "{}", answer.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_missing_from_the_registry_and_cut_off_is_waited_out() {
    let f = fleet_with(
        "unlistedcut",
        Deployment::StandaloneAged("unlistedcut"),
        [LEASE; 3],
        Duration::ZERO,
    )
    .await;
    let (key, id) = cached_everywhere(&f, "unlistedcut").await;
    // The third goes silent with the key cached (its subscription stays
    // open: Redis still delivers to it) and drops out of the registry;
    // the others may register again before the revocation reads it.
    f.proxy.as_ref().unwrap().stall();
    redis_cli(&f, &["DEL", "unlistedcut:fleet:members"]).await;
    revoked_past_the_cut_off_one(&f, 0, &id, &key, "the unlisted cut-off instance").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_the_idle_sweep_revoked_unheard_stop_everywhere_once_the_fleet_can_be_told() {
    // Only the first instance sweeps idle keys, and it will not be able to
    // publish; the others stay in touch, with the key cached.
    let f = fleet_configured(
        "idleunheard",
        Deployment::StandaloneOwnUser,
        [LEASE; 3],
        Duration::ZERO,
        |i, b| {
            if i == 0 {
                b.set("keys", "revoke_unused_after = \"2s\"");
            }
        },
    )
    .await;
    let (key, id) = cached_everywhere(&f, "idle-unheard").await;
    redis_cli(&f, &["ACL", "SETUSER", "first", "-publish"]).await;
    let id = keygate::keys::KeyId::parse(&id).unwrap();
    eventually(
        "the sweep revokes the unused key",
        200,
        Duration::from_millis(50),
        || async {
            // Looked up, not used: a use would keep it alive.
            f.gateways[1]
                .keyring
                .get(&id)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    // No caller retries a sweep's revocation: keygate itself must tell
    // the others once it can.
    redis_cli(&f, &["ACL", "SETUSER", "first", "+publish"]).await;
    for i in 1..3 {
        until_status(
            &f,
            i,
            &key,
            StatusCode::UNAUTHORIZED,
            6000,
            "a key the idle sweep revoked dies everywhere once the fleet can be told",
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_no_replica_confirms_still_stops_the_cached_keys_everywhere() {
    let f = fleet("unconfirmed", Deployment::Replicated).await;
    let (key, id) = cached_everywhere(&f, "unconfirmed").await;
    let (_, replica) = f
        ._servers
        .downcast_ref::<(RedisServer, RedisServer)>()
        .expect("a master and its replica");
    // The master deletes the record, but no replica confirms it: the
    // revocation is an error (a failover could bring the key back).
    replica.freeze();
    revoke_id(&f, 0, &id, StatusCode::SERVICE_UNAVAILABLE).await;
    // Whatever the answer, the master refuses the key now: no instance
    // may accept it from its cache instead.
    for i in 0..3 {
        let after = status(&f.clients[i], &f.gateways[i], &key).await;
        assert!(
            refused(after),
            "instance {i}: a key deleted by a failed revocation accepted from the cache: {after}"
        );
    }
    replica.thaw();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_that_failed_in_the_store_after_its_write_still_ends_cached_copies_at_the_grace()
{
    let f = fleet("rotfailed", Deployment::StandaloneOwnUser).await;
    let (old, id) = cached_everywhere(&f, "rot-failed").await;
    // The rotating instance may not run ZREM: the rotation's script gives
    // the old record its grace, then fails, as a reply lost after the
    // script ran would (the script is not undone either way).
    redis_cli(&f, &["ACL", "SETUSER", "first", "-zrem"]).await;
    let answer = call(
        &f.clients[0],
        &f.gateways[0],
        Method::POST,
        &format!("/v1/keys/{id}/rotate"),
        // Long enough for the record to be read below on a loaded machine
        // (a fresh-clone run once took over a second to get there).
        Some(json!({ "grace": "4s" })),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text()
    );
    redis_cli(&f, &["ACL", "SETUSER", "first", "+zrem"]).await;
    let id = keygate::keys::KeyId::parse(&id).unwrap();
    let record = f.gateways[1].keyring.get(&id).await.unwrap();
    assert!(
        record.as_ref().is_some_and(|r| r.expires_at.is_some()),
        "the script gave the old key its grace: {record:?}"
    );
    // Past the grace the record is gone from Redis: a cached copy must go too.
    for i in 0..3 {
        until_status(
            &f,
            i,
            &old,
            StatusCode::UNAUTHORIZED,
            10000,
            "the old key dies everywhere at the grace's end",
        )
        .await;
    }
}

/// Clients of the Redis server on `port` subscribed to a channel.
async fn subscribers_on(port: u16) -> usize {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg(&["LIST", "TYPE", "pubsub"])
        .query_async(&mut conn)
        .await
        .unwrap();
    list.lines().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_that_lands_on_another_redis_than_the_commands_gives_no_lease() {
    // The third instance reaches Redis through one address (a relay: a
    // load balancer, a virtual IP) that is moved to another server, as in
    // a failover, while its open command connection stays with the first.
    // Its subscription breaks and comes back on the other server: it hears
    // no revocation there, however well its pings are answered.
    let f = fleet("moved", Deployment::StandaloneCut).await;
    let (key, id) = cached_everywhere(&f, "moved").await;
    let other = RedisServer::start();
    f.proxy.as_ref().unwrap().retarget(other.port);
    redis_cli(&f, &["CLIENT", "KILL", "TYPE", "pubsub"]).await;
    eventually(
        "the third instance subscribes again, on the other server",
        100,
        Duration::from_millis(20),
        || async { (subscribers_on(other.port).await > 0).then_some(()) },
    )
    .await;
    // Its requests meanwhile: the key is still live in the first server.
    let (c, moved) = (&f.clients[2], &f.gateways[2]);
    for _ in 0..30 {
        assert!(
            matches!(
                status(c, moved, &key).await,
                StatusCode::OK | StatusCode::SERVICE_UNAVAILABLE
            ),
            "a live key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    revoke_id(&f, 0, &id, StatusCode::OK).await;
    let seen = ask_for(c, moved, &key, Duration::from_millis(1000)).await;
    assert!(
        seen.iter().all(|(_, s)| refused(*s)),
        "a revoked key let in by an instance subscribed elsewhere: {seen:?}"
    );
}
