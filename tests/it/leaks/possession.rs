//! Revocation by possession (`POST /.keygate/revoke`): whoever holds a key
//! may kill it. Live, dead and malformed keys are answered alike (202, the
//! same body); only live keys die; per-address rate limit; the form.

use http::{Request, StatusCode};

use super::{audit_events, fleet, status};
use crate::support::body;
use crate::support::client::{send, Answer, HttpsClient};
use crate::support::gateway::TestGateway;

async fn revoke(c: &HttpsClient, gw: &TestGateway, content_type: &str, body: String) -> Answer {
    let req = Request::post(gw.url("/.keygate/revoke"))
        .header("content-type", content_type)
        .body(body::full(body))
        .unwrap();
    crate::support::within(10, "an answer", send(c, req)).await
}

#[tokio::test]
async fn live_dead_and_malformed_keys_get_the_same_202_and_only_live_ones_die() {
    let f = fleet(2, "possession", |b| {
        b.set("leaks", "possession_per_minute = 0");
    })
    .await;
    let (c, gw) = (&f.clients[0], &f.gateways[0]);
    let (live_a, id_a) = gw.key("alice").await;
    let (live_b, _) = gw.key("bob").await;
    let (bystander, _) = gw.key("alice").await;
    let (dead, _) = gw.key("carol").await;
    assert_eq!(
        revoke(
            c,
            gw,
            "application/json",
            serde_json::json!([dead]).to_string()
        )
        .await
        .status,
        StatusCode::ACCEPTED
    );
    let never = keygate::keys::format::generate("kg", "nobody")
        .0
        .expose()
        .to_owned();
    // Warm both instances' caches.
    for i in 0..2 {
        assert_eq!(f.status(i, &live_a).await, StatusCode::OK);
        assert_eq!(f.status(i, &live_b).await, StatusCode::OK);
    }

    let bodies = [
        ("application/json", serde_json::json!([live_a]).to_string()),
        ("application/json", serde_json::json!([dead]).to_string()),
        (
            "application/json",
            serde_json::json!(["kg_nope", "", "not a key at all", never]).to_string(),
        ),
        (
            "text/plain",
            format!("machine example.org login apikey password {live_b}\n"),
        ),
        ("text/plain", "garbage\n\n%%%\n".to_owned()),
    ];
    let mut answers = Vec::new();
    for (ct, b) in bodies {
        let a = revoke(c, gw, ct, b).await;
        answers.push((a.status, a.text()));
    }
    for (status, text) in &answers {
        assert_eq!(
            (*status, text.as_str()),
            (answers[0].0, answers[0].1.as_str()),
            "every answer alike"
        );
    }
    assert_eq!(answers[0].0, StatusCode::ACCEPTED);
    assert!(!answers[0].1.contains("kg_"), "{}", answers[0].1);

    for i in 0..2 {
        assert_eq!(
            f.status(i, &live_a).await,
            StatusCode::UNAUTHORIZED,
            "instance {i}"
        );
        assert_eq!(
            f.status(i, &live_b).await,
            StatusCode::UNAUTHORIZED,
            "instance {i}"
        );
        assert_eq!(
            f.status(i, &bystander).await,
            StatusCode::OK,
            "instance {i}"
        );
    }
    let leaked = audit_events(c, gw, "leaked").await;
    assert_eq!(
        leaked.len(),
        3,
        "live_a, live_b and the one revoked first: {leaked:?}"
    );
    assert!(leaked
        .iter()
        .all(|e| e["source"] == "possession" && e["client"] == "127.0.0.1"));
    assert!(leaked
        .iter()
        .any(|e| e["target"].as_str().unwrap().contains(&id_a)));
}

#[tokio::test]
async fn too_many_keys_is_413_and_each_address_is_rate_limited() {
    let f = fleet(1, "possession-limits", |b| {
        b.set("leaks", "possession_per_minute = 3");
    })
    .await;
    let (c, gw) = (&f.clients[0], &f.gateways[0]);
    let many: Vec<String> = (0..1001).map(|i| format!("kg_{i}")).collect();
    let a = revoke(
        c,
        gw,
        "application/json",
        serde_json::to_string(&many).unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text());
    let a = revoke(c, gw, "application/json", "[1, 2".into()).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    let a = revoke(c, gw, "text/plain", "kg_x\n".into()).await;
    assert_eq!(a.status, StatusCode::ACCEPTED);
    let a = revoke(c, gw, "text/plain", "kg_x\n".into()).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.text());
    assert!(a.headers.contains_key("retry-after"));
}

/// A sender that announces a body and never sends it is answered 408
/// within half of `leaks.answer_within`: nobody signs these requests, and
/// each one that waited for its body for ever held its connection open
/// (no idle timeout runs while a request is in flight), a few per minute
/// per address, until `limits.max_connections` was used up.
#[tokio::test]
async fn a_stalled_body_is_408_and_lets_its_connection_go() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = fleet(1, "possession-stall", |b| {
        b.set("leaks", "answer_within = \"2s\"");
    })
    .await;
    let gw = &f.gateways[0];
    let mut tls = crate::support::client::raw_tls(gw.addr, &gw.ca).await;
    let head = "POST /.keygate/revoke HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n\
                Content-Length: 1000\r\n\r\nkg_";
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(6),
        tls.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        read.is_ok(),
        "no answer and the connection still open 6 s after a stalled body: {answer:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("did not arrive in time"), "{answer}");
}

/// A POST of one made-up key to `/.keygate/revoke` from `client` (behind
/// the trusted proxy).
async fn revoke_from(c: &HttpsClient, gw: &TestGateway, client: &str) -> StatusCode {
    let req = Request::post(gw.url("/.keygate/revoke"))
        .header("content-type", "text/plain")
        .header("x-forwarded-for", client)
        .body(body::full("kg_x\n"))
        .unwrap();
    crate::support::within(10, "an answer", send(c, req))
        .await
        .status
}

/// An IPv6 subscriber's /64 is one client: rotating through its addresses
/// neither escapes the limit nor fills the table everyone's reports share.
#[tokio::test]
async fn the_addresses_of_one_ipv6_64_share_one_limit_and_cannot_fill_the_table() {
    let f = fleet(1, "possession-64", |b| {
        b.set("leaks", "possession_per_minute = 1")
            .set("listen", "trusted_proxies = [\"127.0.0.1/32\"]")
            .set("rate_limit", "max_tracked_clients = 5");
    })
    .await;
    let (c, gw) = (&f.clients[0], &f.gateways[0]);
    let mut statuses = Vec::new();
    for i in 0..10u32 {
        let client = format!("2001:db8:5:5:{:x}::{:x}", i + 1, i * 131 + 1);
        statuses.push(revoke_from(c, gw, &client).await);
    }
    assert_eq!(statuses[0], StatusCode::ACCEPTED);
    assert_eq!(statuses[1..], [StatusCode::TOO_MANY_REQUESTS; 9]);
    assert_eq!(
        revoke_from(c, gw, "198.51.100.5").await,
        StatusCode::ACCEPTED,
        "someone else still reports a key"
    );
}

#[tokio::test]
async fn the_form_revokes_a_found_key_without_signing_in() {
    let f = fleet(1, "possession-form", |_| {}).await;
    let (c, gw) = (&f.clients[0], &f.gateways[0]);
    let (key, _) = gw.key("alice").await;
    let page = send(
        c,
        Request::get(gw.url("/.keygate/revoke"))
            .body(body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains("Revoke a key you found"));
    assert!(
        html.contains(r#"action="/.keygate/revoke""#) && html.contains(r#"enctype="text/plain""#)
    );
    // What a browser sends for that form.
    let req = Request::post(gw.url("/.keygate/revoke"))
        .header("content-type", "text/plain")
        .header("accept", "text/html,application/xhtml+xml")
        .header("origin", "https://elsewhere.example.org")
        .body(body::full(format!("keys={key}\r\n")))
        .unwrap();
    let a = send(c, req).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
    assert!(a.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(a.text().contains("no longer works"));
    assert_eq!(status(c, gw, &key).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_self_service_page_carries_the_form() {
    let app = crate::support::whoami::WhoAmI::start().await;
    let f = fleet(1, "possession-page", |b| app.configure(b)).await;
    let (c, gw) = (&f.clients[0], &f.gateways[0]);
    let req = Request::get(gw.url("/.keygate/keys"))
        .header("cookie", app.sign_in("alice"))
        .body(body::empty())
        .unwrap();
    let page = send(c, req).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let html = page.text();
    assert!(html.contains("Revoke a key you found"), "{html}");
    assert!(html.contains(
        r#"<form id="found" method="post" action="/.keygate/revoke" enctype="text/plain">"#
    ));
    // The key rows' "Revoke" stays the only button with exactly that text.
    assert!(html.contains(">Revoke found keys</button>"));
}
