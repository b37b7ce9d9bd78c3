//! Secret-scanning reports (`POST /.keygate/leaks/github|gitlab`): a signed
//! report revokes its live keys on every instance before the answer; an
//! unsigned, mis-signed or altered one revokes nothing; a replay is
//! harmless; a large one is answered in bounded time; a key list that cannot
//! be read is a 503 the scanner retries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, StatusCode};
use serde_json::Value;

use super::{audit_events, basic, fleet, post_report, status, typo};
use crate::support::admin::json_of;
use crate::support::body;
use crate::support::client::send;
use crate::support::scanner::{key_list, report, KeyListServer, Scanner};

fn hash(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn labels(answer: &Value) -> Vec<&str> {
    answer
        .as_array()
        .expect("the answer is a JSON array")
        .iter()
        .map(|f| f["label"].as_str().unwrap())
        .collect()
}

/// A well-formed key of this deployment's prefix that was never issued.
fn never_issued() -> String {
    keygate::keys::format::generate("kg", "nobody")
        .0
        .expose()
        .to_owned()
}

#[tokio::test]
async fn a_signed_report_revokes_a_live_key_on_three_instances_before_the_answer() {
    let f = fleet(3, "report3", |_| {}).await;
    let (victim, victim_id) = f.gateways[0].key("alice").await;
    let (bystander, _) = f.gateways[0].key("alice").await;
    let (dead, dead_id) = f.gateways[0].key("bob").await;
    let dead_id = keygate::keys::KeyId::parse(&dead_id).unwrap();
    f.gateways[0]
        .keyring
        .revoke(
            &crate::support::gateway::test_actor(),
            keygate::keyring::Revocation::Ids(vec![dead_id]),
        )
        .await
        .unwrap();
    // Every instance has the victim in its validation cache.
    for i in 0..3 {
        assert_eq!(f.status(i, &victim).await, StatusCode::OK);
    }

    // Load on all three instances with the victim while the report goes in.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<(Instant, StatusCode)>>> = Arc::default();
    let mut load = Vec::new();
    for i in 0..3 {
        for _ in 0..3 {
            let (c, url, key) = (
                f.clients[i].clone(),
                f.gateways[i].url("/load"),
                victim.clone(),
            );
            let (stop, seen) = (stop.clone(), seen.clone());
            load.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let req = Request::get(&url)
                        .header("authorization", basic(&key))
                        .body(body::empty())
                        .unwrap();
                    let status = send(&c, req).await.status;
                    seen.lock().unwrap().push((started, status));
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let typo = typo(&victim, victim.len() - 1);
    let tokens = [
        victim.as_str(),
        dead.as_str(),
        "ghp_notakeygatekey0000000000000000000000",
        typo.as_str(),
    ];
    let body = report(&tokens);
    let answer = f.report(1, &body).await;
    let answered = Instant::now();
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let feedback = json_of(&answer);
    assert_eq!(
        labels(&feedback),
        [
            "true_positive",
            "false_positive",
            "false_positive",
            "false_positive"
        ]
    );
    for (entry, token) in feedback.as_array().unwrap().iter().zip(tokens) {
        assert_eq!(entry["token_hash"], hash(token));
        assert_eq!(entry["token_type"], "keygate_api_key");
    }
    assert!(
        !answer.text().contains(&victim),
        "the answer carries no token"
    );

    // Keep the load going a moment after the answer, then look.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let before = seen
        .iter()
        .filter(|(t, s)| *t < answered && *s == StatusCode::OK)
        .count();
    let after: Vec<_> = seen.iter().filter(|(t, _)| *t >= answered).collect();
    assert!(before > 0, "the load ran before the report");
    assert!(!after.is_empty(), "the load ran after the answer");
    let ok_after = after.iter().filter(|(_, s)| *s == StatusCode::OK).count();
    assert_eq!(
        ok_after, 0,
        "requests started after the answer that the victim still passed"
    );
    for i in 0..3 {
        assert_eq!(f.status(i, &victim).await, StatusCode::UNAUTHORIZED);
        assert_eq!(f.status(i, &bystander).await, StatusCode::OK);
    }

    // Audited under the scanner's source, with where the key was found.
    let leaked = audit_events(&f.clients[2], &f.gateways[2], "leaked").await;
    assert_eq!(leaked.len(), 1, "{leaked:?}");
    assert_eq!(leaked[0]["source"], "github-secret-scanning");
    let target = leaked[0]["target"].as_str().unwrap();
    assert!(
        target.contains(&victim_id)
            && target.contains("https://github.com/octo/leaky/blob/abc123/config.env#L1")
            && target.contains("content"),
        "{target}"
    );
    let revoked = audit_events(&f.clients[2], &f.gateways[2], "revoke").await;
    assert!(
        revoked
            .iter()
            .any(|e| e["source"] == "github-secret-scanning" && e["count"] == 1),
        "{revoked:?}"
    );
}

#[tokio::test]
async fn unsigned_missigned_or_altered_reports_revoke_nothing() {
    let f = fleet(1, "unsigned", |_| {}).await;
    let (c, gw) = (&f.clients[0], &f.gateways[0]);
    let (key, _) = gw.key("alice").await;
    let body = report(&[&key]);
    let good = f.scanner.sign(body.as_bytes());
    let stranger = Scanner::new(&f.scanner.key_id);
    let raw = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&good)
            .unwrap()
    };
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let altered = body.replace("config.env", "config.txt");
    let cases: Vec<(&str, String, String, String)> = vec![
        (
            "signed by another key under the same identifier",
            f.scanner.key_id.clone(),
            stranger.sign(body.as_bytes()),
            body.clone(),
        ),
        (
            "an identifier the scanner does not publish",
            "no-such-key".into(),
            good.clone(),
            body.clone(),
        ),
        (
            "the body changed after signing",
            f.scanner.key_id.clone(),
            good.clone(),
            altered,
        ),
        (
            "the signature in hex",
            f.scanner.key_id.clone(),
            hex,
            body.clone(),
        ),
        (
            "the signature not base64 at all",
            f.scanner.key_id.clone(),
            "!!not-base64!!".into(),
            body.clone(),
        ),
    ];
    for (what, key_id, sig, body) in cases {
        let a = post_report(c, gw, "github", &key_id, &sig, &body).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{what}: {}", a.text());
        assert!(json_of(&a)["error"].is_string(), "{what}");
    }
    // No signature headers at all; GitLab's headers on GitHub's route.
    let req = Request::post(gw.url("/.keygate/leaks/github"))
        .body(body::full(body.clone()))
        .unwrap();
    assert_eq!(send(c, req).await.status, StatusCode::UNAUTHORIZED);
    let a = post_report(c, gw, "gitlab", &f.scanner.key_id, &good, &body).await;
    assert_eq!(
        a.status,
        StatusCode::NOT_FOUND,
        "the GitLab intake is off: {}",
        a.text()
    );
    assert_eq!(
        status(c, gw, &key).await,
        StatusCode::OK,
        "nothing was revoked"
    );
    assert!(audit_events(c, gw, "leaked").await.is_empty());
}

#[tokio::test]
async fn a_replayed_report_is_harmless() {
    let f = fleet(1, "replay", |_| {}).await;
    let (c, gw) = (&f.clients[0], &f.gateways[0]);
    let (key, _) = gw.key("alice").await;
    let body = report(&[&key]);
    let first = f.report(0, &body).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(labels(&json_of(&first)), ["true_positive"]);
    // The same bytes, the same signature, as a retrying scanner sends them.
    let again = f.report(0, &body).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(
        labels(&json_of(&again)),
        ["false_positive"],
        "the key is no longer live"
    );
    assert_eq!(status(c, gw, &key).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        audit_events(c, gw, "leaked").await.len(),
        1,
        "one leak, recorded once"
    );
}

#[tokio::test]
async fn ten_thousand_tokens_are_answered_with_each_live_key_revoked() {
    let f = fleet(1, "tenk", |_| {}).await;
    let (c, gw) = (&f.clients[0], &f.gateways[0]);
    let mut live = Vec::new();
    for i in 0..10 {
        live.push(gw.key(&format!("user{i}")).await.0);
    }
    let mut tokens: Vec<String> = (0..9_990).map(|_| never_issued()).collect();
    for (i, k) in live.iter().enumerate() {
        tokens.insert(i * 999, k.clone());
    }
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let body = report(&refs);
    assert!(body.len() < 8 * 1024 * 1024, "{} bytes", body.len());
    let started = Instant::now();
    let a = f.report(0, &body).await;
    let took = started.elapsed();
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let feedback = json_of(&a);
    let labels = labels(&feedback);
    assert_eq!(labels.len(), 10_000);
    assert_eq!(labels.iter().filter(|l| **l == "true_positive").count(), 10);
    for (i, k) in live.iter().enumerate() {
        assert_eq!(labels[i * 999], "true_positive");
        assert_eq!(status(c, gw, k).await, StatusCode::UNAUTHORIZED);
    }
    eprintln!("10,000-token report answered in {took:?}");
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_and_signed_non_json_is_400() {
    let f = fleet(1, "limits", |b| {
        b.set("leaks", "max_report_bytes = 2048");
    })
    .await;
    let (c, gw) = (&f.clients[0], &f.gateways[0]);
    let big = report(&["kg_x"; 100]);
    assert!(big.len() > 2048);
    let a = f.report(0, &big).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text());
    let a = f.report(0, "this is not JSON").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    assert!(json_of(&a)["error"]
        .as_str()
        .unwrap()
        .contains("invalid JSON"));
    let a = f.report(0, r#"[{"type":"x"}]"#).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    assert!(
        json_of(&a)["error"].as_str().unwrap().contains("token"),
        "{}",
        a.text()
    );
    // Other methods and the off intake.
    let get = send(
        c,
        Request::get(gw.url("/.keygate/leaks/github"))
            .body(body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(get.headers["allow"], "POST");
}

#[tokio::test]
async fn a_key_list_that_cannot_be_read_is_a_503_the_scanner_retries() {
    let scanner = Scanner::new("rotating-1");
    let list = KeyListServer::start(key_list(&[&scanner])).await;
    let url = list.url();
    let f = fleet(1, "keyurl", |b| {
        b.set("leaks", &format!("github_keys_url = \"{url}\""))
            .set("leaks", "refetch_interval = \"1s\"")
            .set("leaks", "fetch_timeout = \"2s\"");
        // The URL, not the fleet's file.
        b.unset("leaks", "public_keys_file");
    })
    .await;
    let (c, gw) = (&f.clients[0], &f.gateways[0]);
    let (key, _) = gw.key("alice").await;
    let body = report(&[&key]);
    let sig = scanner.sign(body.as_bytes());

    list.fail_with(503);
    let a = post_report(c, gw, "github", &scanner.key_id, &sig, &body).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text());
    assert!(a.headers.contains_key("retry-after"));
    assert_eq!(
        status(c, gw, &key).await,
        StatusCode::OK,
        "nothing revoked, nothing lost"
    );

    // Back up: the scanner's retry, after Retry-After, goes through.
    list.fail_with(0);
    let a = crate::support::eventually(
        "the retry is accepted",
        50,
        Duration::from_millis(100),
        || {
            let (sig, body, id) = (&sig, &body, &scanner.key_id);
            async move {
                let a = post_report(c, gw, "github", id, sig, body).await;
                (a.status == StatusCode::OK).then_some(a)
            }
        },
    )
    .await;
    assert_eq!(labels(&json_of(&a)), ["true_positive"]);

    // A flood of made-up identifiers costs the scanner's server little.
    let before = list.requests.load(Ordering::SeqCst);
    for i in 0..30 {
        let a = post_report(c, gw, "github", &format!("made-up-{i}"), &sig, &body).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    let fetched = list.requests.load(Ordering::SeqCst) - before;
    assert!(
        fetched <= 2,
        "{fetched} key list reads for 30 unknown identifiers"
    );

    // A key the scanner rotated in is found by reading the list again.
    let next = Scanner::new("rotating-2");
    list.publish(key_list(&[&scanner, &next]));
    let (key2, _) = gw.key("bob").await;
    let body2 = report(&[&key2]);
    let sig2 = next.sign(body2.as_bytes());
    crate::support::eventually(
        "the new key is fetched",
        50,
        Duration::from_millis(100),
        || {
            let (sig2, body2, id) = (&sig2, &body2, &next.key_id);
            async move {
                let a = post_report(c, gw, "github", id, sig2, body2).await;
                (a.status == StatusCode::OK).then_some(())
            }
        },
    )
    .await;
    assert_eq!(status(c, gw, &key2).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn notify_only_reports_and_gitlab_reports() {
    let f = fleet(1, "notify", |b| {
        b.set("leaks", "action = \"notify\"")
            .set("leaks", "gitlab = true");
    })
    .await;
    let (c, gw) = (&f.clients[0], &f.gateways[0]);
    let (key, key_id) = gw.key("alice").await;
    let body = report(&[&key]);
    let sig = f.scanner.sign(body.as_bytes());
    let a = post_report(c, gw, "gitlab", &f.scanner.key_id, &sig, &body).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(labels(&json_of(&a)), ["true_positive"]);
    assert_eq!(
        status(c, gw, &key).await,
        StatusCode::OK,
        "notify leaves the key working"
    );
    let leaked = audit_events(c, gw, "leaked").await;
    assert_eq!(leaked.len(), 1);
    assert_eq!(leaked[0]["source"], "gitlab-secret-scanning");
    assert!(leaked[0]["target"].as_str().unwrap().contains(&key_id));
    assert!(audit_events(c, gw, "revoke").await.is_empty());
}

/// Senders that announce a body and never send it hold a reading slot for
/// half of `leaks.answer_within` at most: a signed report that comes
/// meanwhile, with every slot taken and more stalled senders waiting, is
/// answered and its key revoked (it failed for as long as they stayed open).
#[tokio::test]
async fn stalled_report_bodies_do_not_lock_out_a_real_report() {
    use tokio::io::AsyncWriteExt;
    let f = fleet(1, "stall", |b| {
        b.set("leaks", "answer_within = \"2s\"");
    })
    .await;
    let gw = &f.gateways[0];
    let (victim, _) = gw.key("alice").await;
    let signature = f.scanner.sign(b"{}");
    let mut stalled = Vec::new();
    for _ in 0..12 {
        let mut tls = crate::support::client::raw_tls(gw.addr, &gw.ca).await;
        let head = format!(
            "POST /.keygate/leaks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Github-Public-Key-Identifier: {}\r\nGithub-Public-Key-Signature: {signature}\r\n\
             Content-Length: 1000\r\n\r\n",
            f.scanner.key_id
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        stalled.push(tls);
    }
    let answer = f.report(0, &report(&[victim.as_str()])).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(labels(&json_of(&answer)), ["true_positive"]);
    assert_eq!(f.status(0, &victim).await, StatusCode::UNAUTHORIZED);
    drop(stalled);
}
