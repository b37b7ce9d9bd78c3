//! Expiry notices and idle keys, with several instances sharing one Redis:
//! `key.expiring` once per key and `keys.warn_before` offset and
//! `key.expired` once per key, whichever instance sends them; a revoked
//! key is never announced; `KeyGate-Key-Expires` on answers to a key within
//! the first offset; keys unused for `keys.revoke_unused_after` revoked
//! with source `idle`, a key in use never.

use std::time::Duration;

use http::StatusCode;
use keygate::keyring::{Revocation, Ttl};
use keygate::keys::{KeyId, Scope};

use super::{listed, unix};
use crate::leaks::webhooks::{by_type, exactly, webhook_to};
use crate::leaks::{audit_events, basic, fleet, Fleet};
use crate::support::client::send;
use crate::support::gateway::test_actor;
use crate::support::webhook_receiver::{Mode, Receiver};
use crate::support::{body, eventually};

/// A webhook receiver, and the `[[webhooks]]` entry sending it the expiry
/// notices (its secret file in `dir`).
async fn expiry_receiver(
    dir: &std::path::Path,
) -> (Receiver, impl Fn(&mut crate::support::gateway::Builder)) {
    let receiver = Receiver::start(Mode::Up).await;
    let hook = webhook_to(
        &receiver.url(),
        dir,
        &["events = [\"key.expiring\", \"key.expired\"]"],
    );
    (receiver, hook)
}

/// `n` instances on namespace `ns` warning `warn_before` (a TOML list's
/// items) ahead of expiry, their notices sent to the receiver.
async fn warning_fleet(
    dir: &std::path::Path,
    n: usize,
    ns: &str,
    warn_before: &str,
) -> (Receiver, Fleet) {
    let (receiver, hook) = expiry_receiver(dir).await;
    let f = fleet(n, ns, |b| {
        b.set("keys", &format!("warn_before = [{warn_before}]"));
        hook(b);
    })
    .await;
    (receiver, f)
}

#[tokio::test]
async fn three_instances_warn_once_per_offset_and_announce_the_expiry_once() {
    let dir = tempfile::tempdir().unwrap();
    let (receiver, f) = warning_fleet(dir.path(), 3, "notices3", "\"2s\", \"4s\"").await;
    let gw = &f.gateways[1];
    let (_, id) = gw
        .key_with("kate", Ttl::For(Duration::from_secs(6)), Scope::Read)
        .await;
    // A revoked key is never announced.
    let (_, gone) = gw
        .key_with("kate", Ttl::For(Duration::from_secs(6)), Scope::Full)
        .await;
    gw.keyring
        .revoke(
            &test_actor(),
            Revocation::Ids(vec![KeyId::parse(&gone).unwrap()]),
        )
        .await
        .unwrap();

    let got = exactly(&receiver, 3).await;
    let types = by_type(&got);
    assert_eq!(
        got.len(),
        3,
        "two warnings and one expiry, each once: {got:#?}"
    );
    let mut offsets: Vec<&str> = types["key.expiring"]
        .iter()
        .map(|d| d.body["data"]["warn_before"].as_str().unwrap())
        .collect();
    offsets.sort_unstable();
    assert_eq!(offsets, ["2s", "4s"]);
    assert_eq!(types["key.expired"].len(), 1);
    for d in &got {
        assert!(d.verified);
        assert_eq!(d.body["data"]["id"], id.as_str());
        assert_eq!(d.body["data"]["user"], "kate");
        assert_eq!(d.body["data"]["scope"], "read");
        assert!(d.body["data"]["expires_at"].is_string());
    }
    // Sent in order: the earlier warning first, the expiry after it.
    let at = |t: &str, w: Option<&str>| {
        got.iter()
            .find(|d| d.body["type"] == t && w.is_none_or(|w| d.body["data"]["warn_before"] == w))
            .unwrap()
            .timestamp
    };
    assert!(at("key.expiring", Some("4s")) <= at("key.expiring", Some("2s")));
    assert!(at("key.expiring", Some("2s")) <= at("key.expired", None));
    // Every instance counted what it sent: three notices in all.
    let mut sent = 0.0;
    for (g, c) in f.gateways.iter().zip(&f.clients) {
        let text = crate::support::client::get(c, &g.admin_url("/metrics"))
            .await
            .text();
        sent += text
            .lines()
            .filter(|l| l.starts_with("keygate_expiry_notices_total"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum::<f64>();
    }
    assert_eq!(sent, 3.0);
}

#[tokio::test]
async fn answers_to_a_key_expiring_within_the_first_offset_say_when() {
    let f = fleet(1, "expires-header", |b| {
        b.set("keys", "warn_before = [\"1d\", \"1h\"]");
    })
    .await;
    let gw = &f.gateways[0];
    let (soon, _) = gw
        .key_with(
            "liam",
            Ttl::For(Duration::from_secs(12 * 3600)),
            Scope::Full,
        )
        .await;
    let (later, _) = gw
        .key_with(
            "liam",
            Ttl::For(Duration::from_secs(30 * 86400)),
            Scope::Full,
        )
        .await;
    let keys = listed(&f, "liam").await;
    let expiry = keys
        .iter()
        .map(|k| k["expires_at"].clone())
        .min_by_key(unix)
        .unwrap();
    let answer = |key: String| {
        let req = http::Request::get(gw.url("/"))
            .header("authorization", basic(&key))
            .body(body::empty())
            .unwrap();
        send(&f.clients[0], req)
    };
    let a = answer(soon).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.headers
            .get("keygate-key-expires")
            .unwrap()
            .to_str()
            .unwrap(),
        expiry.as_str().unwrap()
    );
    let a = answer(later).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.headers.get("keygate-key-expires").is_none());
}

#[tokio::test]
async fn keys_unused_for_revoke_unused_after_are_revoked_as_idle() {
    let receiver = Receiver::start(Mode::Up).await;
    let dir = tempfile::tempdir().unwrap();
    let hook = webhook_to(&receiver.url(), dir.path(), &["events = [\"key.revoked\"]"]);
    let f = fleet(2, "idle", |b| {
        b.set("keys", "revoke_unused_after = \"3s\"");
        hook(b);
    })
    .await;
    let (busy, _) = f.gateways[0].key("mia").await;
    let (idle, idle_id) = f.gateways[1].key("mia").await;
    // The busy key is used on both instances until the idle one is gone;
    // it never stops working.
    let mut i = 0;
    eventually(
        "the idle key is revoked",
        150,
        Duration::from_millis(100),
        || {
            i += 1;
            let busy = busy.clone();
            let f = &f;
            let n = i % 2;
            let idle_id = KeyId::parse(&idle_id).unwrap();
            async move {
                assert_eq!(
                    f.status(n, &busy).await,
                    StatusCode::OK,
                    "a key in use was revoked"
                );
                // Looked up, not used: a use would keep it alive.
                f.gateways[0]
                    .keyring
                    .get(&idle_id)
                    .await
                    .unwrap()
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await;
    assert_eq!(f.status(0, &idle).await, StatusCode::UNAUTHORIZED);
    assert_eq!(f.status(1, &idle).await, StatusCode::UNAUTHORIZED);
    for _ in 0..20 {
        assert_eq!(f.status(i % 2, &busy).await, StatusCode::OK);
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let revokes = audit_events(&f.clients[0], &f.gateways[0], "revoke").await;
    assert_eq!(revokes.len(), 1, "{revokes:?}");
    assert_eq!(revokes[0]["source"], "idle");
    assert!(revokes[0]["target"].as_str().unwrap().contains(&idle_id));
    let got = exactly(&receiver, 1).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].body["data"]["id"], idle_id.as_str());
    assert_eq!(got[0].body["data"]["source"], "idle");
}

/// The real binary's access log records the `KeyGate-Key-Expires` it sent.
#[tokio::test]
async fn the_access_log_records_the_expiry_a_key_was_told() {
    use crate::support::bin::{self, Process};
    let redis = crate::support::redis::RedisServer::start();
    let up = crate::support::upstream::Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::support::tls::Ca::new("access log CA");
    let store = crate::support::redis::store_section(&redis, dir.path(), "expires-log").join("\n");
    let cfg = bin::write_config(
        dir.path(),
        &ca,
        "keygate",
        &up.url(),
        &format!("[store]\n{store}\n[keys]\nwarn_before = [\"1d\"]\n"),
    );
    let mint = |ttl: &str| {
        let out = crate::keys_cli::keys_in(
            &cfg,
            dir.path(),
            &["create", "--user", "quinn", "--ttl", ttl, "--json"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let (soon, later) = (mint("12h"), mint("30d"));
    let kg = Process::serve(&cfg);
    let addr = kg.main_addr().await;
    let c = crate::support::client::h1(&ca);
    for (key, path) in [(&soon, "/soon"), (&later, "/later")] {
        let url = format!("https://127.0.0.1:{}{path}", addr.port());
        let a = crate::support::client::get_with_key(&c, &url, key["key"].as_str().unwrap()).await;
        assert_eq!(a.status, StatusCode::OK);
    }
    let line = |path: &'static str| {
        let kg = &kg;
        eventually(
            "the access log line",
            250,
            Duration::from_millis(20),
            move || async move {
                kg.log_lines()
                    .into_iter()
                    .find(|l| l["target"] == "keygate::access" && l["path"] == path)
            },
        )
    };
    let soon_line = line("/soon").await;
    assert_eq!(soon_line["key_expires"], soon["expires_at"], "{soon_line}");
    assert_eq!(soon_line["key_id"], soon["id"]);
    assert_eq!(line("/later").await["key_expires"], "-");
}

/// A key whose notices were never filed (made before keygate kept a
/// schedule) gets them after a start: filed once by one instance, only
/// those still ahead, each sent once.
#[tokio::test]
async fn keys_without_a_schedule_get_their_notices_after_a_start() {
    use crate::support::deploy::query;
    let dir = tempfile::tempdir().unwrap();
    let (receiver, hook) = expiry_receiver(dir.path()).await;
    let f = fleet(1, "notices-backfill", |b| {
        b.set("keys", "warn_before = [\"3s\"]");
        hook(b);
    })
    .await;
    let (_, id) = f.gateways[0]
        .key_with("rose", Ttl::For(Duration::from_secs(12)), Scope::Full)
        .await;
    // As an older keygate left it: the key, no schedule, no backfill done.
    let port = f.redis.port;
    let schedule: Vec<String> = query(port, redis::cmd("KEYS").arg("*{lifecycle}*")).unwrap();
    assert_eq!(schedule.len(), 2, "{schedule:?}");
    let _: () = query(port, redis::cmd("DEL").arg(&schedule)).unwrap();
    let _: () = query(
        port,
        redis::cmd("DEL").arg("notices-backfill:lease:notice-backfill"),
    )
    .unwrap();
    // Then an instance of this version starts.
    let mut b = crate::support::gateway::builder("http://127.0.0.1:9");
    b.redis(&f.redis, dir.path(), "notices-backfill")
        .set("keys", "warn_before = [\"3s\"]");
    hook(&mut b);
    let _upgraded = b.start().await;

    // The backfill runs 5s after the start: the warning (9s after the
    // key was made) and the expiry (12s) are still ahead then.
    eventually(
        "both notices arrive",
        400,
        Duration::from_millis(50),
        || async { (receiver.received().len() >= 2).then_some(()) },
    )
    .await;
    let got = exactly(&receiver, 2).await;
    let types = by_type(&got);
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(types["key.expiring"].len(), 1);
    assert_eq!(types["key.expired"].len(), 1);
    assert!(got.iter().all(|d| d.body["data"]["id"] == id.as_str()));
}

/// A key whose schedule could not be written right after the key was (a
/// store hiccup) still gets its notices: the write is tried again in the
/// background, not left to the next start's backfill (which a fleet that
/// is not restarted never runs).
#[tokio::test]
async fn a_schedule_that_could_not_be_written_is_written_later() {
    use crate::support::deploy::query;
    let dir = tempfile::tempdir().unwrap();
    let (receiver, f) = warning_fleet(dir.path(), 1, "notices-retry", "\"3s\"").await;
    let port = f.redis.port;
    // A fleet up for a while: the start's backfill is done.
    let _: () = query(
        port,
        redis::cmd("SET")
            .arg("notices-retry:lease:notice-backfill")
            .arg("elsewhere")
            .arg("PX")
            .arg(3_600_000),
    )
    .unwrap();
    // The schedule cannot be written (a value of the wrong type).
    let about = "notices-retry:{lifecycle}:about";
    let _: () = query(port, redis::cmd("SET").arg(about).arg("x")).unwrap();
    let (_, id) = f.gateways[0]
        .key_with("sam", Ttl::For(Duration::from_secs(12)), Scope::Full)
        .await;
    // The hiccup passes.
    let _: () = query(port, redis::cmd("DEL").arg(about)).unwrap();
    eventually(
        "both notices arrive",
        400,
        Duration::from_millis(50),
        || async { (receiver.received().len() >= 2).then_some(()) },
    )
    .await;
    let got = exactly(&receiver, 2).await;
    let types = by_type(&got);
    assert_eq!(types["key.expiring"].len(), 1, "{got:#?}");
    assert_eq!(types["key.expired"].len(), 1, "{got:#?}");
    assert!(got.iter().all(|d| d.body["data"]["id"] == id.as_str()));
}

/// Keys revoked by filter (`POST /v1/revoke {"filter": …}`, the console's
/// "every key that matches") are not announced as expired at their old
/// expiry, by user or by label; a key left alone is.
#[tokio::test]
async fn keys_revoked_by_filter_get_no_expiry_notice() {
    use crate::support::admin::{call, json_of};
    use http::Method;
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let (receiver, hook) = expiry_receiver(dir.path()).await;
    let f = fleet(1, "notices-filter", hook).await;
    let (c, gw) = (&f.clients[0], &f.gateways[0]);
    let create = |user: &'static str, label: &'static str, ttl: &'static str| async move {
        let a = call(
            c,
            gw,
            Method::POST,
            "/v1/keys",
            Some(json!({"user": user, "label": label, "ttl": ttl})),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
        json_of(&a)["id"].as_str().unwrap().to_owned()
    };
    create("filt-user", "", "2s").await;
    create("filt-other", "zzlabel", "2s").await;
    // Expires after the two revoked ones: its notice comes last.
    let kept = create("filt-kept", "", "3s").await;
    for filter in [json!({"user": "filt-user"}), json!({"label": "zzlabel"})] {
        let a = call(
            c,
            gw,
            Method::POST,
            "/v1/revoke",
            Some(json!({ "filter": filter })),
        )
        .await;
        assert_eq!(json_of(&a)["revoked"], 1, "{}", a.text());
    }
    let got = exactly(&receiver, 1).await;
    assert_eq!(got.len(), 1, "only the key left alone: {got:#?}");
    assert_eq!(got[0].body["type"], "key.expired");
    assert_eq!(got[0].body["data"]["id"], kept.as_str());
}

/// An expiry notice whose webhook event cannot be queued (the outbox write
/// refused while the schedule works) is not marked sent: it stays claimed,
/// comes due again when the claim's minute is over, and the receiver gets
/// `key.expired` then.
#[tokio::test]
async fn a_notice_whose_event_could_not_be_queued_is_sent_later() {
    use crate::support::deploy::query;
    let dir = tempfile::tempdir().unwrap();
    let (receiver, hook) = expiry_receiver(dir.path()).await;
    let ns = "notices-unqueued";
    let f = fleet(1, ns, hook).await;
    let port = f.redis.port;
    let expires = keygate::keys::unix_now() + 2;
    let (_, id) = f.gateways[0]
        .key_with("nell", Ttl::For(Duration::from_secs(2)), Scope::Full)
        .await;
    // From now on every key may be read, and every key but the
    // outbox's may be written.
    let _: () = query(
        port,
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg("default")
            .arg("resetkeys")
            .arg("%R~*")
            .arg(format!("%RW~{ns}:[^o]*")),
    )
    .unwrap();
    let due_key = format!("{ns}:{{lifecycle}}:due");
    let member = format!("{id}:0");
    // The notice is claimed (due again a minute later), not removed.
    let again = eventually(
        "the expiry notice is claimed",
        200,
        Duration::from_millis(50),
        || async {
            let score: Option<u64> =
                query(port, redis::cmd("ZSCORE").arg(&due_key).arg(&member)).unwrap();
            match score {
                None => Some(None),
                Some(s) if s > expires + 30 => Some(Some(s)),
                Some(_) => None,
            }
        },
    )
    .await;
    assert!(
        again.is_some(),
        "the notice was removed though its event was never queued"
    );
    assert!(receiver.received().is_empty());
    let _: () = query(
        port,
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg("default")
            .arg("resetkeys")
            .arg("~*"),
    )
    .unwrap();
    // The claim's lease is a minute: then it is sent, once.
    eventually(
        "the expiry notice is sent after its lease",
        1000,
        Duration::from_millis(100),
        || async { (!receiver.received().is_empty()).then_some(()) },
    )
    .await;
    let got = exactly(&receiver, 1).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].body["type"], "key.expired");
    assert_eq!(got[0].body["data"]["id"], id.as_str());
}
