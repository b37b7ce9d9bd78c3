//! One contract, two stores: the same suite runs against the memory store
//! and a real redis-server (STYLE: oauth2-proxy's session-store suite);
//! the listing part of it (pages, counts, filtered revocations) in `listing`.

pub(crate) mod listing;

use std::time::Duration;

use keygate::keys::{self, DigestKey, KeyId, KeyRecord, Scope};
use keygate::store::Store;

use crate::support::eventually;
use crate::support::redis::RedisServer;

/// The audit events at or after unix millisecond `since_ms`, oldest first,
/// at most `limit`, without their stream positions.
pub(crate) async fn audit_since(
    store: &Store,
    since_ms: u64,
    limit: usize,
) -> Vec<keygate::audit::Event> {
    let from = keygate::store::AuditFrom::Since(since_ms);
    let events = store.audit_from(from, limit).await.unwrap();
    events.into_iter().map(|(_, e)| e).collect()
}

pub(crate) fn digest_key() -> DigestKey {
    DigestKey::new(b"0123456789abcdef0123456789abcdef")
}

pub(crate) fn record(user: &str, ttl: Option<Duration>) -> (String, KeyRecord) {
    let new = keys::mint("kg", &digest_key(), user, "label", Scope::Full, ttl);
    (new.key.expose().to_owned(), new.record)
}

pub(crate) const DAY: Option<Duration> = Some(Duration::from_secs(86_400));

pub(crate) async fn conformance(store: Store) {
    // insert + get: the record comes back whole, with only a digest of the secret.
    let (secret, a) = record("alice", DAY);
    store.insert(&a).await.unwrap();
    let got = store
        .get(a.id.as_str())
        .await
        .unwrap()
        .expect("inserted key is found");
    assert_eq!(got, a);
    assert!(digest_key().verify(&secret, &got.digest));
    assert_eq!(store.get("AAAAAAAAAAAA").await.unwrap(), None);

    // Where a key was made comes back too; a record without it (as written
    // before keygate recorded it, like `a`) reads as none.
    assert_eq!(got.source, None);
    let (_, mut made_here) = record("alice", DAY);
    made_here.source = Some(keys::Source::SelfService);
    store.insert(&made_here).await.unwrap();
    let back = store.get(made_here.id.as_str()).await.unwrap().unwrap();
    assert_eq!(back.source, Some(keys::Source::SelfService));
    store.revoke_ids(&[made_here.id]).await.unwrap();

    // A key without expiry.
    let (_, forever) = record("alice", None);
    store.insert(&forever).await.unwrap();
    assert_eq!(
        store
            .get(forever.id.as_str())
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        None
    );

    // Expiry: gone, not flagged, and not listed.
    let (_, short) = record("alice", Some(Duration::from_secs(1)));
    store.insert(&short).await.unwrap();
    eventually(
        "a 1 s key expires",
        60,
        Duration::from_millis(100),
        || async {
            store
                .get(short.id.as_str())
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;

    // Listing by user and overall, newest first, never other users' keys.
    let (_, b1) = record("bob", DAY);
    let (_, b2) = record("bob", DAY);
    store.insert(&b1).await.unwrap();
    store.insert(&b2).await.unwrap();
    let bobs: Vec<KeyId> = store
        .list(Some("bob"))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(bobs.len(), 2);
    assert!(bobs.contains(&b1.id) && bobs.contains(&b2.id));
    let all = store.list(None).await.unwrap();
    assert_eq!(all.len(), 4, "alice's two live keys and bob's two");
    assert!(all.iter().all(|r| r.id != short.id));

    // last_used is written, and never resurrects a revoked key.
    store.touch(&a.id, 1_800_000_000).await.unwrap();
    assert_eq!(
        store.get(a.id.as_str()).await.unwrap().unwrap().last_used,
        Some(1_800_000_000)
    );

    // Revoke by id: counts live keys only.
    assert_eq!(store.revoke_ids(&[a.id, short.id]).await.unwrap(), 1);
    assert_eq!(store.get(a.id.as_str()).await.unwrap(), None);
    store.touch(&a.id, 1_800_000_001).await.unwrap();
    assert_eq!(
        store.get(a.id.as_str()).await.unwrap(),
        None,
        "touch brought a revoked key back"
    );
    assert_eq!(
        store.revoke_ids(std::slice::from_ref(&a.id)).await.unwrap(),
        0
    );

    // Revoke by user.
    assert_eq!(
        store
            .revoke_users(&["bob".into(), "nobody".into()])
            .await
            .unwrap(),
        2
    );
    assert!(store.list(Some("bob")).await.unwrap().is_empty());
    assert!(
        store.get(forever.id.as_str()).await.unwrap().is_some(),
        "alice's key survives bob's revocation"
    );

    // Revoke all; a key created afterwards survives.
    let (_, c) = record("carol", DAY);
    store.insert(&c).await.unwrap();
    assert_eq!(store.revoke_all().await.unwrap(), 2);
    assert!(store.list(None).await.unwrap().is_empty());
    let (_, d) = record("dave", DAY);
    store.insert(&d).await.unwrap();
    assert_eq!(store.list(None).await.unwrap().len(), 1);
    store.ping().await.unwrap();

    // The audit stream: oldest first, filtered by time, limited.
    let first = keygate::audit::Event::new("alice", "create", "key x", 1, None);
    store.append_audit(&first).await.unwrap();
    let mut second = keygate::audit::Event::new("bob", "revoke", "all keys", 3, None);
    second.at_ms = first.at_ms + 5;
    second.time = keygate::audit::time_of(second.at_ms);
    store.append_audit(&second).await.unwrap();
    let all = audit_since(&store, 0, 10).await;
    assert_eq!(all, vec![first.clone(), second.clone()]);
    assert_eq!(
        audit_since(&store, first.at_ms + 1, 10).await,
        vec![second.clone()]
    );
    assert_eq!(audit_since(&store, 0, 1).await, vec![first.clone()]);
    // Newest first, paged by position: the latest, then what came before it.
    let latest = store.audit_before(None, 1).await.unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].1, second);
    let (ms, seq) = latest[0].0.split_once('-').expect("ms-seq");
    let at = (ms.parse().unwrap(), seq.parse().unwrap());
    let earlier = store.audit_before(Some(at), 10).await.unwrap();
    assert_eq!(
        earlier.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
        vec![first]
    );
    // An event whose clock is behind the newest one (another instance's,
    // or a concurrent change that read the time first) is kept, after it.
    let mut behind = keygate::audit::Event::new("carol", "create", "key y", 1, None);
    behind.at_ms = second.at_ms - 1_000;
    behind.time = keygate::audit::time_of(behind.at_ms);
    store.append_audit(&behind).await.unwrap();
    let actors: Vec<String> = audit_since(&store, 0, 10)
        .await
        .into_iter()
        .map(|e| e.actor)
        .collect();
    assert_eq!(actors, ["alice", "bob", "carol"]);

    // Per-user windows (self-service's creation limit): counted per user,
    // over for everyone once the window has passed.
    let window = Duration::from_millis(400);
    let (n, left) = store.count_in_window("erin", window).await.unwrap();
    assert_eq!(n, 1);
    assert!(left > Duration::ZERO && left <= window, "{left:?}");
    assert_eq!(store.count_in_window("erin", window).await.unwrap().0, 2);
    assert_eq!(store.count_in_window("frank", window).await.unwrap().0, 1);
    crate::support::eventually("the window ends", 100, Duration::from_millis(20), || {
        let store = &store;
        async move { (store.count_in_window("erin", window).await.unwrap().0 == 1).then_some(()) }
    })
    .await;
    // A count given back (a creation refused) is taken from the window it
    // went into, never from one begun since (it has more left), never
    // below none.
    let hour = Duration::from_secs(3600);
    store.count_in_window("gina", hour).await.unwrap();
    let (n, left) = store.count_in_window("gina", hour).await.unwrap();
    assert_eq!(n, 2);
    store.give_back_in_window("gina", left).await.unwrap();
    assert_eq!(store.count_in_window("gina", hour).await.unwrap().0, 2);
    store
        .give_back_in_window("gina", Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(store.count_in_window("gina", hour).await.unwrap().0, 3);
    store.give_back_in_window("hal", hour).await.unwrap();
    assert_eq!(store.count_in_window("hal", hour).await.unwrap().0, 1);

    listing::listing_conformance(&store).await;
}

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    conformance(Store::memory()).await;
}

#[tokio::test]
async fn redis_store_keeps_the_contract() {
    let redis = RedisServer::start();
    conformance(
        Store::redis(&redis.url(), "conformance", Duration::from_secs(2))
            .await
            .unwrap(),
    )
    .await;
}

#[tokio::test]
async fn memory_scans_are_bounded_but_complete() {
    listing::a_scan_is_bounded_but_complete(&Store::memory()).await;
}

#[tokio::test]
async fn redis_scans_are_bounded_but_complete() {
    let redis = RedisServer::start();
    let store = Store::redis(&redis.url(), "budget", Duration::from_secs(2))
        .await
        .unwrap();
    listing::a_scan_is_bounded_but_complete(&store).await;
}

#[tokio::test]
async fn redis_namespaces_keep_deployments_apart() {
    let redis = RedisServer::start();
    let one = Store::redis(&redis.url(), "one", Duration::from_secs(2))
        .await
        .unwrap();
    let two = Store::redis(&redis.url(), "two", Duration::from_secs(2))
        .await
        .unwrap();
    let (_, a) = record("alice", DAY);
    one.insert(&a).await.unwrap();
    assert!(two.get(a.id.as_str()).await.unwrap().is_none());
    assert_eq!(two.revoke_all().await.unwrap(), 0);
    assert!(one.get(a.id.as_str()).await.unwrap().is_some());
}

#[tokio::test]
async fn redis_holds_no_secret_only_digests() {
    let redis = RedisServer::start();
    let store = Store::redis(&redis.url(), "leakcheck", Duration::from_secs(2))
        .await
        .unwrap();
    let (secret, a) = record("alice", DAY);
    store.insert(&a).await.unwrap();
    let out = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "--no-raw",
            "HGETALL",
            &format!(
                "leakcheck:{{{}}}:key:{}",
                keys::format::user_tag("alice"),
                a.id
            ),
        ])
        .output()
        .expect("redis-cli is installed with redis-server");
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(dump.contains("alice"), "{dump}");
    let secret_part = &secret[secret.len() - 49..];
    assert!(
        !dump.contains(secret_part),
        "the key secret is stored in Redis"
    );
}

/// Records written by the first layout (`ns:key:<id>`, `ns:user:<u>`, ids
/// without a user tag) are moved at start and keep working: found, listed,
/// revoked by id and by user, their TTL kept.
#[tokio::test]
async fn redis_moves_the_first_layout_at_start() {
    let redis = RedisServer::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut raw = client.get_connection().unwrap();
    let (_, old) = record("alice", DAY);
    let (_, old2) = record("alice", DAY);
    // Ids as the first layout made them: random, no user tag.
    let ids = ["Zz0123456789", "Yy0123456789"];
    for (id, r) in ids.iter().zip([&old, &old2]) {
        let key = format!("legacy:key:{id}");
        let mut pipe = redis::pipe();
        hset_record(&mut pipe, &key, "alice", "old", r);
        pipe.cmd("EXPIRE").arg(&key).arg(86_400).ignore();
        for index in ["legacy:all", "legacy:user:alice"] {
            pipe.cmd("ZADD")
                .arg(index)
                .arg(r.expires_at.unwrap())
                .arg(*id)
                .ignore();
        }
        pipe.query::<()>(&mut raw).unwrap();
    }

    // A few hundred more, and two instances starting at once: their moves
    // race, and each record and index entry still moves exactly once.
    let mut more = redis::pipe();
    let (_, z) = record("zed", None);
    for i in 0..300 {
        let id = format!("Xx{i:010}");
        hset_record(&mut more, &format!("legacy:key:{id}"), "zed", "", &z);
        for index in ["legacy:all", "legacy:user:zed"] {
            more.cmd("ZADD").arg(index).arg("+inf").arg(&id).ignore();
        }
    }
    more.query::<()>(&mut raw).unwrap();
    let url = redis.url();
    let (store, other) = tokio::join!(
        Store::redis(&url, "legacy", Duration::from_secs(2)),
        Store::redis(&url, "legacy", Duration::from_secs(2)),
    );
    let (store, _) = (store.unwrap(), other.unwrap());
    let zed: i64 = redis::cmd("ZCARD")
        .arg(format!("legacy:{{{}}}:uexp", keys::format::user_tag("zed")))
        .query(&mut raw)
        .unwrap();
    assert_eq!(zed, 300, "every key moved and indexed");
    let old_indexes: i64 = redis::cmd("EXISTS")
        .arg("legacy:all")
        .arg(format!(
            "legacy:{{{}}}:user:zed",
            keys::format::user_tag("zed")
        ))
        .query(&mut raw)
        .unwrap();
    assert_eq!(old_indexes, 0, "the second layout's indexes are gone");
    assert_eq!(store.revoke_users(&["zed".into()]).await.unwrap(), 300);
    let got = store
        .get(ids[0])
        .await
        .unwrap()
        .expect("moved record found");
    assert_eq!((got.user.as_str(), got.label.as_str()), ("alice", "old"));
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("legacy:{{{}}}:key:{}", &ids[0][..4], ids[0]))
        .query(&mut raw)
        .unwrap();
    assert!(ttl > 86_000, "TTL kept: {ttl}");
    let exists: i64 = redis::cmd("EXISTS")
        .arg("legacy:key:Zz0123456789")
        .arg("legacy:user:alice")
        .query(&mut raw)
        .unwrap();
    assert_eq!(exists, 0, "the first layout's keys are gone");

    // A new key of the same user lands in the same (moved) index.
    let (_, new) = record("alice", DAY);
    store.insert(&new).await.unwrap();
    assert_eq!(store.list(Some("alice")).await.unwrap().len(), 3);
    assert_eq!(store.list(None).await.unwrap().len(), 3);
    let id0 = KeyId::parse(ids[0]).unwrap();
    assert_eq!(store.revoke_ids(&[id0]).await.unwrap(), 1);
    assert_eq!(store.revoke_users(&["alice".into()]).await.unwrap(), 2);
    assert!(store.list(None).await.unwrap().is_empty());

    // A second start finds the marker and moves nothing.
    Store::redis(&redis.url(), "legacy", Duration::from_secs(2))
        .await
        .unwrap();
}

/// The webhook outbox (`store/outbox.rs`): one claim excludes the others
/// for its lease, delivered messages go, undelivered ones come back, and
/// nothing outlives `keep`.
async fn outbox_conformance(store: Store) {
    let hour = Duration::from_secs(3600);
    let lease = Duration::from_millis(300);
    store
        .outbox_push("q1", "msg_a", "{\"a\":1}", hour)
        .await
        .unwrap();
    store
        .outbox_push("q1", "msg_b", "{\"b\":2}", hour)
        .await
        .unwrap();
    store.outbox_push("q2", "msg_c", "{}", hour).await.unwrap();

    // Claimed oldest first, the attempt counted, at most `max` at a time.
    let first = store.outbox_claim("q1", lease, 1).await.unwrap().messages;
    assert_eq!(
        first,
        [keygate::store::Claimed {
            id: "msg_a".into(),
            body: "{\"a\":1}".into(),
            attempts: 1
        }]
    );
    let second = store.outbox_claim("q1", lease, 10).await.unwrap().messages;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, "msg_b");
    // Both leased: no one else gets them now, not even when one is queued
    // again under its id; other queues are their own.
    store
        .outbox_push("q1", "msg_a", "{\"a\":\"again\"}", hour)
        .await
        .unwrap();
    assert!(store
        .outbox_claim("q1", lease, 10)
        .await
        .unwrap()
        .messages
        .is_empty());
    assert_eq!(
        store.outbox_claim("q2", lease, 10).await.unwrap().messages[0].id,
        "msg_c"
    );

    // Delivered: gone. Failed: due again after the pause asked for.
    store.outbox_done("q1", "msg_b").await.unwrap();
    store
        .outbox_retry("q1", "msg_a", Duration::ZERO)
        .await
        .unwrap();
    let again = store.outbox_claim("q1", lease, 10).await.unwrap().messages;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id.as_str(), again[0].attempts), ("msg_a", 2));
    assert_eq!(
        again[0].body, "{\"a\":1}",
        "the message first queued is kept"
    );

    // A claim whose deliverer never reported back comes due when its lease ends.
    let back = eventually("the lease runs out", 100, Duration::from_millis(20), || {
        let store = &store;
        async move {
            let got = store.outbox_claim("q1", lease, 10).await.unwrap().messages;
            (!got.is_empty()).then_some(got)
        }
    })
    .await;
    assert_eq!((back[0].id.as_str(), back[0].attempts), ("msg_a", 3));
    store.outbox_done("q1", "msg_a").await.unwrap();
    store
        .outbox_retry("q1", "msg_a", Duration::ZERO)
        .await
        .unwrap();
    assert!(store
        .outbox_claim("q1", lease, 10)
        .await
        .unwrap()
        .messages
        .is_empty());

    // Nothing outlives `keep`, delivered or not; the claim that finds a
    // message dropped says so, once (the worker logs it and counts it).
    store
        .outbox_push("q3", "msg_d", "{}", Duration::from_millis(200))
        .await
        .unwrap();
    let expired = std::sync::atomic::AtomicU64::new(0);
    eventually(
        "an undelivered message is dropped after keep",
        100,
        Duration::from_millis(20),
        || {
            let (store, expired) = (&store, &expired);
            async move {
                let claim = store.outbox_claim("q3", Duration::ZERO, 10).await.unwrap();
                expired.fetch_add(claim.expired, std::sync::atomic::Ordering::Relaxed);
                claim.messages.is_empty().then_some(())
            }
        },
    )
    .await;
    let claim = store.outbox_claim("q3", Duration::ZERO, 10).await.unwrap();
    assert_eq!(
        expired.into_inner() + claim.expired,
        1,
        "the dropped message is counted once"
    );
}

#[tokio::test]
async fn memory_outbox_keeps_the_contract() {
    outbox_conformance(Store::memory()).await;
}

#[tokio::test]
async fn redis_outbox_keeps_the_contract() {
    let redis = RedisServer::start();
    outbox_conformance(
        Store::redis(&redis.url(), "outbox", Duration::from_secs(2))
            .await
            .unwrap(),
    )
    .await;
}

/// A queue nobody claims from any more (its `[[webhooks]]` entry removed,
/// or its URL changed, which names another queue) leaves nothing behind
/// once its messages' `keep` has passed: the list of due ids went with them,
/// where it stayed for ever, an id for each event of the backlog.
#[tokio::test]
async fn redis_outbox_an_abandoned_queue_is_gone_after_keep() {
    let redis = RedisServer::start();
    let store = Store::redis(&redis.url(), "abandoned", Duration::from_secs(2))
        .await
        .unwrap();
    let keep = Duration::from_millis(300);
    for id in ["msg_1", "msg_2"] {
        store.outbox_push("q", id, "{}", keep).await.unwrap();
    }
    // Claimed and put back once (a receiver that was down), then abandoned.
    assert_eq!(
        store
            .outbox_claim("q", keep, 10)
            .await
            .unwrap()
            .messages
            .len(),
        2
    );
    store
        .outbox_retry("q", "msg_1", Duration::from_millis(50))
        .await
        .unwrap();
    eventually(
        "no outbox key is left after keep",
        100,
        Duration::from_millis(20),
        || async {
            let left: Vec<String> = crate::support::deploy::query(
                redis.port,
                redis::cmd("KEYS").arg("abandoned:outbox:*"),
            )
            .unwrap();
            left.is_empty().then_some(())
        },
    )
    .await;
}

/// A message whose id is in no queue any more (evicted, deleted by hand) but
/// whose body is kept is made due again when it is queued again under its
/// id, with its attempts so far.
#[tokio::test]
async fn redis_outbox_requeues_a_kept_message_that_fell_out_of_its_queue() {
    let redis = RedisServer::start();
    let store = Store::redis(&redis.url(), "orphan", Duration::from_secs(2))
        .await
        .unwrap();
    let (hour, lease) = (Duration::from_secs(3600), Duration::from_secs(3600));
    store.outbox_push("q", "msg_o", "{}", hour).await.unwrap();
    assert_eq!(
        store
            .outbox_claim("q", lease, 10)
            .await
            .unwrap()
            .messages
            .len(),
        1
    );
    let _: i64 = crate::support::deploy::query(
        redis.port,
        redis::cmd("ZREM").arg("orphan:outbox:{q}:due").arg("msg_o"),
    )
    .unwrap();
    store.outbox_push("q", "msg_o", "{}", hour).await.unwrap();
    let back = store.outbox_claim("q", lease, 10).await.unwrap().messages;
    assert_eq!(
        back.iter()
            .map(|m| (m.id.as_str(), m.attempts))
            .collect::<Vec<_>>(),
        [("msg_o", 2)]
    );
}

/// Rotation and the schedule of expiry notices (`store/lifecycle.rs`): one
/// successor per key however many rotations race, the old key dying at
/// its grace period's end; a due notice claimed by one caller at a time.
async fn lifecycle_conformance(store: Store) {
    use keygate::store::{Notice, Rotated};
    let now = keys::unix_now();
    let (_, a) = record("rita", DAY);
    store.insert(&a).await.unwrap();
    let (_, mut b) = record("rita", DAY);
    b.rotated_from = Some(a.id);
    assert_eq!(
        store.rotate(&a.id, &b, now + 3600).await.unwrap(),
        Rotated::Done
    );
    let old = store.get(a.id.as_str()).await.unwrap().unwrap();
    assert_eq!(old.rotated_to, Some(b.id));
    assert_eq!(old.expires_at, Some(now + 3600));
    let new = store.get(b.id.as_str()).await.unwrap().unwrap();
    assert_eq!(new.rotated_from, Some(a.id));
    assert_eq!(new.digest, b.digest);
    // Again: the successor is named, nothing stored.
    let (_, c) = record("rita", DAY);
    assert_eq!(
        store.rotate(&a.id, &c, now + 3600).await.unwrap(),
        Rotated::Already(b.id)
    );
    assert!(store.get(c.id.as_str()).await.unwrap().is_none());
    let (_, nobody) = record("rita", DAY);
    assert_eq!(
        store.rotate(&nobody.id, &c, now + 60).await.unwrap(),
        Rotated::Gone
    );
    assert!(store.get(c.id.as_str()).await.unwrap().is_none());
    assert_eq!(store.list(Some("rita")).await.unwrap().len(), 2);
    // The listing indexes follow: the old key once, by its new expiry.
    let soon = keygate::store::KeyFilter {
        expires_before: Some(now + 7200),
        ..Default::default()
    };
    assert_eq!(
        store.count(&soon).await.unwrap(),
        1,
        "indexed by its new expiry"
    );
    assert_eq!(store.count(&Default::default()).await.unwrap(), 2);
    let listed = store
        .page(
            keygate::store::Order::default(),
            &Default::default(),
            None,
            10,
        )
        .await
        .unwrap()
        .keys;
    assert_eq!(listed.len(), 2, "{listed:?}");

    // Two at once: one successor.
    let (_, d) = record("sam", DAY);
    store.insert(&d).await.unwrap();
    let ((_, e1), (_, e2)) = (record("sam", DAY), record("sam", DAY));
    let (r1, r2) = tokio::join!(
        store.rotate(&d.id, &e1, now + 60),
        store.rotate(&d.id, &e2, now + 60)
    );
    let mut outcomes = [r1.unwrap(), r2.unwrap()];
    outcomes.sort_by_key(|o| matches!(o, Rotated::Done));
    assert!(
        matches!(outcomes[0], Rotated::Already(_)) && outcomes[1] == Rotated::Done,
        "{outcomes:?}"
    );
    assert_eq!(store.list(Some("sam")).await.unwrap().len(), 2);

    // The old key dies when its grace period ends.
    let (_, f) = record("tom", DAY);
    store.insert(&f).await.unwrap();
    let (_, g) = record("tom", DAY);
    assert_eq!(
        store.rotate(&f.id, &g, keys::unix_now() + 1).await.unwrap(),
        Rotated::Done
    );
    eventually(
        "the old key expires",
        100,
        Duration::from_millis(50),
        || {
            let store = &store;
            async move {
                store
                    .get(f.id.as_str())
                    .await
                    .unwrap()
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await;
    assert!(store.get(g.id.as_str()).await.unwrap().is_some());

    // Notices: due ones, earliest first, each claimed by one caller at a time.
    let lease = Duration::from_secs(1);
    store
        .schedule(
            &a.id,
            "{\"a\":1}",
            &[(0, now + 3600), (60, now - 2), (30, now - 1)],
        )
        .await
        .unwrap();
    assert_eq!(store.unscheduled(&[a.id, b.id]).await.unwrap(), [b.id]);
    let due = store.claim_notices(now, lease, 10).await.unwrap();
    assert_eq!(
        due,
        [
            Notice {
                id: a.id,
                before: 60,
                about: Some("{\"a\":1}".into())
            },
            Notice {
                id: a.id,
                before: 30,
                about: Some("{\"a\":1}".into())
            },
        ]
    );
    assert!(
        store
            .claim_notices(now, lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "claimed twice"
    );
    store.notice_sent(&a.id, 60).await.unwrap();
    // Revoked: what the notices say is dropped; the unsent one comes back empty.
    store.unschedule(Some(&[a.id])).await.unwrap();
    let back = eventually("the lease runs out", 100, Duration::from_millis(50), || {
        let store = &store;
        async move {
            let got = store
                .claim_notices(keys::unix_now(), lease, 10)
                .await
                .unwrap();
            (!got.is_empty()).then_some(got)
        }
    })
    .await;
    assert_eq!(
        back,
        [Notice {
            id: a.id,
            before: 30,
            about: None
        }]
    );
    store.notice_sent(&a.id, 30).await.unwrap();
    assert!(store
        .claim_notices(now + 7200, lease, 10)
        .await
        .unwrap()
        .iter()
        .all(|n| n.before == 0));

    // A chore's lease: its holder keeps it.
    assert!(store
        .lease("sweep", "one", Duration::from_secs(5))
        .await
        .unwrap());
    assert!(store
        .lease("sweep", "one", Duration::from_secs(5))
        .await
        .unwrap());
}

/// Lineages (`store/lifecycle.rs`): a rotated key's link to its successors
/// outlives its record, through every later rotation, with its digest; a
/// key never rotated has none.
/// Answers the lineage's first id and its last key's expiry.
pub(crate) async fn lineage_conformance(store: Store) -> (keygate::keys::KeyId, u64) {
    use keygate::store::Rotated;
    let now = keys::unix_now();
    let (_, a) = record("lina", DAY);
    store.insert(&a).await.unwrap();
    let (_, mut b) = record("lina", DAY);
    b.rotated_from = Some(a.id);
    let (_, mut c) = record("lina", Some(Duration::from_secs(2 * 86_400)));
    c.rotated_from = Some(b.id);
    // No grace: the old records go at once, the links stay.
    assert_eq!(store.rotate(&a.id, &b, now).await.unwrap(), Rotated::Done);
    assert_eq!(store.rotate(&b.id, &c, now).await.unwrap(), Rotated::Done);
    eventually(
        "the old records expire",
        100,
        Duration::from_millis(50),
        || {
            let store = &store;
            let (a, b) = (a.id, b.id);
            async move {
                (store.get(a.as_str()).await.unwrap().is_none()
                    && store.get(b.as_str()).await.unwrap().is_none())
                .then_some(())
            }
        },
    )
    .await;
    let from_a = store.lineage(&a.id).await.unwrap().expect("a's lineage");
    assert_eq!(from_a.digest, a.digest);
    assert_eq!(from_a.successors, [b.id, c.id]);
    let from_b = store.lineage(&b.id).await.unwrap().expect("b's lineage");
    assert_eq!(from_b.digest, b.digest);
    assert_eq!(from_b.successors, [c.id]);
    assert_eq!(store.lineage(&c.id).await.unwrap(), None);
    let (_, never) = record("lina", DAY);
    store.insert(&never).await.unwrap();
    assert_eq!(store.lineage(&never.id).await.unwrap(), None);
    // A successor that never expires keeps its lineage for good, through
    // later rotations into keys that do.
    let (_, mut forever) = record("lina", None);
    forever.rotated_from = Some(never.id);
    assert_eq!(
        store.rotate(&never.id, &forever, now).await.unwrap(),
        Rotated::Done
    );
    let (_, mut later) = record("lina", DAY);
    later.rotated_from = Some(forever.id);
    assert_eq!(
        store.rotate(&forever.id, &later, now).await.unwrap(),
        Rotated::Done
    );
    let from_never = store.lineage(&never.id).await.unwrap().expect("kept");
    assert_eq!(from_never.successors, [forever.id, later.id]);
    (a.id, c.expires_at.unwrap())
}

#[tokio::test]
async fn memory_lineages_keep_the_contract() {
    lineage_conformance(Store::memory()).await;
}

#[tokio::test]
async fn redis_lineages_keep_the_contract() {
    let redis = RedisServer::start();
    let store = Store::redis(&redis.url(), "lineage", Duration::from_secs(2))
        .await
        .unwrap();
    let (first, until) = lineage_conformance(store.clone()).await;
    // Kept until the latest successor's expiry, in the key's own slot.
    let tag = &first.as_str()[..4];
    let keep: u64 = crate::support::deploy::query(
        redis.port,
        redis::cmd("ZSCORE")
            .arg(format!("lineage:{{{tag}}}:lines"))
            .arg(first.as_str()),
    )
    .unwrap();
    assert_eq!(keep, until);
    let lines: Vec<String> = crate::support::deploy::query(
        redis.port,
        redis::cmd("ZRANGEBYSCORE")
            .arg(format!("lineage:{{{tag}}}:lines"))
            .arg("+inf")
            .arg("+inf"),
    )
    .unwrap();
    assert_eq!(lines.len(), 1, "the lineage with a key that never expires");

    // A lineage whose keys all ended (its end moved to the past here) is
    // no longer followed, and a later rotation in the slot removes its links.
    let port = redis.port;
    let lines_key = format!("lineage:{{{tag}}}:lines");
    let _: () = crate::support::deploy::query(
        port,
        redis::cmd("ZADD")
            .arg(&lines_key)
            .arg(1)
            .arg(first.as_str()),
    )
    .unwrap();
    assert_eq!(store.lineage(&first).await.unwrap(), None);
    let (_, x) = record("lina", DAY);
    store.insert(&x).await.unwrap();
    let (_, y) = record("lina", DAY);
    store
        .rotate(&x.id, &y, keygate::keys::unix_now() + 60)
        .await
        .unwrap();
    let kept: bool = crate::support::deploy::query(
        port,
        redis::cmd("HEXISTS")
            .arg(format!("lineage:{{{tag}}}:rotated"))
            .arg(first.as_str()),
    )
    .unwrap();
    assert!(!kept, "the ended lineage's links are removed");
    let score: Option<f64> = crate::support::deploy::query(
        port,
        redis::cmd("ZSCORE").arg(&lines_key).arg(first.as_str()),
    )
    .unwrap();
    assert_eq!(score, None);
    assert!(store.lineage(&x.id).await.unwrap().is_some());
}

#[tokio::test]
async fn memory_lifecycle_keeps_the_contract() {
    lifecycle_conformance(Store::memory()).await;
}

#[tokio::test]
async fn redis_lifecycle_keeps_the_contract() {
    let redis = RedisServer::start();
    let store = Store::redis(&redis.url(), "lifecycle", Duration::from_secs(2))
        .await
        .unwrap();
    lifecycle_conformance(store.clone()).await;
    // Only one holder at a time.
    assert!(!store
        .lease("sweep", "two", Duration::from_secs(5))
        .await
        .unwrap());
}

/// HSET a record's fields as every layout wrote them, under `key`.
fn hset_record(pipe: &mut redis::Pipeline, key: &str, user: &str, label: &str, r: &KeyRecord) {
    pipe.cmd("HSET")
        .arg(key)
        .arg("user")
        .arg(user)
        .arg("label")
        .arg(label)
        .arg("scope")
        .arg("full")
        .arg("created")
        .arg(r.created_at)
        .arg("expires")
        .arg(r.expires_at.map(|e| e.to_string()).unwrap_or_default())
        .arg("digest")
        .arg(r.digest.to_hex())
        .ignore();
}

/// Keys of the second layout (`ns:all` and `ns:{T}:user:<u>`, sorted sets
/// of ids by expiry, as keygate wrote them before the listing indexes) are
/// indexed at start: listed in every order, counted, revoked; the old
/// indexes are gone, and a key that expired meanwhile is not listed.
#[tokio::test]
async fn redis_indexes_the_second_layout_at_start() {
    let redis = RedisServer::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut raw = client.get_connection().unwrap();
    let mut pipe = redis::pipe();
    let mut live = Vec::new();
    for (user, label, ttl) in [("ann", "ci", DAY), ("ann", "", None), ("ben", "ci", DAY)] {
        let (_, r) = record(user, ttl);
        let tag = keys::format::user_tag(user);
        let key = format!("second:{{{tag}}}:key:{}", r.id);
        hset_record(&mut pipe, &key, user, label, &r);
        let score = r.expires_at.map_or("+inf".to_owned(), |e| e.to_string());
        pipe.cmd("ZADD")
            .arg("second:all")
            .arg(&score)
            .arg(r.id.as_str())
            .ignore();
        pipe.cmd("ZADD")
            .arg(format!("second:{{{tag}}}:user:{user}"))
            .arg(&score)
            .arg(r.id.as_str())
            .ignore();
        live.push(r);
    }
    // In `ns:all`, but its record expired long ago.
    pipe.cmd("ZADD")
        .arg("second:all")
        .arg(1)
        .arg("AAAAgone0000")
        .ignore();
    pipe.cmd("SET").arg("second:layout").arg("2").ignore();
    pipe.query::<()>(&mut raw).unwrap();

    let store = Store::redis(&redis.url(), "second", Duration::from_secs(2))
        .await
        .unwrap();
    let marker: String = redis::cmd("GET")
        .arg("second:layout")
        .query(&mut raw)
        .unwrap();
    assert_eq!(marker, "3");
    let left: i64 = redis::cmd("EXISTS")
        .arg("second:all")
        .arg(format!(
            "second:{{{}}}:user:ann",
            keys::format::user_tag("ann")
        ))
        .query(&mut raw)
        .unwrap();
    assert_eq!(left, 0, "the second layout's indexes are gone");
    let mut ids: Vec<KeyId> = store
        .list(None)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    let mut want: Vec<KeyId> = live.iter().map(|r| r.id).collect();
    ids.sort();
    want.sort();
    assert_eq!(ids, want);
    let ci = keygate::store::KeyFilter {
        label: Some("ci".into()),
        ..Default::default()
    };
    assert_eq!(store.count(&ci).await.unwrap(), 2);
    assert_eq!(store.revoke_users(&["ann".into()]).await.unwrap(), 2);
    assert_eq!(store.revoke_all().await.unwrap(), 1);
}

/// Index members of keys that expired, or whose record is gone without
/// them, are removed by the listings that meet them (a bounded number each
/// time): the indexes do not fill with dead ids.
#[tokio::test]
async fn redis_indexes_shed_dead_members() {
    use keygate::store::{KeyFilter, Order};
    let redis = RedisServer::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut raw = client.get_connection().unwrap();
    let store = Store::redis(&redis.url(), "dead", Duration::from_secs(2))
        .await
        .unwrap();
    let now = keys::unix_now();
    // Expired two minutes ago as the index sees it (the record lives 1 s).
    let gone: Vec<KeyRecord> = (0..30)
        .map(|_| listing::dated("gone", "old", now - 1_000, Some(now - 120)))
        .collect();
    // Never expires, but its record is deleted behind keygate's back.
    let orphan = listing::dated("orphan", "", now - 1_000, None);
    let kept = listing::dated("kept", "", now - 10, None);
    for r in [&orphan, &kept].into_iter().chain(&gone) {
        store.insert(r).await.unwrap();
    }
    redis::cmd("DEL")
        .arg(format!(
            "dead:{{{}}}:key:{}",
            &orphan.id.as_str()[..4],
            orphan.id
        ))
        .query::<()>(&mut raw)
        .unwrap();
    let members = |raw: &mut redis::Connection| -> Vec<String> {
        let mut all = Vec::new();
        for n in 0..16 {
            for set in ["gexp", "gnew"] {
                let m: Vec<String> = redis::cmd("ZRANGE")
                    .arg(format!("dead:{{g{n:02}}}:{set}"))
                    .arg(0)
                    .arg(-1)
                    .query(raw)
                    .unwrap();
                all.extend(m);
            }
        }
        all
    };
    let holds = |all: &[String], id: KeyId| all.iter().any(|m| m.contains(id.as_str()));
    // Each creation sweeps its indexes on the way: of the 30, only the
    // last one's members are left before anything is listed.
    let before = members(&mut raw);
    assert!(!holds(&before, gone[0].id), "a creation swept the first");
    assert!(
        holds(&before, gone[29].id) && holds(&before, orphan.id),
        "{before:?} {} {}",
        gone[29].id,
        orphan.id
    );

    crate::support::eventually(
        "the records expire",
        60,
        Duration::from_millis(100),
        || async {
            store
                .get(gone[29].id.as_str())
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    let page = store
        .page(Order::default(), &KeyFilter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(
        page.keys.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![kept.id]
    );
    let after = members(&mut raw);
    for r in gone.iter().chain([&orphan]) {
        assert!(!holds(&after, r.id), "{} still indexed", r.id);
    }
    assert!(holds(&after, kept.id));
    assert_eq!(after.len(), 2, "{after:?}");
    for set in ["uexp", "unew"] {
        let n: i64 = redis::cmd("ZCARD")
            .arg(format!("dead:{{{}}}:{set}", keys::format::user_tag("gone")))
            .query(&mut raw)
            .unwrap();
        assert_eq!(n, 0, "the user's {set}");
    }
}

/// A bulk fill (`insert_many`, the listing benchmark's) writes exactly what
/// one `insert` per key writes: the same Redis keys, fields, members and
/// expiries, so what the benchmark measures is the layout keygate serves.
#[tokio::test]
async fn redis_insert_many_writes_what_insert_writes() {
    let redis = RedisServer::start();
    let one = Store::redis(&redis.url(), "one", Duration::from_secs(2))
        .await
        .unwrap();
    let many = Store::redis(&redis.url(), "many", Duration::from_secs(2))
        .await
        .unwrap();
    let mut records = Vec::new();
    for (i, user) in ["alice", "bob", "alice", "carol", "bob", "alice"]
        .iter()
        .enumerate()
    {
        let ttl = [DAY, None, Some(Duration::from_secs(90 * 86_400))][i % 3];
        let (_, mut r) = record(user, ttl);
        r.label = ["ci", "", "<b>laptop</b>"][i % 3].to_owned();
        r.source = [None, Some(keys::Source::Cli), Some(keys::Source::Admin)][i % 3];
        records.push(r);
    }
    for r in &records {
        one.insert(r).await.unwrap();
    }
    many.insert_many(&records).await.unwrap();

    let mut raw = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut dump = |ns: &str| {
        let mut names: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{ns}:*"))
            .query(&mut raw)
            .unwrap();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let kind: String = redis::cmd("TYPE").arg(&name).query(&mut raw).unwrap();
                let value: Vec<String> = match kind.as_str() {
                    "hash" => {
                        let mut fields: Vec<(String, String)> =
                            redis::cmd("HGETALL").arg(&name).query(&mut raw).unwrap();
                        fields.sort();
                        fields
                            .into_iter()
                            .map(|(k, v)| format!("{k}={v}"))
                            .collect()
                    }
                    "zset" => redis::cmd("ZRANGE")
                        .arg(&name)
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES")
                        .query(&mut raw)
                        .unwrap(),
                    "string" => vec![redis::cmd("GET").arg(&name).query(&mut raw).unwrap()],
                    other => panic!("{name}: unexpected type {other}"),
                };
                let ttl: i64 = redis::cmd("TTL").arg(&name).query(&mut raw).unwrap();
                let expiry = match ttl {
                    -1 => "no expiry".to_owned(),
                    t => format!("expires in about {} days", (t + 3_600) / 86_400),
                };
                (name[ns.len()..].to_owned(), kind, value, expiry)
            })
            .collect::<Vec<_>>()
    };
    let (by_one, by_many) = (dump("one"), dump("many"));
    assert!(
        by_one
            .iter()
            .filter(|(_, kind, _, _)| kind == "zset")
            .count()
            >= 6,
        "the indexes were written: {by_one:?}"
    );
    assert_eq!(by_one, by_many);
}

/// A lineage longer than `MAX_LINEAGE` (review 28b, finding 1): the walk
/// from its first key is cut, but its newest key and those still in their
/// grace are found from its end.
pub(crate) async fn long_lineage_conformance(store: Store) {
    use keygate::store::{Rotated, MAX_LINEAGE};
    let now = keys::unix_now();
    let (_, first) = record("deep", DAY);
    store.insert(&first).await.unwrap();
    let mut cur = first.clone();
    let mut in_grace = Vec::new();
    let n = MAX_LINEAGE + 1;
    for i in 0..n {
        let (_, mut next) = record("deep", DAY);
        next.rotated_from = Some(cur.id);
        // The last three rotations leave their old key an hour of grace.
        let until = if i + 3 >= n {
            in_grace.push(cur.id);
            now + 3600
        } else {
            now
        };
        assert_eq!(
            store.rotate(&cur.id, &next, until).await.unwrap(),
            Rotated::Done
        );
        cur = next;
    }
    assert!(
        store.get(cur.id.as_str()).await.unwrap().is_some(),
        "the tip lives"
    );
    let l = store
        .lineage(&first.id)
        .await
        .unwrap()
        .expect("first's lineage");
    assert_eq!(l.digest, first.digest);
    assert!(l.successors.contains(&cur.id), "the newest key is followed");
    for id in &in_grace {
        assert!(l.successors.contains(id), "a key in its grace is followed");
    }
    let mut distinct = l.successors.clone();
    distinct.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    distinct.dedup();
    assert_eq!(distinct.len(), l.successors.len(), "each key once");
    assert!(!l.successors.contains(&first.id));
}

#[tokio::test]
async fn memory_long_lineages_keep_their_end() {
    long_lineage_conformance(Store::memory()).await;
}

#[tokio::test]
async fn redis_long_lineages_keep_their_end() {
    let redis = RedisServer::start();
    let store = Store::redis(&redis.url(), "deep", Duration::from_secs(2))
        .await
        .unwrap();
    long_lineage_conformance(store).await;
}

/// Lineage keys expire with their lineage (review 28b, finding 3): a
/// lineage's own keys a minute after its end, the tag's shared ones after
/// the latest end in the tag, and none while a lineage may live for ever.
#[tokio::test]
async fn redis_lineage_keys_expire_with_their_lineage() {
    use keygate::store::Rotated;
    let redis = RedisServer::start();
    let store = Store::redis(&redis.url(), "linettl", Duration::from_secs(2))
        .await
        .unwrap();
    let ttl = |key: String| -> i64 {
        crate::support::deploy::query(redis.port, redis::cmd("TTL").arg(key)).unwrap()
    };
    let now = keys::unix_now();
    let (_, a) = record("ttl", DAY);
    store.insert(&a).await.unwrap();
    let (_, mut b) = record("ttl", DAY);
    b.rotated_from = Some(a.id);
    assert_eq!(store.rotate(&a.id, &b, now).await.unwrap(), Rotated::Done);
    let tag = a.id.as_str()[..4].to_owned();
    let end = b.expires_at.unwrap() + keygate::store::listing::CLOCK_SKEW;
    let near = |t: i64| (t - (end - now) as i64).abs() <= 2;
    for key in [
        format!("linettl:{{{tag}}}:line:{}", a.id),
        format!("linettl:{{{tag}}}:last:{}", a.id),
        format!("linettl:{{{tag}}}:rotated"),
        format!("linettl:{{{tag}}}:lines"),
    ] {
        let t = ttl(key.clone());
        assert!(near(t), "{key}: {t}");
    }
    // A lineage with a key that never expires keeps its own keys and the
    // tag's for good; the other lineage's keys still expire.
    let (_, c) = record("ttl", DAY);
    store.insert(&c).await.unwrap();
    let (_, mut d) = record("ttl", None);
    d.rotated_from = Some(c.id);
    assert_eq!(store.rotate(&c.id, &d, now).await.unwrap(), Rotated::Done);
    assert_eq!(&c.id.as_str()[..4], tag, "one user, one tag");
    for key in [
        format!("linettl:{{{tag}}}:line:{}", c.id),
        format!("linettl:{{{tag}}}:last:{}", c.id),
        format!("linettl:{{{tag}}}:rotated"),
        format!("linettl:{{{tag}}}:lines"),
    ] {
        assert_eq!(ttl(key.clone()), -1, "{key}");
    }
    let t = ttl(format!("linettl:{{{tag}}}:line:{}", a.id));
    assert!(near(t), "{t}");
    assert!(store.lineage(&a.id).await.unwrap().is_some());
    assert!(store.lineage(&c.id).await.unwrap().is_some());
}

/// Revoked keys' notices are dropped a thousand at a time (review 28b,
/// finding 6): a revocation of a million keys must not block Redis.
#[tokio::test]
async fn redis_unschedules_in_chunks() {
    let redis = RedisServer::start();
    let store = Store::redis(&redis.url(), "chunks", Duration::from_secs(2))
        .await
        .unwrap();
    let ids: Vec<keygate::keys::KeyId> = (0..2_500).map(|_| record("chunky", DAY).1.id).collect();
    for id in &ids[..3] {
        store
            .schedule(id, "{}", &[(0, keys::unix_now() + 60)])
            .await
            .unwrap();
    }
    let _: () =
        crate::support::deploy::query(redis.port, redis::cmd("CONFIG").arg("RESETSTAT")).unwrap();
    store.unschedule(Some(&ids)).await.unwrap();
    let stats: String =
        crate::support::deploy::query(redis.port, redis::cmd("INFO").arg("commandstats")).unwrap();
    let hdel = stats
        .lines()
        .find(|l| l.starts_with("cmdstat_hdel:"))
        .expect("HDEL ran");
    assert!(hdel.starts_with("cmdstat_hdel:calls=3,"), "{hdel}");
    assert_eq!(
        store.unscheduled(&ids[..3]).await.unwrap(),
        ids[..3].to_vec()
    );
}
