//! `POST /v1/keys/{id}/rotate` and `keygate keys rotate`: over three
//! instances the old key works during its grace period on every one and
//! stops on every one within a second after it, never before; a key is
//! rotated once however often it is asked; bad input is refused naming the
//! field.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};
use keygate::keyring::{Revocation, Ttl};
use keygate::keys::{KeyId, Scope};
use serde_json::json;

use super::{grace, listed, rotate, rotated, unix};
use crate::leaks::fleet;
use crate::support::admin::{call, create_key, json_of};
use crate::support::eventually;
use crate::support::gateway::test_actor;

fn now_secs_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test]
async fn over_three_instances_the_old_key_works_until_its_grace_ends_then_stops_everywhere() {
    let f = fleet(3, "rotate3", |_| {}).await;
    let (old_key, old_id) = create_key(&f.clients[0], &f.gateways[0], "carol").await;
    // Every instance has the old key cached.
    for i in 0..3 {
        assert_eq!(f.status(i, &old_key).await, StatusCode::OK);
    }

    // Timed around the call: the first rotation on a new store may wait out
    // a lease for the fleet (README, Barrier) before it answers.
    let before_call = now_secs_f64();
    let v = rotated(&rotate(&f, 1, &old_id, grace("3s")).await);
    let after_call = now_secs_f64();
    let new_key = v["key"].as_str().unwrap().to_owned();
    let new_id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(v["rotated_from"], old_id.as_str());
    assert_eq!(v["user"], "carol");
    assert_eq!(v["scope"], "full");
    assert_ne!(new_key, old_key);
    let end = unix(&v["old_key_expires_at"]) as f64;
    assert!(
        end >= before_call + 2.0 && end <= after_call + 4.5,
        "the grace period ends 3s after the call, on a whole second: {v}"
    );

    // Both keys listed, linked both ways.
    let keys = listed(&f, "carol").await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    let old = keys.iter().find(|k| k["id"] == old_id.as_str()).unwrap();
    let new = keys.iter().find(|k| k["id"] == new_id.as_str()).unwrap();
    assert_eq!(old["rotated_to"], new_id.as_str());
    assert_eq!(new["rotated_from"], old_id.as_str());
    assert_eq!(old["expires_at"], v["old_key_expires_at"]);
    assert!(new.get("rotated_to").is_none());

    // The successor works everywhere at once.
    for i in 0..3 {
        assert_eq!(f.status(i, &new_key).await, StatusCode::OK);
    }
    // The old key works on every instance until the grace period ends...
    let mut rounds = 0;
    while now_secs_f64() < end - 0.1 {
        for i in 0..3 {
            let status = f.status(i, &old_key).await;
            // Answered before the end: the instance decided before it too.
            let answered = now_secs_f64();
            if answered < end {
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "instance {i} refused the old key {:.2}s before the grace period's end",
                    end - answered
                );
            }
        }
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        rounds >= 5,
        "the old key was tried through its grace period"
    );
    // ... and stops on every instance within a second after it.
    let wait = end - now_secs_f64();
    if wait > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
    for i in 0..3 {
        loop {
            // Sent after end + 1s: the instance decided after it too.
            let sent = now_secs_f64();
            let status = f.status(i, &old_key).await;
            if status == StatusCode::UNAUTHORIZED {
                break;
            }
            assert_eq!(status, StatusCode::OK);
            assert!(
                sent < end + 1.0,
                "instance {i} still accepts the old key a second after its grace period"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for i in 0..3 {
        assert_eq!(f.status(i, &new_key).await, StatusCode::OK);
    }
    // The rotation is audited with both ids.
    let audit = crate::leaks::audit_events(&f.clients[2], &f.gateways[2], "rotate").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    let target = audit[0]["target"].as_str().unwrap();
    assert!(
        target.contains(&old_id) && target.contains(&new_id),
        "{target}"
    );
}

#[tokio::test]
async fn a_key_is_rotated_once_the_second_ask_names_its_successor() {
    let f = fleet(2, "rotate-twice", |_| {}).await;
    let (_, id) = create_key(&f.clients[0], &f.gateways[0], "dave").await;
    let first = rotated(&rotate(&f, 0, &id, grace("1h")).await);
    let again = rotate(&f, 1, &id, grace("1h")).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text());
    let v = json_of(&again);
    assert_eq!(v["rotated_to"], first["id"]);
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains(first["id"].as_str().unwrap()));
    assert!(v.get("key").is_none(), "no third key: {v}");
    assert_eq!(listed(&f, "dave").await.len(), 2);

    // Two rotations of one key at the same instant on two instances: one key.
    let (_, id) = create_key(&f.clients[0], &f.gateways[0], "erin").await;
    let (a, b) = tokio::join!(
        rotate(&f, 0, &id, grace("1h")),
        rotate(&f, 1, &id, grace("1h"))
    );
    let (won, lost) = match (a.status, b.status) {
        (StatusCode::CREATED, StatusCode::CONFLICT) => (a, b),
        (StatusCode::CONFLICT, StatusCode::CREATED) => (b, a),
        other => panic!(
            "one rotation, one conflict: {other:?} {} {}",
            a.text(),
            b.text()
        ),
    };
    assert_eq!(json_of(&lost)["rotated_to"], json_of(&won)["id"]);
    assert_eq!(listed(&f, "erin").await.len(), 2, "one new key, not two");
}

#[tokio::test]
async fn bad_rotations_are_refused_naming_the_field() {
    let f = fleet(1, "rotate-bad", |b| {
        b.set("keys", "rotation_grace = \"30m\"")
            .set("keys", "max_rotation_grace = \"1h\"");
    })
    .await;
    let gw = &f.gateways[0];
    let (_, id) = create_key(&f.clients[0], gw, "frank").await;

    for (body, field) in [
        (grace("2h"), "grace"),
        (grace("soon"), "grace"),
        (json!({ "ttl": "0s" }), "ttl"),
        (json!({ "ttl": "400d" }), "ttl"),
        (json!({ "grace": "1h", "color": "red" }), "color"),
    ] {
        let a = rotate(&f, 0, &id, body.clone()).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text());
        let msg = json_of(&a)["error"].as_str().unwrap().to_owned();
        assert!(msg.contains(field), "{body}: {msg}");
    }
    assert!(json_of(&rotate(&f, 0, &id, grace("2h")).await)["error"]
        .as_str()
        .unwrap()
        .contains("max_rotation_grace"));
    assert_eq!(listed(&f, "frank").await.len(), 1, "nothing made");

    // Unknown, revoked and expired keys: 404.
    let a = rotate(&f, 0, "nosuchkey000", grace("1h")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text());
    let revoked = gw
        .keyring
        .mint(&test_actor(), "frank", Ttl::Default, "", Scope::Full)
        .await
        .unwrap();
    gw.keyring
        .revoke(&test_actor(), Revocation::Ids(vec![revoked.record.id]))
        .await
        .unwrap();
    let a = rotate(&f, 0, revoked.record.id.as_str(), grace("1h")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text());
    let (short_key, short_id) = gw
        .key_with("frank", Ttl::For(Duration::from_secs(1)), Scope::Full)
        .await;
    eventually(
        "the short key expires",
        60,
        Duration::from_millis(100),
        || async { (f.status(0, &short_key).await == StatusCode::UNAUTHORIZED).then_some(()) },
    )
    .await;
    let a = rotate(&f, 0, &short_id, grace("1h")).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text());
    assert!(KeyId::parse(&short_id).is_some());

    // No grace named: keys.rotation_grace, bounded by the key's own expiry.
    let (_, id) = gw
        .key_with("frank", Ttl::For(Duration::from_secs(600)), Scope::Read)
        .await;
    let v = rotated(&rotate(&f, 0, &id, json!({})).await);
    let before = listed(&f, "frank").await;
    let old = before.iter().find(|k| k["id"] == id.as_str()).unwrap();
    assert_eq!(v["old_key_expires_at"], old["expires_at"]);
    let left = unix(&v["old_key_expires_at"]) as f64 - now_secs_f64();
    assert!(
        left <= 600.0,
        "the grace ends no later than the key did: {v}"
    );
    assert_eq!(v["scope"], "read", "the successor keeps the scope");
    let lifetime = unix(&v["expires_at"]) - unix(&v["created_at"]);
    assert!(
        (599..=601).contains(&lifetime),
        "the successor lives as long as the old key did: {v}"
    );
    let a = call(
        &f.clients[0],
        gw,
        Method::GET,
        &format!("/v1/keys/{id}/rotate"),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn keygate_keys_rotate_prints_the_successor_once() {
    use crate::keys_cli::{config, keys_in};
    let redis = crate::support::redis::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &redis, "");
    let out = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let err = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let created = keys_in(&cfg, dir.path(), &["create", "--user", "gina", "--json"]);
    assert!(created.status.success(), "{}", err(&created));
    let created: serde_json::Value = serde_json::from_str(&out(&created)).unwrap();
    let id = created["id"].as_str().unwrap();

    let o = keys_in(&cfg, dir.path(), &["rotate", "--id", id, "--grace", "24h"]);
    assert!(o.status.success(), "{}", err(&o));
    let secret = out(&o).trim().to_owned();
    assert!(
        secret.starts_with("kg_"),
        "the new key alone on stdout: {secret}"
    );
    assert!(err(&o).contains(&format!("replaces {id}")), "{}", err(&o));
    assert!(err(&o).contains("keeps working until"), "{}", err(&o));

    let o = keys_in(&cfg, dir.path(), &["list", "--user", "gina", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    let old = keys.iter().find(|k| k["id"] == id).unwrap();
    let new_id = old["rotated_to"].as_str().unwrap();
    let grace_left = unix(&old["expires_at"]) as f64 - now_secs_f64();
    assert!((86_390.0..=86_402.0).contains(&grace_left), "{old}");
    assert!(!out(&o).contains(&secret), "a listing never shows a secret");
    let table = out(&keys_in(&cfg, dir.path(), &["list", "--user", "gina"]));
    let old_line = table.lines().find(|l| l.starts_with(id)).unwrap();
    assert!(
        old_line.ends_with(&format!("(rotated to {new_id})")),
        "{table}"
    );

    // Again: exit 1 naming the successor; over the maximum: exit 2 naming --grace.
    let o = keys_in(&cfg, dir.path(), &["rotate", "--id", id]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains(new_id), "{}", err(&o));
    let o = keys_in(
        &cfg,
        dir.path(),
        &["rotate", "--id", new_id, "--grace", "30d"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("--grace"), "{}", err(&o));
    let o = keys_in(&cfg, dir.path(), &["rotate", "--id", "nosuchkey000"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("no such key"), "{}", err(&o));
}

/// A rotation announces itself: `key.rotated` about the old key (with its
/// successor and the end of its grace period) and `key.created` with
/// `rotated_from` for the successor, once each across two instances.
#[tokio::test]
async fn a_rotation_is_announced_once_by_webhook() {
    use crate::leaks::webhooks::{by_type, exactly, webhook_to};
    use crate::support::webhook_receiver::{Mode, Receiver};
    let receiver = Receiver::start(Mode::Up).await;
    let dir = tempfile::tempdir().unwrap();
    let hook = webhook_to(&receiver.url(), dir.path(), &[]);
    let f = fleet(2, "rotate-hooks", |b| hook(b)).await;
    let (secret, id) = create_key(&f.clients[0], &f.gateways[0], "uma").await;
    let v = rotated(&rotate(&f, 1, &id, grace("2h")).await);

    let got = exactly(&receiver, 3).await;
    assert_eq!(got.len(), 3, "{got:#?}");
    let types = by_type(&got);
    let rot = &types["key.rotated"][0].body["data"];
    assert_eq!(rot["id"], id.as_str());
    assert_eq!(rot["rotated_to"], v["id"]);
    assert_eq!(rot["works_until"], v["old_key_expires_at"]);
    assert_eq!(rot["source"], "admin");
    let created: Vec<_> = types["key.created"]
        .iter()
        .map(|d| &d.body["data"])
        .collect();
    assert_eq!(created.len(), 2);
    let successor = created.iter().find(|d| d["id"] == v["id"]).unwrap();
    assert_eq!(successor["rotated_from"], id.as_str());
    for d in &got {
        assert!(d.verified);
        let text = d.body.to_string();
        assert!(!text.contains(&secret) && !text.contains(v["key"].as_str().unwrap()));
    }
}
