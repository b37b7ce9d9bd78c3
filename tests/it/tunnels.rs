//! A revoked key's open WebSocket tunnels close: on the instance that
//! revokes it and on every other one that hears the revocation; another
//! key's tunnel, and a rotated key's (still in its grace), stay open.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use http::{Method, StatusCode};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::WebSocketStream;

use crate::support::admin::{call, json_of};
use crate::support::client::{self, basic, raw_tls};
use crate::support::gateway::{builder, Builder, TestGateway};
use crate::support::proxy::Relay;
use crate::support::redis::{store_section_for, RedisServer};
use crate::support::upstream::{websocket_echo, websocket_echoes};
use crate::support::{eventually, within};

type Ws = WebSocketStream<TlsStream<TcpStream>>;

/// A WebSocket through `gw` admitted by `key`.
async fn websocket_with_key(gw: &TestGateway, key: &str) -> Ws {
    let tls = raw_tls(gw.addr, &gw.ca).await;
    let mut req = format!("wss://localhost:{}/socket", gw.addr.port())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", basic(key).parse().unwrap());
    let (ws, resp) = within(
        10,
        "WebSocket handshake",
        tokio_tungstenite::client_async(req, tls),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws
}

/// `ws` ends (close frame, end of stream or a reset) within `ms` milliseconds.
async fn closes_within(ws: &mut Ws, ms: u64, what: &str) {
    let ended = tokio::time::timeout(Duration::from_millis(ms), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => break,
                Some(Ok(m)) if m.is_close() => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "{what}: still open {ms} ms later");
}

async fn admin(gw: &TestGateway, method: Method, path: &str, body: serde_json::Value) -> String {
    let c = client::h1(&gw.ca);
    let answer = call(&c, gw, method, path, Some(body)).await;
    assert!(answer.status.is_success(), "{path}: {}", answer.text());
    json_of(&answer).to_string()
}

async fn rotate(gw: &TestGateway, id: &str) {
    admin(
        gw,
        Method::POST,
        &format!("/v1/keys/{id}/rotate"),
        json!({ "grace": "1h" }),
    )
    .await;
}

/// Revoke key `id` through `gw`; the answer, and when it came.
async fn revoke(gw: &TestGateway, id: &str) -> (String, Instant) {
    let answer = admin(gw, Method::POST, "/v1/revoke", json!({ "ids": [id] })).await;
    (answer, Instant::now())
}

#[tokio::test]
async fn a_revoked_keys_tunnel_closes_on_the_instance_that_revokes_it() {
    let ws_addr = websocket_echo().await;
    let gw = builder(&format!("http://{ws_addr}"))
        .set("auth", "anonymous = \"reject\"")
        .start()
        .await;
    let (victim, victim_id) = gw.key("victim").await;
    let (other, _) = gw.key("bystander").await;
    let mut victim_ws = websocket_with_key(&gw, &victim).await;
    let mut other_ws = websocket_with_key(&gw, &other).await;
    websocket_echoes(&mut victim_ws, "before").await;
    websocket_echoes(&mut other_ws, "before").await;

    // A rotation leaves the old key valid through its grace: its tunnel too.
    rotate(&gw, &victim_id).await;
    websocket_echoes(&mut victim_ws, "after the rotation").await;

    revoke(&gw, &victim_id).await;
    closes_within(&mut victim_ws, 1000, "the revoked key's tunnel").await;
    websocket_echoes(&mut other_ws, "another key's tunnel after the revocation").await;
    // The revoked key opens no new one.
    let tls = raw_tls(gw.addr, &gw.ca).await;
    let mut req = format!("wss://localhost:{}/socket", gw.addr.port())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", basic(&victim).parse().unwrap());
    assert!(tokio_tungstenite::client_async(req, tls).await.is_err());
}

/// Instances on one real Redis in front of a WebSocket echo backend, each
/// with these `[cache]` lines; those with the cache on have joined the fleet.
async fn instances(
    redis: &RedisServer,
    dir: &std::path::Path,
    ns: &str,
    caches: &[&str],
    more: impl Fn(usize, &mut Builder),
) -> Vec<TestGateway> {
    let ws_addr = websocket_echo().await;
    let mut gateways = Vec::new();
    for (i, cache) in caches.iter().enumerate() {
        let mut b = builder(&format!("http://{ws_addr}"));
        for line in store_section_for(&redis.url(), dir, ns) {
            b.set("store", &line);
        }
        b.set("auth", "anonymous = \"reject\"")
            .set("cache", "lease = \"1s\"")
            .set("cache", cache);
        more(i, &mut b);
        gateways.push(b.start().await);
    }
    for (gw, cache) in gateways.iter().zip(caches) {
        if cache.contains("false") {
            continue;
        }
        let c = client::h1(&gw.ca);
        eventually(
            "the instance joins the fleet",
            100,
            Duration::from_millis(50),
            || {
                let (gw, c) = (gw, &c);
                async move { (gw.metric(c, "keygate_fleet_connected").await == 1.0).then_some(()) }
            },
        )
        .await;
    }
    gateways
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_one_instance_closes_the_keys_tunnels_on_another() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let gateways = instances(
        &redis,
        dir.path(),
        "tunnels",
        &["enabled = true"; 2],
        |_, _| {},
    )
    .await;
    let (a, b) = (&gateways[0], &gateways[1]);
    let (victim, victim_id) = a.key("victim").await;
    let (other, _) = a.key("bystander").await;
    let mut on_b = websocket_with_key(b, &victim).await;
    let mut on_a = websocket_with_key(a, &victim).await;
    let mut other_on_b = websocket_with_key(b, &other).await;
    for ws in [&mut on_b, &mut on_a, &mut other_on_b] {
        websocket_echoes(ws, "before").await;
    }

    // Rotated through A: B forgets its cached copy, the tunnels stay.
    rotate(a, &victim_id).await;
    websocket_echoes(&mut on_b, "after the rotation").await;
    websocket_echoes(&mut on_a, "after the rotation").await;

    let (answer, answered) = revoke(a, &victim_id).await;
    assert!(answer.contains("acknowledged"), "{answer}");
    closes_within(
        &mut on_b,
        1000,
        "the revoked key's tunnel on the other instance",
    )
    .await;
    closes_within(&mut on_a, 1000, "the revoked key's tunnel on the revoker").await;
    assert!(answered.elapsed() < Duration::from_secs(1));
    websocket_echoes(&mut other_on_b, "another key's tunnel after the revocation").await;
}

/// Without the cache an instance hears no revocation: it checks its open
/// key tunnels in the store every `cache.lease` (1 s here) instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_without_the_cache_closes_a_revoked_keys_tunnel_within_a_lease() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let caches = ["enabled = true", "enabled = false"];
    let gateways = instances(&redis, dir.path(), "tunnels-nocache", &caches, |_, _| {}).await;
    let (a, b) = (&gateways[0], &gateways[1]);
    let (victim, victim_id) = a.key("victim").await;
    let (other, _) = a.key("bystander").await;
    let mut on_b = websocket_with_key(b, &victim).await;
    let mut other_on_b = websocket_with_key(b, &other).await;
    websocket_echoes(&mut on_b, "before").await;
    // Rotated: the old key lives on through its grace, its tunnel too
    // (past a check of the tunnels).
    rotate(a, &victim_id).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    websocket_echoes(&mut on_b, "after the rotation").await;

    revoke(a, &victim_id).await;
    closes_within(
        &mut on_b,
        2500,
        "the revoked key's tunnel on an instance without the cache",
    )
    .await;
    websocket_echoes(&mut other_on_b, "another key's tunnel after the revocation").await;
}

/// An instance cut off from Redis cannot hear the revocation: by the time
/// the revoker has waited out its lease it has lost touch, and ends the key
/// tunnels it can no longer vouch for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_cut_off_from_redis_closes_a_revoked_keys_tunnel_about_when_the_revocation_answers(
) {
    let redis = RedisServer::start();
    let relay = Relay::to_port(redis.port).await;
    let dir = tempfile::tempdir().unwrap();
    let url = relay.redis_url();
    let gateways = instances(
        &redis,
        dir.path(),
        "tunnels-cut",
        &["enabled = true"; 2],
        |i, b| {
            if i == 1 {
                b.set("store", &format!("url = \"{url}\""));
            }
        },
    )
    .await;
    let (a, b) = (&gateways[0], &gateways[1]);
    let (victim, victim_id) = a.key("victim").await;
    let (other, _) = a.key("bystander").await;
    let mut on_b = websocket_with_key(b, &victim).await;
    let mut other_on_a = websocket_with_key(a, &other).await;
    websocket_echoes(&mut on_b, "before").await;

    relay.stall();
    let (answer, answered) = revoke(a, &victim_id).await;
    assert!(answer.contains("unacknowledged"), "{answer}");
    // Lost touch by its lease's end, then a store call that cannot answer
    // (`store.timeout`, 500 ms here).
    closes_within(
        &mut on_b,
        3000,
        "the revoked key's tunnel on the cut-off instance",
    )
    .await;
    // About the answer (plus a `store.timeout`), with room for a loaded
    // machine; not a lease or an idle timeout later.
    let late = answered.elapsed();
    assert!(
        late < Duration::from_millis(2500),
        "closed {late:?} after the answer"
    );
    websocket_echoes(
        &mut other_on_a,
        "another key's tunnel on an instance in touch",
    )
    .await;
    relay.heal();
}

/// A revocation by filter names more than the keys it revokes (a user's
/// keys, or every cached key): the tunnels it could name are checked
/// against the store, and only those whose key is gone end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_revocation_ends_only_the_tunnels_of_the_keys_it_revoked() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let gateways = instances(
        &redis,
        dir.path(),
        "tunnelsfilter",
        &["enabled = true"; 2],
        |_, _| {},
    )
    .await;
    let (a, b) = (&gateways[0], &gateways[1]);
    let made = admin(
        a,
        Method::POST,
        "/v1/keys",
        json!({ "user": "carol", "label": "ci" }),
    )
    .await;
    let made: serde_json::Value = serde_json::from_str(&made).unwrap();
    let ci = made["key"].as_str().unwrap().to_owned();
    let (other, _) = a.key("bystander").await;
    let mut ci_on_b = websocket_with_key(b, &ci).await;
    let mut other_on_a = websocket_with_key(a, &other).await;
    let mut other_on_b = websocket_with_key(b, &other).await;
    for ws in [&mut ci_on_b, &mut other_on_a, &mut other_on_b] {
        websocket_echoes(ws, "before").await;
    }

    let answer = admin(
        a,
        Method::POST,
        "/v1/revoke",
        json!({ "filter": { "label": "ci" } }),
    )
    .await;
    assert!(answer.contains("\"revoked\":1"), "{answer}");
    closes_within(&mut ci_on_b, 1000, "the revoked key's tunnel").await;
    websocket_echoes(&mut other_on_a, "another key's tunnel on the revoker").await;
    websocket_echoes(
        &mut other_on_b,
        "another key's tunnel on the other instance",
    )
    .await;
}

/// A Redis restart inside the lease (its data kept) ends no tunnel: while
/// the instance is out of touch its tunnels' keys are as sure as its
/// cache's entries, until the last lease it held runs out; back in touch,
/// it finds them in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_within_the_lease_ends_no_tunnel() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let ws_addr = websocket_echo().await;
    let mut b = builder(&format!("http://{ws_addr}"));
    for line in store_section_for(&redis.url(), dir.path(), "tunnelsblip") {
        b.set("store", &line);
    }
    b.set("auth", "anonymous = \"reject\"")
        .set("cache", "lease = \"10s\"");
    let gw = b.start().await;
    let c = client::h1(&gw.ca);
    let joins = |n: f64| {
        let (gw, c) = (&gw, &c);
        async move { (gw.metric(c, "keygate_fleet_joins_total").await == n).then_some(()) }
    };
    eventually(
        "the instance joins the fleet",
        100,
        Duration::from_millis(50),
        || joins(1.0),
    )
    .await;
    let (key, _) = gw.key("alice").await;
    let mut ws = websocket_with_key(&gw, &key).await;
    websocket_echoes(&mut ws, "before").await;

    // Down long enough for the instance to lose touch and find the key
    // unreadable (it checks at once, and at each retry), well within its
    // 10 s lease.
    redis.stop_saved();
    let lost = || async { (gw.metric(&c, "keygate_fleet_connected").await == 0.0).then_some(()) };
    eventually(
        "the instance loses touch",
        100,
        Duration::from_millis(50),
        lost,
    )
    .await;
    // The store is unreachable for the instance, its cache off: the key's
    // lookups fail (503), as its tunnel's checks at each retry do.
    let refused = std::cell::Cell::new(0);
    eventually(
        "three lookups of the key in a row fail",
        100,
        Duration::from_millis(50),
        || {
            let (c, url, key, refused) = (&c, gw.url("/"), &key, &refused);
            async move {
                let status = client::get_with_key(c, &url, key).await.status;
                refused.set(match status {
                    StatusCode::SERVICE_UNAVAILABLE => refused.get() + 1,
                    _ => 0,
                });
                (refused.get() >= 3).then_some(())
            }
        },
    )
    .await;
    redis.start_saved();
    eventually(
        "the instance joins again",
        200,
        Duration::from_millis(50),
        || joins(2.0),
    )
    .await;
    websocket_echoes(&mut ws, "after Redis came back").await;
}
