//! A leaked key's successors die with it: whoever holds a leaked key may
//! have rotated it (`POST /.keygate/api/rotate`), so every leaked-key path
//! revokes the keys rotated from it, at any depth, by any rotation, also
//! once the leaked key's own record is gone (rotated with no grace). A
//! report naming such a key is a sighting: audited, announced, answered
//! `true_positive`.

use http::{Method, Request, StatusCode};
use serde_json::json;

use super::webhooks::{exactly, webhook_to};
use super::{audit_events, basic, fleet, Fleet};
use crate::support::admin::{call, json_of};
use crate::support::body;
use crate::support::client::send;
use crate::support::scanner::report;
use crate::support::webhook_receiver::{Mode, Receiver};

/// Rotate `key` by itself on instance `i` with `grace`; the successor's secret and id.
async fn self_rotate(f: &Fleet, i: usize, key: &str, grace: &str) -> (String, String) {
    let req = Request::post(f.gateways[i].url("/.keygate/api/rotate"))
        .header("authorization", basic(key))
        .header("content-type", "application/json")
        .body(body::full(json!({ "grace": grace }).to_string()))
        .unwrap();
    let a = crate::support::within(10, "an answer", send(&f.clients[i], req)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let v = json_of(&a);
    (
        v["key"].as_str().unwrap().to_owned(),
        v["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_reported_key_rotated_away_takes_its_successors_with_it() {
    let receiver = Receiver::start(Mode::Up).await;
    let dir = tempfile::tempdir().unwrap();
    let hook = webhook_to(&receiver.url(), dir.path(), &["events = [\"key.leaked\"]"]);
    let f = fleet(2, "leak-heirs", |b| {
        b.set("keys", "self_rotation = true");
        hook(b);
    })
    .await;
    let gw = &f.gateways[0];
    let (leaked, leaked_id) = gw.key("victim").await;
    let (bystander, _) = gw.key("victim").await;
    // The holder rotates it away at once, then the successor again.
    let (heir, heir_id) = self_rotate(&f, 1, &leaked, "0s").await;
    let (heir2, heir2_id) = self_rotate(&f, 0, &heir, "0s").await;
    for i in 0..2 {
        assert_eq!(f.status(i, &leaked).await, StatusCode::UNAUTHORIZED);
        assert_eq!(f.status(i, &heir2).await, StatusCode::OK, "cached");
    }

    let answer = f.report(1, &report(&[leaked.as_str()])).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(json_of(&answer)[0]["label"], "true_positive");
    for i in 0..2 {
        assert_eq!(f.status(i, &heir).await, StatusCode::UNAUTHORIZED);
        assert_eq!(f.status(i, &heir2).await, StatusCode::UNAUTHORIZED);
        assert_eq!(f.status(i, &bystander).await, StatusCode::OK);
    }
    // Audited and announced as the key reported, naming its successors.
    let seen = audit_events(&f.clients[0], gw, "leaked").await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    let target = seen[0]["target"].as_str().unwrap();
    assert!(
        target.contains(&leaked_id) && target.contains(&heir2_id),
        "{target}"
    );
    let got = exactly(&receiver, 1).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    let data = &got[0].body["data"];
    assert_eq!(data["id"], leaked_id.as_str());
    assert_eq!(data["user"], "victim");
    assert_eq!(data["action"], "revoked");
    // The live successor; the first one (rotated with no grace) had died.
    assert_eq!(data["successors"], json!([heir2_id]), "{data}");
    assert_ne!(heir_id, heir2_id);
    // A second report finds nothing left alive.
    let again = f.report(0, &report(&[leaked.as_str()])).await;
    assert_eq!(json_of(&again)[0]["label"], "false_positive");
    let text: String = got.iter().map(|d| d.body.to_string()).collect();
    for secret in [&leaked, &heir, &heir2] {
        assert!(!text.contains(secret.as_str()), "a secret in a webhook");
    }
}

/// Possession, the admin API's `{"keys"}` and an admin rotation: the
/// successor of a leaked key dies with it whoever rotated it.
#[tokio::test]
async fn every_leaked_key_path_revokes_successors_of_any_rotation() {
    let f = fleet(2, "leak-heirs-paths", |b| {
        b.set("keys", "self_rotation = true")
            .set("leaks", "possession_per_minute = 0");
    })
    .await;
    let (c, gw) = (&f.clients[0], &f.gateways[0]);

    // Possession: a key self-rotated in its grace period.
    let (x, _) = gw.key("pia").await;
    let (y, _) = self_rotate(&f, 0, &x, "1h").await;
    let req = Request::post(gw.url("/.keygate/revoke"))
        .header("content-type", "application/json")
        .body(body::full(json!([x]).to_string()))
        .unwrap();
    assert_eq!(send(c, req).await.status, StatusCode::ACCEPTED);
    for i in 0..2 {
        assert_eq!(f.status(i, &x).await, StatusCode::UNAUTHORIZED);
        assert_eq!(f.status(i, &y).await, StatusCode::UNAUTHORIZED);
    }

    // The admin API: an admin rotation with no grace, then a dry run and
    // the revocation both count the successor.
    let (x, x_id) = gw.key("quinn").await;
    let a = call(
        c,
        gw,
        Method::POST,
        &format!("/v1/keys/{x_id}/rotate"),
        Some(json!({"grace": "0s"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let y = json_of(&a)["key"].as_str().unwrap().to_owned();
    assert_eq!(f.status(1, &y).await, StatusCode::OK);
    let dry = call(
        c,
        gw,
        Method::POST,
        "/v1/revoke",
        Some(json!({"keys": [x], "dry_run": true})),
    )
    .await;
    assert_eq!(json_of(&dry)["would_revoke"], 1, "{}", dry.text());
    let a = call(
        c,
        gw,
        Method::POST,
        "/v1/revoke",
        Some(json!({"keys": [x]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(json_of(&a)["revoked"], 1, "the successor: {}", a.text());
    for i in 0..2 {
        assert_eq!(f.status(i, &y).await, StatusCode::UNAUTHORIZED);
    }
}

/// A lineage longer than the walk from the leaked key (review 28b,
/// finding 1): the live key at its end still dies, and the report is a
/// sighting. The rotations are made in the store directly, for speed.
#[tokio::test]
async fn a_leaked_key_takes_the_end_of_a_long_lineage_with_it() {
    use keygate::store::{Rotated, Store, MAX_LINEAGE};
    let f = fleet(1, "leak-long", |b| {
        b.set("leaks", "possession_per_minute = 0");
    })
    .await;
    let gw = &f.gateways[0];
    let (leaked, leaked_id) = gw.key("longline").await;
    let (bystander, _) = gw.key("longline").await;
    let store = Store::redis(
        &f.redis.url(),
        "leak-long",
        std::time::Duration::from_secs(2),
    )
    .await
    .unwrap();
    let first = store.get(&leaked_id).await.unwrap().expect("the key");
    let now = keygate::keys::unix_now();
    let mut cur = first;
    for i in 0..=MAX_LINEAGE {
        let (_, mut next) =
            crate::store_conformance::record("longline", crate::store_conformance::DAY);
        next.rotated_from = Some(cur.id);
        // The first rotation leaves the leaked key no grace, the last one
        // leaves its old key an hour.
        let until = if i == MAX_LINEAGE { now + 3600 } else { now };
        assert_eq!(
            store.rotate(&cur.id, &next, until).await.unwrap(),
            Rotated::Done
        );
        cur = next;
    }
    let tip = cur;
    let in_grace = tip.rotated_from.unwrap();
    assert!(store.get(tip.id.as_str()).await.unwrap().is_some());
    assert!(store.get(in_grace.as_str()).await.unwrap().is_some());

    let answer = f.report(0, &report(&[leaked.as_str()])).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(json_of(&answer)[0]["label"], "true_positive");
    assert_eq!(
        store.get(tip.id.as_str()).await.unwrap(),
        None,
        "the newest key died"
    );
    assert_eq!(
        store.get(in_grace.as_str()).await.unwrap(),
        None,
        "so did the one in its grace"
    );
    assert_eq!(f.status(0, &bystander).await, StatusCode::OK);
}
