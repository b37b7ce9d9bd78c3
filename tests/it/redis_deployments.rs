//! The Redis store on every deployment an operator runs, all real servers on
//! loopback: a 3-master Cluster, master + replica + Sentinel with the master
//! killed mid-run (the real `keygate serve`), `WAIT` after revocations, and
//! `rediss://` with a private CA.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use base64::Engine;
use http::{Request, StatusCode};
use keygate::keys::{format::user_tag, KeyId};
use keygate::store::{RedisStore, Saved, Store, StoreError};

use crate::store_conformance::{conformance, record, DAY};
use crate::support::bin::{self, cli, Process};
use crate::support::client::{self, send, HttpsClient};
use crate::support::deploy::{
    master_and_replica, query, replica_online, RedisCluster, SentinelSet, TlsRedis,
};
use crate::support::redis::{store_section_for, RedisServer};
use crate::support::tls::Ca;
use crate::support::upstream::Upstream;

const TIMEOUT: Duration = Duration::from_secs(2);

/// A Redis store at `url` under `namespace`, with the tests' timeout.
async fn open(url: &str, namespace: &str) -> Store {
    Store::redis(url, namespace, TIMEOUT).await.unwrap()
}

#[tokio::test]
async fn cluster_store_keeps_the_contract() {
    let cluster = RedisCluster::start();
    conformance(open(&cluster.url(), "conformance").await).await;
}

/// Rotation links in a Cluster: in the key's slot, written by the rotation's script.
#[tokio::test]
async fn cluster_keeps_rotation_lineages() {
    let cluster = RedisCluster::start();
    crate::store_conformance::lineage_conformance(open(&cluster.url(), "lineage").await).await;
}

/// A user's records and index share a slot (so MULTI/EXEC over them is
/// legal), and users spread over every master.
#[tokio::test]
async fn cluster_keeps_a_users_keys_in_one_slot_and_users_on_every_master() {
    let cluster = RedisCluster::start();
    let store = open(&cluster.url(), "spread").await;
    let users: Vec<String> = (0..30).map(|i| format!("user{i}@example.org")).collect();
    let mut ids: HashMap<&str, Vec<KeyId>> = HashMap::new();
    for user in &users {
        for _ in 0..2 {
            let (_, r) = record(user, DAY);
            store.insert(&r).await.unwrap();
            ids.entry(user).or_default().push(r.id);
        }
    }
    let node_of: HashMap<String, u16> = cluster
        .keys_by_node("spread:*")
        .into_iter()
        .flat_map(|(port, keys)| keys.into_iter().map(move |k| (k, port)))
        .collect();
    let slot = |key: &str| -> u16 {
        query(
            cluster.nodes[0].port,
            redis::cmd("CLUSTER").arg("KEYSLOT").arg(key),
        )
        .unwrap()
    };
    let mut masters = HashSet::new();
    for user in &users {
        let tag = user_tag(user);
        let index = format!("spread:{{{tag}}}:uexp");
        let records: Vec<String> = ids[user.as_str()]
            .iter()
            .map(|id| format!("spread:{{{tag}}}:key:{id}"))
            .collect();
        let node = node_of[&index];
        for r in &records {
            assert_eq!(node_of[r], node, "{user}: record and index on one node");
            assert_eq!(
                slot(r),
                slot(&index),
                "{user}: record and index in one slot"
            );
        }
        masters.insert(node);
        assert_eq!(store.list(Some(user)).await.unwrap().len(), 2);
    }
    assert_eq!(masters.len(), 3, "30 users spread over all 3 masters");
    // The overall listing index is cut into buckets that spread too.
    let buckets: HashSet<u16> = (0..16)
        .filter_map(|n| node_of.get(&format!("spread:{{g{n:02}}}:gexp")).copied())
        .collect();
    assert_eq!(
        buckets.len(),
        3,
        "the overall index's buckets on every master"
    );
    assert_eq!(store.list(None).await.unwrap().len(), 60);
    assert_eq!(store.revoke_users(&users[..10]).await.unwrap(), 20);
    let some: Vec<KeyId> = ids[users[10].as_str()].clone();
    assert_eq!(store.revoke_ids(&some).await.unwrap(), 2);
    assert_eq!(store.revoke_all().await.unwrap(), 38);
    assert!(store.list(None).await.unwrap().is_empty());

    pubsub_reaches_every_subscriber(&store).await;
}

/// What the revocation barrier needs: two subscribers (two instances), one
/// PUBLISH that counts and reaches both.
async fn pubsub_reaches_every_subscriber(store: &Store) {
    use futures_util::StreamExt;
    let redis = store.as_redis().unwrap();
    let mut subs = Vec::new();
    for _ in 0..2 {
        let mut sub = redis.pubsub().await.unwrap();
        sub.subscribe("bus").await.unwrap();
        subs.push(sub);
    }
    assert_eq!(redis.publish("bus", "revoked:x").await.unwrap(), 2);
    for sub in &mut subs {
        let msg = crate::support::within(5, "the message arrives", sub.on_message().next())
            .await
            .unwrap();
        assert_eq!(msg.get_payload_bytes(), b"revoked:x");
    }
}

#[tokio::test]
async fn standalone_pubsub_reaches_every_subscriber() {
    let redis = RedisServer::start();
    pubsub_reaches_every_subscriber(&open(&redis.url(), "bus").await).await;
}

/// In a Cluster too, a revocation no replica confirms is an error: `WAIT`
/// goes to every master with replicas, over the connections of the writes.
#[tokio::test]
async fn cluster_revocations_wait_for_replicas() {
    let cluster = RedisCluster::start_replicated();
    let store = open(&cluster.url(), "cwait").await;
    let (_, a) = record("alice", DAY);
    store.insert(&a).await.unwrap();
    assert_eq!(
        store.revoke_ids(std::slice::from_ref(&a.id)).await.unwrap(),
        1,
        "confirmed by live replicas"
    );
    // Every master was fenced on its own slots, whichever it wrote to.
    let masters = cluster.masters();
    for &port in &masters {
        let fences: Vec<String> = query(port, redis::cmd("KEYS").arg("cwait:fence:*")).unwrap();
        assert_eq!(fences.len(), 1, "master {port}: {fences:?}");
    }
    let (_, b) = record("bob", DAY);
    store.insert(&b).await.unwrap();
    let replicas: Vec<&RedisServer> = cluster
        .nodes
        .iter()
        .filter(|n| !masters.contains(&n.port))
        .collect();
    assert_eq!(replicas.len(), 3);
    for r in &replicas {
        r.freeze();
    }
    let unconfirmed = store.revoke_ids(std::slice::from_ref(&b.id)).await;
    for r in &replicas {
        r.thaw();
    }
    assert!(
        matches!(unconfirmed, Err(StoreError::Timeout(_))),
        "{unconfirmed:?}"
    );
}

/// The admin retries an unconfirmed revocation of a user's keys, here
/// through another instance whose links wrote nothing before: the first
/// attempt removed the keys from the masters already, so the retry finds
/// none, yet it must not be confirmed before a replica has the first
/// attempt's writes (a failover would bring the keys back).
#[tokio::test]
async fn a_cluster_revocation_retried_elsewhere_waits_for_the_first_attempts_writes() {
    let cluster = RedisCluster::start_replicated();
    let first = open(&cluster.url(), "cretry").await;
    let other = open(&cluster.url(), "cretry").await;
    first.insert(&record("alice", DAY).1).await.unwrap();
    let masters = cluster.masters();
    let replicas: Vec<&RedisServer> = cluster
        .nodes
        .iter()
        .filter(|n| !masters.contains(&n.port))
        .collect();
    for r in &replicas {
        r.freeze();
    }
    let alice = ["alice".to_owned()];
    let attempt = first.revoke_users(&alice).await;
    let retry = other.revoke_users(&alice).await;
    for r in &replicas {
        r.thaw();
    }
    assert!(
        matches!(attempt, Err(StoreError::Timeout(_))),
        "{attempt:?}"
    );
    assert!(matches!(retry, Err(StoreError::Timeout(_))), "{retry:?}");
    assert_eq!(
        other.revoke_users(&alice).await.unwrap(),
        0,
        "confirmed once the replicas caught up"
    );
}

/// With a replica that cannot confirm (frozen), a revocation is an error,
/// never "revoked": the admin retries instead of trusting a write that a
/// failover could lose. A created key only logs a warning.
#[tokio::test]
async fn a_revocation_no_replica_confirms_is_an_error() {
    let (master, replica) = master_and_replica();
    let store = open(&master.url(), "wait").await;
    let (_, a) = record("alice", DAY);
    store.insert(&a).await.unwrap();
    assert_eq!(
        store.revoke_ids(std::slice::from_ref(&a.id)).await.unwrap(),
        1,
        "confirmed by the live replica"
    );
    let (_, b) = record("alice", DAY);
    store.insert(&b).await.unwrap();
    replica.freeze();
    store.insert(&record("bob", DAY).1).await.unwrap();
    // Lookups meanwhile are not held up by the revocation's WAIT: one made
    // while the master holds the WAIT answers before the revocation does.
    let ((unconfirmed, revocation_answered), lookup_answered) = tokio::join!(
        async {
            let r = store.revoke_ids(std::slice::from_ref(&b.id)).await;
            (r, Instant::now())
        },
        async {
            waiting_for_replicas(master.port).await;
            store.get(a.id.as_str()).await.unwrap();
            Instant::now()
        }
    );
    replica.thaw();
    assert!(
        lookup_answered < revocation_answered,
        "a lookup waited behind WAIT"
    );
    assert!(
        matches!(unconfirmed, Err(StoreError::Timeout(_))),
        "{unconfirmed:?}"
    );
}

/// Settings an admin saves (self-service turned off, a shorter `max_ttl`)
/// are confirmed by a replica like a revocation: with a frozen replica the
/// save is an error, never "saved", since a failover could quietly bring
/// the looser settings back.
#[tokio::test]
async fn settings_no_replica_confirms_are_an_error() {
    let (master, replica) = master_and_replica();
    let store = open(&master.url(), "wait-settings").await;
    store
        .put_settings(r#"{"self_service":true}"#)
        .await
        .expect("confirmed by the live replica");
    replica.freeze();
    let unconfirmed = store.put_settings(r#"{"self_service":false}"#).await;
    replica.thaw();
    assert!(
        matches!(unconfirmed, Ok(Saved::Unconfirmed(StoreError::Timeout(_)))),
        "{unconfirmed:?}"
    );
    // Written all the same: in force, which the admin is told (503: save again).
    assert_eq!(
        store.settings().await.unwrap().as_deref(),
        Some(r#"{"self_service":false}"#)
    );
}

/// A gateway on `master` in namespace `ns` (with its backend and the
/// folder of its secret, kept for the test's length).
async fn gateway_on(
    master: &RedisServer,
    ns: &str,
) -> (
    Upstream,
    crate::support::gateway::TestGateway,
    tempfile::TempDir,
) {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut b = crate::support::gateway::builder(&up.url());
    for line in store_section_for(&master.url(), dir.path(), ns) {
        b.set("store", &line);
    }
    let gw = b.start().await;
    (up, gw, dir)
}

/// The runtime settings of `GET /v1/settings` (`text`) with the page
/// turned off: the change the settings tests save.
fn self_service_off(text: &str) -> serde_json::Value {
    let mut settings: serde_json::Value = serde_json::from_str(text).unwrap();
    settings["self_service"] = serde_json::json!(false);
    settings
}

/// Through the admin API: the unconfirmed save says what happened (saved,
/// in force, save again), is audited, and the settings are in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_settings_save_is_a_503_that_says_it_is_in_force_and_is_audited() {
    let (master, replica) = master_and_replica();
    let (_up, gw, _dir) = gateway_on(&master, "unconfirmed").await;
    let c = client::h1(&gw.ca);
    let admin =
        |method, path: &'static str, body| crate::support::admin::call(&c, &gw, method, path, body);
    let settings = self_service_off(&admin(http::Method::GET, "/v1/settings", None).await.text());

    replica.freeze();
    let saved = admin(http::Method::PUT, "/v1/settings", Some(settings.clone())).await;
    replica.thaw();
    assert_eq!(
        saved.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        saved.text()
    );
    assert!(
        saved
            .text()
            .contains("saved and in force on every instance, but no replica confirmed them"),
        "{}",
        saved.text()
    );
    let now: serde_json::Value =
        serde_json::from_str(&admin(http::Method::GET, "/v1/settings", None).await.text()).unwrap();
    assert_eq!(now["self_service"], false);
    let audit: serde_json::Value =
        serde_json::from_str(&admin(http::Method::GET, "/v1/audit", None).await.text()).unwrap();
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "settings"),
        "not audited: {audit}"
    );
}

/// A replica check that fails (here `WAIT` refused by the ACL) is no
/// timeout: the 503 still says the settings are saved and in force and to
/// save again, but not that no replica confirmed them "in time".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_save_whose_replica_check_fails_says_so_not_in_time() {
    let (master, _replica) = master_and_replica();
    let (_up, gw, _dir) = gateway_on(&master, "uncheckable").await;
    let c = client::h1(&gw.ca);
    let admin =
        |method, path: &'static str, body| crate::support::admin::call(&c, &gw, method, path, body);
    let settings = self_service_off(&admin(http::Method::GET, "/v1/settings", None).await.text());

    let mut acl = redis::cmd("ACL");
    acl.arg("SETUSER").arg("default").arg("-wait");
    query::<()>(master.port, &acl).unwrap();
    let saved = admin(http::Method::PUT, "/v1/settings", Some(settings)).await;
    assert_eq!(
        saved.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        saved.text()
    );
    let text = saved.text();
    assert!(
        text.contains("saved and in force on every instance, but whether a replica has them could not be checked")
            && text.contains("save them again")
            && !text.contains("in time"),
        "{text}"
    );
    let now: serde_json::Value =
        serde_json::from_str(&admin(http::Method::GET, "/v1/settings", None).await.text()).unwrap();
    assert_eq!(now["self_service"], false);
}

/// Once a client of the server on `port` is blocked in `WAIT`.
async fn waiting_for_replicas(port: u16) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let conn = client.get_multiplexed_async_connection().await.unwrap();
    crate::support::eventually(
        "a client waits in WAIT",
        250,
        Duration::from_millis(20),
        || {
            let mut conn = conn.clone();
            async move {
                let clients: String = redis::cmd("CLIENT")
                    .arg("LIST")
                    .query_async(&mut conn)
                    .await
                    .ok()?;
                clients.contains("cmd=wait").then_some(())
            }
        },
    )
    .await;
}

fn b64(key: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("apikey:{key}"))
}

async fn status(c: &HttpsClient, port: u16, key: &str) -> u16 {
    let req = Request::get(format!("https://127.0.0.1:{port}/p"))
        .header("authorization", format!("Basic {}", b64(key)))
        .body(crate::support::body::empty())
        .unwrap();
    send(c, req).await.status.as_u16()
}

/// The real binary through Sentinel: the master is SIGKILLed mid-run; keygate
/// authenticates again within 30 s on the promoted replica, a revocation
/// acknowledged before the kill is still in force, and new keys work.
#[tokio::test]
async fn sentinel_failover_keeps_keygate_authenticating_and_revocations_in_force() {
    let mut set = SentinelSet::start();
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("sentinel CA");
    let store = store_section_for(&set.url(), dir.path(), "failover")
        .join("\n")
        // Room for WAIT on a loaded two-core machine.
        .replace("timeout = \"500ms\"", "timeout = \"2s\"");
    let cfg = bin::write_config(
        dir.path(),
        &ca,
        "keygate",
        &up.url(),
        &format!("[store]\n{store}\n"),
    );
    let kept = cli(&cfg, &["keys", "create", "--user", "alice"]);
    let revoked = cli(&cfg, &["keys", "create", "--user", "bob"]);
    let revoked_id = revoked.split('_').nth(1).unwrap();
    assert_eq!(
        cli(&cfg, &["keys", "revoke", "--id", revoked_id]),
        "revoked 1 key"
    );

    let kg = Process::serve(&cfg);
    let port = kg.main_addr().await.port();
    let c = client::h1(&ca);
    assert_eq!(status(&c, port, &kept).await, 200);
    assert_eq!(status(&c, port, &revoked).await, 401);

    let old_master = set.master.port;
    set.master.kill();
    let killed = Instant::now();
    // Hold the dead master's port: a server of a parallel test that bound it
    // would answer ROLE as a master, with other data, until the failover ends.
    let hold = tokio::net::TcpListener::bind(("127.0.0.1", old_master))
        .await
        .expect("the killed master's port is free");
    tokio::spawn(async move {
        while let Ok((conn, _)) = hold.accept().await {
            drop(conn);
        }
    });
    let logs = || {
        kg.log_lines()
            .into_iter()
            .filter(|l| l["target"] != "keygate::access")
            .collect::<Vec<_>>()
    };
    // Until the sentinel has promoted the replica, a live key is served
    // from the cache (within its lease) or refused with 503, never 401.
    let mut seen = Vec::new();
    while set.current_master() != Some(set.replica.port) {
        let s = status(&c, port, &kept).await;
        seen.push(s);
        assert!(s == 200 || s == 503, "{seen:?}; logs: {:#?}", logs());
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no promotion 30 s after the kill"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let promoted = killed.elapsed();
    // Then keygate finds the new master by itself: only 503 until it does.
    loop {
        let s = status(&c, port, &kept).await;
        seen.push(s);
        if s == 200 {
            break;
        }
        assert_eq!(
            s,
            503,
            "only 503 while keygate looks for the new master; logs: {:#?}",
            logs()
        );
        assert!(
            killed.elapsed() < promoted + Duration::from_secs(30),
            "no authentication 30 s after the promotion: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "promotion {promoted:?} after the master was killed, keygate authenticated again after {:?}",
        killed.elapsed()
    );
    assert_eq!(
        status(&c, port, &revoked).await,
        401,
        "the revocation survived the failover"
    );
    let fresh = cli(&cfg, &["keys", "create", "--user", "carol"]);
    assert_eq!(
        status(&c, port, &fresh).await,
        200,
        "writes reach the new master"
    );
    // Pub/sub connections go to the new master too.
    pubsub_reaches_every_subscriber(&open(&set.url(), "failover").await).await;
}

/// A master that hangs instead of dying (SIGSTOP: connections stay open,
/// nothing answers, as in a network partition): calls time out, and once
/// Sentinel has promoted the replica the store finds it by itself.
#[tokio::test]
async fn sentinel_failover_from_a_hanging_master() {
    let set = SentinelSet::start();
    let store = Store::redis(&set.url(), "hang", Duration::from_secs(1))
        .await
        .unwrap();
    let (_, a) = record("alice", DAY);
    store.insert(&a).await.unwrap();
    // The replica has the key before the master hangs: a later write that
    // it confirmed (WAIT) follows ours in the one replication stream.
    replica_online(set.master.port);
    set.master.freeze();
    let frozen = Instant::now();
    loop {
        match store.get(a.id.as_str()).await {
            Ok(found) => {
                assert_eq!(found.as_ref(), Some(&a), "the key survives the failover");
                break;
            }
            Err(e) => assert!(
                frozen.elapsed() < Duration::from_secs(30),
                "still failing 30 s after the master hung: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "the store answered again {:?} after the master hung",
        frozen.elapsed()
    );
    assert_eq!(set.current_master(), Some(set.replica.port));
}

/// `rediss://` with `store.ca_file`'s CA; without it the server's
/// certificate is refused (the connection is really verified).
#[tokio::test]
async fn rediss_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("redis CA");
    let redis = TlsRedis::start(&ca, dir.path());
    let untrusted = RedisStore::open(&redis.url(), "tls", TIMEOUT, None).unwrap();
    assert!(untrusted.ping().await.is_err(), "an unknown CA is refused");
    let store = RedisStore::open(&redis.url(), "tls", TIMEOUT, Some(ca.pem().as_bytes())).unwrap();
    store.ready().await.unwrap();
    conformance(Store::Redis(store)).await;
}

/// `keygate serve` with Redis down at start: it serves (keys 503, /readyz
/// 503, fail closed), and works once Redis comes up, without a restart.
#[tokio::test]
async fn serve_starts_with_redis_down_and_works_once_it_is_up() {
    let port = crate::support::redis::free_port();
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("lazy CA");
    let store =
        store_section_for(&format!("redis://127.0.0.1:{port}/0"), dir.path(), "lazy").join("\n");
    let cfg = bin::write_config(
        dir.path(),
        &ca,
        "keygate",
        &up.url(),
        &format!("[store]\n{store}\n"),
    );
    let kg = Process::serve(&cfg);
    let (main, admin) = (kg.main_addr().await.port(), kg.admin_addr().await.port());
    let c = client::h1(&ca);
    let ready = format!("https://127.0.0.1:{admin}/readyz");
    let (never_issued, _) = keygate::keys::format::generate("kg", "alice");
    assert_eq!(client::get(&c, &ready).await.status, 503);
    assert_eq!(status(&c, main, never_issued.expose()).await, 503);

    let _redis = RedisServer::start_on(port);
    crate::support::eventually(
        "/readyz turns 200",
        100,
        Duration::from_millis(100),
        || async { (client::get(&c, &ready).await.status == 200).then_some(()) },
    )
    .await;
    let key = cli(&cfg, &["keys", "create", "--user", "alice"]);
    assert_eq!(status(&c, main, &key).await, 200);
    assert_eq!(status(&c, main, never_issued.expose()).await, 401);
}

/// The store contract through `url`, trusting `ca` (`store.ca_file`).
async fn tls_conformance(url: &str, namespace: &str, ca: &Ca) {
    let store = RedisStore::open(url, namespace, TIMEOUT, Some(ca.pem().as_bytes())).unwrap();
    store.ready().await.unwrap();
    conformance(Store::Redis(store)).await;
}

/// `rediss+cluster://`: every node, and the cluster bus, over TLS with the
/// CA from `store.ca_file`.
#[tokio::test]
async fn rediss_cluster_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("redis cluster CA");
    let cluster = RedisCluster::start_tls(&ca, dir.path());
    tls_conformance(&cluster.url(), "tls-cluster", &ca).await;
}

/// `rediss+sentinel://`: the sentinel, the master it names and replication
/// all over TLS, with the CA from `store.ca_file`.
#[tokio::test]
async fn rediss_sentinel_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("redis sentinel CA");
    let set = SentinelSet::start_tls(&ca, dir.path());
    tls_conformance(&set.url(), "tls-sentinel", &ca).await;
}

/// A failover behind one address (a cloud Redis whose endpoint name moves
/// to the new primary, a virtual IP): the old master stays up, as a replica
/// of the new one, and the connections keygate holds stay with it, where
/// every write answers READONLY. keygate makes new connections on that
/// answer, which reach the new master: revocations work again, and the
/// instance is back in the fleet, without waiting for the old connections
/// to break (they may never).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_behind_one_address_moves_keygate_off_the_demoted_master() {
    let pair = BehindOneAddress::start().await;
    let relay = &pair.relay;
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut b = crate::support::gateway::builder(&up.url());
    for line in store_section_for(&relay.redis_url(), dir.path(), "moved") {
        b.set("store", &line);
    }
    let gw = b
        .set("auth", "anonymous = \"reject\"")
        .set("cache", "lease = \"1s\"")
        .start()
        .await;
    let c = client::h1(&gw.ca);
    gw.await_fleet(&c).await;
    let (key, id) = crate::support::admin::create_key(&c, &gw, "dora").await;
    assert_eq!(gw.status_with_key(&c, &key).await, StatusCode::OK);

    pair.fail_over();

    // At most the first call meets the demoted master.
    let revoked = crate::support::eventually(
        "a revocation goes through on the new master",
        3,
        Duration::from_millis(100),
        || async {
            let a = crate::support::admin::call(
                &c,
                &gw,
                http::Method::POST,
                "/v1/revoke",
                Some(serde_json::json!({ "ids": [id] })),
            )
            .await;
            (a.status == StatusCode::OK).then(|| a.text())
        },
    )
    .await;
    // 0 when a first try ran its deletion on the new master and only its
    // replica wait timed out (503): the retry finds the key gone.
    assert!(
        revoked.contains(r#""revoked":1"#) || revoked.contains(r#""revoked":0"#),
        "{revoked}"
    );
    assert_eq!(gw.status_with_key(&c, &key).await, StatusCode::UNAUTHORIZED);
    gw.await_fleet(&c).await;
}

/// A master demoted, then a store at its address (a failover behind one
/// address, a `store.url` naming a replica). A transaction refused there is
/// an error redis-rs raises, not an answer: it too replaces the connection
/// and goes again. And a server that keeps refusing costs no new connection
/// per write: at most one a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_master_costs_one_new_connection_a_second_and_transactions_move_off_it() {
    let pair = BehindOneAddress::start().await;
    let relay = &pair.relay;
    let store = Store::redis(&relay.redis_url(), "demoted", Duration::from_secs(2))
        .await
        .unwrap();
    let id = KeyId::parse("AAAAbbbbCCCC").unwrap();
    store.schedule(&id, "{}", &[(1, 2)]).await.unwrap();

    pair.fail_over();
    // MULTI/EXEC first: the old connection still reaches the demoted master.
    store.schedule(&id, "{}", &[(3, 4)]).await.unwrap();

    // The address goes back to the demoted one, which stays a replica.
    relay.retarget(pair.old.port);
    let connections = |port: u16| -> u64 {
        let info: String = query(port, redis::cmd("INFO").arg("stats")).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let before = connections(pair.old.port);
    let started = Instant::now();
    let mut writes = 0;
    while writes < 20 {
        let refused = store.put_settings("{}").await;
        assert!(refused.is_err(), "a replica took a write");
        writes += 1;
    }
    let seconds = started.elapsed().as_secs();
    let dialled = connections(pair.old.port) - before;
    assert!(
        dialled <= seconds + 2,
        "{dialled} new connections for {writes} refused writes in {seconds} s"
    );
}

/// A master and its replica behind one address (a relay), as a cloud
/// endpoint or a virtual IP puts them.
struct BehindOneAddress {
    old: RedisServer,
    new: RedisServer,
    relay: crate::support::proxy::Relay,
}

impl BehindOneAddress {
    async fn start() -> BehindOneAddress {
        let (old, new) = master_and_replica();
        let relay = crate::support::proxy::Relay::to_port(old.port).await;
        BehindOneAddress { old, new, relay }
    }

    /// The failover: the replica takes over, the address follows it, the
    /// old master follows the new one.
    fn fail_over(&self) {
        let _: () = query(self.new.port, redis::cmd("REPLICAOF").arg("NO").arg("ONE")).unwrap();
        self.relay.retarget(self.new.port);
        let _: () = query(
            self.old.port,
            redis::cmd("REPLICAOF").arg("127.0.0.1").arg(self.new.port),
        )
        .unwrap();
        replica_online(self.new.port);
    }
}

/// A rotation no replica confirms is still answered 201 (the successor is
/// made and shown only this once), but not as done everywhere: a failover
/// now could undo it, and the old key would keep its former expiry. The
/// answer says so, as when the fleet could not be told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_no_replica_confirms_says_the_old_key_may_live_on() {
    let (master, replica) = master_and_replica();
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = crate::support::gateway::builder(&up.url())
        .redis(&master, dir.path(), "rotwait")
        .start()
        .await;
    let c = client::h1(&gw.ca);
    let rotate = |id: String| {
        let (c, gw) = (&c, &gw);
        async move {
            let a = crate::support::admin::call(
                c,
                gw,
                http::Method::POST,
                &format!("/v1/keys/{id}/rotate"),
                Some(serde_json::json!({ "grace": "1h" })),
            )
            .await;
            assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
            crate::support::admin::json_of(&a)
        }
    };
    let (_, confirmed) = crate::support::admin::create_key(&c, &gw, "rita").await;
    let answer = rotate(confirmed).await;
    assert_eq!(answer["old_key_stopped_everywhere"], true, "{answer}");

    let (_, unconfirmed) = crate::support::admin::create_key(&c, &gw, "rita").await;
    replica.freeze();
    let answer = rotate(unconfirmed).await;
    replica.thaw();
    assert_eq!(answer["old_key_stopped_everywhere"], false, "{answer}");
    let warning = answer["warning"].as_str().unwrap_or_default();
    assert!(warning.contains("replica"), "{answer}");
}
