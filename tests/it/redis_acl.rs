//! The Redis ACL README.md gives operators ("*Redis ACL.*"), run as it is
//! written: a user made with exactly the README's `ACL SETUSER` line, two
//! keygate instances logged in as that user, every store operation a
//! deployment makes, and Redis' own `ACL LOG` empty at the end. `ACL LOG`
//! is what catches a missing grant where keygate degrades gracefully (a
//! refused fleet command only turns the cache off, /readyz stays 200).
//!
//! The grants come from README.md itself, not from a copy here: the test
//! takes the one line there that starts with `ACL SETUSER keygate` (a line
//! an operator pastes, so README and test cannot drift apart), and checks
//! that the `+...` grants the prose around it names are that line's.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use http::{Method, Request, StatusCode};
use keygate::keyring::Ttl;
use keygate::keys::Scope;
use serde_json::{json, Value};

use crate::leaks::webhooks::{by_type, webhook_to};
use crate::leaks::{basic, fleet_on, Fleet};
use crate::support::admin::{call, create_key, json_of};
use crate::support::client::send;
use crate::support::deploy::query;
use crate::support::redis::RedisServer;
use crate::support::scanner::report;
use crate::support::webhook_receiver::{Mode, Receiver};
use crate::support::{body, eventually};

const USER: &str = "keygate";
const PASSWORD: &str = "acl-test-password";

/// README.md's ACL paragraph: from "*Redis ACL.*" to the end of its bullet.
fn readme_acl_paragraph() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("*Redis ACL.*")
        .expect("README.md has the *Redis ACL.* paragraph");
    let rest = &readme[start..];
    let end = rest.find("\n- *").expect("the ACL bullet ends");
    rest[..end].to_owned()
}

/// The ACL paragraph's prose: the paragraph less its ``` block.
fn readme_acl_prose() -> String {
    let paragraph = readme_acl_paragraph();
    let pieces: Vec<&str> = paragraph.split("```").collect();
    assert_eq!(pieces.len(), 3, "one code block in the ACL paragraph");
    format!("{}{}", pieces[0], pieces[2])
}

/// The `+…` grants in the prose's inline code spans.
fn readme_prose_grants() -> Vec<String> {
    readme_acl_prose()
        .split('`')
        .skip(1)
        .step_by(2)
        .flat_map(str::split_whitespace)
        .filter(|t| t.starts_with('+'))
        .map(String::from)
        .collect()
}

/// The README's `ACL SETUSER` line for `ns`, as arguments after `ACL`.
fn readme_setuser(ns: &str) -> Vec<String> {
    let paragraph = readme_acl_paragraph();
    let lines: Vec<&str> = paragraph
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with(&format!("ACL SETUSER {USER} ")))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "README.md's ACL paragraph has one `ACL SETUSER {USER}` line: {lines:?}"
    );
    let line = lines[0]
        .replace("<namespace>", ns)
        .replace("<password>", PASSWORD);
    assert!(!line.contains('<'), "a placeholder left in {line}");
    let args: Vec<String> = line.split_whitespace().skip(1).map(String::from).collect();
    // `reset` first: whatever the user had before (or a server's
    // `acl-pubsub-default allchannels`), it gets only what follows.
    assert_eq!(args[..3], ["SETUSER", USER, "reset"], "{line}");
    args
}

#[test]
fn the_readme_prose_and_its_setuser_line_name_the_same_grants() {
    let named: BTreeSet<String> = readme_prose_grants()
        .into_iter()
        .filter(|t| !t.starts_with("+cluster|"))
        .collect();
    let line = readme_setuser("ns");
    let granted: BTreeSet<String> = line
        .iter()
        .filter(|t| t.starts_with('+'))
        .cloned()
        .collect();
    assert_eq!(
        named, granted,
        "README.md's ACL prose and its ACL SETUSER line disagree"
    );
    for needed in ["~ns:*", "&ns:fleet:invalidate", "&ns:fleet:ack:*"] {
        assert!(line.iter().any(|a| a == needed), "{needed} not in {line:?}");
    }
}

/// Make the README's user on `redis` for `ns`, with `edit` applied to its
/// arguments (the negative tests take a grant away).
fn make_user(redis: &RedisServer, ns: &str, edit: impl Fn(&mut Vec<String>)) {
    let mut args = readme_setuser(ns);
    edit(&mut args);
    make_user_on(&[redis.port], &args);
}

/// Every entry of Redis' ACL LOG, one line each (asked as `default`).
fn acl_denials(redis: &RedisServer) -> Vec<String> {
    let entries: Vec<HashMap<String, String>> =
        query(redis.port, redis::cmd("ACL").arg("LOG")).unwrap();
    entries
        .iter()
        .map(|e| {
            let f = |k: &str| e.get(k).map_or("?", String::as_str);
            format!(
                "{} refused: {} `{}` (context {}, {} times)",
                f("username"),
                f("reason"),
                f("object"),
                f("context"),
                f("count")
            )
        })
        .collect()
}

/// Two instances on a fresh Redis as the README's user (edited by `edit`),
/// sending every webhook event to `receiver`; not yet awaited in the fleet.
async fn fleet_as_user(
    ns: &str,
    receiver: &Receiver,
    dir: &std::path::Path,
    edit: impl Fn(&mut Vec<String>),
) -> Fleet {
    let redis = RedisServer::start();
    make_user(&redis, ns, edit);
    let url = format!("redis://{USER}:{PASSWORD}@127.0.0.1:{}/0", redis.port);
    let hook = webhook_to(&receiver.url(), dir, &[]);
    fleet_on(redis, 2, ns, move |b| {
        b.set("store", &format!("url = \"{url}\""))
            .set("keys", "warn_before = [\"2s\"]")
            .set("keys", "self_rotation = true");
        hook(b);
    })
    .await
}

/// Both instances answer `expected` to `key`.
async fn everywhere(f: &Fleet, key: &str, expected: StatusCode, what: &str) {
    for i in 0..2 {
        assert_eq!(f.status(i, key).await, expected, "{what}, instance {i}");
    }
}

/// `POST /v1/revoke` with `body` on instance `i`: 200, both instances
/// acknowledged, `n` keys revoked.
async fn revoke(f: &Fleet, i: usize, body: Value, n: u64) -> Value {
    let a = call(
        &f.clients[i],
        &f.gateways[i],
        Method::POST,
        "/v1/revoke",
        Some(body.clone()),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "revoke {body}: {}", a.text());
    let v = json_of(&a);
    if body.get("dry_run").is_none() {
        assert_eq!(v["revoked"], n, "revoke {body}: {v}");
        assert_eq!(
            v["instances"]["acknowledged"].as_array().map(Vec::len),
            Some(2),
            "revoke {body}: both instances acknowledge: {v}"
        );
    }
    v
}

async fn admin(f: &Fleet, i: usize, method: Method, path: &str, body: Option<Value>) -> Value {
    let a = call(&f.clients[i], &f.gateways[i], method.clone(), path, body).await;
    assert!(
        a.status.is_success(),
        "{method} {path}: {} {}",
        a.status,
        a.text()
    );
    if a.body.is_empty() {
        Value::Null
    } else {
        json_of(&a)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygate_runs_in_full_as_the_readme_acl_user_and_redis_refuses_nothing() {
    let ns = "acl-walk";
    let receiver = Receiver::start(Mode::Up).await;
    let dir = tempfile::tempdir().unwrap();
    let f = fleet_as_user(ns, &receiver, dir.path(), |_| {}).await;
    f.await_joined().await;
    let joins: Vec<f64> = futures_util::future::join_all(
        (0..2).map(|i| f.gateways[i].metric(&f.clients[i], "keygate_fleet_joins_total")),
    )
    .await;

    // Readiness.
    for i in 0..2 {
        let v = admin(&f, i, Method::GET, "/readyz", None).await;
        assert_eq!(
            v,
            json!({ "status": "ready", "fleet": "connected" }),
            "instance {i}"
        );
    }

    // The expiry chore: a key that is warned about and expires meanwhile.
    let (_, expiring) = f.gateways[1]
        .key_with("erin", Ttl::For(Duration::from_secs(3)), Scope::Read)
        .await;

    // Create, authenticate on both, list.
    let (alice, alice_id) = create_key(&f.clients[0], &f.gateways[0], "alice").await;
    everywhere(&f, &alice, StatusCode::OK, "a new key").await;
    let listed = admin(&f, 1, Method::GET, "/v1/keys?user=alice", None).await;
    assert_eq!(listed["keys"][0]["id"], alice_id.as_str(), "{listed}");
    admin(&f, 0, Method::GET, "/v1/keys?sort=expires&limit=2", None).await;

    // Rotate; the successor works everywhere; revoke it by id (DELETE).
    let rotated = admin(
        &f,
        1,
        Method::POST,
        &format!("/v1/keys/{alice_id}/rotate"),
        Some(json!({})),
    )
    .await;
    assert_eq!(rotated["old_key_stopped_everywhere"], true, "{rotated}");
    let successor = rotated["key"].as_str().unwrap().to_owned();
    let successor_id = rotated["id"].as_str().unwrap().to_owned();
    everywhere(&f, &successor, StatusCode::OK, "a successor").await;
    admin(
        &f,
        0,
        Method::DELETE,
        &format!("/v1/keys/{successor_id}"),
        None,
    )
    .await;
    everywhere(&f, &successor, StatusCode::UNAUTHORIZED, "a revoked key").await;
    // By id through /v1/revoke, the old key (in its grace period).
    revoke(&f, 1, json!({ "ids": [alice_id] }), 1).await;
    everywhere(&f, &alice, StatusCode::UNAUTHORIZED, "a revoked key").await;

    // Revoke by user.
    let (bob1, _) = create_key(&f.clients[1], &f.gateways[1], "bob").await;
    let (bob2, _) = create_key(&f.clients[0], &f.gateways[0], "bob").await;
    everywhere(&f, &bob1, StatusCode::OK, "bob's first key").await;
    everywhere(&f, &bob2, StatusCode::OK, "bob's second key").await;
    revoke(&f, 1, json!({ "users": ["bob"] }), 2).await;
    everywhere(&f, &bob1, StatusCode::UNAUTHORIZED, "bob's revoked key").await;
    everywhere(&f, &bob2, StatusCode::UNAUTHORIZED, "bob's revoked key").await;

    // Leaked keys: the `keys` report, possession, a scanner's report.
    let (leaked, _) = create_key(&f.clients[0], &f.gateways[0], "carl").await;
    everywhere(&f, &leaked, StatusCode::OK, "a key about to leak").await;
    revoke(&f, 0, json!({ "keys": [leaked] }), 1).await;
    everywhere(&f, &leaked, StatusCode::UNAUTHORIZED, "a reported key").await;

    let (found, _) = create_key(&f.clients[0], &f.gateways[0], "carl").await;
    everywhere(&f, &found, StatusCode::OK, "a key about to be found").await;
    let req = Request::post(f.gateways[1].url("/.keygate/revoke"))
        .header("content-type", "application/json")
        .body(body::full(json!([found]).to_string()))
        .unwrap();
    let a = send(&f.clients[1], req).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
    everywhere(
        &f,
        &found,
        StatusCode::UNAUTHORIZED,
        "a key revoked by possession",
    )
    .await;

    let (scanned, _) = create_key(&f.clients[1], &f.gateways[1], "carl").await;
    everywhere(&f, &scanned, StatusCode::OK, "a key about to be scanned").await;
    let a = f.report(0, &report(&[&scanned])).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(json_of(&a)[0]["label"], "true_positive", "{}", a.text());
    everywhere(&f, &scanned, StatusCode::UNAUTHORIZED, "a scanner's key").await;

    // Revoke by filter, after a dry run.
    let (dora, _) = create_key(&f.clients[0], &f.gateways[0], "dora").await;
    let dry = revoke(
        &f,
        0,
        json!({ "filter": { "user": "dora" }, "dry_run": true }),
        0,
    )
    .await;
    assert_eq!(dry["would_revoke"], 1, "{dry}");
    everywhere(&f, &dora, StatusCode::OK, "a key a dry run left").await;
    revoke(&f, 1, json!({ "filter": { "user": "dora" } }), 1).await;
    everywhere(&f, &dora, StatusCode::UNAUTHORIZED, "a filtered key").await;

    // Self-rotation (the hourly quota's count in the store).
    let (fay, _) = create_key(&f.clients[1], &f.gateways[1], "fay").await;
    let req = Request::post(f.gateways[0].url("/.keygate/api/rotate"))
        .header("authorization", basic(&fay))
        .body(body::empty())
        .unwrap();
    let a = send(&f.clients[0], req).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let fay2 = json_of(&a)["key"].as_str().unwrap().to_owned();
    everywhere(&f, &fay2, StatusCode::OK, "a self-rotated key").await;

    // Audit, settings.
    let audit = admin(&f, 1, Method::GET, "/v1/audit?limit=1000", None).await;
    assert!(
        audit["events"].as_array().is_some_and(|e| e.len() > 10),
        "{audit}"
    );
    let settings = admin(&f, 0, Method::GET, "/v1/settings", None).await;
    admin(&f, 1, Method::PUT, "/v1/settings", Some(settings.clone())).await;
    assert_eq!(
        admin(&f, 0, Method::GET, "/v1/settings", None).await,
        settings
    );

    // The outbox delivered every kind of event, the chore's included.
    let kinds = [
        "key.created",
        "key.revoked",
        "key.leaked",
        "key.rotated",
        "key.expiring",
        "key.expired",
    ];
    let got = eventually(
        "every kind of webhook event arrives",
        300,
        Duration::from_millis(50),
        || async {
            let got = receiver.received();
            let types = by_type(&got);
            kinds.iter().all(|k| types.contains_key(*k)).then_some(got)
        },
    )
    .await;
    assert!(got.iter().all(|d| d.verified), "{got:#?}");
    let types = by_type(&got);
    assert!(
        types["key.expired"]
            .iter()
            .any(|d| d.body["data"]["id"] == expiring.as_str()),
        "{got:#?}"
    );

    // Revoke everything: fay's two keys (the first in its grace period).
    revoke(&f, 0, json!({ "all": true }), 2).await;
    everywhere(&f, &fay, StatusCode::UNAUTHORIZED, "after revoking all").await;
    everywhere(&f, &fay2, StatusCode::UNAUTHORIZED, "after revoking all").await;

    // The fleet never lost touch, and Redis refused nothing.
    for (i, before) in joins.iter().enumerate() {
        let (g, c) = (&f.gateways[i], &f.clients[i]);
        assert_eq!(g.metric(c, "keygate_fleet_connected").await, 1.0);
        assert_eq!(
            g.metric(c, "keygate_fleet_joins_total").await,
            *before,
            "instance {i} lost touch with the fleet (rejoined) under the README's ACL"
        );
    }
    let denials = acl_denials(&f.redis);
    assert!(
        denials.is_empty(),
        "Redis refused the README's ACL user:\n{}",
        denials.join("\n")
    );
}

/// The README's user less `grant`: Redis logs a refusal naming `object`,
/// though /readyz stays 200 and keys keep working (keygate degrades
/// gracefully): what only the ACL LOG assertion above sees.
async fn refused_without(ns: &str, grant: &str, object: &str) {
    let receiver = Receiver::start(Mode::Up).await;
    let dir = tempfile::tempdir().unwrap();
    let ack = format!("&{ns}:fleet:ack:*");
    let f = fleet_as_user(ns, &receiver, dir.path(), |args| {
        let grant = if grant == "ack" { ack.as_str() } else { grant };
        let before = args.len();
        args.retain(|a| a != grant);
        assert_eq!(args.len(), before - 1, "{grant} is in the README's line");
    })
    .await;
    for i in 0..2 {
        let v = admin(&f, i, Method::GET, "/readyz", None).await;
        assert_eq!(v["status"], "ready", "instance {i}");
    }
    let (key, _) = create_key(&f.clients[0], &f.gateways[0], "nina").await;
    everywhere(&f, &key, StatusCode::OK, "a new key").await;
    let denials = eventually(
        "Redis logs a refusal",
        100,
        Duration::from_millis(50),
        || async {
            let d = acl_denials(&f.redis);
            (!d.is_empty()).then_some(d)
        },
    )
    .await;
    assert!(
        denials.iter().any(|d| d.contains(&format!("`{object}"))),
        "without {grant} Redis refuses {object}: {denials:#?}"
    );
    // /readyz: still 200, and says the instance is out of touch.
    for i in 0..2 {
        let v = admin(&f, i, Method::GET, "/readyz", None).await;
        assert_eq!(
            v,
            json!({ "status": "ready", "fleet": "out_of_touch" }),
            "instance {i}"
        );
    }
}

/// /readyz's `fleet` follows the instance's touch with the fleet while its
/// status stays 200: a grant taken away (PUBLISH, the probe fails) turns it
/// `out_of_touch`, given back `connected` again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_when_an_instance_is_out_of_touch_with_the_fleet_and_stays_200() {
    let receiver = Receiver::start(Mode::Up).await;
    let dir = tempfile::tempdir().unwrap();
    let f = fleet_as_user("acl-ready", &receiver, dir.path(), |_| {}).await;
    f.await_joined().await;
    let fleet_state = |i: usize| {
        let f = &f;
        async move {
            let a = call(&f.clients[i], &f.gateways[i], Method::GET, "/readyz", None).await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.text());
            json_of(&a)["fleet"].as_str().unwrap().to_owned()
        }
    };
    for (grant, want) in [("-publish", "out_of_touch"), ("+publish", "connected")] {
        let _: () = query(
            f.redis.port,
            redis::cmd("ACL").arg("SETUSER").arg(USER).arg(grant),
        )
        .unwrap();
        for i in 0..2 {
            eventually(
                &format!("/readyz says {want} after {grant}"),
                100,
                Duration::from_millis(50),
                || async { (fleet_state(i).await == want).then_some(()) },
            )
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ack_channels_redis_logs_a_refusal_though_readyz_is_200() {
    // The member's own probe channel, `…:ack:probe:<instance>`.
    refused_without("acl-noack", "ack", "acl-noack:fleet:ack:probe:").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_time_redis_logs_a_refusal_though_readyz_is_200() {
    // The README's list before `+time`: the Lua scripts read Redis' clock.
    refused_without("acl-notime", "+time", "time").await;
}

/// The grants the README's prose adds on a Redis Cluster (`+cluster|…`).
fn readme_cluster_grants() -> Vec<String> {
    let grants: Vec<String> = readme_prose_grants()
        .into_iter()
        .filter(|t| t.starts_with("+cluster|"))
        .collect();
    assert!(!grants.is_empty(), "README.md names the Cluster's grants");
    grants
}

/// On a Redis Cluster with replicas (so revocations send CLUSTER NODES,
/// CLUSTER MYID and WAIT to every master), the README's user on every
/// node, plus the Cluster grants its prose names: two instances serve,
/// revoke through the barrier, and no node logs a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_the_readme_acl_user_with_the_cluster_grants_is_refused_nothing() {
    use crate::support::deploy::RedisCluster;

    let ns = "acl-cluster";
    let cluster = RedisCluster::start_replicated();
    let mut args = readme_setuser(ns);
    args.extend(readme_cluster_grants());
    let ports: Vec<u16> = cluster.nodes.iter().map(|n| n.port).collect();
    make_user_on(&ports, &args);
    let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let url = format!("redis+cluster://{USER}:{PASSWORD}@{}", hosts.join(","));
    serve_and_walk(&url, ns, &ports).await;
}

/// Behind Sentinel (master and replica, so revocations send WAIT), the
/// README's user on both data nodes (sentinels are asked without a user):
/// the same walk, and neither node logs a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_sentinel_the_readme_acl_user_is_refused_nothing() {
    use crate::support::deploy::{replica_online, SentinelSet, MASTER_NAME};

    let ns = "acl-sentinel";
    let set = SentinelSet::start();
    replica_online(set.master.port);
    let ports = [set.master.port, set.replica.port];
    make_user_on(&ports, &readme_setuser(ns));
    let url = format!(
        "redis+sentinel://{USER}:{PASSWORD}@127.0.0.1:{}/{MASTER_NAME}/0",
        set.sentinel_port
    );
    serve_and_walk(&url, ns, &ports).await;
}

/// `ACL <args>` (a SETUSER) on every one of `ports`, their ACL LOGs emptied.
fn make_user_on(ports: &[u16], args: &[String]) {
    for &port in ports {
        let _: () = query(port, redis::cmd("ACL").arg(args))
            .unwrap_or_else(|e| panic!("ACL {args:?} on {port}: {e}"));
        let _: () = query(port, redis::cmd("ACL").arg("LOG").arg("RESET")).unwrap();
    }
}

/// Two instances on `url` (namespace `ns`): they join the fleet, create,
/// rotate, authenticate on both, list, revoke by user and by leaked key
/// through the barrier; then no node of `ports` has an ACL LOG entry.
async fn serve_and_walk(url: &str, ns: &str, ports: &[u16]) {
    use crate::support::client;
    use crate::support::gateway::builder;
    use crate::support::redis::store_section_for;
    use crate::support::upstream::Upstream;

    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut gateways = Vec::new();
    for _ in 0..2 {
        let mut b = builder(&upstream.url());
        for line in store_section_for(url, dir.path(), ns) {
            b.set("store", &line);
        }
        b.set("store", "timeout = \"2s\"")
            .set("auth", "anonymous = \"reject\"")
            .set("cache", "lease = \"1s\"")
            .set("rate_limit", "failed_auth_per_minute = 0");
        gateways.push(b.start().await);
    }
    let clients: Vec<_> = gateways.iter().map(|g| client::h1(&g.ca)).collect();
    for (g, c) in gateways.iter().zip(&clients) {
        eventually(
            "the instance joins the fleet",
            100,
            Duration::from_millis(50),
            || async { (g.metric(c, "keygate_fleet_connected").await == 1.0).then_some(()) },
        )
        .await;
        let a = call(c, g, Method::GET, "/readyz", None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    }
    let status = |i: usize, key: String| {
        let (g, c) = (&gateways[i], &clients[i]);
        async move { crate::leaks::status(c, g, &key).await }
    };
    let (alice, alice_id) = create_key(&clients[0], &gateways[0], "alice").await;
    let (bob, _) = create_key(&clients[1], &gateways[1], "bob").await;
    let a = call(
        &clients[1],
        &gateways[1],
        Method::POST,
        &format!("/v1/keys/{alice_id}/rotate"),
        Some(json!({})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let successor = json_of(&a)["key"].as_str().unwrap().to_owned();
    for i in 0..2 {
        for key in [&alice, &bob, &successor] {
            assert_eq!(status(i, key.clone()).await, StatusCode::OK, "instance {i}");
        }
    }
    let a = call(&clients[0], &gateways[0], Method::GET, "/v1/keys", None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    for body in [json!({ "users": ["alice"] }), json!({ "keys": [bob] })] {
        let a = call(
            &clients[0],
            &gateways[0],
            Method::POST,
            "/v1/revoke",
            Some(body),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        let v = json_of(&a);
        assert_eq!(
            v["instances"]["acknowledged"].as_array().map(Vec::len),
            Some(2),
            "{v}"
        );
    }
    for i in 0..2 {
        for key in [&alice, &bob, &successor] {
            assert_eq!(
                status(i, key.clone()).await,
                StatusCode::UNAUTHORIZED,
                "instance {i}"
            );
        }
        assert_eq!(
            gateways[i]
                .metric(&clients[i], "keygate_fleet_connected")
                .await,
            1.0
        );
    }
    let denials: Vec<String> = ports
        .iter()
        .flat_map(|&port| {
            let entries: Vec<HashMap<String, String>> =
                query(port, redis::cmd("ACL").arg("LOG")).unwrap();
            entries
                .into_iter()
                .map(move |e| format!("node {port}: {e:?}"))
        })
        .collect();
    assert!(
        denials.is_empty(),
        "Redis refused the README's ACL user:\n{}",
        denials.join("\n")
    );
}

/// The operator's one trace of a missing grant keygate survives (here
/// TIME, refused inside a Lua script, which Redis 7.0 answers with `ERR`,
/// not `NOPERM`): the fleet warning says it is the ACL and where to look.
#[tokio::test]
async fn a_grant_missing_inside_a_script_is_logged_as_a_refusal_naming_the_acl() {
    use crate::support::bin::{write_config, Process};
    use crate::support::redis::store_section_for;
    use crate::support::tls::Ca;

    let ns = "acl-log";
    let redis = RedisServer::start();
    make_user(&redis, ns, |args| args.retain(|a| a != "+time"));
    let dir = tempfile::tempdir().unwrap();
    let url = format!("redis://{USER}:{PASSWORD}@127.0.0.1:{}/0", redis.port);
    let mut store = store_section_for(&url, dir.path(), ns);
    store.insert(0, "[store]".into());
    let cfg = write_config(
        dir.path(),
        &Ca::new("acl CA"),
        "keygate",
        "http://127.0.0.1:9",
        &store.join("\n"),
    );
    let kg = Process::serve(&cfg);
    kg.logged("Redis refuses a fleet command (NOPERM)").await;
    assert!(!acl_denials(&redis).is_empty());
}

/// A report whose keys are deleted but whose revocation cannot be told to
/// the fleet (PUBLISH refused: 503, the scanner sends it again) still
/// audits where each key was found and announces it as `key.leaked`: the
/// report sent again finds no live key, so that was the only chance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_whose_revocation_cannot_be_published_still_says_the_key_leaked() {
    let receiver = Receiver::start(Mode::Up).await;
    let dir = tempfile::tempdir().unwrap();
    let f = fleet_as_user("acl-leak-unpublished", &receiver, dir.path(), |_| {}).await;
    f.await_joined().await;
    let (alice, alice_id) = create_key(&f.clients[0], &f.gateways[0], "alice").await;
    everywhere(&f, &alice, StatusCode::OK, "a new key").await;
    let acl = |grant: &str| {
        let _: () = query(
            f.redis.port,
            redis::cmd("ACL").arg("SETUSER").arg(USER).arg(grant),
        )
        .unwrap();
    };
    acl("-publish");
    let answer = f.report(0, &report(&[alice.as_str()])).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text()
    );
    assert_eq!(f.status(0, &alice).await, StatusCode::UNAUTHORIZED);
    let leaked = eventually(
        "key.leaked is delivered",
        100,
        Duration::from_millis(50),
        || async {
            receiver
                .received()
                .into_iter()
                .find(|d| d.body["type"] == "key.leaked")
        },
    )
    .await;
    assert_eq!(
        leaked.body["data"]["id"],
        alice_id.as_str(),
        "{}",
        leaked.body
    );
    assert_eq!(leaked.body["data"]["action"], "revoked", "{}", leaked.body);
    acl("+publish");
    let a = call(
        &f.clients[1],
        &f.gateways[1],
        Method::GET,
        "/v1/audit?limit=1000",
        None,
    )
    .await;
    let events = json_of(&a)["events"].as_array().unwrap().clone();
    assert!(
        events.iter().any(|e| e["action"] == "leaked"
            && e["target"].as_str().unwrap().contains(alice_id.as_str())),
        "{events:?}"
    );
}

/// A store that answers but whose start fails (here SCAN refused, so the
/// earlier key layouts cannot be moved): /readyz is 503 saying so, not
/// "ready", until a retry of `keygate serve` moves them.
#[tokio::test]
async fn readyz_is_503_until_the_store_layout_is_migrated() {
    use crate::support::bin::{write_config, Process};
    use crate::support::client::{get, h1};
    use crate::support::redis::store_section_for;
    use crate::support::tls::Ca;

    let ns = "acl-migrate";
    let redis = RedisServer::start();
    make_user(&redis, ns, |args| args.push("-scan".into()));
    let dir = tempfile::tempdir().unwrap();
    let url = format!("redis://{USER}:{PASSWORD}@127.0.0.1:{}/0", redis.port);
    let mut store = store_section_for(&url, dir.path(), ns);
    store.insert(0, "[store]".into());
    let ca = Ca::new("acl CA");
    let cfg = write_config(
        dir.path(),
        &ca,
        "keygate",
        "http://127.0.0.1:9",
        &store.join("\n"),
    );
    let kg = Process::serve(&cfg);
    kg.logged("the key store answers but its start").await;
    let readyz = format!("https://{}/readyz", kg.admin_addr().await);
    let client = h1(&ca);
    let a = get(&client, &readyz).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text());
    let body: Value = serde_json::from_str(&a.text()).unwrap();
    assert_eq!(body["status"], "store start not done", "{body}");

    let _: () = query(
        redis.port,
        redis::cmd("ACL").arg("SETUSER").arg(USER).arg("+scan"),
    )
    .unwrap();
    eventually(
        "a retry moves the layouts and /readyz turns 200",
        100,
        Duration::from_millis(50),
        || async { (get(&client, &readyz).await.status == StatusCode::OK).then_some(()) },
    )
    .await;
}
