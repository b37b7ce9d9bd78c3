//! The main listener's behaviour with keys (docs/reference.md): the identity header on success,
//! one identical 401 for every failure, 400 for two credentials, 403 for a
//! read key writing, 503 when the store is gone, 429 for brute force.

use std::time::Duration;

use base64::Engine;
use http::{Request, StatusCode};
use keygate::keyring::{Revocation, Ttl};
use keygate::keys::{KeyId, Scope};

use crate::support::body;
use crate::support::client::{self, send, Answer, HttpsClient};
use crate::support::gateway::{builder, test_actor, TestGateway};
use crate::support::redis::RedisServer;
use crate::support::upstream::Upstream;
use crate::support::{eventually, within};

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

async fn get_with(
    c: &HttpsClient,
    gw: &TestGateway,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = Request::get(gw.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(c, req.body(body::empty()).unwrap()).await
}

async fn reject_gateway() -> (Upstream, TestGateway) {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("auth", "anonymous = \"reject\"")
        .start()
        .await;
    (up, gw)
}

#[tokio::test]
async fn each_credential_form_reaches_the_upstream_as_the_keys_user() {
    let (up, gw) = reject_gateway().await;
    let (key, id) = gw.key("alice@example.org").await;
    let c = client::h1(&gw.ca);
    let bearer = format!("Bearer {key}");
    let basic = basic("apikey", &key);
    for headers in [
        vec![("authorization", basic.as_str())],
        vec![("apikey", key.as_str())],
        vec![("authorization", bearer.as_str())],
    ] {
        let answer = get_with(&c, &gw, "/data", &headers).await;
        assert_eq!(answer.status, StatusCode::OK, "{headers:?}");
        let seen = up.last();
        assert_eq!(seen.headers["x-remote-user"], "alice@example.org");
        assert_eq!(seen.headers["x-keygate-key-id"], id.as_str());
        assert!(
            !seen.headers.contains_key("authorization"),
            "credential forwarded"
        );
        assert!(!seen.headers.contains_key("apikey"), "credential forwarded");
        for (_, v) in &seen.headers {
            assert!(
                !v.as_bytes().windows(key.len()).any(|w| w == key.as_bytes()),
                "the key reached the upstream"
            );
        }
    }
}

#[tokio::test]
async fn every_failure_is_the_same_401() {
    let (up, gw) = reject_gateway().await;
    let c = client::h1(&gw.ca);
    let (revoked, revoked_id) = gw.key("bob").await;
    let revoked_id = KeyId::parse(&revoked_id).unwrap();
    gw.keyring
        .revoke(&test_actor(), Revocation::Ids(vec![revoked_id]))
        .await
        .unwrap();
    let (expiring, _) = gw
        .key_with("carol", Ttl::For(Duration::from_secs(1)), Scope::Full)
        .await;
    // A well-formed key of this deployment's format that was never issued.
    let (never_issued, _) = keygate::keys::format::generate("kg", "nobody");
    let (valid, _) = gw.key("dave").await;
    let mut wrong_checksum = valid.clone();
    wrong_checksum.pop();
    wrong_checksum.push(if valid.ends_with('a') { 'b' } else { 'a' });

    eventually(
        "the 1 s key expires",
        60,
        Duration::from_millis(100),
        || {
            let (c, gw, expiring) = (&c, &gw, &expiring);
            async move {
                let a = get_with(c, gw, "/", &[("apikey", expiring.as_str())]).await;
                (a.status == StatusCode::UNAUTHORIZED).then_some(())
            }
        },
    )
    .await;

    let forwarded_before = up.requests().len();
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("missing", vec![]),
        (
            "malformed",
            vec![("authorization", basic("apikey", "not-a-key"))],
        ),
        (
            "wrong checksum",
            vec![("authorization", basic("apikey", &wrong_checksum))],
        ),
        (
            "never issued",
            vec![("authorization", basic("apikey", never_issued.expose()))],
        ),
        (
            "revoked",
            vec![("authorization", basic("apikey", &revoked))],
        ),
        (
            "expired",
            vec![("authorization", basic("apikey", &expiring))],
        ),
        (
            "wrong user name",
            vec![("authorization", basic("someone", &valid))],
        ),
        ("key in the query string", vec![]),
        // Unreadable credentials are failures like any other, not a 400.
        (
            "Basic that is not base64",
            vec![("authorization", "Basic !!!".to_owned())],
        ),
        (
            "Basic without a colon",
            vec![(
                "authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("apikey")
                ),
            )],
        ),
        (
            "Basic that is not UTF-8",
            vec![(
                "authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(b"apikey:\xff\xfe")
                ),
            )],
        ),
        (
            "oversized Authorization",
            vec![("authorization", format!("Basic {}", "QUFB".repeat(2000)))],
        ),
    ];
    let mut first: Option<Answer> = None;
    for (what, headers) in cases {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let path = if what == "key in the query string" {
            format!("/?apikey={valid}")
        } else {
            "/".into()
        };
        let answer = get_with(&c, &gw, &path, &h).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            answer.headers["www-authenticate"], "Basic realm=\"keygate\", charset=\"UTF-8\"",
            "{what}"
        );
        if let Some(f) = &first {
            assert_eq!(answer.body, f.body, "{what}: body differs");
            assert_eq!(
                sorted_headers(&answer),
                sorted_headers(f),
                "{what}: headers differ"
            );
        } else {
            first = Some(answer);
        }
    }
    // An `apikey` header that is not visible ASCII cannot be a key either.
    let first = first.expect("at least one case");
    let req = Request::get(gw.url("/"))
        .header(
            "apikey",
            http::HeaderValue::from_bytes(b"kg_\xff\xfe").unwrap(),
        )
        .body(body::empty())
        .unwrap();
    let answer = send(&c, req).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "non-ASCII apikey");
    assert_eq!(answer.body, first.body, "non-ASCII apikey: body differs");
    assert_eq!(
        sorted_headers(&answer),
        sorted_headers(&first),
        "non-ASCII apikey: headers differ"
    );
    assert_eq!(
        up.requests().len(),
        forwarded_before,
        "a refused request reached the upstream"
    );
}

/// Every header but `date`, sorted: two answers that differ only in time compare equal.
fn sorted_headers(a: &Answer) -> Vec<(String, http::HeaderValue)> {
    let mut v: Vec<_> = a
        .headers
        .iter()
        .filter(|(k, _)| *k != "date")
        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[tokio::test]
async fn two_credentials_are_refused_never_guessed() {
    let (up, gw) = reject_gateway().await;
    let c = client::h1(&gw.ca);
    let (a, _) = gw.key("alice").await;
    let (b, _) = gw.key("bob").await;
    let answer = get_with(
        &c,
        &gw,
        "/",
        &[("authorization", &basic("apikey", &a)), ("apikey", &b)],
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = get_with(
        &c,
        &gw,
        "/",
        &[
            ("authorization", &basic("apikey", &a)),
            ("authorization", &basic("apikey", &b)),
        ],
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    // A key in `apikey` beside the app's own login or token: which identity
    // the backend would believe is a guess too.
    for app_credential in [basic("admin", "adminpw"), "Bearer app.jwt.token".to_owned()] {
        let answer = get_with(
            &c,
            &gw,
            "/",
            &[("authorization", &app_credential), ("apikey", &b)],
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{app_credential}");
    }
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn a_read_key_may_read_but_not_write() {
    let (up, gw) = reject_gateway().await;
    let c = client::h1(&gw.ca);
    let (key, _) = gw.key_with("reader", Ttl::Default, Scope::Read).await;
    for method in ["GET", "HEAD", "OPTIONS"] {
        let req = Request::builder()
            .method(method)
            .uri(gw.url("/"))
            .header("apikey", &key)
            .body(body::empty())
            .unwrap();
        assert_eq!(send(&c, req).await.status, StatusCode::OK, "{method}");
    }
    let before = up.requests().len();
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let req = Request::builder()
            .method(method)
            .uri(gw.url("/"))
            .header("apikey", &key)
            .body(body::empty())
            .unwrap();
        assert_eq!(
            send(&c, req).await.status,
            StatusCode::FORBIDDEN,
            "{method}"
        );
    }
    assert_eq!(
        up.requests().len(),
        before,
        "a write with a read key reached the upstream"
    );
}

#[tokio::test]
async fn passthrough_forwards_anonymous_traffic_but_still_checks_keys() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await; // passthrough
    let c = client::h1(&gw.ca);
    let app_login = basic("alice", "her-app-password");
    let answer = get_with(
        &c,
        &gw,
        "/",
        &[("authorization", &app_login), ("x-remote-user", "mallory")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let seen = up.last();
    assert_eq!(
        seen.headers["authorization"],
        app_login.as_str(),
        "the app's own Basic auth is its business"
    );
    assert!(!seen.headers.contains_key("x-remote-user"));
    // Another user's password in Latin-1, as older clients send it: not
    // UTF-8, yet the app's to judge, not refused as a malformed key.
    let latin1_login = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(b"alice@example.org:p\xe4ss")
    );
    let answer = get_with(&c, &gw, "/", &[("authorization", &latin1_login)]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(up.last().headers["authorization"], latin1_login.as_str());
    // An app's own large credential (a Kerberos ticket with its PAC, a JWT
    // full of claims) is the app's too, whatever its size.
    let large = "A".repeat(6000);
    for app_credential in [format!("Negotiate {large}"), format!("Bearer {large}")] {
        let answer = get_with(&c, &gw, "/", &[("authorization", &app_credential)]).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", &app_credential[..12]);
        assert_eq!(up.last().headers["authorization"], app_credential.as_str());
    }

    let answer = get_with(&c, &gw, "/", &[("apikey", "kg_wrong")]).await;
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "a bad key is not anonymous"
    );
    let (key, _) = gw.key("erin").await;
    assert_eq!(
        get_with(&c, &gw, "/", &[("apikey", &key)]).await.status,
        StatusCode::OK
    );
    assert_eq!(up.last().headers["x-remote-user"], "erin");
}

#[tokio::test]
async fn passthrough_never_forwards_a_key_sent_the_wrong_way() {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("auth", "bearer = false") // passthrough
        .start()
        .await;
    let c = client::h1(&gw.ca);
    let (key, _) = gw.key("erin").await;
    let before = up.requests().len();
    let b64 = |raw: &[u8]| base64::engine::general_purpose::STANDARD.encode(raw);
    let mut latin1 = b"jos\xe9:".to_vec();
    latin1.extend_from_slice(key.as_bytes());
    // A user name that makes `user:key` need padding, sent without it.
    let mut user = String::from("erin");
    while format!("{user}:{key}").len() % 3 == 0 {
        user.push('x');
    }
    let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(format!("{user}:{key}"));
    for (form, value) in [
        ("a .netrc with her own login", basic("erin", &key)),
        ("the Token scheme", format!("Token {key}")),
        ("Bearer, not taken here", format!("Bearer {key}")),
        ("no scheme at all", key.clone()),
        ("a Latin-1 user name", format!("Basic {}", b64(&latin1))),
        ("Basic without its padding", format!("Basic {unpadded}")),
        (
            "a key file's newline",
            format!("Basic {}", b64(format!("erin:{key}\n").as_bytes())),
        ),
        ("Token, quoted", format!("Token \"{key}\"")),
        ("Token token=", format!("Token token={key}")),
    ] {
        let answer = get_with(&c, &gw, "/", &[("authorization", &value)]).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{form}");
        assert!(
            answer.headers.contains_key("www-authenticate"),
            "{form}: the same 401 as a wrong key"
        );
    }
    assert_eq!(
        up.requests().len(),
        before,
        "a request carrying a live key reached the app"
    );
    // The app's own credentials still pass, and the key works as it should.
    let app_login = basic("erin", "her-app-password");
    let answer = get_with(&c, &gw, "/", &[("authorization", &app_login)]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(up.last().headers["authorization"], app_login.as_str());
    let answer = get_with(&c, &gw, "/", &[("authorization", &basic("apikey", &key))]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(up.last().headers["x-remote-user"], "erin");
}

/// A gateway on `redis` without the validation cache (these tests are about
/// the store path; tests/it/fleet.rs covers outages with the cache), and a
/// key that works through it.
async fn uncached_redis_gateway(
    redis: &RedisServer,
    dir: &std::path::Path,
    ns: &str,
) -> (Upstream, TestGateway, HttpsClient, String) {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("auth", "anonymous = \"reject\"")
        .redis(redis, dir, ns)
        .set("cache", "enabled = false")
        .start()
        .await;
    let c = client::h1(&gw.ca);
    let (key, _) = gw.key("frank").await;
    assert_eq!(
        get_with(&c, &gw, "/", &[("apikey", &key)]).await.status,
        StatusCode::OK
    );
    (up, gw, c, key)
}

#[tokio::test]
async fn a_store_outage_is_503_with_retry_after_never_200_never_a_hang() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (_up, gw, c, key) = uncached_redis_gateway(&redis, dir.path(), "outage").await;

    redis.kill();
    for _ in 0..3 {
        let answer = within(
            5,
            "answer while the store is down",
            get_with(&c, &gw, "/", &[("apikey", &key)]),
        )
        .await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(answer.headers.contains_key("retry-after"));
    }
}

/// A gateway behind a trusted proxy (this host: clients are named in
/// X-Forwarded-For) allowing 3 failed authentications a minute, a client,
/// and a good key of "grace".
async fn three_failures_a_minute() -> (Upstream, TestGateway, HttpsClient, String) {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("auth", "anonymous = \"reject\"")
        .set("listen", "trusted_proxies = [\"127.0.0.1/32\"]")
        .set("rate_limit", "failed_auth_per_minute = 3")
        .start()
        .await;
    let c = client::h1(&gw.ca);
    let (key, _) = gw.key("grace").await;
    (up, gw, c, key)
}

/// The limit bounds guessing, not people: a good key gets in from
/// elsewhere, and also from the guesser's own address (a NAT, an office's
/// one egress address), where a stale key in one script must not lock
/// every colleague out.
#[tokio::test]
async fn brute_force_gets_429_while_a_good_key_gets_in_even_from_its_address() {
    let (_up, gw, c, key) = three_failures_a_minute().await;
    let attacker = [("x-forwarded-for", "203.0.113.9"), ("apikey", "kg_guess")];
    let statuses: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(get_with(&c, &gw, "/", &attacker).await);
        }
        v
    };
    assert_eq!(
        statuses
            .iter()
            .filter(|a| a.status == StatusCode::UNAUTHORIZED)
            .count(),
        3
    );
    let limited = statuses.last().unwrap();
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let owner = [
        ("x-forwarded-for", "198.51.100.20"),
        ("apikey", key.as_str()),
    ];
    assert_eq!(get_with(&c, &gw, "/", &owner).await.status, StatusCode::OK);
    let colleague = [("x-forwarded-for", "203.0.113.9"), ("apikey", key.as_str())];
    assert_eq!(
        get_with(&c, &gw, "/", &colleague).await.status,
        StatusCode::OK
    );
}

/// An IPv6 client owns its /64: changing the low bits of its address on
/// each try does not give it a fresh limit (nor fill the table alone).
#[tokio::test]
async fn brute_force_rotating_addresses_in_one_ipv6_64_is_limited_as_one_client() {
    let (_up, gw, c, key) = three_failures_a_minute().await;
    let mut statuses = Vec::new();
    for i in 0..6u32 {
        let client = format!("2001:db8:7:7:{:x}::{:x}", i + 1, i * 7919 + 1);
        let attacker = [("x-forwarded-for", client.as_str()), ("apikey", "kg_guess")];
        statuses.push(get_with(&c, &gw, "/", &attacker).await.status);
    }
    assert_eq!(
        statuses,
        [StatusCode::UNAUTHORIZED; 3]
            .into_iter()
            .chain([StatusCode::TOO_MANY_REQUESTS; 3])
            .collect::<Vec<_>>()
    );
    // The next /64 is another client, and the owner's good key gets in.
    let neighbour = [
        ("x-forwarded-for", "2001:db8:7:8::1"),
        ("apikey", "kg_guess"),
    ];
    assert_eq!(
        get_with(&c, &gw, "/", &neighbour).await.status,
        StatusCode::UNAUTHORIZED
    );
    let owner = [
        ("x-forwarded-for", "2001:db8:7:7::1"),
        ("apikey", key.as_str()),
    ];
    assert_eq!(get_with(&c, &gw, "/", &owner).await.status, StatusCode::OK);
}

/// A client sending `headers` (a made-up key) four times, against
/// `failed_auth_per_minute = 3`: three 401s, then 429.
async fn three_failures_then_429(c: &HttpsClient, gw: &TestGateway, headers: &[(&str, &str)]) {
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(get_with(c, gw, "/", headers).await.status);
    }
    let expected = [StatusCode::UNAUTHORIZED; 3]
        .into_iter()
        .chain([StatusCode::TOO_MANY_REQUESTS]);
    assert_eq!(statuses, expected.collect::<Vec<_>>());
}

/// Behind a chain of trusted proxies (a load balancer, then the proxy in
/// front of keygate, which appends the balancer's address) each client
/// counts by its own address: one guesser does not get every other
/// client behind the balancer a 429.
#[tokio::test]
async fn behind_two_trusted_proxies_each_client_has_its_own_failure_limit() {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("auth", "anonymous = \"reject\"")
        .set(
            "listen",
            "trusted_proxies = [\"127.0.0.1/32\", \"10.0.0.0/8\"]",
        )
        .set("rate_limit", "failed_auth_per_minute = 3")
        .start()
        .await;
    let c = client::h1(&gw.ca);
    let guesser = [
        ("x-forwarded-for", "203.0.113.9, 10.0.0.5"),
        ("apikey", "kg_guess"),
    ];
    three_failures_then_429(&c, &gw, &guesser).await;
    let typo = [
        ("x-forwarded-for", "198.51.100.20, 10.0.0.5"),
        ("apikey", "kg_typo"),
    ];
    assert_eq!(
        get_with(&c, &gw, "/", &typo).await.status,
        StatusCode::UNAUTHORIZED,
        "another client behind the same balancer is not the guesser"
    );
}

/// A dual-stack listener (`[::]`) sees an IPv4 proxy as `::ffff:a.b.c.d`;
/// it is still the proxy `trusted_proxies` names by its IPv4 address, so
/// the clients behind it are told apart.
#[tokio::test]
async fn a_dual_stack_listener_trusts_an_ipv4_proxy() {
    let up = Upstream::start().await;
    // Also written as the mapped address a dual-stack listener once saw.
    for proxy in ["127.0.0.1/32", "::ffff:127.0.0.1"] {
        let gw = builder(&up.url())
            .set("listen", "addr = \"[::]:0\"")
            .set("auth", "anonymous = \"reject\"")
            .set("listen", &format!("trusted_proxies = [\"{proxy}\"]"))
            .set("rate_limit", "failed_auth_per_minute = 3")
            .start()
            .await;
        let c = client::h1(&gw.ca);
        let guesser = [("x-forwarded-for", "203.0.113.9"), ("apikey", "kg_guess")];
        three_failures_then_429(&c, &gw, &guesser).await;
        let typo = [("x-forwarded-for", "198.51.100.20"), ("apikey", "kg_typo")];
        assert_eq!(
            get_with(&c, &gw, "/", &typo).await.status,
            StatusCode::UNAUTHORIZED,
            "{proxy}: another client behind the same proxy is not the guesser"
        );
    }
}

#[tokio::test]
async fn requests_per_key_are_limited() {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("rate_limit", "requests_per_second = 2")
        .start()
        .await;
    let c = client::h1(&gw.ca);
    let (key, _) = gw.key("heidi").await;
    let (other, _) = gw.key("ivan").await;
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(get_with(&c, &gw, "/", &[("apikey", &key)]).await.status);
    }
    assert!(codes.contains(&StatusCode::TOO_MANY_REQUESTS), "{codes:?}");
    assert_eq!(codes[0], StatusCode::OK);
    assert_eq!(
        get_with(&c, &gw, "/", &[("apikey", &other)]).await.status,
        StatusCode::OK,
        "another key is not limited"
    );
}

#[tokio::test]
async fn last_use_is_recorded() {
    let up = Upstream::start().await;
    let gw = builder(&up.url()).start().await;
    let c = client::h1(&gw.ca);
    let (key, id) = gw.key("judy").await;
    let id = KeyId::parse(&id).unwrap();
    assert!(gw
        .keyring
        .get(&id)
        .await
        .unwrap()
        .unwrap()
        .last_used
        .is_none());
    assert_eq!(
        get_with(&c, &gw, "/", &[("apikey", &key)]).await.status,
        StatusCode::OK
    );
    eventually(
        "last_used is written",
        100,
        Duration::from_millis(20),
        || async { gw.keyring.get(&id).await.unwrap().unwrap().last_used },
    )
    .await;
}

#[tokio::test]
async fn a_store_that_stops_answering_is_503_within_the_store_timeout() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    // store.timeout is 500 ms in the test store section.
    let (_up, gw, c, key) = uncached_redis_gateway(&redis, dir.path(), "frozen").await;

    redis.freeze();
    let started = std::time::Instant::now();
    let answer = within(
        5,
        "answer while the store hangs",
        get_with(&c, &gw, "/", &[("apikey", &key)]),
    )
    .await;
    let took = started.elapsed();
    redis.thaw();
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.headers.contains_key("retry-after"));
    assert!(
        took < Duration::from_secs(2),
        "took {took:?} with a 500 ms store timeout"
    );
}

#[tokio::test]
async fn credential_forms_can_be_switched_off() {
    let up = Upstream::start().await;
    let gw = builder(&up.url())
        .set("auth", "bearer = false")
        .set("auth", "apikey_header = false")
        .start()
        .await; // passthrough: a switched-off form is the app's business
    let c = client::h1(&gw.ca);
    let (key, _) = gw.key("quinn").await;
    // The app's own bearer tokens pass; one of our keys in that form is
    // refused, never handed to the app.
    let app_token = "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln";
    let answer = get_with(&c, &gw, "/", &[("authorization", app_token)]).await;
    assert_eq!(answer.status, StatusCode::OK);
    let seen = up.last();
    assert!(!seen.headers.contains_key("x-remote-user"));
    assert_eq!(seen.headers["authorization"], app_token);
    let bearer = format!("Bearer {key}");
    let answer = get_with(&c, &gw, "/", &[("authorization", bearer.as_str())]).await;
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "a switched-off Bearer key"
    );
    // The `apikey` header switched off is the app's header (LabKey's own
    // keys): not looked at.
    let answer = get_with(&c, &gw, "/", &[("apikey", key.as_str())]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        !up.last().headers.contains_key("x-remote-user"),
        "a switched-off apikey header authenticated"
    );
    // Basic is still on.
    assert_eq!(
        get_with(&c, &gw, "/", &[("authorization", &basic("apikey", &key))])
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(up.last().headers["x-remote-user"], "quinn");

    let all_off = keygate::config::parse(
        "[listen]\nplaintext = true\n[upstream]\nurl = \"http://127.0.0.1:1\"\n[store]\nkind = \"memory\"\n\
         [auth]\nbasic = false\nbearer = false\napikey_header = false\n",
    )
    .unwrap_err();
    assert!(
        all_off.to_string().contains("auth.basic: at least one of"),
        "{all_off}"
    );
}
