//! Redis slow, not down (issue 15): a relay between keygate and a real
//! redis-server adds a second to every reply, or stops a reply half-way.
//! Requests answer 503 within `store.timeout` instead of waiting for Redis,
//! keys cached before keep working while the cache's lease lasts, nothing
//! hangs, and once the relay passes everything again keygate recovers by
//! itself, without a restart. A connection that goes silent for good is
//! replaced, so keygate recovers even while it stays silent.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::json;

use crate::support::admin::{call, create_key, json_of};
use crate::support::client::{self, HttpsClient};
use crate::support::deploy::{query, RedisCluster};
use crate::support::eventually;
use crate::support::gateway::{builder, TestGateway};
use crate::support::proxy::{Mode, Relay};
use crate::support::redis::{store_section_for, RedisServer};
use crate::support::upstream::Upstream;

/// `store.timeout` here: well under the relay's delay.
const STORE_TIMEOUT: Duration = Duration::from_millis(300);
/// The cache's lease (`cache.lease`).
const LEASE: Duration = Duration::from_secs(1);
/// What the relay adds to every reply.
const DELAY: Duration = Duration::from_secs(1);
/// The longest any answer may take while Redis is slow: `store.timeout`
/// and room for a loaded machine, yet less than the delay, so an answer
/// within it never waited for Redis.
const ANSWER_WITHIN: Duration = Duration::from_millis(900);

#[tokio::test]
async fn a_redis_that_answers_a_second_late_means_503_in_time_then_recovery() {
    slow_redis(Mode::Delay(DELAY)).await;
}

#[tokio::test]
async fn a_redis_that_stops_half_way_through_a_reply_means_503_in_time_then_recovery() {
    slow_redis(Mode::CutReply).await;
}

/// A connection that goes silent for good, without a reset (a firewall or
/// NAT that forgot the flow): the call on it fails closed in time, and the
/// connection is replaced, so keys work again and the instance rejoins the
/// fleet while the old connection stays open and silent.
#[tokio::test]
async fn a_redis_connection_gone_silent_for_good_is_replaced() {
    gone_silent(Slowed::start().await).await;
}

/// The same in a Cluster, whose nodes clients reach through relays: every
/// node's connection goes silent at once.
#[tokio::test]
async fn a_redis_cluster_connection_gone_silent_for_good_is_replaced() {
    gone_silent(Slowed::cluster().await).await;
}

/// One Cluster node silent for good, for old connections and new ones
/// alike: the keys on the other nodes keep working throughout, and the
/// silent node's keys fail closed once the cache's lease is over.
#[tokio::test]
async fn one_silent_cluster_node_leaves_the_other_nodes_keys_working() {
    let s = Slowed::cluster().await;
    let (gw, c) = (&s.gw, &s.c);
    // Keys until both the node about to go silent and the others hold a
    // few (asked of that node directly).
    let (mut silent, mut working) = (Vec::new(), Vec::new());
    for i in 0..60 {
        if silent.len() >= 3 && working.len() >= 3 {
            break;
        }
        let (key, id) = create_key(c, gw, &format!("user{i}")).await;
        let records: Vec<String> =
            query(s.nodes[0], redis::cmd("KEYS").arg("slow:*:key:*")).unwrap();
        match records.iter().any(|r| r.ends_with(&format!(":key:{id}"))) {
            true => silent.push((key, id)),
            false => working.push((key, id)),
        }
    }
    assert!(
        silent.len() >= 3 && working.len() >= 3,
        "keys on the silent node: {silent:?}, elsewhere: {working:?}"
    );

    s.relays[0].stall();
    s.relays[0].strand();
    let stalled = Instant::now();
    let mut seen = Vec::new();
    for _ in 0..8 {
        for ((key, id), is_silent) in working
            .iter()
            .map(|k| (k, false))
            .chain(silent.iter().map(|k| (k, true)))
        {
            let at = stalled.elapsed();
            let status = gw.status_with_key(c, key).await;
            seen.push((at, id.clone(), is_silent, status, stalled.elapsed() - at));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let wrong: Vec<_> = seen
        .iter()
        .filter(|(at, _, is_silent, status, took)| {
            *took >= ANSWER_WITHIN
                || (!is_silent && *status != StatusCode::OK)
                || (*is_silent
                    && *at > LEASE + STORE_TIMEOUT
                    && *status != StatusCode::SERVICE_UNAVAILABLE)
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "(since the stall, key, on the silent node, status, took): {wrong:#?}"
    );
}

async fn gone_silent(s: Slowed) {
    let (gw, c) = (&s.gw, &s.c);
    let uncached = &s.uncached;

    for relay in &s.relays {
        relay.strand();
    }
    let asked = Instant::now();
    assert_eq!(
        gw.status_with_key(c, uncached).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "a key not cached is 503 while its connection is silent (fail closed)"
    );
    assert!(
        asked.elapsed() < ANSWER_WITHIN,
        "took {:?}",
        asked.elapsed()
    );

    eventually(
        "keys work again on a new connection",
        50,
        Duration::from_millis(50),
        || async { (gw.status_with_key(c, uncached).await == StatusCode::OK).then_some(()) },
    )
    .await;
    // Writes have a connection of their own, replaced at its first
    // timeout too (a creation, or the fleet's heartbeat, in the background).
    let fresh = eventually(
        "keys can be created again",
        50,
        Duration::from_millis(50),
        || async {
            let created = call(
                c,
                gw,
                Method::POST,
                "/v1/keys",
                Some(json!({ "user": "rita" })),
            );
            let created = created.await;
            (created.status == StatusCode::CREATED)
                .then(|| json_of(&created)["key"].as_str().unwrap().to_owned())
        },
    )
    .await;
    assert_eq!(gw.status_with_key(c, &fresh).await, StatusCode::OK);
    served_from_the_cache(gw, c, &fresh).await;
}

/// A gateway whose store is reached through a relay the test controls,
/// with a short `store.timeout` and cache lease, and two keys: one served
/// from the cache, one never used. Fields drop in order: the gateway before
/// the relay and Redis.
struct Slowed {
    c: HttpsClient,
    gw: TestGateway,
    cached: String,
    uncached: String,
    _dir: tempfile::TempDir,
    _up: Upstream,
    /// One per Redis node.
    relays: Vec<Relay>,
    /// The nodes' own ports, one per relay.
    nodes: Vec<u16>,
    /// The Redis server or Cluster, stopped last.
    _redis: Box<dyn std::any::Any + Send>,
}

impl Slowed {
    /// One server behind one relay.
    async fn start() -> Slowed {
        let redis = RedisServer::start();
        let relay = Relay::to_port(redis.port).await;
        let url = relay.redis_url();
        let nodes = vec![redis.port];
        Slowed::through(&url, vec![relay], nodes, Box::new(redis)).await
    }

    /// A three-master Cluster, each node behind a relay.
    async fn cluster() -> Slowed {
        let cluster = RedisCluster::start();
        let mut relays = Vec::new();
        for node in &cluster.nodes {
            relays.push(Relay::to_port(node.port).await);
        }
        let ports: Vec<u16> = relays.iter().map(|r| r.addr.port()).collect();
        let url = cluster.announce(&ports);
        let nodes = cluster.nodes.iter().map(|n| n.port).collect();
        Slowed::through(&url, relays, nodes, Box::new(cluster)).await
    }

    async fn through(
        url: &str,
        relays: Vec<Relay>,
        nodes: Vec<u16>,
        redis: Box<dyn std::any::Any + Send>,
    ) -> Slowed {
        let up = Upstream::start().await;
        let dir = tempfile::tempdir().unwrap();
        let mut b = builder(&up.url());
        for line in store_section_for(url, dir.path(), "slow") {
            b.set("store", &line);
        }
        let gw = b
            .set(
                "store",
                &format!("timeout = \"{}ms\"", STORE_TIMEOUT.as_millis()),
            )
            .set("auth", "anonymous = \"reject\"")
            .set("rate_limit", "failed_auth_per_minute = 0")
            .set("cache", &format!("lease = \"{}ms\"", LEASE.as_millis()))
            .start()
            .await;
        let c = client::h1(&gw.ca);
        let (cached, _) = create_key(&c, &gw, "olivia").await;
        let (uncached, _) = create_key(&c, &gw, "peter").await;
        served_from_the_cache(&gw, &c, &cached).await;
        Slowed {
            c,
            gw,
            cached,
            uncached,
            _dir: dir,
            _up: up,
            relays,
            nodes,
            _redis: redis,
        }
    }
}

/// One answer while Redis was slow.
#[derive(Debug)]
struct Seen {
    /// Since the relay turned slow.
    at: Duration,
    cached: bool,
    status: StatusCode,
    took: Duration,
}

async fn slow_redis(mode: Mode) {
    let s = Slowed::start().await;
    let (relay, gw, c) = (&s.relays[0], &s.gw, &s.c);
    let (cached, uncached) = (&s.cached, &s.uncached);

    relay.set(mode);
    let slowed = Instant::now();
    let mut seen = Vec::new();
    while slowed.elapsed() < 2 * LEASE + STORE_TIMEOUT {
        for (key, is_cached) in [(&cached, true), (&uncached, false)] {
            let at = slowed.elapsed();
            let status = gw.status_with_key(c, key).await;
            let took = slowed.elapsed() - at;
            seen.push(Seen {
                at,
                cached: is_cached,
                status,
                took,
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = Instant::now();
    let create = call(
        c,
        gw,
        Method::POST,
        "/v1/keys",
        Some(json!({ "user": "quinn" })),
    )
    .await;
    let create_took = asked.elapsed();

    let slow: Vec<&Seen> = seen.iter().filter(|s| s.took >= ANSWER_WITHIN).collect();
    assert!(slow.is_empty(), "answers that waited for Redis: {slow:?}");
    assert!(
        seen.iter()
            .filter(|s| !s.cached)
            .all(|s| s.status == StatusCode::SERVICE_UNAVAILABLE),
        "a key not cached is 503 (fail closed): {seen:?}"
    );
    let cached_seen: Vec<&Seen> = seen.iter().filter(|s| s.cached).collect();
    assert_eq!(
        cached_seen[0].status,
        StatusCode::OK,
        "a cached key keeps working while its lease lasts: {seen:?}"
    );
    assert!(
        cached_seen
            .iter()
            .all(|s| s.status == StatusCode::SERVICE_UNAVAILABLE
                || (s.status == StatusCode::OK && s.at < LEASE)),
        "a cached key works within one lease, then 503: {seen:?}"
    );
    assert_eq!(
        cached_seen.last().unwrap().status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{seen:?}"
    );
    assert_eq!(
        create.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        create.text()
    );
    assert!(
        create_took < ANSWER_WITHIN,
        "a key creation took {create_took:?}"
    );

    // The relay passes everything again: keygate recovers by itself.
    relay.set(Mode::Pass);
    eventually(
        "keys work again",
        100,
        Duration::from_millis(50),
        || async { (gw.status_with_key(c, uncached).await == StatusCode::OK).then_some(()) },
    )
    .await;
    assert_eq!(gw.status_with_key(c, cached).await, StatusCode::OK);
    let (fresh, _) = create_key(c, gw, "rita").await;
    assert_eq!(gw.status_with_key(c, &fresh).await, StatusCode::OK);
    served_from_the_cache(gw, c, &fresh).await;
}

/// Wait until `key` works and is answered from the cache (the instance is
/// in the fleet and the cache hits rise).
async fn served_from_the_cache(gw: &TestGateway, c: &HttpsClient, key: &str) {
    eventually(
        "the key is served from the cache",
        100,
        Duration::from_millis(50),
        || async {
            let hits = gw.metric(c, "keygate_cache_hits").await;
            assert_eq!(gw.status_with_key(c, key).await, StatusCode::OK);
            (gw.metric(c, "keygate_fleet_connected").await == 1.0
                && gw.metric(c, "keygate_cache_hits").await > hits)
                .then_some(())
        },
    )
    .await;
}
