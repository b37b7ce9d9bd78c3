//! A Redis restart that Redis itself survives costs no caller a failed call
//! (issue 15): every connection keygate holds dies with the old process and
//! is found dead by its next command, which is then sent again on a fresh
//! connection when it is safe to repeat. A real redis-server, stopped and
//! started again on the same port; each call comes after a restart, on
//! connections that were idle when Redis went away.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use keygate::audit::Event;
use keygate::store::{Store, StoreError};

use crate::store_conformance::{record, DAY};
use crate::support::admin::{call, create_key, json_of};
use crate::support::client::{self, get, HttpsClient};
use crate::support::eventually;
use crate::support::gateway::{builder, TestGateway};
use crate::support::redis::RedisServer;
use crate::support::upstream::Upstream;

const TIMEOUT: Duration = Duration::from_secs(2);

/// Every operation of the store contract, each the first call after a
/// restart: none fails.
#[tokio::test]
async fn every_store_call_right_after_a_restart_succeeds() {
    let mut redis = RedisServer::start();
    let store = Store::redis(&redis.url(), "restart", TIMEOUT)
        .await
        .unwrap();
    let redis_store = store.as_redis().unwrap();
    let (_, a) = record("alice", DAY);
    let (_, b) = record("bob", DAY);
    let (_, c) = record("carol", DAY);

    let step = |what: &'static str, r: Result<(), StoreError>| {
        if let Err(e) = r {
            panic!("{what} right after a Redis restart: {e}");
        }
    };
    redis.restart();
    step("ping", store.ping().await);
    redis.restart();
    step("ready", store.ready().await);
    for r in [&a, &b, &c] {
        redis.restart();
        step("insert", store.insert(r).await);
    }
    redis.restart();
    assert_eq!(store.get(a.id.as_str()).await.unwrap().as_ref(), Some(&a));
    redis.restart();
    assert_eq!(store.list(None).await.unwrap().len(), 3);
    redis.restart();
    assert_eq!(store.list(Some("bob")).await.unwrap(), vec![b.clone()]);
    redis.restart();
    step("touch", store.touch(&a.id, 1_700_000_000).await);
    assert_eq!(
        store.get(a.id.as_str()).await.unwrap().unwrap().last_used,
        Some(1_700_000_000)
    );

    let event = Event::new("tester", "create", "key x", 1, None);
    redis.restart();
    step("append_audit", store.append_audit(&event).await);
    redis.restart();
    assert_eq!(
        crate::store_conformance::audit_since(&store, 0, 10).await,
        vec![event],
        "the event, once"
    );
    redis.restart();
    let (count, _) = store
        .count_in_window("alice", Duration::from_secs(60))
        .await
        .expect("count_in_window right after a restart");
    assert_eq!(count, 1, "counted once");
    redis.restart();
    step(
        "put_settings",
        store.put_settings("{\"x\":1}").await.map(drop),
    );
    redis.restart();
    assert_eq!(
        store.settings().await.unwrap().as_deref(),
        Some("{\"x\":1}")
    );

    redis.restart();
    step(
        "heartbeat",
        redis_store.heartbeat("3000:me", 60_000).await.map(drop),
    );
    redis.restart();
    assert_eq!(redis_store.members().await.unwrap(), vec!["3000:me"]);
    redis.restart();
    step("leave", redis_store.leave("3000:me").await);
    let mut sub = redis_store.pubsub().await.unwrap();
    sub.subscribe("bus").await.unwrap();
    redis.restart();
    // The subscriber died with the server: nobody hears it, but it is sent.
    assert_eq!(redis_store.publish("bus", "x").await.unwrap(), 0);

    redis.restart();
    assert_eq!(
        store.revoke_ids(std::slice::from_ref(&a.id)).await.unwrap(),
        1
    );
    redis.restart();
    assert_eq!(store.revoke_users(&["bob".to_owned()]).await.unwrap(), 1);
    redis.restart();
    assert_eq!(store.revoke_all().await.unwrap(), 1);
    assert!(store.list(None).await.unwrap().is_empty());
}

/// A gateway without the cache, so that nothing touches Redis between the
/// calls (every connection is idle when Redis restarts), and a client.
async fn gateway(
    redis: &RedisServer,
    dir: &std::path::Path,
) -> (Upstream, TestGateway, HttpsClient) {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .redis(redis, dir, "restart")
        .set("auth", "anonymous = \"reject\"")
        .set("cache", "enabled = false")
        .start()
        .await;
    let c = client::h1(&gw.ca);
    (up, gw, c)
}

/// The case: after a restart the first admin call, and the first
/// request on the main listener, succeed.
#[tokio::test]
async fn the_first_admin_call_and_request_after_a_restart_succeed() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (_up, gw, c) = gateway(&redis, dir.path()).await;
    let (key, id) = create_key(&c, &gw, "alice").await;
    let settings = json_of(&call(&c, &gw, Method::GET, "/v1/settings", None).await);

    redis.restart();
    assert_eq!(
        gw.status_with_key(&c, &key).await,
        StatusCode::OK,
        "a key lookup"
    );
    redis.restart();
    let (second, second_id) = create_key(&c, &gw, "bob").await;
    assert_eq!(gw.status_with_key(&c, &second).await, StatusCode::OK);
    redis.restart();
    let listed = call(&c, &gw, Method::GET, "/v1/keys", None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text());
    assert_eq!(json_of(&listed)["keys"].as_array().unwrap().len(), 2);
    redis.restart();
    let audit = call(&c, &gw, Method::GET, "/v1/audit", None).await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.text());
    let created = json_of(&audit)["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "create")
        .count();
    assert_eq!(created, 2, "both creations audited: {}", audit.text());
    redis.restart();
    let put = call(&c, &gw, Method::PUT, "/v1/settings", Some(settings)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text());
    redis.restart();
    let got = call(&c, &gw, Method::GET, "/v1/settings", None).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    redis.restart();
    let revoked = call(
        &c,
        &gw,
        Method::POST,
        "/v1/revoke",
        Some(json!({ "ids": [id] })),
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text());
    assert_eq!(json_of(&revoked)["revoked"], 1);
    redis.restart();
    let deleted = call(
        &c,
        &gw,
        Method::DELETE,
        &format!("/v1/keys/{second_id}"),
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    redis.restart();
    assert_eq!(
        get(&c, &gw.admin_url("/readyz")).await.status,
        StatusCode::OK
    );

    // Back empty: a key it lacks is refused (401), not an outage (503).
    let (third, _) = create_key(&c, &gw, "carol").await;
    redis.restart_empty();
    assert_eq!(
        gw.status_with_key(&c, &third).await,
        StatusCode::UNAUTHORIZED
    );
}

/// Two instances with the cache: after Redis restarts empty both join the
/// fleet again by themselves, a key made then works on both at once, and a
/// revocation through one is acknowledged by both (their pub/sub
/// connections are back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_rejoins_after_a_restart_and_hears_revocations() {
    let mut redis = RedisServer::start();
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut gws = Vec::new();
    for _ in 0..2 {
        gws.push(
            builder(&up.url())
                .redis(&redis, dir.path(), "rejoin")
                .set("auth", "anonymous = \"reject\"")
                .set("cache", "lease = \"1s\"")
                .start()
                .await,
        );
    }
    let cs: Vec<HttpsClient> = gws.iter().map(|g| client::h1(&g.ca)).collect();
    let joined = |times: f64| {
        let (gws, cs) = (&gws, &cs);
        async move {
            for (gw, c) in gws.iter().zip(cs) {
                eventually(
                    "the instance joins the fleet",
                    200,
                    Duration::from_millis(50),
                    || async {
                        (gw.metric(c, "keygate_fleet_connected").await == 1.0
                            && gw.metric(c, "keygate_fleet_joins").await >= times)
                            .then_some(())
                    },
                )
                .await;
            }
        }
    };
    joined(1.0).await;
    let (before, _) = create_key(&cs[0], &gws[0], "alice").await;
    assert_eq!(
        gws[1].status_with_key(&cs[1], &before).await,
        StatusCode::OK
    );

    redis.restart_empty();
    joined(2.0).await;
    let (key, id) = create_key(&cs[0], &gws[0], "bob").await;
    for (gw, c) in gws.iter().zip(&cs) {
        assert_eq!(
            gw.status_with_key(c, &before).await,
            StatusCode::UNAUTHORIZED,
            "gone with the old data"
        );
        // Twice: the second answer may come from the cache.
        for _ in 0..2 {
            assert_eq!(gw.status_with_key(c, &key).await, StatusCode::OK);
        }
    }
    let revoked = call(
        &cs[0],
        &gws[0],
        Method::POST,
        "/v1/revoke",
        Some(json!({ "ids": [id] })),
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text());
    let answer = json_of(&revoked);
    assert_eq!(answer["revoked"], 1);
    assert_eq!(
        answer["instances"]["acknowledged"].as_array().map(Vec::len),
        Some(2),
        "both instances heard the revocation: {answer}"
    );
    for (gw, c) in gws.iter().zip(&cs) {
        assert_eq!(gw.status_with_key(c, &key).await, StatusCode::UNAUTHORIZED);
    }
}

/// However often an instance lost its subscription before, it is back
/// within one lease of losing it again: the retries of one outage do not
/// slow down the next one.
#[tokio::test]
async fn an_instance_rejoins_within_a_lease_however_often_it_lost_touch() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = builder(&up.url())
        .redis(&redis, dir.path(), "again")
        .set("cache", "lease = \"1s\"")
        .start()
        .await;
    let c = client::h1(&gw.ca);
    let killer = redis::Client::open(redis.url()).unwrap();
    let mut killer = killer.get_multiplexed_async_connection().await.unwrap();
    let lease = Duration::from_secs(1);
    for round in 1..=8 {
        let joins = f64::from(round);
        eventually(
            "the instance joins",
            200,
            Duration::from_millis(10),
            || async { (gw.metric(&c, "keygate_fleet_joins").await >= joins).then_some(()) },
        )
        .await;
        let lost = std::time::Instant::now();
        let killed: i64 = redis::cmd("CLIENT")
            .arg(&["KILL", "TYPE", "pubsub"])
            .query_async(&mut killer)
            .await
            .unwrap();
        assert_eq!(killed, 1, "the instance's subscription");
        eventually(
            "the instance joins again",
            200,
            Duration::from_millis(10),
            || async { (gw.metric(&c, "keygate_fleet_joins").await > joins).then_some(()) },
        )
        .await;
        let back = lost.elapsed();
        assert!(
            back < lease,
            "outage {round}: back after {back:?}, more than a lease"
        );
    }
}
