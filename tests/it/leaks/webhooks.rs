//! Signed webhooks (`[[webhooks]]`): with three instances each event reaches
//! the receiver once, signed the Standard Webhooks way and without a
//! secret; a receiver that was down gets the backlog when it is back; one
//! that hangs costs a revocation nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::json;

use super::{fleet, Fleet};
use crate::support::admin::{call, create_key, json_of};
use crate::support::gateway::Builder;
use crate::support::scanner::report;
use crate::support::webhook_receiver::{Delivery, Mode, Receiver, SECRET};
use crate::support::{eventually, within};

/// `[[webhooks]]` to `receiver`, retried every second at most.
pub(crate) fn webhook_to(
    url: &str,
    dir: &std::path::Path,
    extra: &[&str],
) -> impl Fn(&mut Builder) {
    let secret = dir.join("webhook-secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let mut lines = vec![
        format!("url = \"{url}\""),
        format!("secret_file = \"{}\"", secret.display()),
        "max_retry_interval = \"1s\"".to_owned(),
    ];
    lines.extend(extra.iter().map(|l| (*l).to_owned()));
    move |b: &mut Builder| {
        b.webhook(&lines);
    }
}

/// Wait until the receiver holds `n` deliveries, then a little longer
/// (two delivery polls) for any that should not come.
pub(crate) async fn exactly(receiver: &Receiver, n: usize) -> Vec<Delivery> {
    eventually(
        "the events arrive",
        200,
        Duration::from_millis(50),
        || async { (receiver.received().len() >= n).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    receiver.received()
}

pub(crate) fn by_type(deliveries: &[Delivery]) -> HashMap<String, Vec<&Delivery>> {
    let mut out: HashMap<String, Vec<&Delivery>> = HashMap::new();
    for d in deliveries {
        out.entry(d.body["type"].as_str().unwrap().to_owned())
            .or_default()
            .push(d);
    }
    out
}

#[tokio::test]
async fn three_instances_deliver_each_event_once_signed_and_without_secrets() {
    let receiver = Receiver::start(Mode::Up).await;
    let dir = tempfile::tempdir().unwrap();
    let f: Fleet = fleet(3, "webhooks3", webhook_to(&receiver.url(), dir.path(), &[])).await;

    // Three keys made through three instances' admin APIs.
    let mut keys = Vec::new();
    for i in 0..3 {
        keys.push(create_key(&f.clients[i], &f.gateways[i], &format!("user{i}")).await);
    }
    // Revoked: one by the admin API of instance 2, one by a secret-scanning
    // report to instance 1, one by possession on instance 0.
    let a = call(
        &f.clients[2],
        &f.gateways[2],
        Method::DELETE,
        &format!("/v1/keys/{}", keys[0].1),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_eq!(
        f.report(1, &report(&[&keys[1].0])).await.status,
        StatusCode::OK
    );
    let req = http::Request::post(f.gateways[0].url("/.keygate/revoke"))
        .header("content-type", "application/json")
        .body(crate::support::body::full(json!([keys[2].0]).to_string()))
        .unwrap();
    assert_eq!(
        crate::support::client::send(&f.clients[0], req)
            .await
            .status,
        StatusCode::ACCEPTED
    );

    let got = exactly(&receiver, 8).await;
    let types = by_type(&got);
    assert_eq!(types.get("key.created").map_or(0, Vec::len), 3, "{got:#?}");
    assert_eq!(types.get("key.revoked").map_or(0, Vec::len), 3, "{got:#?}");
    assert_eq!(types.get("key.leaked").map_or(0, Vec::len), 2, "{got:#?}");
    assert_eq!(got.len(), 8, "each event once: {got:#?}");
    let mut ids: Vec<&str> = got.iter().map(|d| d.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 8, "one webhook-id per event");
    let now = keygate::keys::unix_now();
    for d in &got {
        assert!(d.verified, "signature does not verify: {d:?}");
        assert!(d.id.starts_with("msg_"));
        assert!(
            d.timestamp.abs_diff(now) < 60,
            "webhook-timestamp is the attempt's time"
        );
        let text = d.body.to_string();
        for (secret, _) in &keys {
            assert!(!text.contains(secret.as_str()), "a secret in {text}");
        }
    }
    let sources = |t: &str| -> Vec<String> {
        let mut s: Vec<String> = types[t]
            .iter()
            .map(|d| d.body["data"]["source"].as_str().unwrap().to_owned())
            .collect();
        s.sort();
        s
    };
    assert_eq!(sources("key.created"), ["admin", "admin", "admin"]);
    assert_eq!(
        sources("key.revoked"),
        ["admin", "github-secret-scanning", "possession"]
    );
    assert_eq!(
        sources("key.leaked"),
        ["github-secret-scanning", "possession"]
    );
    let leak = types["key.leaked"]
        .iter()
        .find(|d| d.body["data"]["source"] == "github-secret-scanning")
        .unwrap();
    assert_eq!(leak.body["data"]["id"], keys[1].1.as_str());
    assert_eq!(leak.body["data"]["user"], "user1");
    assert_eq!(
        leak.body["data"]["url"],
        "https://github.com/octo/leaky/blob/abc123/config.env#L1"
    );
    assert_eq!(leak.body["data"]["action"], "revoked");
}

#[tokio::test]
async fn a_receiver_that_was_down_gets_the_backlog_when_it_is_back() {
    let mut receiver = Receiver::start(Mode::Up).await;
    let dir = tempfile::tempdir().unwrap();
    let f = fleet(
        2,
        "backlog",
        webhook_to(
            &receiver.url(),
            dir.path(),
            &["events = [\"key.created\", \"key.revoked\"]"],
        ),
    )
    .await;
    receiver.down();
    let (c, gw) = (&f.clients[0], &f.gateways[0]);
    let (_, id) = create_key(c, gw, "alice").await;
    let a = call(
        c,
        gw,
        Method::POST,
        "/v1/revoke",
        Some(json!({"ids": [id]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(json_of(&a)["revoked"], 1);
    // Attempts fail meanwhile (connection refused), and are retried.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(receiver.received().is_empty());
    receiver.up().await;
    let got = exactly(&receiver, 2).await;
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(got
        .iter()
        .all(|d| d.verified && d.body["data"]["id"] == id.as_str()));
    let types = by_type(&got);
    assert!(types.contains_key("key.created") && types.contains_key("key.revoked"));
}

#[tokio::test]
async fn a_hanging_receiver_costs_a_revocation_nothing() {
    let receiver = Receiver::start(Mode::Hang).await;
    let dir = tempfile::tempdir().unwrap();
    let f = fleet(
        1,
        "hang",
        webhook_to(
            &receiver.url(),
            dir.path(),
            &["timeout = \"2s\"", "events = [\"key.revoked\"]"],
        ),
    )
    .await;
    let (c, gw) = (&f.clients[0], &f.gateways[0]);
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(create_key(c, gw, &format!("user{i}")).await.1);
    }
    // The first revocation on a new store waits out a lease for the fleet
    // (the epoch barrier, 1.1 s here): untimed. A revocation that waited for
    // the receiver would take at least its `timeout` (2 s); one that does
    // not, a fleet round (milliseconds): 1.5 s lies between, with room for a
    // loaded machine.
    let first = call(c, gw, Method::DELETE, &format!("/v1/keys/{}", ids[0]), None).await;
    assert_eq!(first.status, StatusCode::NO_CONTENT);
    for id in &ids[1..] {
        let started = Instant::now();
        let a = within(
            5,
            "a revocation answers",
            call(c, gw, Method::DELETE, &format!("/v1/keys/{id}"), None),
        )
        .await;
        assert_eq!(a.status, StatusCode::NO_CONTENT);
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "the revocation waited for the receiver: {:?}",
            started.elapsed()
        );
    }
    // Each attempt is cut after `timeout` and tried again: the same event comes more than once.
    eventually(
        "attempts are bounded and retried",
        200,
        Duration::from_millis(50),
        || async {
            let got = receiver.received();
            let first = got.first()?.id.clone();
            (got.iter().filter(|d| d.id == first).count() >= 2).then_some(())
        },
    )
    .await;
}

/// A 2xx is a delivery, whatever follows it: a receiver that answers 200
/// with a large body, or with a body that never ends, gets each event once.
#[tokio::test]
async fn a_2xx_with_a_large_or_endless_body_is_delivered_once() {
    let large = Receiver::start(Mode::LargeAnswer).await;
    let endless = Receiver::start(Mode::EndlessAnswer).await;
    let dir = tempfile::tempdir().unwrap();
    let (to_large, to_endless) = (
        webhook_to(
            &large.url(),
            dir.path(),
            &["timeout = \"2s\"", "events = [\"key.created\"]"],
        ),
        webhook_to(
            &endless.url(),
            dir.path(),
            &["timeout = \"2s\"", "events = [\"key.created\"]"],
        ),
    );
    let f = fleet(1, "bigans", |b| {
        to_large(b);
        to_endless(b);
    })
    .await;
    let (_, id) = create_key(&f.clients[0], &f.gateways[0], "alice").await;
    // A failed attempt is tried again after 1 s (`max_retry_interval`);
    // one cut by `timeout` after 2 s more: 4 s shows either.
    exactly(&large, 1).await;
    exactly(&endless, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (large, endless) = (large.received(), endless.received());
    assert_eq!(
        (large.len(), endless.len()),
        (1, 1),
        "each event once: large answer {large:#?}, endless answer {endless:#?}"
    );
    assert_eq!(large[0].body["data"]["id"], id.as_str());
    assert_eq!(endless[0].body["data"]["id"], id.as_str());
}

#[tokio::test]
async fn the_memory_store_delivers_too() {
    let receiver = Receiver::start(Mode::Up).await;
    let dir = tempfile::tempdir().unwrap();
    let upstream = crate::support::upstream::Upstream::start().await;
    let mut b = crate::support::gateway::builder(&upstream.url());
    webhook_to(&receiver.url(), dir.path(), &[])(&mut b);
    let gw = b.start().await;
    let c = crate::support::client::h1(&gw.ca);
    let (_, id) = create_key(&c, &gw, "alice").await;
    let got = exactly(&receiver, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["type"], "key.created");
    assert_eq!(got[0].body["data"]["id"], id.as_str());
    assert!(got[0].verified);
}

/// A revocation by filter (`{"filter": …}`) announces each key it revoked,
/// and no other.
#[tokio::test]
async fn a_revocation_by_filter_announces_each_key_it_revoked() {
    let receiver = Receiver::start(Mode::Up).await;
    let dir = tempfile::tempdir().unwrap();
    let f = fleet(
        1,
        "filtered",
        webhook_to(&receiver.url(), dir.path(), &["events = [\"key.revoked\"]"]),
    )
    .await;
    let (c, gw) = (&f.clients[0], &f.gateways[0]);
    let mut ursula = Vec::new();
    for _ in 0..3 {
        ursula.push(create_key(c, gw, "ursula").await.1);
    }
    create_key(c, gw, "victor").await;
    let a = call(
        c,
        gw,
        Method::POST,
        "/v1/revoke",
        Some(json!({"filter": {"user": "ursula"}})),
    )
    .await;
    assert_eq!(json_of(&a)["revoked"], 3, "{}", a.text());
    let got = exactly(&receiver, 3).await;
    let mut revoked: Vec<&str> = got
        .iter()
        .map(|d| d.body["data"]["id"].as_str().unwrap())
        .collect();
    revoked.sort_unstable();
    ursula.sort();
    assert_eq!(revoked, ursula, "{got:#?}");
    assert!(got.iter().all(|d| d.verified
        && d.body["type"] == "key.revoked"
        && d.body["data"]["user"] == "ursula"));
}

/// An operator's list of leaked secrets, through the admin API and through
/// `keygate keys revoke --leaked`, is announced as `key.leaked` (action
/// `revoked`) besides `key.revoked`, as a scanner's report is.
#[tokio::test]
async fn an_operators_leaked_list_is_announced_as_leaked() {
    let receiver = Receiver::start(Mode::Up).await;
    let dir = tempfile::tempdir().unwrap();
    let events = ["events = [\"key.revoked\", \"key.leaked\"]"];
    // Namespace "cli": the one `keys_cli::config` gives the CLI.
    let f = fleet(1, "cli", webhook_to(&receiver.url(), dir.path(), &events)).await;
    let (c, gw) = (&f.clients[0], &f.gateways[0]);
    let (by_api, by_api_id) = create_key(c, gw, "wendy").await;
    let (by_cli, by_cli_id) = create_key(c, gw, "xavier").await;

    let a = call(
        c,
        gw,
        Method::POST,
        "/v1/revoke",
        Some(json!({"keys": [by_api, "kg_junk"]})),
    )
    .await;
    assert_eq!(json_of(&a)["revoked"], 1, "{}", a.text());
    let secret = dir.path().join("webhook-secret");
    let cfg = crate::keys_cli::config(
        dir.path(),
        &f.redis,
        &format!(
            "[[webhooks]]\nurl = \"{}\"\nsecret_file = \"{}\"\n{}\n",
            receiver.url(),
            secret.display(),
            events[0]
        ),
    );
    let list = dir.path().join("leaked.txt");
    std::fs::write(&list, format!("{by_cli}\n")).unwrap();
    let out = crate::keys_cli::keys_in(
        &cfg,
        dir.path(),
        &["revoke", "--leaked", list.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let got = exactly(&receiver, 4).await;
    let types = by_type(&got);
    assert_eq!(types.get("key.revoked").map_or(0, Vec::len), 2, "{got:#?}");
    let mut leaked: Vec<(&str, &str, &str)> = types
        .get("key.leaked")
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|d| {
            let data = &d.body["data"];
            (
                data["id"].as_str().unwrap(),
                data["source"].as_str().unwrap(),
                data["action"].as_str().unwrap(),
            )
        })
        .collect();
    leaked.sort_unstable();
    let mut want = vec![
        (by_api_id.as_str(), "admin", "revoked"),
        (by_cli_id.as_str(), "cli", "revoked"),
    ];
    want.sort_unstable();
    assert_eq!(leaked, want, "{got:#?}");
    assert_eq!(got.len(), 4, "{got:#?}");
}

/// A receiver down for less than a minute: the failed attempts the
/// throttled `webhook not delivered` line did not say are said by the
/// `webhook receiver recovered` line of the first delivery after them,
/// so the lines account for every failure `/metrics` counts.
#[tokio::test]
async fn failures_of_a_receiver_back_within_the_minute_are_logged() {
    use crate::support::bin::{self, Process};
    let redis = crate::support::redis::RedisServer::start();
    let up = crate::support::upstream::Upstream::start().await;
    let mut receiver = Receiver::start(Mode::Up).await;
    receiver.down();
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::support::tls::Ca::new("webhook log CA");
    let store = crate::support::redis::store_section(&redis, dir.path(), "hooklog").join("\n");
    let secret = dir.path().join("webhook-secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let cfg = bin::write_config(
        dir.path(),
        &ca,
        "keygate",
        &up.url(),
        &format!(
            "[store]\n{store}\n[[webhooks]]\nurl = \"{}\"\nsecret_file = \"{}\"\n\
             events = [\"key.created\"]\nmax_retry_interval = \"1s\"\n",
            receiver.url(),
            secret.display()
        ),
    );
    let kg = Process::serve(&cfg);
    let admin = kg.admin_addr().await;
    for user in ["yara", "zeno"] {
        bin::cli(&cfg, &["keys", "create", "--user", user]);
    }
    // Both fail at once (one line, one unsaid), then again at each retry.
    kg.logged("webhook not delivered").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    receiver.up().await;
    exactly(&receiver, 2).await;
    kg.logged("webhook receiver recovered").await;

    let said = |lines: &[serde_json::Value], message: &str| -> Vec<u64> {
        lines
            .iter()
            .filter(|l| {
                l["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(message))
            })
            .map(|l| l["unlogged"].as_u64().unwrap())
            .collect()
    };
    let metrics = crate::support::client::get(
        &crate::support::client::h1(&ca),
        &format!("https://{admin}/metrics"),
    )
    .await
    .text();
    let failures: u64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("keygate_webhook_failures_total ")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no failure counter in\n{metrics}"));
    // Every failure is in a line or in a later line's count. A retry in
    // flight while the receiver came back may fail after another's success
    // said "recovered": its own "recovered" comes with its retry.
    let lines = eventually(
        "every failure said",
        250,
        Duration::from_millis(20),
        || async {
            let lines = kg.log_lines();
            let failed_lines = said(&lines, "webhook not delivered");
            let recovered = said(&lines, "webhook receiver recovered");
            let logged: u64 =
                failed_lines.iter().map(|n| n + 1).sum::<u64>() + recovered.iter().sum::<u64>();
            (logged == failures).then_some(lines)
        },
    )
    .await;
    let failed_lines = said(&lines, "webhook not delivered");
    assert_eq!(failed_lines.len(), 1, "once a minute: {lines:#?}");
    assert!(
        said(&lines, "webhook receiver recovered")
            .iter()
            .sum::<u64>()
            >= 1,
        "{lines:#?}"
    );
}
